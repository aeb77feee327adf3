"""``nas benchmark``: table replay, single- and multi-objective, and its errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from nas.cli.main import main
from nas.search import Objective
from nas.search.replay import load_replay_table, replay
from nas.searchspace import Choice, Space

SPACE = Space("grid3", [Choice("a", (0, 1, 2, 3)), Choice("b", (0, 1, 2, 3)),
                        Choice("c", ("x", "y"))])


def write_table(path: Path, drop: int = 0) -> Path:
    rows = ["a,b,c,acc,lat"]
    for i, (a, b, c) in enumerate(itertools.product(range(4), range(4), "xy")):
        if i < drop:
            continue
        acc = 50 + 10 * a + 5 * b + (3 if c == "y" else 0)
        lat = 1 + a * a + b + (0.5 if c == "y" else 0)
        rows.append(f"{a},{b},{c},{acc},{lat}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_single_objective_replay_finds_the_optimum(tmp_path: Path) -> None:
    table = load_replay_table(write_table(tmp_path / "t.csv"), SPACE,
                              [Objective("acc", "max")])
    r = replay(table, SPACE, "evolution", budget=32, seeds=4)
    assert r["scores"].tolist() == [98.0] * 4  # the whole space is 32 configs
    r = replay(table, SPACE, "random", budget=5, seeds=4)
    assert np.all(r["scores"] <= 98.0) and len(r["curves"][0]) == 5
    assert np.all(np.diff(r["curves"][0]) >= 0)


def test_multi_objective_hv_ratio(tmp_path: Path) -> None:
    objs = [Objective("acc", "max"), Objective("lat", "min")]
    table = load_replay_table(write_table(tmp_path / "t.csv"), SPACE, objs)
    full = replay(table, SPACE, "random", budget=32, seeds=2)
    assert np.allclose(full["scores"], 1.0)  # every row queried: the true front
    part = replay(table, SPACE, "random", budget=4, seeds=3)
    assert np.all((part["scores"] > 0) & (part["scores"] < 1.0))


def test_rows_missing_from_the_table_get_the_worst_value(tmp_path: Path) -> None:
    table = load_replay_table(write_table(tmp_path / "t.csv", drop=3), SPACE,
                              [Objective("acc", "max")])
    missing = SPACE.config({"a": 0, "b": 0, "c": "x"})  # one of the 3 dropped rows
    # the worst accuracy left in the table: (a=0, b=1, c=y) = 50 + 5 + 3
    assert table.evaluate([missing])[0, 0] == 58.0
    assert table.evaluate([SPACE.config({"a": 3, "b": 3, "c": "y"})])[0, 0] == 98.0


def test_partial_table_reports_hits_and_warns(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Queries outside a partial table score its worst values: each run's share of queries
    the table held is reported, and a table covering little of the space is warned about
    (the budget warning does not claim runs end when the table is exhausted)."""
    full = load_replay_table(write_table(tmp_path / "t.csv"), SPACE, [Objective("acc", "max")])
    r = replay(full, SPACE, "random", budget=8, seeds=2)
    assert r["hit_rates"].tolist() == [1.0, 1.0]
    part = load_replay_table(write_table(tmp_path / "p.csv", drop=24), SPACE,
                             [Objective("acc", "max")])  # 8 of the 32 configs
    r = replay(part, SPACE, "random", budget=16, seeds=3)
    assert np.all((r["hit_rates"] > 0) & (r["hit_rates"] < 1))
    space = tmp_path / "s.yaml"
    SPACE.save(space)
    assert main(["benchmark", "--table", str(tmp_path / "p.csv"), "--space", str(space),
                 "--budget", "16", "--seeds", "2", "--objective", "acc:max",
                 "--strategy", "evolution", "--json"]) == 0
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())  # the log lines as one (the console wraps them)
    assert "the table holds 8 of the 32 configs" in err
    assert "--budget 16 is more than the table's 8 distinct configs" in err
    assert "each run ends" not in err
    assert 0 < json.loads(captured.out)["table_hits_mean"] < 1


