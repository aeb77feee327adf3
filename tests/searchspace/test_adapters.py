"""optuna (define-by-run) and pymoo (bounds + repair) adapters."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas.searchspace import Choice, Divides, Space, get_space
from nas.searchspace.adapters import (
    config_from_trial,
    pymoo_bounds,
    pymoo_problem,
    pymoo_repair,
    suggest_config,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", ["resnet_like", "nb201", "vit_like"])
def test_optuna_define_by_run(name: str) -> None:
    space = get_space(name)
    seen = []

    def objective(trial: optuna.Trial) -> float:
        cfg = suggest_config(trial, space)
        assert space.contains(cfg)
        # only dimensions that exist were suggested
        assert set(trial.params) <= set(space.paths)
        seen.append(cfg)
        return float(space.encode(cfg).clip(0).sum())

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=25)
    for t, cfg in zip(study.trials, seen):
        assert config_from_trial(t, space) == cfg
    if name == "resnet_like":
        assert any(len(t.params) < len(space) for t in study.trials)  # absent blocks


def test_optuna_repairs_constraint_violations() -> None:
    space = Space("c", [Choice("w", (24, 32)), Choice("g", (1, 16))], [Divides("g", "w")])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: float(suggest_config(t, space)["w"]), n_trials=40)
    repaired = [t for t in study.trials if t.user_attrs.get("nas_repaired")]
    assert repaired  # (24, 16) is drawn about a quarter of the time
    for t in study.trials:
        assert space.contains(config_from_trial(t, space))


def test_pymoo_bounds_repair_and_ask_tell() -> None:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    space = get_space("resnet_like")
    xl, xu = pymoo_bounds(space)
    assert xl.shape == xu.shape == (len(space),)
    repair = pymoo_repair(space)
    X = np.random.default_rng(0).uniform(-3, 9, size=(20, len(space)))
    R = repair._do(None, X)
    for row in R:
        cfg = space.repair(row)
        present = space.encode(cfg) >= 0
        assert np.array_equal(row[present], space.encode(cfg)[present])
        assert np.all((row >= xl) & (row <= xu))
    problem = pymoo_problem(space, n_obj=2)
    algo = NSGA2(pop_size=12, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
                 repair=repair, eliminate_duplicates=True)
    algo.setup(problem, seed=1, termination=("n_gen", 3))
    for _ in range(3):
        pop = algo.ask()
        configs = [space.repair(x) for x in pop.get("X")]
        F = np.array([[-c["stages.3.width"], c["stages.0.depth"]] for c in configs], float)
        pop.set("F", F)
        algo.tell(infills=pop)
    assert algo.opt is not None and len(algo.opt) >= 1
