"""A vectorised NSGA-II (Deb, Pratap, Agarwal & Meyarivan, 2002) over a space's encoding, for
searches whose objectives are cheap array functions (predictors, lookup tables).

Each generation is a handful of numpy operations on the whole population: binary tournament
(domination, then crowding distance), simulated binary crossover (SBX) and polynomial
mutation (PM) with bounds, rounding, the space's vectorised ``repair_many``, duplicate
elimination by hashing, and the elitist (mu + lambda) survival of NSGA-II — non-dominated
sorting and crowding distance from pymoo's compiled routines. The operators and their
settings are those of :meth:`nas.search.pymoo_searchers.PymooSearcher.operators` (SBX
``prob=0.9, eta=15``; PM ``prob=0.9, eta=20``, per-variable probability ``1/n_var``), so the
algorithm is the one ``nsga2`` runs through pymoo's ask/tell, without pymoo's per-individual
objects, which cost more than the predictors themselves at tens of thousands of candidates.

>>> import numpy as np
>>> from nas.searchspace import get_space
>>> space = get_space("nb201")
>>> def f(configs, enc):  # minimise the number of 'none' ops and of conv3x3 ops
...     return np.stack([(enc == 0).sum(1), (enc == 3).sum(1)], axis=1).astype(float)
>>> configs, F = nsga2(space, f, pop_size=20, generations=5, rng=0)
>>> len(configs) == len(F) and len(configs) <= 100
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nas.searchspace import Config, Space
from nas.searchspace.space import as_rng

__all__ = ["nsga2", "rank_and_crowding", "sbx", "polynomial_mutation"]

Evaluate = Callable[[list[Config], np.ndarray], np.ndarray]


def rank_and_crowding(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated rank (0 = first front) and crowding distance of every row of ``F``
    (minimisation), as NSGA-II defines them; infinite crowding at each front's extremes."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, dtype=float)
    rank = np.empty(len(F), dtype=np.int64)
    crowd = np.empty(len(F))
    for r, front in enumerate(NonDominatedSorting().do(F)):
        front = np.asarray(front, dtype=np.int64)
        rank[front] = r
        crowd[front] = calc_crowding_distance(F[front]) if len(front) > 2 else np.inf
    return rank, crowd


def _survive(F: np.ndarray, n: int, rng: np.random.Generator | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-II's elitist survival, as pymoo's ``RankAndCrowding``: whole fronts in rank order,
    the last one cut by decreasing crowding distance with ties broken at random (``rng``;
    without one, in index order). Returns ``n`` indices of ``F`` and the survivors' crowding
    distances as computed on their whole front before the cut (what the next tournament
    compares, as in pymoo)."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    def crowding(front: np.ndarray) -> np.ndarray:
        return calc_crowding_distance(F[front]) if len(front) > 2 else np.full(len(front),
                                                                              np.inf)

    keep: list[np.ndarray] = []
    crowd: list[np.ndarray] = []
    room = n
    for front in NonDominatedSorting().do(F, n_stop_if_ranked=n):
        front = np.asarray(front, dtype=np.int64)
        cd = crowding(front)
        if len(front) > room:
            tie = rng.random(len(front)) if rng is not None else np.arange(len(front))
            order = np.lexsort((tie, -cd))[:room]
            front, cd = front[order], cd[order]
        keep.append(front)
        crowd.append(cd)
        room -= len(front)
        if room <= 0:
            break
    return np.concatenate(keep), np.concatenate(crowd)


def _tournament(F: np.ndarray, crowd: np.ndarray, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """``n`` winners of binary tournaments, as in NSGA-II: a dominating candidate wins, else
    the larger crowding distance, else a coin flip. Candidates are drawn from concatenated
    random permutations, so every member enters about equally many tournaments."""
    m = len(F)
    reps = -(-2 * n // m)
    perm = np.concatenate([rng.permutation(m) for _ in range(reps)])[: 2 * n]
    a, b = perm[:n], perm[n:]
    fa, fb = F[a], F[b]
    a_dom = np.all(fa <= fb, axis=1) & np.any(fa < fb, axis=1)
    b_dom = np.all(fb <= fa, axis=1) & np.any(fb < fa, axis=1)
    undecided = ~(a_dom | b_dom)
    ca, cb = crowd[a], crowd[b]
    a_wins = a_dom | (undecided & ((ca > cb) | ((ca == cb) & (rng.random(n) < 0.5))))
    return np.where(a_wins, a, b)


def sbx(p1: np.ndarray, p2: np.ndarray, lo: np.ndarray, hi: np.ndarray,
        rng: np.random.Generator, *, prob: float = 0.9, prob_var: float = 0.5,
        eta: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover with bounds (Deb & Agrawal 1995; the bounded form of
    Deb's NSGA-II code), row-wise on two parent matrices; children are swapped per variable
    with probability 0.5."""
    p1 = np.asarray(p1, dtype=float)
    p2 = np.asarray(p2, dtype=float)
    c1, c2 = p1.copy(), p2.copy()
    n, m = p1.shape
    do = (rng.random((n, 1)) < prob) & (rng.random((n, m)) < prob_var)
    do &= np.abs(p1 - p2) > 1e-14
    do &= np.broadcast_to(hi > lo, (n, m))
    if not do.any():
        return c1, c2
    y1 = np.minimum(p1, p2)[do]
    y2 = np.maximum(p1, p2)[do]
    xl = np.broadcast_to(lo, (n, m))[do]
    xu = np.broadcast_to(hi, (n, m))[do]
    delta = y2 - y1
    u = rng.random(len(y1))

    def betaq(beta: np.ndarray) -> np.ndarray:
        alpha = 2.0 - np.power(beta, -(eta + 1.0))
        low = u <= 1.0 / alpha
        return np.where(low, np.power(np.where(low, u * alpha, 0.5), 1.0 / (eta + 1.0)),
                        np.power(1.0 / np.maximum(2.0 - u * alpha, 1e-300), 1.0 / (eta + 1.0)))

    a = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - xl) / delta) * delta)
    b = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (xu - y2) / delta) * delta)
    a = np.clip(a, xl, xu)
    b = np.clip(b, xl, xu)
    swap = rng.random(len(a)) < 0.5
    c1[do] = np.where(swap, b, a)
    c2[do] = np.where(swap, a, b)
    return c1, c2