def test_space_size_of_a_large_space_with_predicates() -> None:
    """A replay's coverage counts the space without its predicates: counting them would need
    an enumeration of millions, which cardinality() refuses."""
    from nas.search.replay import space_size
    from nas.searchspace import Predicate

    big = Space("big", [Choice(n, tuple(range(20))) for n in "abcde"],
                [Predicate("even_a", lambda c: c["a"] % 2 == 0)])
    assert space_size(big) == 20 ** 5


def test_cli_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = write_table(tmp_path / "t.csv")
    space = tmp_path / "s.yaml"
    SPACE.save(space)
    base = ["benchmark", "--table", str(t), "--space", str(space), "--budget", "10",
            "--seeds", "2"]
    assert main(base + ["--objective", "acc:max", "--strategy", "evolution", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("best_mean", "best_std", "random_best_mean", "random_best_std"):
        assert isinstance(out[k], float)
    assert out["table_hits_mean"] == out["random_table_hits_mean"] == 1.0
    assert out["table_coverage"] == 1.0
    assert main(base + ["--objective", "acc:max", "--objective", "lat:min",
                        "--strategy", "nsga2", "--option", "pop_size=4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["hv_ratio_mean"] <= 1 and 0 < out["random_hv_ratio_mean"] <= 1
    assert main(base + ["--objective", "acc:maximum", "--strategy", "random"]) == 2
    assert "expected COLUMN:max or COLUMN:min" in capsys.readouterr().err
    assert main(base + ["--objective", "acc:max", "--strategy", "hillclimb"]) == 2
    assert "unknown searcher 'hillclimb'; known:" in capsys.readouterr().err
    assert main(base + ["--objective", "speed:max", "--strategy", "random"]) == 2
    assert "no target column 'speed'" in capsys.readouterr().err


def test_repeated_configs_use_the_reachable_rows(tmp_path: Path) -> None:
    # a second, better measurement of a config can never be looked up (the first row is):
    # it must not set the reference point or the true front either
    path = write_table(tmp_path / "t.csv")
    path.write_text(path.read_text() + "0,0,x,99,0.5\n3,3,y,40,20\n")
    objs = [Objective("acc", "max"), Objective("lat", "min")]
    table = load_replay_table(path, SPACE, objs)
    assert len(table.configs) == 34 and len(table.lookup) == 32
    assert table.evaluate([SPACE.config({"a": 0, "b": 0, "c": "x"})]).tolist() == [[50, 1]]
    every = list(dict.fromkeys(table.configs))
    assert table.score(table.evaluate(every)) == pytest.approx(1.0)
    full = replay(table, SPACE, "random", budget=32, seeds=1)
    assert full["scores"][0] == pytest.approx(1.0)
    # the worst point (and a missing config's value) come from the reachable rows too
    np.testing.assert_array_equal(table.worst, [-50.0, 13.5])


def test_optuna_seeds_sharing_a_storage_get_their_own_study(tmp_path: Path) -> None:
    import optuna

    from nas.search import make_searcher, run_search

    objs = [Objective("acc", "max")]
    table = load_replay_table(write_table(tmp_path / "t.csv"), SPACE, objs)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    r = replay(table, SPACE, "optuna-tpe", budget=6, seeds=2, options={"storage": url})
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage=url))
    assert names == ["nas-search-seed0", "nas-search-seed1"]
    # seed 1 ran on its own study: as it does in memory
    alone = run_search(make_searcher("optuna-tpe", SPACE, objs, seed=1), table.evaluate, 6)
    assert r["scores"][1] == table.score(alone.values)
    # an explicit study name is used as given, by every seed (workers sharing one study)
    for seed in (0, 1):
        s = make_searcher("optuna-tpe", SPACE, objs, seed=seed, storage=url,
                          study_name="shared")
        assert s.study.study_name == "shared"
        run_search(s, table.evaluate, 3)
    assert len(optuna.load_study(study_name="shared", storage=url).trials) >= 6
