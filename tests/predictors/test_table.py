from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.predictors.table import (
    TableError,
    load_measurements,
    read_table,
    select_rows,
    table_configs,
    table_target,
)
from nas.searchspace import get_space


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_arch_column(nb201_slice: Path, nb201_rows: list[dict[str, str]]) -> None:
    space = get_space("nb201")
    configs, y = load_measurements(nb201_slice, space, "cifar10_test_acc")
    assert len(configs) == len(y) == len(nb201_rows)
    assert space.format_arch(configs[5]) == nb201_rows[5]["arch"]
    assert y[5] == pytest.approx(float(nb201_rows[5]["cifar10_test_acc"]))


def test_dimension_columns(tmp_path: Path) -> None:
    space = get_space("nb201")
    cfgs = space.sample_many(3, 0)
    lines = [",".join(space.paths) + ",acc"]
    for i, c in enumerate(cfgs):
        lines.append(",".join(str(c[p]) for p in space.paths) + f",{90 + i}")
    path = _write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    configs, y = load_measurements(path, space, "acc")
    assert configs == cfgs
    np.testing.assert_array_equal(y, [90, 91, 92])


def test_config_column_of_json_configs(tmp_path: Path) -> None:
    """A ``config`` column of JSON configs (nested, as nas search's history.csv writes them,
    or flat by path) maps rows to configs; bad cells name the row and the column."""
    import csv
    import json

    space = get_space("resnet_like")
    cfgs = space.sample_many(3, 0)
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "accuracy", "config"])
        for i, c in enumerate(cfgs[:2]):
            w.writerow([c.id, 90 + i, c.to_json()])
        w.writerow([cfgs[2].id, 92, json.dumps(cfgs[2].flat())])
    configs, y = load_measurements(path, space, "accuracy")
    assert configs == cfgs
    np.testing.assert_array_equal(y, [90, 91, 92])
    for cell, message in (("{oops", r"bad\.csv:2: column 'config': not JSON"),
                          ("[1, 2]", r"bad\.csv:2: column 'config': a config is a JSON object"),
                          ('{"stem": {"width": 7}}',
                           r"bad\.csv:2: column 'config': not a config of space 'resnet_like'")):
        bad = tmp_path / "bad.csv"
        with open(bad, "w", newline="") as f:
            csv.writer(f).writerows([["accuracy", "config"], [90, cell]])
        with pytest.raises(TableError, match=message):
            table_configs(read_table(bad), space)


def test_search_history_rows_without_a_measurement_are_left_out(tmp_path: Path) -> None:
    """nas search's history.csv has rows outside the cost limits (accuracy_source
    'infeasible', empty accuracy) and latencies it did not ask for (latency_source 'none',
    nan): a predictor table of it takes the measured rows only."""
    import csv

    space = get_space("resnet_like")
    cfgs = space.sample_many(3, 1)
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "accuracy", "accuracy_source", "latency_ms", "latency_source",
                    "config"])
        w.writerow([cfgs[0].id, "80.5", "measured", "nan", "none", cfgs[0].to_json()])
        w.writerow([cfgs[1].id, "", "infeasible", "nan", "none", cfgs[1].to_json()])
        w.writerow([cfgs[2].id, "82.0", "measured", "nan", "none", cfgs[2].to_json()])
    configs, y = load_measurements(path, space, "accuracy")
    assert configs == [cfgs[0], cfgs[2]]
    np.testing.assert_array_equal(y, [80.5, 82.0])
    with pytest.raises(TableError, match=r"no row has a measured 'latency_ms' \(column "
                                         r"'latency_source' says infeasible or none"):
        load_measurements(path, space, "latency_ms")


def test_semicolon_and_tab_separated_tables(tmp_path: Path) -> None:
    """A header with no commas but semicolons or tabs (a spreadsheet export, a TSV file)
    sets the delimiter; an Excel byte-order mark is skipped either way."""
    for sep, bom in ((";", ""), ("\t", "\ufeff")):
        p = _write(tmp_path / "t.csv", bom + sep.join(["a", "b", "acc"]) + "\n"
                   + sep.join(["1", "x,y", "3.5"]) + "\n")
        t = read_table(p)
        assert t.columns == ("a", "b", "acc") and t.rows == (("1", "x,y", "3.5"),)
    p = _write(tmp_path / "c.csv", "a,b;c\n1,2\n")  # commas win
    assert read_table(p).columns == ("a", "b;c")
    # a semicolon file from a decimal-comma locale: 93,5 is 93.5 (other cells as they are)
    p = _write(tmp_path / "d.csv", "a;acc\nx,y;93,5\nz;-1,25e2\n")
    t = read_table(p)
    assert t.rows == (("x,y", "93.5"), ("z", "-1.25e2"))
    np.testing.assert_array_equal(table_target(t, "acc"), [93.5, -125.0])


