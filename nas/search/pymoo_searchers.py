"""pymoo algorithms through ask/tell over the space's encoding and repair: ``nsga2``,
``agemoea``, ``unsga3`` and ``moead``."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.search.base import Searcher, register_searcher
from nas.searchspace import Config
from nas.searchspace.adapters import pymoo_problem, pymoo_repair


class PymooSearcher(Searcher):
    """One pymoo generation per ask: its individuals are decoded through ``space.repair``;
    the generation is told back to pymoo once all of it has been evaluated.

    Results told before the first generation (a resumed search's history) become the
    initial population instead of a random one: the algorithm is initialised with them, and
    its first offspring are bred from them (``nsga2``, ``agemoea``, ``unsga3``; elitist
    survival then keeps ``pop_size`` of them). ``moead`` ties its population to its weight
    vectors one to one, so it starts from random and reuses known values only for configs it
    proposes again."""

    defaults: dict[str, Any] = {"pop_size": 20}

    def _algorithm(self, pop_size: int, n_obj: int) -> Any:
        raise NotImplementedError

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from pymoo.termination.max_gen import MaximumGenerationTermination

        n_obj = len(self.objectives)
        self.problem = pymoo_problem(self.space, n_obj=n_obj)
        self.algo = self._algorithm(int(self.options["pop_size"]), n_obj)
        seed = int(self.rng.integers(2**31 - 1))
        self.algo.setup(self.problem, seed=seed,
                        termination=MaximumGenerationTermination(10**9))
        self._pop: Any = None
        self._single = False
        self._configs: list[Config] = []
        self._values: dict[int, np.ndarray] = {}

    @staticmethod
    def operators() -> dict[str, Any]:
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling

        return {"sampling": IntegerRandomSampling(),
                "crossover": SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                "mutation": PM(eta=20, vtype=float, repair=RoundingRepair())}

    def ask(self) -> list[Config]:
        if self._pop is None:
            from pymoo.core.population import Population

            pop = self.algo.ask()
            if pop is None or (isinstance(pop, Population) and len(pop) == 0):
                # mating bred nothing its population lacks (a space not much larger than
                # the population): nothing new to propose, so the search idles and stops
                return []
            self._single = not isinstance(pop, Population)
            if self._single:  # MOEA/D hands out one individual at a time and wants it back
                pop = Population.create(pop)
            self._pop = pop
            X = np.atleast_2d(pop.get("X"))
            self._configs = [self.space.repair(x) for x in X]
            self._values = {}
        return list(self._configs)

    seeds_from_known: bool = True

    def _seed(self, configs: list[Config], F: np.ndarray) -> None:
        """Make ``configs`` (told before any generation) the initial population."""
        from pymoo.core.population import Population

        uniq = dict(zip(configs, F))  # (a config told twice: its last values)
        self.algo.ask()  # initialises the algorithm; its random population is not used
        X = np.array([self.space.encode(c) for c in uniq], dtype=float)
        X[X < 0] = 0.0  # absent dimensions: any value in bounds (the repair ignores them)
        pop = Population.new("X", X)
        pop.set("F", np.array(list(uniq.values()), dtype=float))
        self.algo.tell(infills=pop)

    def _tell(self, configs: list[Config], F: np.ndarray) -> None:
        if self._pop is None:
            if self.seeds_from_known and not self.algo.is_initialized and configs:
                self._seed(configs, F)
            return
        lookup = {c: f for c, f in zip(configs, F)}
        for i, c in enumerate(self._configs):
            if i not in self._values and c in lookup:
                self._values[i] = lookup[c]
        if len(self._values) == len(self._configs):
            self._pop.set("F", np.array([self._values[i] for i in range(len(self._configs))]))
            self.algo.tell(infills=self._pop[0] if self._single else self._pop)
            self._pop = None


def _ref_dirs(n_obj: int, pop_size: int) -> np.ndarray:
    from pymoo.util.ref_dirs import get_reference_directions

    if n_obj == 1:
        return np.array([[1.0]])
    p = 1
    while True:  # the most partitions whose direction count stays within the population
        from math import comb

        if comb(p + 1 + n_obj - 1, n_obj - 1) > pop_size:
            break
        p += 1
    return get_reference_directions("das-dennis", n_obj, n_partitions=p)


@register_searcher
class NSGA2Searcher(PymooSearcher):
    name = "nsga2"

    def _algorithm(self, pop_size: int, n_obj: int) -> Any:
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(pop_size=pop_size, repair=pymoo_repair(self.space),
                     eliminate_duplicates=True, **self.operators())


@register_searcher
class AGEMOEASearcher(PymooSearcher):
    name = "agemoea"

    def _algorithm(self, pop_size: int, n_obj: int) -> Any:
        from pymoo.algorithms.moo.age import AGEMOEA

        return AGEMOEA(pop_size=pop_size, repair=pymoo_repair(self.space),
                       eliminate_duplicates=True, **self.operators())


@register_searcher
class UNSGA3Searcher(PymooSearcher):
    name = "unsga3"

    def _algorithm(self, pop_size: int, n_obj: int) -> Any:
        from pymoo.algorithms.moo.unsga3 import UNSGA3

        return UNSGA3(ref_dirs=_ref_dirs(n_obj, pop_size), pop_size=pop_size,
                      repair=pymoo_repair(self.space), eliminate_duplicates=True,
                      **self.operators())


@register_searcher
class MOEADSearcher(PymooSearcher):
    name = "moead"
    min_objectives = 2
    seeds_from_known = False  # one individual per weight vector (see PymooSearcher)

    def _algorithm(self, pop_size: int, n_obj: int) -> Any:
        from pymoo.algorithms.moo.moead import MOEAD

        ops = self.operators()
        return MOEAD(ref_dirs=_ref_dirs(n_obj, pop_size), n_neighbors=10,
                     prob_neighbor_mating=0.7, sampling=ops["sampling"],
                     crossover=ops["crossover"], mutation=ops["mutation"],
                     repair=pymoo_repair(self.space))