def polynomial_mutation(X: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                        rng: np.random.Generator, *, eta: float = 20.0, prob: float = 0.9,
                        prob_var: float | None = None) -> np.ndarray:
    """Polynomial mutation with bounds (Deb & Goyal 1996, the bounded form of Deb's NSGA-II
    code): a row mutates with probability ``prob``, each of its variables with probability
    ``prob_var`` (default ``min(0.5, 1/n_var)``)."""
    X = np.asarray(X, dtype=float).copy()
    n, m = X.shape
    if prob_var is None:
        prob_var = min(0.5, 1.0 / m)
    do = ((rng.random((n, 1)) < prob) & (rng.random((n, m)) < prob_var)
          & np.broadcast_to(hi > lo, (n, m)))
    if not do.any():
        return X
    x = X[do]
    xl = np.broadcast_to(lo, (n, m))[do]
    xu = np.broadcast_to(hi, (n, m))[do]
    span = xu - xl
    d1 = (x - xl) / span
    d2 = (xu - x) / span
    u = rng.random(len(x))
    pw = 1.0 / (eta + 1.0)
    low = u <= 0.5
    v1 = 2.0 * u + (1.0 - 2.0 * u) * np.power(1.0 - d1, eta + 1.0)
    v2 = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * np.power(1.0 - d2, eta + 1.0)
    dq = np.where(low, np.power(np.maximum(v1, 0.0), pw) - 1.0,
                  1.0 - np.power(np.maximum(v2, 0.0), pw))
    X[do] = np.clip(x + dq * span, xl, xu)
    return X


def _keys(enc: np.ndarray) -> list[bytes]:
    enc = np.ascontiguousarray(enc, dtype=np.int64)
    return [r.tobytes() for r in enc]


