"""``linas``: predictor-in-the-loop search (LINAS, as in Intel's DyNAS-T).

Rounds of:

1. evaluate a population for real (the first one random);
2. refit one predictor per objective on everything evaluated so far (features from the
   space's encoding, plus family features where registered: :mod:`nas.predictors.features`);
3. run an inner NSGA-II over the predictors only — thousands of candidates, vectorised
   (:func:`nas.search.inner.nsga2`, or pymoo's NSGA-II with ``inner_engine="pymoo"``),
   seeded with the best configs found so far — and keep every candidate it visits;
4. pick the next population among the not-yet-evaluated candidates: whole non-dominated
   fronts of the predicted objectives in rank order; from the front that does not fit
   whole, picks spaced evenly along it (two objectives) or by decreasing crowding distance
   (three or more); for one objective, by predicted value; plus a small share of random
   proposals for exploration.

Objectives whose values come from a cheap model (a latency lookup table, FLOPs) can be given
as ``known`` functions: the inner search then uses them exactly instead of a predictor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.search.base import Searcher, register_searcher
from nas.searchspace import Config

log = logging.getLogger(__name__)


def _hash_duplicates() -> Any:
    """pymoo duplicate elimination by hashing rounded rows: linear time, where pymoo's
    default compares all pairs (quadratic, the inner search's bottleneck at large
    populations). Exact for our integer encodings."""
    from pymoo.core.duplicate import DuplicateElimination

    class HashDuplicates(DuplicateElimination):
        def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
            X = np.rint(np.asarray(pop.get("X"), dtype=float)).astype(np.int64)
            seen: set[bytes] = set()
            if other is not None:
                seen.update(r.tobytes() for r in
                            np.rint(np.asarray(other.get("X"), dtype=float)).astype(np.int64))
            for i, row in enumerate(X):
                key = row.tobytes()
                if key in seen:
                    is_duplicate[i] = True
                else:
                    seen.add(key)
            return is_duplicate

    return HashDuplicates()


def _spread_pick(F: np.ndarray, k: int) -> np.ndarray:
    """``k`` indices of ``F`` (minimisation, several objectives): whole non-dominated fronts
    in rank order; the front that does not fit whole is sampled evenly along its second
    objective (two objectives: a front ordered by one objective is ordered by the other), so
    picks cover the trade-off instead of crowding at one end; with three or more objectives
    an order along one of them says nothing of the others, so that front gives its members
    of largest crowding distance."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    out: list[int] = []
    for front in NonDominatedSorting().do(F):
        front = np.asarray(front)
        room = k - len(out)
        if room <= 0:
            break
        if len(front) <= room:
            out.extend(front.tolist())
        elif F.shape[1] > 2:
            cd = calc_crowding_distance(F[front])
            out.extend(front[np.argsort(-cd, kind="stable")[:room]].tolist())
        else:
            front = front[np.argsort(F[front, 1], kind="stable")]
            pos = np.unique(np.round(np.linspace(0, len(front) - 1, room)).astype(int))
            out.extend(front[pos].tolist())
    return np.asarray(out, dtype=np.int64)


