"""The ask/tell searcher base, the registry, objectives, Pareto fronts and hypervolume.

A searcher proposes configs (``ask``) and learns their measured objective values (``tell``);
where evaluation happens is the caller's business (a supernet, a lookup table, a remote
worker). Values are given in their natural units with each objective's direction
(``max`` for accuracy, ``min`` for latency); searchers work internally on minimisation.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nas.errors import UsageError
from nas.searchspace import Config, Space
from nas.utils.checks import check_number

_OBJ = re.compile(r"^(?P<name>[^:]+):(?P<dir>max|min)$")


@dataclass(frozen=True)
class Objective:
    """A named objective and whether it is maximised or minimised."""

    name: str
    direction: str = "min"

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise UsageError(f"objective {self.name!r}: direction must be 'min' or 'max', got "
                             f"{self.direction!r}")

    @property
    def sign(self) -> float:
        """Multiplier turning values into a quantity to minimise."""
        return -1.0 if self.direction == "max" else 1.0

    @staticmethod
    def parse(text: str) -> Objective:
        """``COLUMN:max`` or ``COLUMN:min``."""
        m = _OBJ.match(text.strip())
        if not m:
            raise UsageError(f"objective {text!r}: expected COLUMN:max or COLUMN:min")
        return Objective(m["name"], m["dir"])

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


def to_min(values: np.ndarray, objectives: Sequence[Objective]) -> np.ndarray:
    """Values ``(n, n_obj)`` in natural units to a minimisation matrix."""
    v = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    return v * np.array([o.sign for o in objectives])


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of a minimisation matrix ``F`` (n, m).
    Duplicated rows are all kept."""
    F = np.asarray(F, dtype=float)
    n = len(F)
    keep = np.ones(n, dtype=bool)
    order = np.lexsort(F.T[::-1])
    best: list[np.ndarray] = []
    for i in order:
        f = F[i]
        dominated = False
        for g in best:
            if np.all(g <= f) and np.any(g < f):
                dominated = True
                break
        if dominated:
            keep[i] = False
        else:
            best.append(f)
    return keep


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume (minimisation) of the points in ``F`` dominating the reference point."""
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float)
    ref = np.asarray(ref, dtype=float)
    inside = np.all(F < ref, axis=1)
    if not inside.any():
        return 0.0
    return float(HV(ref_point=ref)(F[inside]))


class Searcher(ABC):
    """Base of every search strategy.

    Args:
        space: the search space.
        objectives: what is optimised; values told back follow this order.
        seed: the searcher's own ``np.random.default_rng(seed)`` (same seed, same run).
        options: strategy-specific settings; unknown ones are rejected.
    """

    name: ClassVar[str] = ""
    multi_objective: ClassVar[bool] = True
    min_objectives: ClassVar[int] = 1
    defaults: ClassVar[dict[str, Any]] = {}
    # numeric options: name -> (kind "int" | "float", low, high), both ends inclusive. Options
    # not listed here are checked against their default's type (ints >= 1, finite floats).
    option_ranges: ClassVar[dict[str, tuple[str, float, float]]] = {}

    def __init__(self, space: Space, objectives: Sequence[Objective], *, seed: int = 0,
                 **options: Any) -> None:
        if not objectives:
            raise UsageError("a search needs at least one objective")
        if len(objectives) > 1 and not self.multi_objective:
            raise UsageError(f"searcher {self.name!r} handles one objective, got "
                             f"{len(objectives)}")
        if len(objectives) < self.min_objectives:
            raise UsageError(f"searcher {self.name!r} needs at least {self.min_objectives} "
                             f"objectives, got {len(objectives)}")
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UsageError(f"searcher {self.name!r}: unknown option {unknown[0]!r} "
                             f"(known: {known})")
        for key, value in options.items():
            self._check_option(key, value)
        self.space = space
        self.objectives = tuple(objectives)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.options = {**self.defaults, **options}
        self.X: list[Config] = []  # everything told, in order
        self.F = np.empty((0, len(self.objectives)))  # minimisation values of X

    def _check_option(self, key: str, value: Any) -> None:
        """A clear error for an option value of the wrong type or out of range."""
        default = self.defaults[key]
        if value is None and default is None:
            return
        kind, lo, hi = self.option_ranges.get(key, (
            "bool" if isinstance(default, bool) else "int" if isinstance(default, int)
            else "float" if isinstance(default, float) else "str" if isinstance(default, str)
            else "", 1, math.inf))
        where = f"searcher {self.name!r}: option {key}"
        if kind == "str" and not isinstance(value, str):
            raise UsageError(f"{where}: must be a string, got {value!r}")
        if kind == "bool" and not isinstance(value, bool):
            raise UsageError(f"{where}: must be true or false, got {value!r}")
        if kind in ("int", "float"):
            check_number(where, value, kind, lo, hi)

    @abstractmethod
    def ask(self) -> list[Config]:
        """Propose one or more configs to evaluate next (always valid configs)."""

    def tell(self, configs: Sequence[Config], values: np.ndarray) -> None:
        """Report the measured ``values`` (n, n_obj, natural units) of ``configs``."""
        F = to_min(values, self.objectives)
        if len(F) != len(configs):
            raise UsageError(f"tell: {len(configs)} configs but {len(F)} rows of values")
        bad = np.argwhere(~np.isfinite(F))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            value = float(F[i, j] * self.objectives[j].sign)
            raise UsageError(
                f"tell: values[{i}] ({self.objectives[j].name}) is {value}; "
                "values must be finite numbers (leave a failed evaluation out, or tell it a "
                "bad finite value)")
        self.X.extend(configs)
        self.F = np.vstack([self.F, F])
        self._tell(list(configs), F)

    def _tell(self, configs: list[Config], F: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Hook for subclasses (``F`` is in minimisation form); the default keeps nothing
        beyond ``X`` and ``F``."""

    def best_index(self) -> int:
        """Index in ``X`` of the best config so far by the first objective."""
        return int(np.argmin(self.F[:, 0]))


