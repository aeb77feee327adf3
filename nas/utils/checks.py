"""Argument checks shared across subpackages: one wording for one kind of mistake."""

from __future__ import annotations

from typing import Any

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