def _nondominated_order(F: np.ndarray) -> np.ndarray:
    """Indices sorted by (non-dominated rank, decreasing crowding distance)."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    fronts = NonDominatedSorting().do(F)
    out: list[int] = []
    for front in fronts:
        front = np.asarray(front)
        if len(front) > 2 and F.shape[1] > 1:
            cd = calc_crowding_distance(F[front])
            front = front[np.argsort(-cd, kind="stable")]
        out.extend(front.tolist())
    return np.asarray(out, dtype=np.int64)


@register_searcher
class LINAS(Searcher):
    """Predictor-in-the-loop search; options:

    - ``population``: configs evaluated for real per round (default 10);
    - ``initial``: size of the first, random population (default: ``population``; with
      several objectives twice that, including the space's ``min()`` and ``max()``, so that
      the first predictor and the front span the whole trade-off);
    - ``predictor``: a registered predictor name (``nas.predictors``; default ``gbt``) and
      ``predictor_params`` its settings (default: 300 trees at learning rate 0.05, a third
      of the stand-alone default's cost: the predictor is refitted every round);
    - ``inner_pop`` x ``inner_generations``: the inner NSGA-II (default 100 x 50);
    - ``inner_engine``: ``"numpy"`` (default; :func:`nas.search.inner.nsga2`, the same
      algorithm and operators as pymoo's, vectorised over whole generations) or
      ``"pymoo"`` (pymoo's NSGA-II through ask/tell);
    - ``explore``: share of each population drawn at random (default 0.1);
    - ``known``: ``{objective name: fn(configs) -> values}`` computed exactly, not learned;
    - ``features``: feature kinds for the predictors (default: all cheap kinds);
    - ``exhaustive_limit``: spaces with at most this many configs are scored whole by the
      predictors instead of through the inner NSGA-II (exact and faster; default 50,000).
    """

    name = "linas"
    defaults: dict[str, Any] = {"population": 10, "initial": None, "predictor": "gbt",
                                "predictor_params": None, "inner_pop": 100,
                                "inner_generations": 50, "inner_engine": "numpy",
                                "explore": 0.1, "known": None,
                                "features": None, "exhaustive_limit": 50_000}
    option_ranges = {"explore": ("float", 0.0, 1.0), "initial": ("int", 1, math.inf),
                     "exhaustive_limit": ("int", 0, math.inf)}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from nas.predictors.features import Featurizer, default_kinds

        kinds = self.options["features"] or list(default_kinds(self.space))
        self.featurizer = Featurizer(self.space, kinds=kinds)
        known = self.options["known"] or {}
        names = [o.name for o in self.objectives]
        for k in known:
            if k not in names:
                raise ValueError(f"linas: known objective {k!r} is not one of {names}")
        self.known: dict[int, Callable[[Sequence[Config]], np.ndarray]] = {
            names.index(k): fn for k, fn in known.items()}
        from nas.errors import UsageError
        from nas.predictors.models import get_predictor

        try:  # the predictor and its settings, checked now, not at the first refit
            get_predictor(self.options["predictor"], **self._predictor_params())
        except UsageError as e:
            raise UsageError(f"searcher 'linas': {e}") from None
        if self.options["inner_engine"] not in ("numpy", "pymoo"):
            raise ValueError(f"linas: inner_engine must be 'numpy' or 'pymoo', got "
                             f"{self.options['inner_engine']!r}")
        self.rounds = 0
        self.last_inner_candidates = 0
        self._all: tuple[list[Config], np.ndarray, np.ndarray] | None = None
        limit = int(self.options["exhaustive_limit"])
        if limit > 0 and not self.space.predicates:
            try:
                small = self.space.cardinality() <= limit
            except Exception:  # counting impossible for this space: use the inner search
                small = False
            if small:
                configs = list(self.space.grid())
                enc = self.space.encode_many(configs)
                self._all = (configs, enc, self._features(enc))

    # ------------------------------------------------------------------ helpers
    def _predictor_params(self) -> dict[str, Any]:
        params = self.options["predictor_params"]
        if params is None:
            return ({"n_estimators": 300, "learning_rate": 0.05}
                    if self.options["predictor"] == "gbt" else {})
        return dict(params)

    def _features(self, enc: np.ndarray) -> np.ndarray:
        X, _ = self.featurizer.from_encoding(enc)
        return X

    def _predict_fn(self) -> Callable[..., np.ndarray]:
        """Fit the predictors on everything told; return fn(configs, enc) -> F (min form)."""
        from nas.predictors.models import get_predictor

        enc = self.space.encode_many(self.X)
        feats = self._features(enc)
        models: dict[int, Any] = {}
        for j in range(len(self.objectives)):
            if j in self.known:
                continue
            m = get_predictor(self.options["predictor"], seed=int(self.rng.integers(2**31)),
                              **self._predictor_params())
            m.fit(feats, self.F[:, j])
            models[j] = m
        signs = np.array([o.sign for o in self.objectives])

        def predict(configs: list[Config], enc: np.ndarray,
                    X: np.ndarray | None = None) -> np.ndarray:
            out = np.empty((len(configs), len(self.objectives)))
            if X is None and models:
                X = self._features(enc)
            for j in range(len(self.objectives)):
                if j in self.known:
                    out[:, j] = np.asarray(self.known[j](configs), dtype=float) * signs[j]
                else:
                    out[:, j] = models[j].predict(X)
            return out

        return predict

    def _inner_search(self, predict: Callable[..., np.ndarray]
                      ) -> tuple[list[Config], np.ndarray]:
        """NSGA-II on the predictors; every distinct candidate visited and its prediction."""
        pop_size = int(self.options["inner_pop"])
        gens = int(self.options["inner_generations"])
        order = _nondominated_order(self.F)[: pop_size // 2]
        if self.options["inner_engine"] == "numpy":
            from nas.search.inner import nsga2

            return nsga2(self.space, predict, pop_size=pop_size, generations=gens,
                         rng=self.rng, initial=[self.X[i] for i in order])
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.population import Population
        from pymoo.termination.max_gen import MaximumGenerationTermination

        from nas.search.pymoo_searchers import PymooSearcher
        from nas.searchspace.adapters import pymoo_problem

        n_obj = len(self.objectives)
        problem = pymoo_problem(self.space, n_obj=n_obj)
        ops = PymooSearcher.operators()
        # seed the inner population with the best evaluated configs, the rest random
        seeds = self.space.encode_many([self.X[i] for i in order])
        lo, hi = self.space.bounds()
        seeds = np.where(seeds < 0, self.rng.integers(0, hi + 1, size=seeds.shape), seeds)
        rand = self.space.encode_many(self.space.sample_many(pop_size - len(seeds), self.rng))
        rand = np.where(rand < 0, self.rng.integers(0, hi + 1, size=rand.shape), rand)
        algo = NSGA2(pop_size=pop_size, sampling=Population.new(X=np.vstack([seeds, rand])),
                     crossover=ops["crossover"], mutation=ops["mutation"],
                     eliminate_duplicates=_hash_duplicates())
        algo.setup(problem, seed=int(self.rng.integers(2**31 - 1)),
                   termination=MaximumGenerationTermination(gens))
        seen: dict[Config, np.ndarray] = {}
        for _ in range(gens):
            pop = algo.ask()
            configs = self.space.repair_many(pop.get("X"))
            enc = self.space.encode_many(configs)
            F = predict(configs, enc)
            for c, f in zip(configs, F):
                seen.setdefault(c, f)
            pop.set("X", np.where(enc < 0, np.clip(np.rint(pop.get("X")), lo, hi), enc))
            pop.set("F", F)
            algo.tell(infills=pop)
        configs = list(seen)
        return configs, np.array([seen[c] for c in configs])

    # ------------------------------------------------------------------ ask/tell
    def ask(self) -> list[Config]:
        p = int(self.options["population"])
        if not self.X:
            n0 = int(self.options["initial"] or (p if len(self.objectives) == 1 else 2 * p))
            if len(self.objectives) == 1:
                return self.space.sample_many(n0, self.rng)
            # several objectives: anchor both ends of the trade-off, the rest at random
            anchors = list(dict.fromkeys([self.space.min(), self.space.max()]))[:n0]
            rest = [c for c in self.space.sample_many(n0, self.rng) if c not in anchors]
            return anchors + rest[: n0 - len(anchors)]
        self.rounds += 1
        predict = self._predict_fn()
        if self._all is not None:
            configs, enc, feats = self._all
            F = predict(configs, enc, feats)
        else:
            configs, F = self._inner_search(predict)
        self.last_inner_candidates = len(configs)
        told = set(self.X)
        fresh = [i for i, c in enumerate(configs) if c not in told]
        n_explore = int(round(p * float(self.options["explore"])))
        n_exploit = p - n_explore
        picked: list[Config] = []
        if fresh:
            sub = F[fresh]
            order = (np.argsort(sub[:, 0], kind="stable")[:n_exploit] if sub.shape[1] == 1
                     else _spread_pick(sub, n_exploit))
            picked = [configs[fresh[i]] for i in order]
        for _ in range(50 * p):  # bounded: a small space may be nearly exhausted
            if len(picked) >= p:
                break
            c = self.space.sample(self.rng)
            if c not in told and c not in picked:
                picked.append(c)
        log.debug("linas round %d: %d inner candidates, %d fresh", self.rounds, len(configs),
                  len(fresh))
        return picked
