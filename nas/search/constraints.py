"""Hard limits on objectives: ``latency<=3ms``, ``params<=1e6``, ``flops<2.5M``,
``size<=512KB``, ``accuracy>=90``.

>>> Limit.parse("latency<=3ms")
Limit(metric='latency', op='<=', value=3.0)
>>> Limit.parse("params <= 1.5M").value
1500000.0
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np

from nas.errors import UsageError

METRICS = ("latency", "flops", "params", "size", "accuracy")
_UNITS = {
    "latency": {"": 1.0, "ms": 1.0, "us": 1e-3, "s": 1e3},  # milliseconds
    "size": {"": 1.0, "b": 1.0, "kb": 1024.0, "kib": 1024.0, "mb": 1024.0**2,
             "mib": 1024.0**2},
    "flops": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9},
    "params": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9},
    "accuracy": {"": 1.0, "%": 1.0},
}
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_RE = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*"
                 r"([A-Za-z%]*)\s*$")


@dataclass(frozen=True)
class Limit:
    """``metric op value``; latency in milliseconds, size in bytes, accuracy in percent."""

    metric: str
    op: str
    value: float

    @staticmethod
    def parse(text: str) -> Limit:
        m = _RE.match(text)
        if not m:
            raise UsageError(f"--constraint {text!r}: expected METRIC<=VALUE[UNIT] with METRIC "
                             f"one of {', '.join(METRICS)} (e.g. latency<=3ms, params<=1e6)")
        metric, op, number, unit = m.group(1), m.group(2), float(m.group(3)), m.group(4)
        if metric not in METRICS:
            raise UsageError(f"--constraint {text!r}: unknown metric {metric!r}; allowed: "
                             f"{', '.join(METRICS)}")
        units = _UNITS[metric]
        if unit.lower() not in units:
            allowed = ", ".join(u for u in units if u) or "none"
            raise UsageError(f"--constraint {text!r}: unit {unit!r} is not allowed for "
                             f"{metric} (allowed: {allowed})")
        if metric == "accuracy" and not 0 <= number <= 100:
            raise UsageError(f"--constraint {text!r}: accuracy is a percentage, 0..100")
        return Limit(metric, op, number * units[unit.lower()])

    def holds(self, values: np.ndarray) -> np.ndarray:
        return _OPS[self.op](np.asarray(values, dtype=float), self.value)

    def violation(self, values: np.ndarray) -> np.ndarray:
        """How far ``values`` lie beyond the limit, relative to it (0 where it holds; a
        value on the bound of a strict limit counts as a tiny violation)."""
        v = np.asarray(values, dtype=float)
        over = (v - self.value) if self.op in ("<=", "<") else (self.value - v)
        rel = np.maximum(over, 0.0) / max(abs(self.value), 1e-12)
        return np.where(self.holds(v), 0.0, np.maximum(rel, 1e-9))

    def __str__(self) -> str:
        unit = {"latency": "ms", "size": "B", "accuracy": "%"}.get(self.metric, "")
        return f"{self.metric}{self.op}{self.value:g}{unit}"
