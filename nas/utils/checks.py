"""Argument checks shared across subpackages: one wording for one kind of mistake."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nas.errors import UsageError


def check_int(name: str, value: Any, lo: int) -> int:
    """``value`` if it is an integer (not a bool) ``>= lo``; otherwise a one-line
    :class:`~nas.errors.UsageError` naming ``name`` (a flag, an option or an argument) and
    what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name}: must be an integer >= {lo}, got {value!r}")
    if value < lo:
        raise UsageError(f"{name}: must be >= {lo}, got {value}")
    return value


def check_number(where: str, value: Any, kind: str, lo: float, hi: float = math.inf) -> None:
    """A one-line :class:`~nas.errors.UsageError` naming ``where`` unless ``value`` is an
    integer (``kind="int"``; numpy integers too, never a bool) or a finite number
    (``kind="float"``) within ``lo..hi``, both ends inclusive."""
    number = (isinstance(value, (int, float, np.integer, np.floating))
              and not isinstance(value, (bool, np.bool_)))
    if kind == "int":
        if not (number and isinstance(value, (int, np.integer)) and lo <= value <= hi):
            span = f">= {lo:g}" if hi == math.inf else f"in {lo:g}..{hi:g}"
            raise UsageError(f"{where}: must be an integer {span}, got {value!r}")
    elif not (number and math.isfinite(value) and lo <= value <= hi):
        span = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
        raise UsageError(f"{where}: must be a number {span}, got {value!r}")