def test_errors_name_file_row_and_column(tmp_path: Path) -> None:
    space = get_space("nb201")
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|"
    ok = f"arch,acc\n{arch},90\n"
    p = _write(tmp_path / "a.csv", ok + f"{arch},oops\n")
    with pytest.raises(TableError, match=r"a\.csv:3: column 'acc' is not a number: 'oops'"):
        load_measurements(p, space, "acc")
    # blank lines are skipped but counted: the error names the line an editor shows
    p = _write(tmp_path / "a2.csv", ok + f"\n\n{arch},oops\n")
    with pytest.raises(TableError, match=r"a2\.csv:5: column 'acc' is not a number"):
        load_measurements(p, space, "acc")
    p = _write(tmp_path / "b.csv", ok + f"{arch},\n")
    with pytest.raises(TableError, match=r"b\.csv:3: column 'acc' is empty"):
        load_measurements(p, space, "acc")
    p = _write(tmp_path / "c.csv", ok)
    with pytest.raises(TableError, match=r"c\.csv: no target column 'latency'.*arch, acc"):
        load_measurements(p, space, "latency")
    p = _write(tmp_path / "d.csv", "arch,acc\n|bogus~0|+|x|,90\n")
    with pytest.raises(TableError, match=r"d\.csv:2: column 'arch'"):
        load_measurements(p, space, "acc")
    p = _write(tmp_path / "e.csv", "name,acc\nfoo,90\n")
    with pytest.raises(TableError, match=r"e\.csv: no column maps rows to configs"):
        table_configs(read_table(p), space)
    p = _write(tmp_path / "f.csv", "arch,acc\n")
    with pytest.raises(TableError, match="no data rows"):
        read_table(p)
    with pytest.raises(TableError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    p = _write(tmp_path / "g.csv", ok + "x,1,2\n")
    with pytest.raises(TableError, match=r"g\.csv:3: 3 cells"):
        read_table(p)
    p = _write(tmp_path / "h.csv", ok + f"{arch},inf\n")
    with pytest.raises(TableError, match="not finite"):
        table_target(read_table(p), "acc")
    # a config value of another space, through dimension columns
    header = ",".join(space.paths)
    p = _write(tmp_path / "i.csv", header + ",acc\n" + ",".join(["conv_7x7"] * 6) + ",1\n")
    with pytest.raises(TableError, match=r"i\.csv:2: not a config of space 'nb201'"):
        table_configs(read_table(p), space)


def test_select_rows_disjoint_and_seeded() -> None:
    tr, te = select_rows(100, 20, 30, 0)
    assert len(tr) == 20 and len(te) == 30 and not set(tr) & set(te)
    tr2, te2 = select_rows(100, 40, 30, 0)
    np.testing.assert_array_equal(te, te2)
    with pytest.raises(TableError, match="fewer than --n-train"):
        select_rows(10, 8, 5, 0)


def test_select_rows_keeps_repeated_configs_on_one_side() -> None:
    # 30 configs, each measured 1-3 times, rows shuffled: no config on both sides
    rng = np.random.default_rng(0)
    groups = [f"cfg{k}" for k in range(30) for _ in range(1 + k % 3)]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    for seed in range(5):
        tr, te = select_rows(len(groups), 8, 12, seed, groups)
        train_cfgs = {groups[i] for i in tr}
        test_cfgs = {groups[i] for i in te}
        assert not train_cfgs & test_cfgs
        # n_train / n_test count distinct configs; every row of a chosen config is taken
        assert len(train_cfgs) == 8 and len(test_cfgs) == 12
        assert sorted(tr.tolist() + te.tolist()) == [
            i for i, g in enumerate(groups) if g in train_cfgs | test_cfgs]
        # the test configs do not depend on n_train
        assert set(select_rows(len(groups), 10, 12, seed, groups)[1].tolist()) == set(te)
    with pytest.raises(TableError, match=r"30 distinct configs \(60 rows\), fewer than --n-train"):
        select_rows(len(groups), 20, 11, 0, groups)


def test_select_rows_without_repeats_is_the_row_split() -> None:
    # distinct configs (e.g. NAS-Bench-201): exactly the row-by-row split of before
    groups = [("arch", k) for k in range(500)]
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(500)
        for n_train, n_test in ((20, 100), (200, 300)):
            tr, te = select_rows(500, n_train, n_test, seed, groups)
            np.testing.assert_array_equal(te, perm[:n_test])
            np.testing.assert_array_equal(tr, perm[n_test:n_test + n_train])
            tr0, te0 = select_rows(500, n_train, n_test, seed)
            np.testing.assert_array_equal(tr, tr0)
            np.testing.assert_array_equal(te, te0)


def test_evaluate_table_splits_repeated_measurements_by_config(
        tmp_path: Path, nb201_rows: list[dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.predictors import evaluate

    # every architecture measured three times
    lines = ["arch,lat"] + [f"{r['arch']},{float(r['latency_gold_6226_ms']) * (1 + k / 100)}"
                            for r in nb201_rows[:60] for k in range(3)]
    path = _write(tmp_path / "rep.csv", "\n".join(lines) + "\n")
    seen: list[tuple[set[str], set[str]]] = []
    real = evaluate.get_predictor

    class Spy:  # records the rows each seed trains and tests on
        def __init__(self, p: object) -> None:
            self.p, self.params = p, {}

        def fit(self, X: np.ndarray, y: np.ndarray) -> Spy:
            self.train = {r.tobytes() for r in X}
            self.p.fit(X, y)
            return self

        def predict(self, X: np.ndarray) -> np.ndarray:
            seen.append((self.train, {r.tobytes() for r in X}))
            return self.p.predict(X)

    monkeypatch.setattr(evaluate, "get_predictor", lambda *a, **k: Spy(real(*a, **k)))
    res = evaluate.evaluate_table(path, get_space("nb201"), "lat", n_train=10, n_test=20,
                                  seeds=3, model="ridge", features=["encoding"])
    assert len(res.per_seed) == 3 and len(seen) == 3
    for train, test in seen:  # one-hot encodings: a row's features identify its config
        assert not train & test
        assert len(train) == 10 and len(test) == 20
