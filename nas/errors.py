"""One exception hierarchy for the whole package.

Every error a user can cause derives from :class:`NasError`, so callers (and the CLI) can catch
one type. Messages say which rule broke, the value seen and what is allowed, with the path of
the offending field (``stages.2.blocks.1.kernel``).
"""

from __future__ import annotations


class NasError(Exception):
    """Base class of every error raised on purpose by ``nas``."""


class UsageError(NasError, ValueError):
    """A name, flag or argument that is not allowed (unknown space, bad option value)."""


class SpaceDefinitionError(NasError, ValueError):
    """A search-space definition (Python, dict, YAML or JSON) that breaks a rule.

    Attributes:
        field: the location of the offending entry inside the definition, as a list of keys
            and list indices (used to point at the line of a YAML file).
    """

    def __init__(self, message: str, field: tuple[str | int, ...] = ()) -> None:
        self.field = tuple(field)
        self.bare_message = message
        where = _format_field(self.field)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(NasError, ValueError):
    """A configuration that is not a member of its space (missing, unknown or bad value)."""


class DirectoryInUseError(NasError):
    """A run or output directory that another process is working in (it holds the
    directory's lock: :class:`nas.utils.files.DirectoryLock`)."""


def _format_field(field: tuple[str | int, ...]) -> str:
    out = ""
    for part in field:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