_SEARCHERS: dict[str, type[Searcher]] = {}


def register_searcher(cls: type[Searcher]) -> type[Searcher]:
    """Register a :class:`Searcher` subclass under its ``name``."""
    _SEARCHERS[cls.name] = cls
    return cls


def list_searchers() -> list[str]:
    _load_builtins()
    return sorted(_SEARCHERS)


def make_searcher(name: str, space: Space, objectives: Sequence[Objective], *, seed: int = 0,
                  **options: Any) -> Searcher:
    """The registered searcher ``name``; the error for an unknown name lists the known."""
    _load_builtins()
    if name not in _SEARCHERS:
        raise UsageError(f"unknown searcher {name!r}; known: {', '.join(sorted(_SEARCHERS))}")
    return _SEARCHERS[name](space, objectives, seed=seed, **options)


def _load_builtins() -> None:
    import nas.search.basic  # noqa: F401
    import nas.search.linas  # noqa: F401
    import nas.search.optuna_searchers  # noqa: F401
    import nas.search.pymoo_searchers  # noqa: F401


@dataclass
class SearchResult:
    """Every evaluated config with its natural-unit values, in evaluation order."""

    configs: list[Config]
    values: np.ndarray
    objectives: tuple[Objective, ...]

    def front(self) -> list[int]:
        """Indices of the Pareto-optimal evaluations."""
        if not self.configs:
            return []
        return np.flatnonzero(pareto_mask(to_min(self.values, self.objectives))).tolist()

    def best_so_far(self) -> np.ndarray:
        """Best value of the first objective after each evaluation (natural units)."""
        f = to_min(self.values, self.objectives)[:, 0]
        return np.minimum.accumulate(f) * self.objectives[0].sign


def run_search(searcher: Searcher, evaluate: Callable[[list[Config]], np.ndarray],
               budget: int, *, known: dict[Config, np.ndarray] | None = None,
               on_evaluated: Callable[[Config, np.ndarray], None] | None = None,
               max_idle_asks: int = 200,
               free: Callable[[list[Config]], np.ndarray] | None = None,
               max_free: int | None = None) -> SearchResult:
    """Ask/evaluate/tell until ``budget`` distinct configs have been evaluated.

    Configs proposed again are told their known values without spending budget; ``known``
    pre-loads values (a resumed search: they are told to the searcher and count towards the
    budget). Stops early if ``max_idle_asks`` asks in a row bring nothing new (a space
    smaller than the budget).

    ``free(configs)`` marks the configs whose "evaluation" costs nothing (outside hard cost
    limits: ``evaluate`` returns their placeholder values without measuring them); they are
    told and kept in the result but do not spend budget, up to ``max_free`` of them
    (default ``max(1000, 20 * budget)``: a searcher that proposes nothing else stops there).
    """
    if budget < 0:
        raise UsageError(f"budget must be >= 0, got {budget}")
    cache: dict[Config, np.ndarray] = {}
    order: list[Config] = []
    max_free = max(1000, 20 * budget) if max_free is None else max_free

    def is_free(cs: list[Config]) -> np.ndarray:
        if free is None or not cs:
            return np.zeros(len(cs), dtype=bool)
        return np.asarray(free(cs), dtype=bool).reshape(len(cs))

    spent = n_free = 0
    if known:
        configs = list(known)
        vals = np.array([known[c] for c in configs], dtype=float)
        searcher.tell(configs, vals)
        for c in configs:
            cache[c] = np.asarray(known[c], dtype=float)
            order.append(c)
        f = is_free(configs)
        n_free = int(f.sum())
        spent = len(configs) - n_free
    idle = 0
    while spent < budget and idle < max_idle_asks and n_free < max_free:
        proposals = searcher.ask()
        fresh = [c for c in dict.fromkeys(proposals) if c not in cache]
        new, k = [], 0
        for c, f in zip(fresh, is_free(fresh)):
            if f:
                new.append(c)
            elif k < budget - spent:
                new.append(c)
                k += 1
        if new:
            vals = np.asarray(evaluate(new), dtype=float).reshape(len(new), -1)
            for c, v in zip(new, vals):
                cache[c] = v
                order.append(c)
                if on_evaluated is not None:
                    on_evaluated(c, v)
            spent += k
            n_free += len(new) - k
            idle = 0 if k else idle + 1
        else:
            idle += 1
        told = [c for c in proposals if c in cache]
        if told:
            searcher.tell(told, np.array([cache[c] for c in told]))
    values = np.array([cache[c] for c in order]) if order else np.empty(
        (0, len(searcher.objectives)))
    return SearchResult(order, values, searcher.objectives)
