"""Registries: spaces by name, and text formats for configs (``nb201`` strings).

>>> "resnet_like" in list_spaces()
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import UsageError
from nas.searchspace.space import Config, Space

log = logging.getLogger(__name__)

_SPACES: dict[str, Callable[[], Space]] = {}
_CACHE: dict[str, Space] = {}


def register_space(name: str, factory: Callable[[], Space] | None = None) -> Any:
    """Register a zero-argument factory returning a :class:`Space` under ``name``.

    Usable as a decorator: ``@register_space("my_space")``.
    """

    def deco(fn: Callable[[], Space]) -> Callable[[], Space]:
        _load_builtins()  # so that a user's space of a built-in's name is said to replace it
        if name in _SPACES and _SPACES[name] is not fn:
            log.warning("space %r: registered again; the new definition replaces the old",
                        name)
        _SPACES[name] = fn
        _CACHE.pop(name, None)
        return fn

    return deco(factory) if factory is not None else deco


def list_spaces() -> list[str]:
    """Names of all registered spaces."""
    _load_builtins()
    return sorted(_SPACES)


def get_space(name: str) -> Space:
    """The registered space ``name`` (built once, then cached: spaces are immutable)."""
    _load_builtins()
    if name not in _SPACES:
        raise UsageError(
            f"unknown space {name!r}; known spaces: {', '.join(sorted(_SPACES))} "
            "(or give the path of a YAML/JSON space file)"
        )
    if name not in _CACHE:
        space = _SPACES[name]()
        if space.name != name:
            raise UsageError(f"space factory {name!r} returned a space named {space.name!r}")
        _CACHE[name] = space
    return _CACHE[name]


def load_space(name_or_path: str | os.PathLike[str] | Space) -> Space:
    """A registered space by name, or a space loaded from a YAML/JSON file path."""
    if isinstance(name_or_path, Space):
        return name_or_path
    text = os.fspath(name_or_path)
    looks_like_file = text.endswith((".yaml", ".yml", ".json")) or os.sep in text
    if Path(text).is_dir() and text not in _SPACES:
        raise UsageError(f"space {text!r}: is a directory; give a space name (see `nas "
                         "spaces`) or a YAML/JSON space file")
    if looks_like_file or (Path(text).is_file() and text not in _SPACES):
        from nas.searchspace.io import load_space_file

        return load_space_file(text)
    return get_space(text)


def _load_builtins() -> None:
    import nas.searchspace.builtin  # noqa: F401  (registers the built-in spaces)


@dataclass(frozen=True)
class ArchFormat:
    """A text format for configs: ``parse(space, text) -> dict`` and
    ``format(space, config) -> str``."""

    name: str
    parse: Callable[[Space, str], dict[str, Any]]
    format: Callable[[Space, Config], str]


_FORMATS: dict[str, ArchFormat] = {}


def register_arch_format(name: str, parse: Callable[[Space, str], dict[str, Any]],
                         fmt: Callable[[Space, Config], str]) -> None:
    """Register a text format usable as a space's ``arch_format``."""
    _FORMATS[name] = ArchFormat(name, parse, fmt)


def arch_format(space: Space) -> ArchFormat:
    """The text format of ``space`` (error if it has none or it is unknown)."""
    _load_builtins()
    if not space.arch_format:
        raise UsageError(f"space {space.name!r} has no arch_format (no text form for configs)")
    if space.arch_format not in _FORMATS:
        raise UsageError(
            f"space {space.name!r}: arch_format {space.arch_format!r} is not registered; "
            f"known: {', '.join(sorted(_FORMATS))}"
        )
    return _FORMATS[space.arch_format]
