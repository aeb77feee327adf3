"""The vectorised NSGA-II used by ``linas``'s inner search."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.base import Objective, hypervolume, pareto_mask
from nas.search.inner import nsga2, polynomial_mutation, rank_and_crowding, sbx
from nas.search.linas import LINAS
from nas.searchspace import get_space


def _brute_ranks(F: np.ndarray) -> np.ndarray:
    rank = np.full(len(F), -1)
    left = set(range(len(F)))
    r = 0
    while left:
        front = [i for i in left if not any(
            np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in left if j != i)]
        for i in front:
            rank[i] = r
        left -= set(front)
        r += 1
    return rank


@pytest.mark.parametrize("m", [1, 2, 3])
def test_ranks_match_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    F = rng.integers(0, 6, size=(60, m)).astype(float)  # many ties and duplicates
    rank, crowd = rank_and_crowding(F)
    assert np.array_equal(rank, _brute_ranks(F))
    assert np.all(crowd >= 0)


def test_operators_stay_in_bounds_and_change_things() -> None:
    rng = np.random.default_rng(0)
    lo, hi = np.zeros(8), np.array([0, 1, 2, 3, 4, 5, 6, 7], float)
    p1 = rng.integers(0, hi + 1, size=(500, 8)).astype(float)
    p2 = rng.integers(0, hi + 1, size=(500, 8)).astype(float)
    c1, c2 = sbx(p1, p2, lo, hi, rng)
    m = polynomial_mutation(c1, lo, hi, rng)
    for Y in (c1, c2, m):
        assert np.all(Y >= lo) and np.all(Y <= hi)
        assert np.all(Y[:, 0] == 0)  # a fixed variable never moves
    assert (c1 != p1).any() and (m != c1).any()
    # SBX children stay near their parents: their sum is preserved before clipping
    inside = np.all((c1 > lo) & (c1 < hi) & (c2 > lo) & (c2 < hi), axis=1)
    assert np.allclose((c1 + c2)[inside], (p1 + p2)[inside])


def _objectives(space):  # noqa: ANN001, ANN202
    widths = [f"stages.{i}.width" for i in range(4)]
    depths = [f"stages.{i}.depth" for i in range(4)]

    def f(configs, enc):  # noqa: ANN001, ANN202
        # a trade-off: capacity (maximise) against cost (minimise)
        cap = np.array([sum(c[w] for w in widths) + 8 * sum(c[d] for d in depths)
                        for c in configs], float)
        cost = np.array([sum(c[w] * c[d] for w, d in zip(widths, depths))
                         for c in configs], float) + 0.1 * (enc == 0).sum(1)
        return np.stack([-cap, cost], axis=1)

    return f


def test_nsga2_budget_validity_determinism_and_quality() -> None:
    space = get_space("resnet_like")
    f = _objectives(space)
    calls: list[int] = []

    def counted(configs, enc):  # noqa: ANN001, ANN202
        calls.append(len(configs))
        return f(configs, enc)

    configs, F = nsga2(space, counted, pop_size=40, generations=15, rng=3)
    assert sum(calls) == 40 * 15 and all(n == 40 for n in calls)
    assert len(configs) == len(F) == len(set(configs))
    assert all(space.contains(c) for c in configs)
    again, F2 = nsga2(space, f, pop_size=40, generations=15, rng=3)
    assert again == configs and np.array_equal(F, F2)

    # better fronts than random sampling with the same budget, on every seed tried
    for seed in range(3):
        _, Fn = nsga2(space, f, pop_size=40, generations=15, rng=seed)
        rand = space.sample_many(600, np.random.default_rng(seed))
        Fr = f(rand, space.encode_many(rand))
        both = np.vstack([Fn, Fr])
        lo, hi = both.min(0), both.max(0)
        ref = np.full(2, 1.1)
        hv_n = hypervolume((Fn[pareto_mask(Fn)] - lo) / (hi - lo), ref)
        hv_r = hypervolume((Fr[pareto_mask(Fr)] - lo) / (hi - lo), ref)
        assert hv_n > hv_r


def test_initial_population_is_used_and_errors() -> None:
    space = get_space("nb201")
    seen: list = []

    def f(configs, enc):  # noqa: ANN001, ANN202
        seen.extend(configs)
        return (enc == 0).sum(1, keepdims=True).astype(float)

    start = space.sample_many(5, 1)
    nsga2(space, f, pop_size=10, generations=2, rng=0, initial=start)
    assert seen[:5] == list(start)
    with pytest.raises(ValueError, match="pop_size"):
        nsga2(space, f, pop_size=1)
    with pytest.raises(ValueError, match="generations"):
        nsga2(space, f, generations=0)


def test_linas_engines() -> None:
    space = get_space("resnet_like")
    objs = [Objective("capacity", "max"), Objective("cost", "min")]
    with pytest.raises(ValueError, match="inner_engine"):
        LINAS(space, objs, inner_engine="cuda")
    for engine in ("numpy", "pymoo"):
        s = LINAS(space, objs, seed=0, population=6, inner_pop=20, inner_generations=3,
                  inner_engine=engine, predictor="ridge")
        f = _objectives(space)
        for _ in range(2):
            cs = s.ask()
            assert len(cs) == len(set(cs)) and all(space.contains(c) for c in cs)
            F = f(cs, space.encode_many(cs)) * np.array([-1.0, 1.0])
            s.tell(cs, F)
        assert s.last_inner_candidates > 0


def test_survival_is_rank_then_crowding_as_in_pymoo() -> None:
    """Whole fronts in rank order, the last cut by decreasing crowding (ties at random); the
    crowding passed to the next tournament is each survivor's on its whole front before the
    cut (Deb's NSGA-II and pymoo's RankAndCrowding)."""
    from nas.search.inner import _survive

    rng = np.random.default_rng(0)
    for _ in range(100):
        m = int(rng.integers(1, 4))
        F = rng.integers(0, 6, size=(int(rng.integers(3, 80)), m)).astype(float)
        n = int(rng.integers(1, len(F) + 1))
        keep, crowd = _survive(F, n, rng)
        assert len(keep) == n == len(set(keep.tolist()))
        rank, cd = rank_and_crowding(F)
        assert np.array_equal(crowd, cd[keep])
        last = rank[keep].max()
        assert np.all(rank[keep] <= last) and np.all(rank[np.setdiff1d(np.arange(len(F)),
                                                                       keep)] >= last)
        out = np.setdiff1d(np.flatnonzero(rank == last), keep)
        if len(out):  # the cut kept the most crowded-apart points of the last front
            assert cd[keep][rank[keep] == last].min() >= cd[out].max()


def test_linas_picks_cover_the_front() -> None:
    # two objectives: the partial front is sampled evenly along it; three: by crowding
    # distance (an order along one objective says nothing of the others), ends first
    from nas.search.linas import _spread_pick

    t = np.linspace(0, 1, 11)
    F2 = np.stack([t, 1 - t], axis=1)  # one front of 11
    assert sorted(F2[_spread_pick(F2, 3), 0].tolist()) == [0.0, 0.5, 1.0]
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(3), size=30)  # a front of 30 on the simplex
    dominated = w + 1.0
    F3 = np.vstack([dominated[:5], w])
    pick = _spread_pick(F3, 6)
    assert len(pick) == 6 and all(i >= 5 for i in pick)  # the first front only
    # the points with the smallest value of each objective (its extremes) are kept
    for j in range(3):
        assert 5 + int(np.argmin(w[:, j])) in pick.tolist()
