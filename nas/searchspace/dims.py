"""Dimension primitives: the small immutable value objects a search space is made of.

>>> k = Choice("kernel", (3, 5, 7))
>>> k.values, k.ordinal, k.default
((3, 5, 7), True, 3)
>>> d = IntRange("depth", 1, 4)
>>> d.values
(1, 2, 3, 4)
>>> Condition("stages.0.depth", ">=", 2).holds(3)
True
"""

from __future__ import annotations

import contextvars
import math
import re
from dataclasses import dataclass, field
from typing import Any, Union

from nas.errors import SpaceDefinitionError

Scalar = Union[int, float, str, bool]

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_OPS = (">=", ">", "<=", "<", "==", "!=", "in", "not in")


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid label (letters, digits, ``_``, ``-``), else raise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpaceDefinitionError(
            f"{what} must be a non-empty string of letters, digits, '_' or '-', got {name!r}"
        )
    return name


def _check_scalar(value: object, where: str) -> Scalar:
    if isinstance(value, bool) or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpaceDefinitionError(f"{where}: values must be finite, got {value!r}")
        return value
    raise SpaceDefinitionError(
        f"{where}: values must be int, float, str or bool, got {value!r} ({type(value).__name__})"
    )


def value_key(v: object) -> tuple[bool, object]:
    """A hashable key under which ``True`` and ``1`` differ but ``3`` and ``3.0`` agree."""
    return (isinstance(v, bool), v)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Condition:
    """The dimension or group it is attached to exists only when ``path <op> value`` holds.

    ``path`` names another dimension that is declared earlier in the space. When that
    dimension is itself absent, the condition does not hold.

    Args:
        path: dotted path of the dimension the condition reads, e.g. ``"stages.0.depth"``.
        op: one of ``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``, ``in``, ``not in``.
        value: the right-hand side (a tuple for ``in``/``not in``).
    """

    path: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise SpaceDefinitionError(f"condition path must be a dotted string, got {self.path!r}")
        if self.op not in _OPS:
            raise SpaceDefinitionError(
                f"condition op {self.op!r} is not allowed; allowed: {', '.join(_OPS)}"
            )
        if self.op in ("in", "not in"):
            if not isinstance(self.value, (list, tuple)):
                raise SpaceDefinitionError(
                    f"condition {self.op!r} needs a list of values, got {self.value!r}"
                )
            for v in self.value:
                _check_scalar(v, f"condition {self.op!r}")
            object.__setattr__(self, "value", tuple(self.value))
        else:  # one value to compare with: a list would never equal a dimension's value
            _check_scalar(self.value, f"condition {self.op!r} (for a list use 'in')")

    def holds(self, v: Any) -> bool:
        """Whether the condition holds when the dimension at ``path`` has value ``v``."""
        op, w = self.op, self.value
        if op == "in":
            return v in w
        if op == "not in":
            return v not in w
        if op == "==":
            return v == w
        if op == "!=":
            return v != w
        try:
            if op == ">=":
                return v >= w
            if op == ">":
                return v > w
            if op == "<=":
                return v <= w
            return v < w
        except TypeError:
            return False

    def describe(self) -> str:
        v = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.path} {self.op} {v!r}"

    def to_dict(self) -> dict[str, Any]:
        v = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"path": self.path, "op": self.op, "value": v}


def _conditions(when: Any) -> tuple[Condition, ...]:
    if when is None:
        return ()
    if isinstance(when, Condition):
        return (when,)
    out = tuple(when)
    for c in out:
        if not isinstance(c, Condition):
            raise SpaceDefinitionError(f"'when' must hold Condition objects, got {c!r}")
    return out


# Set while a definition this package stored earlier (checkpoints, latency tables) is read:
# checks added since, which would refuse it, are relaxed so that it keeps its old meaning.
STORED_DEFINITION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "stored_definition", default=False)


# Set while a space's fingerprint is computed: ``to_dict`` then leaves out what was added
# to the written form later without changing the space (``ordinal: true`` on numeric values
# out of order, implied before it was required), so that fingerprints stay as they were.
CANONICAL_FORM: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "canonical_form", default=False)


def _monotonic(vals: tuple[Scalar, ...]) -> bool:
    pairs = list(zip(vals, vals[1:]))
    return all(a < b for a, b in pairs) or all(a > b for a, b in pairs)  # type: ignore[operator]


