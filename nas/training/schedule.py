"""Learning-rate schedule shapes shared by the trainer's schedule and the strategies' own
(progressive shrinking's per-phase restarts)."""

from __future__ import annotations

import math


def shape(schedule: str, progress: float) -> float:
    """The multiplier of ``schedule`` (``cosine``, ``step``, ``constant``) at ``progress`` in
    [0, 1] of its decay: cosine to 0, or x0.1 at 1/3 and 2/3."""
    progress = min(1.0, max(0.0, progress))
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 0.1 ** int(progress * 3)


def warmed(schedule: str, step: int, total: int, warm: int) -> float:
    """Step ``step`` of a ``total``-step schedule that warms up linearly over its first
    ``warm`` steps, then decays by ``schedule``."""
    if warm and step < warm:
        return (step + 1) / warm
    return shape(schedule, (step - warm) / max(1, total - warm))