def nsga2(space: Space, evaluate: Evaluate, *, pop_size: int = 100, generations: int = 50,
          rng: np.random.Generator | int | None = None,
          initial: Sequence[Config] | None = None,
          callback: Callable[[int, np.ndarray], None] | None = None,
          ) -> tuple[list[Config], np.ndarray]:
    """Run NSGA-II for ``generations`` generations of ``pop_size`` candidates (the first
    generation is ``initial`` topped up with random configs) and return every distinct
    config it evaluated with its objective row.

    ``evaluate(configs, enc) -> F`` gets a generation at once (``enc`` is
    ``space.encode_many(configs)``) and returns an ``(n, n_obj)`` array to *minimise*.
    ``callback(generation, F_population)`` is called after each generation. The budget is
    exact: ``pop_size * generations`` evaluations, fewer only if the space runs out of new
    configs.
    """
    rng = as_rng(rng)
    if pop_size < 2:
        raise ValueError(f"pop_size: must be >= 2, got {pop_size}")
    if generations < 1:
        raise ValueError(f"generations: must be >= 1, got {generations}")
    lo, hi = space.bounds()

    seen: dict[bytes, int] = {}
    all_configs: list[Config] = []
    all_F: list[np.ndarray] = []

    def fill_inactive(enc: np.ndarray, X: np.ndarray) -> np.ndarray:
        # genes of absent dimensions keep their value, so that they can come back
        return np.where(enc < 0, np.clip(np.rint(X), lo, hi), enc).astype(float)

    def evaluate_new(configs: list[Config], enc: np.ndarray) -> np.ndarray:
        F = np.asarray(evaluate(configs, enc), dtype=float)
        if F.ndim != 2 or len(F) != len(configs):
            raise ValueError(f"evaluate returned shape {F.shape}, expected ({len(configs)}, "
                             "n_objectives)")
        for c, k, f in zip(configs, _keys(enc), F):
            if k not in seen:
                seen[k] = len(all_configs)
                all_configs.append(c)
                all_F.append(f)
        return F

    # ---- first generation: the given configs, then random ones, all distinct
    first = list(dict.fromkeys(space.config(c) for c in (initial or [])))[:pop_size]
    if len(first) < pop_size:
        have = set(first)
        for c in space.sample_many(2 * (pop_size - len(first)) + 8, rng):
            if c not in have:
                have.add(c)
                first.append(c)
                if len(first) == pop_size:
                    break
    enc = space.encode_many(first)
    X = fill_inactive(enc, rng.integers(0, hi.astype(np.int64) + 1, size=enc.shape))
    F = evaluate_new(first, enc)
    pop_keys_list = _keys(enc)
    pop_keys = set(pop_keys_list)
    _, crowd = rank_and_crowding(F)
    if callback is not None:
        callback(0, F)

    for gen in range(1, generations):
        # ---- mating: tournaments, SBX, PM, rounding, repair; duplicates (within the
        # offspring or of the current population) are replaced by further matings
        kids_X: list[np.ndarray] = []
        kids_c: list[Config] = []
        kids_enc: list[np.ndarray] = []
        taken = set(pop_keys)
        for _attempt in range(20):
            need = pop_size - len(kids_c)
            if need <= 0:
                break
            half = (need + 1) // 2 + 2
            i1 = _tournament(F, crowd, half, rng)
            i2 = _tournament(F, crowd, half, rng)
            a, b = sbx(X[i1], X[i2], lo, hi, rng)
            # rounded after crossover and again after mutation, as pymoo's RoundingRepair
            Y = polynomial_mutation(np.rint(np.vstack([a, b])), lo, hi, rng)
            Y = np.clip(np.rint(Y), lo, hi)
            cs = space.repair_many(Y)
            e = space.encode_many(cs)
            for c, k, row, y in zip(cs, _keys(e), e, Y):
                if k in taken:
                    continue
                taken.add(k)
                kids_c.append(c)
                kids_enc.append(row)
                kids_X.append(y)
                if len(kids_c) == pop_size:
                    break
        if len(kids_c) < pop_size:  # nearly exhausted neighbourhood: random newcomers
            for c in space.sample_many(4 * (pop_size - len(kids_c)) + 8, rng):
                row = space.encode_many([c])[0]
                k = row.astype(np.int64).tobytes()
                if k in taken:
                    continue
                taken.add(k)
                kids_c.append(c)
                kids_enc.append(row)
                kids_X.append(row.astype(float))
                if len(kids_c) == pop_size:
                    break
        if not kids_c:
            break
        e = np.asarray(kids_enc)
        Xk = fill_inactive(e, np.asarray(kids_X))
        Fk = evaluate_new(kids_c, e)

        # ---- (mu + lambda) survival
        X_all = np.vstack([X, Xk])
        F_all = np.vstack([F, Fk])
        keys_all = pop_keys_list + _keys(e)
        keep, crowd = _survive(F_all, pop_size, rng)
        X, F = X_all[keep], F_all[keep]
        pop_keys_list = [keys_all[i] for i in keep.tolist()]
        pop_keys = set(pop_keys_list)
        if callback is not None:
            callback(gen, F)

    return all_configs, np.array(all_F).reshape(len(all_F), -1)