@dataclass(frozen=True)
class Choice:
    """A choice among explicit values.

    Values are listed from the cheapest to the most expensive option: ``space.min()`` takes the
    first and ``space.max()`` the last. ``ordinal`` says whether the order also carries meaning
    for search (mutation to neighbours, encoding distances); it defaults to True when every
    value is a number.

    Args:
        name: the dimension's label within its group.
        values: the allowed values (int, float, str or bool), unique.
        ordinal: whether the values are ordered; ``None`` means "all numeric".
        default: the value of ``space.default()``; the first value when omitted.
        when: a condition (or conditions) under which the dimension exists.
    """

    name: str
    values: tuple[Scalar, ...]
    ordinal: bool | None = None
    default: Scalar | None = None
    when: tuple[Condition, ...] = field(default=())

    def __post_init__(self) -> None:
        check_name(self.name, "dimension name")
        if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__iter__"):
            raise SpaceDefinitionError(f"{self.name}: values must be a list, got {self.values!r}")
        vals = tuple(_check_scalar(v, self.name) for v in self.values)
        if not vals:
            raise SpaceDefinitionError(f"{self.name}: a choice needs at least one value")
        keys = [value_key(v) for v in vals]
        if len(set(keys)) != len(keys):
            raise SpaceDefinitionError(f"{self.name}: values must be unique, got {list(vals)}")
        object.__setattr__(self, "values", vals)
        if self.ordinal is None:
            numeric = all(_is_number(v) for v in vals)
            if numeric and not _monotonic(vals) and not STORED_DEFINITION.get():
                raise SpaceDefinitionError(
                    f"{self.name}: numeric values are ordered for search (neighbours, "
                    f"encoding distances), so list them in increasing or decreasing order, "
                    f"got {list(vals)}; or set ordinal: true to search them in this order "
                    "(as before this check existed), or ordinal: false to search them as "
                    "categories")
            object.__setattr__(self, "ordinal", numeric)
        elif not isinstance(self.ordinal, bool):
            raise SpaceDefinitionError(f"{self.name}: ordinal must be true or false, got "
                                       f"{self.ordinal!r}")
        if self.default is None:
            object.__setattr__(self, "default", vals[0])
        elif (isinstance(self.default, (list, dict, set, tuple))
              or value_key(self.default) not in {value_key(v) for v in vals}):
            raise SpaceDefinitionError(
                f"{self.name}: default {self.default!r} is not one of {list(vals)}"
            )
        object.__setattr__(self, "when", _conditions(self.when))

    @property
    def kind(self) -> str:
        return "choice"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": "choice", "values": list(self.values)}
        numeric = all(_is_number(v) for v in self.values)
        if self.ordinal != numeric or (numeric and not _monotonic(self.values)
                                       and not CANONICAL_FORM.get()):
            d["ordinal"] = self.ordinal  # (out of order: said, so that the file loads)
        if self.default != self.values[0]:
            d["default"] = self.default
        if self.when:
            d["when"] = [c.to_dict() for c in self.when]
        return d

    def describe_values(self) -> str:
        return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in self.values)


@dataclass(frozen=True)
class IntRange:
    """An integer range ``low, low+step, ..., high`` (both ends included).

    Args:
        name: the dimension's label within its group.
        low: the smallest value.
        high: the largest value; ``high - low`` must be a multiple of ``step``.
        step: the spacing, at least 1.
        default: the value of ``space.default()``; ``low`` when omitted.
        when: a condition (or conditions) under which the dimension exists.
    """

    name: str
    low: int
    high: int
    step: int = 1
    default: int | None = None
    when: tuple[Condition, ...] = field(default=())

    def __post_init__(self) -> None:
        check_name(self.name, "dimension name")
        for attr in ("low", "high", "step"):
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool):
                raise SpaceDefinitionError(f"{self.name}: {attr} must be an integer, got {v!r}")
        if self.step < 1:
            raise SpaceDefinitionError(f"{self.name}: step must be >= 1, got {self.step}")
        if self.high < self.low:
            raise SpaceDefinitionError(
                f"{self.name}: high ({self.high}) must be >= low ({self.low})"
            )
        if (self.high - self.low) % self.step:
            raise SpaceDefinitionError(
                f"{self.name}: high - low ({self.high - self.low}) must be a multiple of "
                f"step ({self.step})"
            )
        if self.default is None:
            object.__setattr__(self, "default", self.low)
        elif (isinstance(self.default, bool) or not isinstance(self.default, int)
              or self.default not in self.values):  # (True == 1 and 2.0 == 2, but not ints)
            raise SpaceDefinitionError(
                f"{self.name}: default {self.default!r} is not in {self.describe_values()}"
            )
        object.__setattr__(self, "when", _conditions(self.when))

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1, self.step))

    @property
    def ordinal(self) -> bool:
        return True

    @property
    def kind(self) -> str:
        return "int"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": "int", "low": self.low, "high": self.high}
        if self.step != 1:
            d["step"] = self.step
        if self.default != self.low:
            d["default"] = self.default
        if self.when:
            d["when"] = [c.to_dict() for c in self.when]
        return d

    def describe_values(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"{self.low}..{self.high}{step}"


Dimension = Union[Choice, IntRange]


@dataclass(frozen=True)
class Group:
    """A named group of dimensions and sub-groups (global, per stage, per block).

    A group whose children are named ``"0"``, ``"1"``, ... reads as a list in configs
    (``stages[2].blocks[1].kernel``). A group may carry a condition: every dimension inside it
    exists only when the condition holds (a block exists only when the stage is deep enough).
    """

    name: str
    children: tuple[Any, ...]
    when: tuple[Condition, ...] = field(default=())

    def __post_init__(self) -> None:
        check_name(self.name, "group name")
        kids = tuple(self.children)
        seen: set[str] = set()
        for c in kids:
            if not isinstance(c, (Choice, IntRange, Group)):
                raise SpaceDefinitionError(
                    f"{self.name}: children must be Choice, IntRange or Group, got {c!r}"
                )
            if c.name in seen:
                raise SpaceDefinitionError(f"{self.name}: two children are named {c.name!r}")
            seen.add(c.name)
        object.__setattr__(self, "children", kids)
        object.__setattr__(self, "when", _conditions(self.when))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "type": "group",
            "children": [c.to_dict() for c in self.children],
        }
        if self.when:
            d["when"] = [c.to_dict() for c in self.when]
        return d
