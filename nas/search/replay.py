"""Searcher benchmarks against a table of measurements (lookup-table replay).

Each query of a config costs one row: its measured objectives are looked up. A config the
table does not hold gets the worst value of each objective in the table (and still costs a
query), so a searcher gains nothing by leaving the table's support. One objective: the best
value found within the budget. Several: the hypervolume of the front found, as a ratio to the
hypervolume of the table's true Pareto front, both against the table's worst point.

A config the table holds several rows of is looked up by its first row; the worst point and
the true front are computed over those looked-up rows only (the values a searcher can
actually reach), so evaluating every config of the table scores exactly 1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import UsageError
from nas.search.base import Objective, hypervolume, make_searcher, pareto_mask, run_search, to_min
from nas.searchspace import Config, Space

log = logging.getLogger(__name__)


@dataclass
class ReplayTable:
    """Configs of a table with their objective values (natural units).

    A repeated config is looked up by its first row; ``worst``, ``ref`` and ``true_hv`` come
    from those looked-up rows (see the module docstring).
    """

    configs: list[Config]
    values: np.ndarray
    objectives: tuple[Objective, ...]

    def __post_init__(self) -> None:
        self.lookup: dict[Config, np.ndarray] = {}
        for c, v in zip(self.configs, self.values):
            self.lookup.setdefault(c, v)
        # only the rows a lookup can return: later rows of a repeated config are unreachable
        F = to_min(np.array(list(self.lookup.values()), dtype=float), self.objectives)
        self.worst = F.max(axis=0)
        self.ref = self.worst + 1e-9 * np.maximum(1.0, np.abs(self.worst))
        self.true_hv = hypervolume(F[pareto_mask(F)], self.ref) if len(self.objectives) > 1 \
            else float("nan")

    def evaluate(self, configs: Sequence[Config]) -> np.ndarray:
        signs = np.array([o.sign for o in self.objectives])
        miss = self.worst * signs
        return np.array([self.lookup.get(c, miss) for c in configs], dtype=float)

    def score(self, values: np.ndarray) -> float:
        """Best value (one objective) or hypervolume ratio (several) of evaluations."""
        if len(self.objectives) == 1:
            return float(np.min(to_min(values, self.objectives)[:, 0]) * self.objectives[0].sign)
        F = to_min(values, self.objectives)
        return hypervolume(F[pareto_mask(F)], self.ref) / self.true_hv


def load_replay_table(path: str | os.PathLike[str], space: Space,
                      objectives: Sequence[Objective]) -> ReplayTable:
    from nas.predictors.table import read_table, table_configs, table_target

    table = read_table(path)
    configs = table_configs(table, space)
    values = np.stack([table_target(table, o.name) for o in objectives], axis=1)
    return ReplayTable(configs, values, tuple(objectives))


def replay(table: ReplayTable, space: Space, strategy: str, budget: int, seeds: int, *,
           options: dict[str, Any] | None = None, progress: Any = None) -> dict[str, Any]:
    """Run ``strategy`` for ``seeds`` seeds; returns per-seed scores, the best-so-far curves
    (one objective) and the share of each run's queries the table held (``hit_rates``)."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    if budget < 1:
        raise UsageError(f"--budget must be >= 1, got {budget}")
    scores, curves, hits = [], [], []
    for seed in range(seeds):
        s = make_searcher(strategy, space, table.objectives, seed=seed, **(options or {}))
        res = run_search(s, table.evaluate, budget)
        scores.append(table.score(res.values))
        hits.append(sum(c in table.lookup for c in res.configs) / max(len(res.configs), 1))
        if len(table.objectives) == 1:
            curves.append(res.best_so_far())
        if progress is not None:
            progress()
    return {"scores": np.array(scores), "curves": curves, "hit_rates": np.array(hits)}


def space_size(space: Space) -> int:
    """The number of configs of ``space`` a replay can query (its predicates left out of the
    count: counting them may need an enumeration of millions)."""
    return space.cardinality(predicates="ignore")
