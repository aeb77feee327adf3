"""``random`` search and ``evolution`` (regularized evolution, Real et al. 2019)."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from nas.search.base import Searcher, pareto_mask, register_searcher
from nas.searchspace import Config


@register_searcher
class RandomSearch(Searcher):
    """Uniform samples of the space (each existing dimension drawn independently)."""

    name = "random"
    defaults: dict[str, Any] = {"batch": 1}

    def ask(self) -> list[Config]:
        return self.space.sample_many(int(self.options["batch"]), self.rng)


@register_searcher
class RegularizedEvolution(Searcher):
    """Regularized (aging) evolution.

    The first ``population`` proposals are random. Afterwards each proposal is a child of a
    tournament winner: ``sample_size`` members of the population are drawn, the best (by the
    first objective; with several objectives a random non-dominated one of the sample) is the
    parent; with probability ``crossover`` the child is the space's crossover of the winners of
    two tournaments, then it is mutated with the space's ``mutate``: by default exactly one
    existing dimension changes (Real et al.'s mutation changes one thing); with
    ``mutation_rate`` each existing dimension changes with that probability (at least one
    does). The population keeps the ``population`` most recent evaluations: the oldest dies,
    not the worst.
    """

    name = "evolution"
    defaults: dict[str, Any] = {"population": 20, "sample_size": 5, "crossover": 0.0,
                                "mutation_rate": None}
    option_ranges = {"crossover": ("float", 0.0, 1.0), "mutation_rate": ("float", 0.0, 1.0)}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.population: deque[tuple[Config, np.ndarray]] = deque(
            maxlen=int(self.options["population"]))
        self._asked_random = 0

    def _select(self) -> Config:
        pop = list(self.population)
        k = min(int(self.options["sample_size"]), len(pop))
        idx = self.rng.choice(len(pop), size=k, replace=False)
        F = np.array([pop[i][1] for i in idx])
        if F.shape[1] == 1:
            return pop[idx[int(np.argmin(F[:, 0]))]][0]
        nd = np.flatnonzero(pareto_mask(F))
        return pop[idx[int(self.rng.choice(nd))]][0]

    def ask(self) -> list[Config]:
        if len(self.population) < self.population.maxlen:  # type: ignore[operator]
            if self._asked_random < self.population.maxlen:  # type: ignore[operator]
                self._asked_random += 1
                return [self.space.sample(self.rng)]
            if not self.population:
                return [self.space.sample(self.rng)]
        parent = self._select()
        if self.rng.random() < float(self.options["crossover"]):
            parent = self.space.crossover(parent, self._select(), self.rng)
        rate = self.options["mutation_rate"]
        # rate 0: no dimension is drawn to change, so mutate changes exactly one
        return [self.space.mutate(parent, self.rng, 0.0 if rate is None else rate)]

    def _tell(self, configs: list[Config], F: np.ndarray) -> None:
        for c, f in zip(configs, F):
            self.population.append((c, f))
