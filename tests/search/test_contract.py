"""The contract every registered searcher meets (in the style of Optuna's sampler tests):
proposals are valid configs, the same seed gives the same run, budgets are respected, and
search beats nothing-at-all on an easy objective."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas.search import (
    Objective,
    hypervolume,
    list_searchers,
    make_searcher,
    pareto_mask,
    run_search,
)
from nas.searchspace import Config, get_space

ALL = list_searchers()
SPACE = get_space("resnet_like")
OPTIONS = {"linas": {"population": 6, "inner_pop": 20, "inner_generations": 5},
           "nsga2": {"pop_size": 8}, "agemoea": {"pop_size": 8}, "unsga3": {"pop_size": 8},
           "moead": {"pop_size": 8}}


def objectives_fn(configs: list[Config]) -> np.ndarray:
    """A smooth synthetic pair: 'accuracy' grows with width and depth, 'cost' too."""
    out = []
    for c in configs:
        width = sum(c[f"stages.{s}.width"] for s in range(4))
        depth = sum(c[f"stages.{s}.depth"] for s in range(4))
        out.append([width / 10 + depth - 0.3 * (c["stages.0.bits"] == 4), width * depth])
    return np.array(out, dtype=float)


def test_registry() -> None:
    assert {"random", "evolution", "nsga2", "agemoea", "unsga3", "moead", "optuna-tpe",
            "optuna-nsga2", "linas"} <= set(ALL)
    with pytest.raises(Exception, match="unknown searcher 'greedy'; known: agemoea"):
        make_searcher("greedy", SPACE, [Objective("acc", "max")])
    with pytest.raises(Exception, match="unknown option 'popsize'"):
        make_searcher("nsga2", SPACE, [Objective("acc", "max")], popsize=3)
    # linas' predictor settings are checked when it is made, not at its first refit (in
    # `nas search`, after real evaluations)
    with pytest.raises(Exception, match="searcher 'linas': predictor 'gbt': unknown option "
                       "'n_trees'"):
        make_searcher("linas", SPACE, [Objective("acc", "max")],
                      predictor_params={"n_trees": 5})


@pytest.mark.parametrize("name", ALL)
def test_contract(name: str) -> None:
    objs = [Objective("acc", "max"), Objective("cost", "min")]
    runs = []
    for _ in range(2):
        s = make_searcher(name, SPACE, objs, seed=7, **OPTIONS.get(name, {}))
        seen: list[Config] = []

        def evaluate(configs: list[Config], seen: list[Config] = seen) -> np.ndarray:
            for c in configs:
                assert isinstance(c, Config) and SPACE.contains(c)
            seen.extend(configs)
            return objectives_fn(configs)

        res = run_search(s, evaluate, budget=23)
        assert len(res.configs) == len(set(res.configs)) == 23 == len(seen)
        assert res.values.shape == (23, 2)
        runs.append([c.id for c in res.configs])
    assert runs[0] == runs[1], "same seed, same run"
    other = make_searcher(name, SPACE, objs, seed=8, **OPTIONS.get(name, {}))
    res = run_search(other, lambda cs: objectives_fn(cs), budget=23)
    assert [c.id for c in res.configs] != runs[0]


def _mean_best(name: str, budget: int = 80, **opts: object) -> float:
    bests = []
    for seed in range(3):
        s = make_searcher(name, SPACE, [Objective("acc", "max")], seed=seed, **opts)
        res = run_search(s, lambda cs: objectives_fn(cs)[:, :1], budget=budget)
        bests.append(res.best_so_far()[-1])
    return float(np.mean(bests))


@pytest.mark.parametrize("name", ["evolution", "linas", "optuna-tpe", "nsga2"])
def test_single_objective_beats_random(name: str) -> None:
    """Same budget, same seeds: a real searcher's mean best beats random search's."""
    opts = OPTIONS.get(name, {}) if name == "linas" else {}
    assert _mean_best(name, **opts) > _mean_best("random") + 1.0


@pytest.mark.parametrize("name", ALL)
def test_budget_larger_than_space_stops(name: str) -> None:
    """A space smaller than the budget (and than a pymoo population, whose mating then
    breeds nothing new): every config once, then the search stops."""
    from nas.searchspace import Choice, IntRange, Space

    tiny = Space("t", [IntRange("a", 1, 3), Choice("b", ("x", "yy"))])
    s = make_searcher(name, tiny, [Objective("a", "max"), Objective("c", "min")], seed=0)
    res = run_search(s, lambda cs: np.array([[c["a"], c["a"] + len(c["b"])] for c in cs],
                                            float), budget=10)
    assert sorted(c.id for c in res.configs) == sorted(c.id for c in tiny.grid())


def test_pareto_and_hypervolume() -> None:
    F = np.array([[1, 5], [2, 2], [3, 1], [3, 3], [2, 2]], float)
    assert pareto_mask(F).tolist() == [True, True, True, False, True]
    # union of the boxes up to (4, 6): x in [1,2) height 1, [2,3) height 4, [3,4) height 5
    assert hypervolume(F, np.array([4, 6])) == pytest.approx(1 + 4 + 5)
    assert hypervolume(np.array([[5.0, 5.0]]), np.array([4, 6])) == 0.0


def test_optuna_learns_what_was_evaluated_and_resumes_from_it() -> None:
    # resnet_like has constraints: suggestions that break one are repaired before they are
    # evaluated; the suggestion's trial is told the repaired config's values, and the study
    # also holds the repaired config under its own params; a resumed searcher starts from
    # the known results
    import optuna

    from nas.searchspace.adapters import CONFIG_ATTR, REPAIRED_ATTR, trial_params

    space = get_space("resnet_like")
    objs = [Objective("score", "max")]

    def score(cs: list) -> np.ndarray:
        return np.array([[float(space.encode(c).clip(0).sum())] for c in cs])

    s = make_searcher("optuna-tpe", space, objs, seed=0)
    res = run_search(s, score, 40)
    assert len(res.configs) == 40
    done = [t for t in s.study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE]
    repaired = [t for t in done if t.user_attrs.get(REPAIRED_ATTR)]
    assert repaired, "no suggestion was repaired: the test does not exercise repairs"
    own = {}  # config -> the value told under its own params
    for t in done:
        cfg = space.config(json.loads(t.user_attrs[CONFIG_ATTR]))
        assert t.value == pytest.approx(float(score([cfg])[0, 0]))
        if not t.user_attrs.get(REPAIRED_ATTR):
            assert t.params == trial_params(space, cfg)[0]
            own[cfg] = t.value
    assert set(own) == set(res.configs)  # every evaluated config under its own params
    # resume: a new searcher (in-memory study) is told the 40 known results first
    again = make_searcher("optuna-tpe", space, objs, seed=0)
    known = {c: v for c, v in zip(res.configs, res.values)}
    res2 = run_search(again, score, 45, known=known)
    first = [t for t in again.study.get_trials(deepcopy=False)
             if t.state == optuna.trial.TrialState.COMPLETE][:40]
    assert len(first) == 40 and len(res2.configs) == 45
    assert {space.config(json.loads(t.user_attrs[CONFIG_ATTR])) for t in first} == set(known)


def test_optuna_tpe_is_not_stalled_by_repairs() -> None:
    # vit_like's heads must divide the embedding dimension: many suggestions are repaired;
    # the search still spends its whole budget (told as failed, TPE kept suggesting the
    # broken region and stopped idle after 22-32 of 150 evaluations)
    space = get_space("vit_like")
    s = make_searcher("optuna-tpe", space, [Objective("score", "max")], seed=0)
    res = run_search(s, lambda cs: np.array([[float(space.encode(c).clip(0).sum())]
                                             for c in cs]), 150)
    assert len(res.configs) == 150


@pytest.mark.parametrize("name", ["nsga2", "agemoea", "unsga3"])
def test_pymoo_resumes_from_the_known_results(name: str) -> None:
    # a resumed search's history becomes the initial population (it restarted from random)
    space = get_space("nb201")
    objs = [Objective("a", "max"), Objective("b", "min")]

    def evaluate(cs: list[Config]) -> np.ndarray:
        e = np.array([space.encode(c) for c in cs])
        return np.stack([e.sum(1), e[:, 0] + 1.0], axis=1)

    first = run_search(make_searcher(name, space, objs, seed=0, pop_size=8), evaluate, 24)
    known = dict(zip(first.configs, first.values))
    again = make_searcher(name, space, objs, seed=1, pop_size=8)
    again.tell(list(known), np.array(list(known.values())))
    assert {space.repair(x) for x in again.algo.pop.get("X")} == set(first.configs)
    # the search goes on from there: offspring of that population, then survival
    again = make_searcher(name, space, objs, seed=1, pop_size=8)
    res = run_search(again, evaluate, 32, known=known)
    assert res.configs[:24] == first.configs and len(res.configs) == 32
    pop = {space.repair(x) for x in again.algo.pop.get("X")}
    assert pop <= set(res.configs)


@pytest.mark.parametrize("name", ALL)
def test_non_finite_values_are_refused_at_tell(name: str) -> None:
    objs = [Objective("acc", "max"), Objective("cost", "min")]
    s = make_searcher(name, SPACE, objs, seed=0, **OPTIONS.get(name, {}))
    configs = s.ask()
    values = objectives_fn(configs)
    values[-1, 0] = np.inf
    with pytest.raises(Exception, match=rf"tell: values\[{len(configs) - 1}\] \(acc\) is inf; "
                       r"values must be finite"):
        s.tell(configs, values)
    values[-1, 0] = 1.0  # nothing was kept from the refused tell: the searcher goes on
    s.tell(configs, values)
    assert len(s.X) == len(configs) and s.ask()

