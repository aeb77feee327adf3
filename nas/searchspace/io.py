"""Loading and saving spaces and configs as YAML or JSON.

YAML is read with ``yaml.SafeLoader`` only. Errors in a file name the file, the line and the
field, e.g. ``space.yaml:17: dims[0].children[2].children[0]: kernel: values must be unique,
got [3, 3]``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from nas.errors import ConfigError, SpaceDefinitionError, UsageError, _format_field
from nas.searchspace.space import Config, Space
from nas.utils.files import atomic_write_text


class _LineDict(dict):
    """A dict that remembers the line of each key (1-based)."""

    lines: dict[Any, int]
    line: int


class _LineList(list):
    lines: list[int]
    line: int


_MERGE = "tag:yaml.org,2002:merge"


class _LineLoader(yaml.SafeLoader):
    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # remember a mapping's own keys (by identity) before it is flattened: flattening
        # puts merged (`<<: *anchor`) pairs among them, and a merged anchor is flattened
        # while the mapping that merges it is, before it is built itself
        if not hasattr(node, "own_keys"):
            node.own_keys = {id(k) for k, _ in node.value if k.tag != _MERGE}
        super().flatten_mapping(node)


# Booleans as in YAML 1.2 (the current standard): only true/false. YAML 1.1, PyYAML's
# default, also reads yes/no/on/off as booleans, which turned a choice written `[on, off]`
# or `[yes, no]` into [True, False] unasked; here they stay strings.
_BOOL = "tag:yaml.org,2002:bool"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_LineLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))
# Numbers as in YAML 1.2 and JSON: 1e-3 and 1.5e3 are floats (YAML 1.1 wants a dot and a
# signed exponent, 1.0e-3, and read 1e-3 or 1.5e3 as strings, so a value list
# [1e-3, 1.0e-2] mixed a string and a float).
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """Writes what :class:`_LineLoader` reads back unchanged: a string that it would read
    as a number or boolean (``'1e-3'``) is quoted."""


_Dumper.yaml_implicit_resolvers = {k: list(v) for k, v in
                                   _LineLoader.yaml_implicit_resolvers.items()}
# and a string that YAML 1.1 readers (PyYAML's safe_load, most tools) would read as a boolean
# is quoted too, so that the files this package writes mean the same to them
_Dumper.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)$"),
    list("yYnNoO"))


def dump_yaml(data: Any) -> str:
    """YAML text of plain ``data`` that this package's loader reads back as the same
    values (keys in their order, lists inline)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    own = node.own_keys  # (see _LineLoader.flatten_mapping)
    out = _LineDict()
    out.lines = {}
    out.line = node.start_mark.line + 1
    seen: set[Any] = set()  # the node's own keys so far
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        # merged keys override each other and are overridden by the node's own, as YAML's
        # merge says; only an own key written twice is a duplicate
        if id(key_node) in own:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    out = _LineList(loader.construct_object(c, deep=True) for c in node.value)
    out.lines = [c.start_mark.line + 1 for c in node.value]
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line_of(doc: Any, field: tuple[str | int, ...]) -> int | None:
    line = getattr(doc, "line", None)
    node = doc
    for part in field:
        if isinstance(node, _LineDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, _LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def to_plain(obj: Any) -> Any:
    """A document from :func:`read_document` as plain dicts and lists (without the line
    numbers): what is kept, saved or shown must not carry the loader's types."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    return obj


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_document(path: str | Path) -> tuple[Any, str]:
    """Parse a YAML or JSON file; returns ``(document, kind)``. Errors name file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot be read ({e})") from None
    if path.suffix.lower() == ".json":
        try:  # duplicate keys are errors, as in YAML files
            return json.loads(text, object_pairs_hook=_json_object), "json"
        except json.JSONDecodeError as e:
            raise SpaceDefinitionError(f"{path}:{e.lineno}: malformed JSON: {e.msg}") from None
        except ValueError as e:
            raise SpaceDefinitionError(f"{path}: malformed JSON: {e}") from None
    try:
        return yaml.load(text, Loader=_LineLoader), "yaml"  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = e.problem or e.context or "malformed YAML"
        raise SpaceDefinitionError(f"{path}{line}: malformed YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise SpaceDefinitionError(f"{path}: malformed YAML: {e}") from None


def load_space_file(path: str | Path) -> Space:
    """Load a space definition from a YAML or JSON file."""
    doc, _ = read_document(path)
    try:
        space = Space.from_dict(to_plain(doc))
    except SpaceDefinitionError as e:
        line = _line_of(doc, e.field)
        where = f"{path}:{line}" if line else str(path)
        field = _format_field(e.field)
        raise SpaceDefinitionError(
            f"{where}: {field + ': ' if field else ''}{e.bare_message}"
        ) from None
    _check_satisfiable(space, doc, path)
    return space


def _check_satisfiable(space: Space, doc: Any, path: str | Path) -> None:
    """A file whose constraints admit no config is an error at load, naming the constraint
    that admits nothing by itself, or all of them. The solver looks for one config first
    (what nearly every space ends with, quickly); only when it finds none are the configs
    counted exactly, without the predicates (so what is refused here is empty whatever they
    say); a count too large to make (tables of constraints over many dimensions) leaves the
    verdict to sampling, which reports it."""
    from nas.errors import NasError

    if not space.constraints:
        return
    try:
        if space.complete({}) is not None:
            return
    except (NasError, RecursionError):
        pass

    if space._exact_count() != 0:
        return
    alone = [i for i, c in enumerate(space.constraints)
             if Space(space.name, space.root.children, [c])._exact_count() == 0]
    if alone:
        i = alone[0]
        field: tuple[str | int, ...] = ("constraints", space.constraint_entries[i])
        what = f"this constraint admits no config: {space.constraints[i].describe()}"
        from nas.searchspace.constraints import Compare, Divides

        c = space.constraints[i]
        if isinstance(c, (Divides, Compare)):  # arithmetic on values that are no numbers
            for p in c.paths:
                odd = [v for v in space.values(p)
                       if isinstance(v, (str, bool)) or not isinstance(v, (int, float))]
                if odd:
                    what += (f" ({p} has values that are not numbers: "
                             f"{', '.join(map(repr, odd[:3]))})")
                    break
    else:
        field = ("constraints",)
        what = ("the constraints together admit no config: "
                + "; ".join(c.describe() for c in space.constraints))
    line = _line_of(doc, field)
    raise SpaceDefinitionError(f"{path}{f':{line}' if line else ''}: {_format_field(field)}: "
                               f"{what}")


def save_space(space: Space, path: str | Path) -> None:
    """Write a space definition as YAML or JSON (by suffix), atomically. A space whose
    constraints admit no config is refused, as loading the file would refuse it."""
    path = Path(path)
    _check_satisfiable(space, None, path)
    d = space.to_dict()
    if path.suffix.lower() == ".json":
        text = json.dumps(d, indent=2) + "\n"
    else:
        text = dump_yaml(d)
    atomic_write_text(path, text)


def load_config(space: Space, path: str | Path) -> Config:
    """Load a config file (JSON or YAML; ``{"space": ..., "config": {...}}`` or the bare
    nested config; for a space with a text format, also one line of it, e.g. a
    NAS-Bench-201 string) and validate it against ``space``."""
    try:
        doc, _ = read_document(path)
    except SpaceDefinitionError:
        lines = _text_lines(path)
        if space.arch_format and len(lines) == 1 and not lines[0].startswith(("{", "[")):
            return _parse_arch_line(space, lines[0], path)
        if len(lines) > 1 and all(_is_json(line) for line in lines):
            raise ConfigError(f"{path}: holds {len(lines)} configs, one JSON per line (as "
                              "`nas spaces sample --n N` writes); give a file with one "
                              "config") from None
        raise
    if isinstance(doc, str) and space.arch_format:
        return _parse_arch_line(space, doc, path)
    try:
        return space.config(to_plain(doc))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _text_lines(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _parse_arch_line(space: Space, text: str, path: str | Path) -> Config:
    try:
        return space.parse_arch(text.strip())
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{path}: not a config of {space.name!r}: neither JSON/YAML nor "
                          f"its text form ({e})") from None


def save_config(config: Config, path: str | Path) -> None:
    """Write ``{"space": name, "id": ..., "config": {...}}`` as JSON, atomically."""
    payload = {"space": config.space.name, "id": config.id, "config": config.to_dict()}
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
