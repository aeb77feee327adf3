"""Constraints between dimensions.

Declarative constraints (:class:`Divides`, :class:`Compare`, :class:`Forbid`) name the
dimensions they read, so the space can check them early while sampling, vectorise them, count
them exactly in :meth:`Space.cardinality`, and save them to YAML. A :class:`Predicate` wraps a
user function of the whole config; it is saved by name and must be registered with
:func:`register_predicate` before a saved space that uses it is loaded (no code is ever loaded
from a file).

A constraint that reads a dimension which is absent in a config (a block beyond the stage's
depth) holds trivially.

>>> Divides("stages.0.blocks.0.cardinality", "stages.0.width").check((4, 64))
True
>>> Compare("stages.1.width", ">=", "stages.0.width").check((32, 64))
False
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import SpaceDefinitionError
from nas.searchspace.dims import value_key

_CMP: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


class Constraint:
    """Base of declarative constraints: subclasses define ``paths``, ``_ok`` and ``to_dict``."""

    paths: tuple[str, ...] = ()

    def check(self, values: tuple[Any, ...]) -> bool:
        """Whether the constraint holds; ``values`` align with ``paths``, ``None`` = absent."""
        if any(v is None for v in values):
            return True
        try:
            return bool(self._ok(*values))
        except (TypeError, ZeroDivisionError):
            return False

    def check_many(self, cols: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Vectorised :meth:`check`; ``cols[i] = (values, active)`` for ``paths[i]``."""
        n = len(cols[0][0])
        present = np.ones(n, dtype=bool)
        for _, act in cols:
            present &= act
        ok = np.ones(n, dtype=bool)
        if present.any():
            args = [vals[present] for vals, _ in cols]
            try:
                with np.errstate(divide="ignore", invalid="ignore"):
                    res = np.asarray(self._ok(*args), dtype=bool)
                if res.shape != (int(present.sum()),):
                    raise TypeError
            except (TypeError, ZeroDivisionError, ValueError):
                res = np.array([self.check(tuple(a[i] for a in args)) for i in range(len(args[0]))],
                               dtype=bool)
            ok[present] = res
        return ok

    def _ok(self, *values: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Divides(Constraint):
    """``divisor`` divides ``dividend`` (e.g. cardinality divides the width, heads the dim)."""

    divisor: str
    dividend: str

    @property
    def paths(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.divisor, self.dividend)

    def _ok(self, a: Any, b: Any) -> Any:
        if isinstance(a, np.ndarray):
            if a.dtype.kind in "iu" and b.dtype.kind in "iu":
                a, b = a.astype(np.int64), b.astype(np.int64)
            else:  # float values: the same rule as the scalar path (no truncation)
                a, b = a.astype(np.float64), b.astype(np.float64)
            return (a != 0) & (np.remainder(b, np.where(a == 0, 1, a)) == 0)
        return a != 0 and b % a == 0

    def describe(self) -> str:
        return f"{self.divisor} must divide {self.dividend}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "divides", "divisor": self.divisor, "dividend": self.dividend}


@dataclass(frozen=True)
class Compare(Constraint):
    """``left <op> right``; ``right`` is another dimension's path (str) or a number."""

    left: str
    op: str
    right: Any

    def __post_init__(self) -> None:
        if self.op not in _CMP:
            raise SpaceDefinitionError(
                f"compare op {self.op!r} is not allowed; allowed: {', '.join(_CMP)}"
            )
        if not isinstance(self.right, (str, int, float)) or isinstance(self.right, bool):
            raise SpaceDefinitionError(
                f"compare right side must be a dimension path or a number, got {self.right!r}"
            )

    @property
    def paths(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.left, self.right) if isinstance(self.right, str) else (self.left,)

    def _ok(self, a: Any, b: Any = None) -> Any:
        return _CMP[self.op](a, self.right if b is None else b)

    def describe(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "compare", "left": self.left, "op": self.op, "right": self.right}


@dataclass(frozen=True)
class Forbid(Constraint):
    """Forbid a combination: the config may not have every listed path at a listed value.

    >>> Forbid({"stages.3.attention": "mhsa", "stages.3.bits": [4]}).check(("mhsa", 4))
    False
    """

    combination: tuple[tuple[str, tuple[Any, ...]], ...]

    def __init__(self, combination: Mapping[str, Any] | tuple[tuple[str, Any], ...]) -> None:
        items = combination.items() if isinstance(combination, Mapping) else combination
        norm = []
        for path, vals in items:
            if not isinstance(path, str):
                raise SpaceDefinitionError(f"forbid: keys must be dimension paths, got {path!r}")
            vals = tuple(vals) if isinstance(vals, (list, tuple)) else (vals,)
            if not vals:
                raise SpaceDefinitionError(f"forbid: {path} needs at least one value")
            norm.append((path, vals))
        if not norm:
            raise SpaceDefinitionError("forbid: needs at least one path")
        object.__setattr__(self, "combination", tuple(norm))

    @property
    def paths(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(p for p, _ in self.combination)

    def check(self, values: tuple[Any, ...]) -> bool:
        if any(v is None for v in values):
            return True
        return not all(
            value_key(v) in {value_key(w) for w in vals}
            for v, (_, vals) in zip(values, self.combination)
        )

    def check_many(self, cols: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        hit = np.ones(len(cols[0][0]), dtype=bool)
        for (vals, act), (_, bad) in zip(cols, self.combination):
            keys = {value_key(w) for w in bad}
            hit &= act & np.fromiter((value_key(v) in keys for v in vals), bool, len(vals))
        return ~hit

    def describe(self) -> str:
        parts = [f"{p} in {list(v)}" if len(v) > 1 else f"{p} == {v[0]!r}"
                 for p, v in self.combination]
        return "forbidden combination: " + " and ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "forbid",
            "combination": {p: (list(v) if len(v) > 1 else v[0]) for p, v in self.combination},
        }


_PREDICATES: dict[str, Callable[[Any], bool]] = {}


def register_predicate(name: str, fn: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Register ``fn(config) -> bool`` under ``name`` so saved spaces can refer to it."""
    if not callable(fn):
        raise SpaceDefinitionError(f"predicate {name!r}: expected a callable, got {fn!r}")
    _PREDICATES[name] = fn
    return fn


@dataclass(frozen=True)
class Predicate:
    """A named, user-supplied rule over the whole config: ``fn(config) -> bool``.

    Predicates cannot be checked before a config is complete, nor counted without
    enumeration; prefer a declarative constraint where one fits.
    """

    name: str
    fn: Callable[[Any], bool] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.fn is None:
            if self.name not in _PREDICATES:
                known = ", ".join(sorted(_PREDICATES)) or "none registered"
                raise SpaceDefinitionError(
                    f"predicate {self.name!r} is not registered (known: {known}); call "
                    "nas.searchspace.register_predicate(name, fn) before loading the space"
                )
            object.__setattr__(self, "fn", _PREDICATES[self.name])
        elif not callable(self.fn):
            raise SpaceDefinitionError(f"predicate {self.name!r}: fn must be callable")

    def __call__(self, config: Any) -> bool:
        assert self.fn is not None
        return bool(self.fn(config))

    def describe(self) -> str:
        return f"predicate {self.name!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "predicate", "name": self.name}


def constraint_from_dict(d: Any, field: tuple[str | int, ...] = ()) -> Constraint | Predicate:
    """Build a constraint from its ``to_dict`` form."""
    if not isinstance(d, Mapping):
        raise SpaceDefinitionError(
            f"a constraint must be a mapping with a type (divides, compare, forbid, predicate), "
            f"e.g. {{type: compare, left: stages.1.width, op: '>=', right: stages.0.width}}; "
            f"got {d!r}", field)
    kind = d.get("type")
    fields = {
        "divides": ("divisor", "dividend"),
        "compare": ("left", "op", "right"),
        "forbid": ("combination",),
        "predicate": ("name",),
    }
    if kind not in fields:
        raise SpaceDefinitionError(
            f"constraint type {kind!r} is not known; allowed: {', '.join(fields)}",
            field + ("type",),
        )
    extra = set(d) - set(fields[kind]) - {"type"}
    if extra:
        raise SpaceDefinitionError(
            f"unknown key(s) {sorted(extra)} for a {kind} constraint; allowed: "
            f"{', '.join(fields[kind])}", field + (sorted(extra)[0],)
        )
    missing = [k for k in fields[kind] if k not in d]
    if missing:
        raise SpaceDefinitionError(f"{kind} constraint needs {', '.join(missing)}", field)
    try:
        if kind == "divides":
            return Divides(d["divisor"], d["dividend"])
        if kind == "compare":
            return Compare(d["left"], d["op"], d["right"])
        if kind == "forbid":
            if not isinstance(d["combination"], Mapping):
                raise SpaceDefinitionError("forbid combination must be a mapping path -> values")
            return Forbid(d["combination"])
        return Predicate(d["name"])
    except SpaceDefinitionError as e:
        raise SpaceDefinitionError(e.bare_message, field + e.field) from None
