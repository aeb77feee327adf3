"""Errors raised by :mod:`nas.supernet` (all derive from :class:`nas.errors.NasError`)."""

from __future__ import annotations

from nas.errors import NasError, UsageError


class SupernetError(NasError):
    """A supernet cannot do what was asked (unsupported space, nothing activated, ...)."""


class InputShapeError(SupernetError, ValueError):
    """An input tensor whose shape the supernet was not built for."""


class CheckpointError(SupernetError):
    """A checkpoint file that is unreadable, corrupt, or holds another space."""


class NotACheckpointError(CheckpointError, UsageError):
    """A file given as a checkpoint that is not there or is no checkpoint of that kind at all
    (a usage error: exit status 2 on the command line, like any wrong input file)."""


__all__ = ["CheckpointError", "InputShapeError", "NotACheckpointError", "SupernetError",
           "UsageError"]
