"""``nas search`` end to end on a tiny supernet: outputs, resume, constraints, errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli.main import main
from nas.searchspace import Space

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from conftest import tiny_resnet  # noqa: E402


@pytest.fixture(scope="module")
def tiny_supernet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Space, Path, Path]:
    from nas.training import TrainOptions, train

    space = tiny_resnet()
    root = tmp_path_factory.mktemp("sn")
    space_file = root / "tiny.yaml"
    space.save(space_file)
    # 16 steps: zero-initialised residual branches would still be near chance this early
    # (tests/training covers zero_init_last)
    opts = TrainOptions(epochs=2, threads=1, batch_size=32, train_subset=256, bn_batches=2,
                        lr=0.2, zero_init_last=False)
    train(opts, root / "run", space=space, progress=False)
    return space, space_file, root / "run" / "supernet.pt"


def _search(tmp: Path, space_file: Path, ckpt: Path, *extra: str) -> int:
    return main(["search", "--space", str(space_file), "--supernet", str(ckpt), "--target",
                 "flops", "params", "--budget", "12", "--out", str(tmp), "--no-progress",
                 "--threads", "1", *extra])


def _exit_status(argv: list[str]) -> int:
    """``main(argv)``, or the status of the ``SystemExit`` of a flag refused by argparse."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_search_outputs_and_resume(tiny_supernet, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "evolution") == 0
    printed = capsys.readouterr().out
    assert "Pareto front" in printed and str(out) in printed
    for name in ("history.csv", "pareto.csv", "pareto.json", "pareto.png", "summary.json"):
        assert (out / name).exists(), name
    hist = list(csv.DictReader(open(out / "history.csv")))
    assert len(hist) == 12 and all(r["accuracy_source"] == "measured" for r in hist)
    front = json.loads((out / "pareto.json").read_text())
    assert front and all((out / r["file"]).exists() for r in front)
    for r in front:
        blob = torch.load(out / r["file"], weights_only=True)
        assert blob["config"] == r["config"] and space.contains(r["config"])
    flops = [r["flops"] for r in front]
    assert flops == sorted(flops)
    # a front over accuracy (up), FLOPs and params (down): no member dominates another
    objs = [(-r["accuracy"], r["flops"], r["params"]) for r in front]
    assert not any(a != b and all(u <= v for u, v in zip(a, b)) for a in objs for b in objs)
    assert len(front) >= 2 and front[-1]["accuracy"] > front[0]["accuracy"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 12 and summary["versions"]["torch"] == torch.__version__
    # each extracted subnet computes what the supernet computes at its config
    assert all(r["extraction_max_abs_diff"] <= 1e-5 for r in front)
    assert "subnets extracted; largest |difference|" in printed
    # the same command again: nothing is evaluated twice, and the unchanged front is kept
    # as it is (not extracted again: its files stay byte for byte)
    files = {p.name: p.read_bytes() for p in (out / "pareto").iterdir()}
    assert _search(out, space_file, ckpt, "--strategy", "evolution") == 0
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 12
    assert "the same" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "pareto").iterdir()} == files
    assert json.loads((out / "pareto.json").read_text()) == front
    # a larger budget continues the same search
    assert _search(out, space_file, ckpt, "--strategy", "evolution", "--budget", "15") == 0
    hist2 = list(csv.DictReader(open(out / "history.csv")))
    assert len(hist2) == 15 and hist2[:12] == hist
    capsys.readouterr()
    assert _search(out, space_file, ckpt, "--strategy", "evolution", "--seed", "3") == 2
    assert "holds a different search (differs in: seed (" in capsys.readouterr().err


def test_searcher_options_reach_the_searcher(tiny_supernet, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--option KEY=VALUE sets the searcher's own options: used, recorded, part of what a
    resume must repeat; bad ones are refused before anything is written."""
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "evolution", "--option",
                   "population=4", "--option", "sample_size=2") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["searcher_options"] == {"population": 4, "sample_size": 2}
    manifest = json.loads((out / "search.json").read_text())
    assert manifest["options"]["searcher_options"] == {"population": 4, "sample_size": 2}
    a = [r["id"] for r in csv.DictReader(open(out / "history.csv"))]
    other = tmp_path / "t"  # the default population (16) searches otherwise
    assert _search(other, space_file, ckpt, "--strategy", "evolution") == 0
    assert a != [r["id"] for r in csv.DictReader(open(other / "history.csv"))]
    # without options the manifest has no entry (directories from before still resume)
    assert "searcher_options" not in json.loads((other / "search.json").read_text())["options"]
    capsys.readouterr()
    assert _search(out, space_file, ckpt, "--strategy", "evolution", "--option",
                   "population=5", "--option", "sample_size=2") == 2
    assert "differs in: searcher_options" in capsys.readouterr().err
    for bad, said in ((["--option", "population=0"], "option population: must be an integer"),
                      (["--option", "nope=1"], "unknown option 'nope'"),
                      (["--option", "seed=1"], "--option seed: set by the search itself"),
                      (["--option", "population"], "expected KEY=VALUE"),
                      (["--option", "population=4", "--option", "population=5"],
                       "'population' given twice")):
        fresh = tmp_path / "bad"
        assert _exit_status(["search", "--space", str(space_file), "--supernet", str(ckpt),
                             "--strategy", "evolution", "--out", str(fresh), *bad]) == 2
        assert said in capsys.readouterr().err and not fresh.exists()


def test_constraints(tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    assert _search(tmp_path / "a", space_file, ckpt, "--constraint", "params<=10") == 1
    err = capsys.readouterr().err
    assert "--constraint params<=10 is infeasible" in err and "the best params seen" in err
    assert _search(tmp_path / "b", space_file, ckpt, "--constraint", "latency<=banana") == 2
    assert not (tmp_path / "b").exists()
    limit = 6000
    # the infeasible search stopped before any evaluation: the corrected constraint can take
    # over its directory (other options cannot: that directory's supernet is not theirs)
    assert _search(tmp_path / "a", space_file, ckpt, "--constraint", f"params<={limit}") == 0
    front = json.loads((tmp_path / "a" / "pareto.json").read_text())
    assert front and all(r["params"] <= limit for r in front)


def test_errors(tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    # the wrong kind of input file is a usage error (exit 2) naming the flag
    assert main(["search", "--space", "resnet_like", "--supernet", str(ckpt), "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--supernet: " in (err := capsys.readouterr().err)
    assert "checkpoint holds space 'tiny_resnet', not 'resnet_like'" in err
    assert not (tmp_path / "x").exists()  # refused before the output directory was made
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    assert _search(tmp_path / "w", space_file, bad) == 2
    assert "bad.pt: not a readable supernet checkpoint" in capsys.readouterr().err
    assert _search(tmp_path / "v", space_file, ckpt, "--data", "nope") == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "v").exists()
    import numpy as np

    other = tmp_path / "rgb12.npz"  # 3x12x12, 3 classes: does not fit the 1x8x8 supernet
    np.savez(other, x_train=np.zeros((30, 3, 12, 12), np.uint8), y_train=np.arange(30) % 3,
             x_test=np.zeros((6, 3, 12, 12), np.uint8), y_test=np.arange(6) % 3)
    assert _search(tmp_path / "u", space_file, ckpt, "--data", str(other)) == 2
    assert "does not fit the supernet" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
    assert _search(tmp_path / "y", space_file, ckpt, "--strategy", "annealing") == 2
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "notes.txt").write_text("mine")
    assert _search(tmp_path / "z", space_file, ckpt) == 2
    assert "is not empty and holds no search" in capsys.readouterr().err


def test_latency_target_builds_a_table_and_measures_the_front(
        tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "lat"
    assert main(["search", "--space", str(space_file), "--supernet", str(ckpt), "--target",
                 "latency", "--budget", "8", "--strategy", "random", "--out", str(out),
                 "--no-progress", "--threads", "1"]) == 0
    from nas.predictors.latency import LatencyTable

    table = LatencyTable.load(out / "latency.json", space=space)
    front = json.loads((out / "pareto.json").read_text())
    for r in front:
        assert r["latency_predicted_ms"] > 0 and r["latency_measured_ms"] > 0
        cfg = space.config(r["config"])
        assert r["latency_predicted_ms"] == pytest.approx(table.predict(cfg))
    hist = list(csv.DictReader(open(out / "history.csv")))
    assert all(r["latency_source"] == "table" for r in hist)
    # the table is reused, not rebuilt, when the search is resumed
    mtime = (out / "latency.json").stat().st_mtime
    assert main(["search", "--space", str(space_file), "--supernet", str(ckpt), "--target",
                 "latency", "--budget", "8", "--strategy", "random", "--out", str(out),
                 "--no-progress", "--threads", "1"]) == 0
    assert (out / "latency.json").stat().st_mtime == mtime
    capsys.readouterr()
    # history.csv from another table (here: its latencies tripled): a resume ranks the old
    # rows by the current table's latencies, says so, and keeps the file as it was
    rows = list(csv.DictReader(open(out / "history.csv")))
    for r in rows:
        r["latency_ms"] = f"{3 * float(r['latency_ms']):.6g}"
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["search", "--space", str(space_file), "--supernet", str(ckpt), "--target",
                 "latency", "--budget", "10", "--strategy", "random", "--out", str(out),
                 "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out.replace("\n", " ")
    assert "holds latencies of another latency table for 8 of its 8 rows" in printed
    assert "up to 3x" in printed
    hist = list(csv.DictReader(open(out / "history.csv")))
    assert [r["latency_ms"] for r in hist[:8]] == [r["latency_ms"] for r in rows]
    acc = np.array([float(r["accuracy"]) for r in hist])
    lat = np.array([table.predict(space.config(json.loads(r["config"]))) for r in hist])
    front = json.loads((out / "pareto.json").read_text())
    for r in front:  # non-dominated under the table's latencies
        a, t = r["accuracy"], r["latency_predicted_ms"]
        assert not np.any((acc >= a) & (lat <= t * (1 - 1e-5)) & ((acc > a) | (lat < t)))
    # --latency-table: another search uses that (complete) table instead of measuring one
    out2 = tmp_path / "lat2"
    base = ["search", "--space", str(space_file), "--supernet", str(ckpt), "--budget", "3",
            "--strategy", "random", "--no-progress", "--threads", "1"]
    assert main([*base, "--target", "latency", "--out", str(out2),
                 "--latency-table", str(out / "latency.json")]) == 0
    printed = capsys.readouterr().out
    assert "copied to" in printed and "measuring this device" not in printed
    assert (out2 / "latency.json").read_bytes() == (out / "latency.json").read_bytes()
    assert main([*base, "--target", "params", "--out", str(tmp_path / "p"),
                 "--latency-table", str(out / "latency.json")]) == 2
    assert "--latency-table: this search uses no latency" in capsys.readouterr().err
    # the same search with another table (its latencies scaled): the front is not kept
    # with the old table's figures, and proposals the old table put outside a latency limit
    # that the new one puts inside are evaluated
    def scaled(factor: float) -> Path:
        doc = json.loads((out / "latency.json").read_text())
        for v in doc["entries"].values():
            for k in v:
                if k != "repeats":
                    v[k] *= factor
        for k in ("intercept_ms", "per_block_ms"):
            doc["overhead"][k] *= factor
        path = tmp_path / f"lut{factor:g}.json"
        path.write_text(json.dumps(doc))
        return path

    assert main([*base, "--target", "latency", "--out", str(out2),
                 "--latency-table", str(scaled(3))]) == 0
    printed = capsys.readouterr().out
    assert "kept as they are" not in printed
    t3 = LatencyTable.load(out2 / "latency.json", space=space)
    for r in json.loads((out2 / "pareto.json").read_text()):
        assert r["latency_predicted_ms"] == pytest.approx(t3.predict(space.config(r["config"])))
    lim = float(np.median(lat))  # about half of the configs outside it by the first table
    out3 = tmp_path / "lat3"
    limited = [*base, "--target", "latency", "--out", str(out3), "--constraint",
               f"latency<={lim:.6g}", "--budget", "4"]
    assert main([*limited, "--latency-table", str(out / "latency.json")]) == 0
    hist = list(csv.DictReader(open(out3 / "history.csv")))
    outside = [r for r in hist if r["accuracy_source"] == "infeasible"]
    assert outside, "a limit at the median latency leaves some proposals outside it"
    capsys.readouterr()
    assert main([*limited, "--latency-table", str(scaled(0.01))]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"{len({r['id'] for r in outside})} proposals history.csv holds as outside the " \
           "cost limits lie inside them by the current costs" in printed
    # a latency limit below every probe: warned about, then searched anyway (descents over
    # the table end in local minima); nothing is found inside it here, and that is said
    capsys.readouterr()
    assert main([*base, "--target", "latency", "--out", str(tmp_path / "tight"),
                 "--constraint", "latency<=1e-6ms", "--budget", "1", "--strategy", "random",
                 "--latency-table", str(out / "latency.json")]) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "configs searcher 'random' proposed lie outside the cost limits" in said
    other = tmp_path / "other.json"  # a table of another space
    doc = json.loads((out / "latency.json").read_text())
    doc["space"]["name"] = "elsewhere"
    other.write_text(json.dumps(doc))
    assert main([*base, "--target", "latency", "--out", str(tmp_path / "o"),
                 "--latency-table", str(other)]) == 2
    assert "other.json" in capsys.readouterr().err


def test_search_trains_its_own_supernet(tiny_supernet, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --supernet the search trains one into its output directory first (and a
    second run of the same command finds it trained)."""
    space, space_file, _ = tiny_supernet
    out = tmp_path / "own"
    args = ["search", "--space", str(space_file), "--target", "params", "--budget", "4",
            "--train-epochs", "1", "--out", str(out), "--no-progress", "--threads", "1"]
    # a bad value first: refused before anything is written, so the corrected command is
    # not told that the directory holds a different search
    assert _exit_status([*args, "--train-epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--train-epochs" in err and "must be >= 1, got 0" in err
    assert not out.exists()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "supernet: training 1 epochs" in printed and "Pareto front" in printed
    assert (out / "supernet" / "supernet.pt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 4 and summary["timings"]["supernet_s"] > 0
    assert main(args) == 0
    assert "supernet: trained already" in capsys.readouterr().out
    # the stride of its stem is the search's to choose; without one, directories written
    # before the option existed still match
    from nas.search.pipeline import SearchOptions
    from nas.supernet import load_supernet

    assert "stem_stride" not in SearchOptions().identity()
    assert SearchOptions(stem_stride=2).identity()["stem_stride"] == 2
    out2 = tmp_path / "own2"
    args2 = [a if a != str(out) else str(out2) for a in args]
    assert main([*args2, "--stem-stride", "2", "--budget", "2"]) == 0
    capsys.readouterr()
    assert load_supernet(out2 / "supernet" / "supernet.pt").build.stem_stride == 2
    assert main([*args, "--stem-stride", "2"]) == 2  # another search than the one in out
    assert "differs in: stem_stride (" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [
    ("train_epochs", -1, "--train-epochs: must be >= 1, got -1"),
    ("train_epochs", 0, "--train-epochs: must be >= 1, got 0"),
    ("seed", -1, "--seed: must be >= 0, got -1"),
    ("threads", -1, "--threads: must be >= 1, got -1"),
    ("threads", 0, "--threads: must be >= 1, got 0"),
    ("budget", 0, "--budget: must be >= 1, got 0"),
    ("device", "banana", "--device: 'banana' is not a device"),
    ("strategy", "annealing", "--strategy 'annealing' is not a searcher; known: "),
    ("max_export", 0, "max_export: must be >= 1, got 0"),
])
def test_bad_options_are_refused_before_anything_is_written(
        tiny_supernet, tmp_path: Path, option: str, value: object, message: str) -> None:
    """Each option is checked before the output directory is made: otherwise its search.json
    records the bad value and the corrected command is refused as a different search."""
    from nas.errors import UsageError
    from nas.search.pipeline import SearchOptions, run_search_job

    space, space_file, _ = tiny_supernet
    out = tmp_path / "s4"
    opts = SearchOptions(**{"space": str(space_file), "targets": ["params"], "budget": 4,
                            option: value})
    with pytest.raises(UsageError) as err:
        run_search_job(opts, out, progress=False, say=lambda m: None)
    assert str(err.value).startswith(message)
    assert not out.exists()


def test_search_options_validate_types() -> None:
    from nas.errors import UsageError
    from nas.search.pipeline import SearchOptions

    SearchOptions(train_epochs=1, threads=1, seed=0).validate()
    for kw, message in (({"train_epochs": 1.5}, "--train-epochs: must be an integer >= 1"),
                        ({"threads": True}, "--threads: must be an integer >= 1"),
                        ({"budget": "12"}, "--budget: must be an integer >= 1, got '12'"),
                        ({"max_export": 0}, "max_export: must be >= 1, got 0"),
                        ({"strategy": "annealing"}, "--strategy 'annealing' is not a searcher"),
                        ({"train_strategy": "nope"}, "train_strategy: 'nope' is not a training"),
                        ({"stem_stride": 3}, "--stem-stride: must be 1 or 2, got 3"),
                        ({"stem_stride": 2.0}, "--stem-stride: must be 1 or 2, got 2.0"),
                        ({"stem_stride": 2, "supernet": "s.pt"},
                         "--stem-stride: sets the supernet this search trains")):
        with pytest.raises(UsageError, match=message):
            SearchOptions(**kw).validate()


def _history_file(path: Path, space: Space, n: int) -> list[str]:
    """A history.csv of ``n`` evaluations of ``space`` (as the search writes it)."""
    from nas.search.pipeline import HISTORY_FIELDS

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        for i, cfg in enumerate(space.sample_many(n, 7)):
            w.writerow({"id": cfg.id, "accuracy": f"{50 + i}.0000", "accuracy_source":
                        "measured", "latency_ms": "nan", "latency_source": "none",
                        "flops": 1000 + i, "params": 100 + i, "size_bytes": 400 + i,
                        "feasible": 1, "seconds": "0.010", "config": cfg.to_json()})
    return [c.id for c in space.sample_many(n, 7)]


@pytest.mark.parametrize("cut", ["in the config", "before the config", "in the first row"])
def test_history_torn_last_row_is_dropped(tmp_path: Path, cut: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """What a kill during an append leaves: the torn last row is dropped (with a warning)
    and the file rewritten without it, so the next append starts on its own line."""
    from nas.search.pipeline import _read_history

    space = tiny_resnet()
    path = tmp_path / "history.csv"
    ids = _history_file(path, space, 3)
    data = path.read_bytes()
    last = data.rindex(b"\n", 0, -1) + 1
    keep = {"in the config": len(data) - 20, "before the config": last + 30,
            "in the first row": 150}[cut]  # the audit's `head -c 150`
    path.write_bytes(data[:keep])
    with caplog.at_level("WARNING", logger="nas.search.pipeline"):
        rows = _read_history(path, space)
    n = 0 if cut == "in the first row" else 2
    assert [r["id"] for r in rows] == ids[:n]
    assert "history.csv:" in caplog.text and "dropping the torn last row" in caplog.text
    assert path.read_bytes() == data[:data.index(b"\n") + 1 if n == 0 else last]
    with open(path, "a", newline="", encoding="utf-8") as f:  # the search appends again
        f.write(data[last:].decode())
    caplog.clear()
    assert [r["id"] for r in _read_history(path, space)] == ids[:n] + ids[2:]
    assert not caplog.text


def test_history_unreadable_rows_and_headers_are_errors(tmp_path: Path) -> None:
    from nas.search.pipeline import SearchError, _read_history

    space = tiny_resnet()
    path = tmp_path / "history.csv"
    _history_file(path, space, 3)
    lines = path.read_bytes().decode().split("\r\n")
    path.write_text("\r\n".join([lines[0], lines[1][:60], *lines[2:]]), newline="")
    with pytest.raises(SearchError, match=r"history.csv:2: not a search history row"):
        _read_history(path, space)
    path.write_text("\r\n".join([lines[0], lines[1].replace(",50.0000,", ",x,"),
                                   *lines[2:]]), newline="")
    with pytest.raises(SearchError, match=r"history.csv:2: not a search history row "
                                          r"\(accuracy: 'x' is not a number\)"):
        _read_history(path, space)
    path.write_text("\r\n".join([lines[0], lines[1].replace(",50.0000,", ",nan,"),
                                   *lines[2:]]), newline="")
    with pytest.raises(SearchError, match=r"history.csv:2: not a search history row "
                                          r"\(accuracy: 'nan' is not a finite number\)"):
        _read_history(path, space)
    path.write_text("\r\n".join([lines[0], lines[1].replace(",50.0000,", ",150.0,"),
                                   *lines[2:]]), newline="")
    with pytest.raises(SearchError, match=r"history.csv:2: .*accuracy: '150.0' is not a "
                                          r"percentage"):
        _read_history(path, space)
    # an id that is not its config's (edited by hand: which one was evaluated?)
    other = "0" * 12 if not lines[1].startswith("0" * 12) else "1" * 12
    path.write_text("\r\n".join([lines[0], other + lines[1][12:], *lines[2:]]), newline="")
    with pytest.raises(SearchError, match=rf"history.csv:2: .*id: '{other}' is not its "
                                          r"config's id \([0-9a-f]{12}\)"):
        _read_history(path, space)
    # a header that is not ours: an error (not a re-evaluation of everything, appended twice)
    path.write_text("\r\n".join(["garbage,,,", *lines[1:]]), newline="")
    with pytest.raises(SearchError, match=r"history.csv:1: not a search history header "
                                          r"\(got 'garbage,,,'"):
        _read_history(path, space)
    # empty (killed before the header was written): no rows, and the header is written
    path.write_bytes(b"")
    assert _read_history(path, space) == []
    assert path.read_bytes().decode() == lines[0] + "\r\n"


def test_search_resumes_after_a_torn_history_row(tiny_supernet, tmp_path: Path) -> None:
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "5") == 0
    hist = out / "history.csv"
    before = list(csv.DictReader(open(hist, newline="")))
    hist.write_bytes(hist.read_bytes()[:-30])  # killed while appending the fifth row
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "5") == 0
    rows = list(csv.DictReader(open(hist, newline="")))
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    assert rows[:4] == before[:4]  # kept, not re-evaluated
    assert all(space.contains(json.loads(r["config"])) for r in rows)


def test_a_directory_being_searched_is_locked(tiny_supernet, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A second search of a directory in use is refused (two had appended the same
    evaluations to one history.csv); a history that holds a config twice counts it once."""
    from nas.utils.files import DirectoryLock

    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3") == 0
    held = DirectoryLock(out)
    held.acquire()  # as a running search holds it
    try:
        capsys.readouterr()
        assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "4") == 1
        assert "is being searched by process" in capsys.readouterr().err
    finally:
        held.release()
    hist = out / "history.csv"
    lines = hist.read_bytes().split(b"\r\n")
    hist.write_bytes(b"\r\n".join(lines[:2] + lines[1:]))  # the first row twice
    capsys.readouterr()
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "4") == 0
    assert "resuming with 3 evaluations" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 4 and summary["proposals_outside_cost_limits"] == 0


def test_what_a_killed_or_refused_search_leaves_does_not_block_or_change(
        tiny_supernet, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """A second search refused by the lock changes nothing (it had rewritten search.json);
    a directory holding only a temporary of its first search.json is still usable; the
    temporaries of killed writes go when the search runs again; a kill while a longer
    search's new front is timed leaves the old front's files, which pareto.json lists."""
    from nas.search import pipeline
    from nas.utils.files import DirectoryLock

    _, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    out.mkdir()
    (out / ".search.json.abcd1234.tmp").write_text("{")  # killed writing its manifest
    held = DirectoryLock(out)
    held.acquire()
    try:
        assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3") == 1
        assert "is being searched by process" in capsys.readouterr().err
        assert not (out / "search.json").exists()
    finally:
        held.release()
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3") == 0
    manifest = (out / "search.json").read_text()
    assert not (out / ".search.json.abcd1234.tmp").exists()
    held.acquire()
    try:  # another strategy while it runs: refused, and the manifest is left as it was
        assert _search(out, space_file, ckpt, "--strategy", "evolution", "--budget", "3") == 1
        assert (out / "search.json").read_text() == manifest
    finally:
        held.release()
    # temporaries left by killed writes, beside the files and in pareto/: removed
    (out / ".history.csv.abcd1234.tmp").write_text("x")
    (out / "pareto" / ".0123456789ab.pt.abcd1234.tmp").write_bytes(b"x" * 10)
    (out / "my_notes.txt").write_text("mine")
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3") == 0
    assert not (out / ".history.csv.abcd1234.tmp").exists()
    assert not any(p.name.endswith(".tmp") for p in (out / "pareto").iterdir())
    assert (out / "my_notes.txt").read_text() == "mine"
    # a longer search stopped before its new front is listed (while it is timed, say):
    # the files pareto.json lists are all still there
    def stop(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    old = json.loads((out / "pareto.json").read_text())
    # (a member the new front drops for sure: a row of pareto.json whose files are there)
    fake = dict(old[0], id="fa1e0000fa1e", file="pareto/fa1e0000fa1e.pt")
    (out / "pareto" / "fa1e0000fa1e.pt").write_bytes(b"old front")
    (out / "pareto" / "fa1e0000fa1e.json").write_text("{}")
    old = [*old, fake]
    (out / "pareto.json").write_text(json.dumps(old))
    monkeypatch.setattr(pipeline, "strict_json", stop)  # (pareto.json's writer)
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "12") == 130
    assert json.loads((out / "pareto.json").read_text()) == old
    assert all((out / r["file"]).exists() for r in old)
    monkeypatch.undo()
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "12") == 0
    new = json.loads((out / "pareto.json").read_text())
    assert {p.name for p in (out / "pareto").iterdir()} == {
        f"{r['id']}.{ext}" for r in new for ext in ("pt", "json")}


def test_a_kept_front_rewrites_its_table_and_plot(tiny_supernet, tmp_path: Path,
                                                  capsys) -> None:  # noqa: ANN001
    """A re-run that keeps the front as it is still writes pareto.csv and pareto.png (a kill
    after pareto.json had left them missing; more evaluations leave the plot stale)."""
    _, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3") == 0
    csv_text = (out / "pareto.csv").read_text()
    (out / "pareto.csv").unlink()
    (out / "pareto.png").unlink()
    capsys.readouterr()
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3") == 0
    assert "kept as they are" in " ".join(capsys.readouterr().out.split())
    assert (out / "pareto.csv").read_text() == csv_text and (out / "pareto.png").exists()


def test_budget_of_one(tiny_supernet, tmp_path: Path) -> None:
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "one"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "1") == 0
    assert len(json.loads((out / "pareto.json").read_text())) == 1


def test_exported_subnets_score_their_recorded_accuracy(tiny_supernet, tmp_path: Path) -> None:
    """Each exported subnet carries its own recalibrated batch-norm statistics: its accuracy
    on the validation split equals the one recorded for it (extracting without recalibrating
    gave every subnet the statistics of whichever config was evaluated last)."""
    from nas.data import load_dataset, split
    from nas.supernet import load_subnet

    _, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--seed", "1") == 0
    # the validation images the supernet's training held out (its seed 0, not --seed 1)
    x, y = split(load_dataset("digits"), seed=0).val
    front = json.loads((out / "pareto.json").read_text())
    assert len(front) >= 2
    for r in front:
        model, _ = load_subnet(out / r["file"])
        with torch.no_grad():
            acc = 100.0 * float((model.eval()(x).argmax(1) == y).float().mean())
        assert acc == pytest.approx(r["accuracy"], abs=1e-3), r["id"]


def test_accuracy_limits_and_a_clean_front_directory(tiny_supernet, tmp_path: Path,
                                                     capsys) -> None:  # noqa: ANN001
    """``accuracy>=X`` keeps lower-accuracy subnets off the front (it was ignored), the
    history's feasible column says so, the summary's hypervolume reference comes from
    feasible rows, and a resumed search leaves only the new front's files in pareto/."""
    _, space_file, ckpt = tiny_supernet
    first = tmp_path / "first"
    assert _search(first, space_file, ckpt, "--strategy", "random", "--budget", "3") == 0
    assert _search(first, space_file, ckpt, "--strategy", "random") == 0  # resumed to 12
    front = json.loads((first / "pareto.json").read_text())
    files = sorted(p.name for p in (first / "pareto").iterdir())
    assert files == sorted(f"{r['id']}.{ext}" for r in front for ext in ("json", "pt"))
    accs = sorted(float(r["accuracy"]) for r in csv.DictReader(open(first / "history.csv")))
    limit = accs[len(accs) // 2]
    out = tmp_path / "limited"
    assert _search(out, space_file, ckpt, "--strategy", "random",
                   "--constraint", f"accuracy>={limit}") == 0
    hist = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["feasible"]) for r in hist] == [int(float(r["accuracy"]) >= limit)
                                                 for r in hist]
    front = json.loads((out / "pareto.json").read_text())
    assert front and all(r["accuracy"] >= limit for r in front)
    ref = json.loads((out / "summary.json").read_text())["hypervolume_reference"]
    assert -ref[0] >= limit - 1e-6  # minimised accuracy: the worst feasible one
    capsys.readouterr()
    assert _exit_status(["search", "--space", str(space_file), "--supernet", str(ckpt),
                         "--constraint", "accuracy>=101", "--out", str(tmp_path / "x")]) == 2
    assert "accuracy is a percentage" in capsys.readouterr().err


def test_a_latency_table_for_other_settings_is_refused(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    import types

    from nas.predictors.latency import LatencyTableError
    from nas.search.latency_source import latency_table_for
    from nas.supernet import BuildArgs

    space = tiny_resnet()
    from nas.predictors.latency import build_latency_table

    path = tmp_path / "latency.json"
    build_latency_table(space, input_size=8, in_channels=3, num_classes=10, warmup=1,
                        repeats=2, overhead_subnets=2, out=path, progress=False)
    net = types.SimpleNamespace(space=space, build=BuildArgs.make(1, 10, 8))  # 1 channel
    with caplog.at_level(logging.WARNING):
        with pytest.raises(LatencyTableError, match="in_channels: 3 vs 1"):
            latency_table_for(net, path, batch=1, threads=1, device="cpu", progress=False,
                              say=lambda m: None)
        with pytest.raises(LatencyTableError, match="in_channels: 3 vs 1"):
            latency_table_for(net, tmp_path / "other.json", batch=1, threads=1, device="cpu",
                              progress=False, say=lambda m: None, given=path)
    assert "other settings" not in caplog.text  # said once, as the error, not also warned


def test_resume_does_not_depend_on_how_paths_are_spelled(tmp_path: Path,
                                                        monkeypatch) -> None:  # noqa: ANN001
    """The same space (by fingerprint) and the same supernet file resume, however --space
    and --supernet were spelled; another supernet file does not."""
    from nas.errors import UsageError
    from nas.search.pipeline import SearchOptions, _prepare_out
    from nas.searchspace import load_space

    monkeypatch.chdir(tmp_path)
    space = load_space("resnet_like")
    space.save(tmp_path / "s.yaml")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.pt").write_bytes(b"supernet a")
    (tmp_path / "runs" / "b.pt").write_bytes(b"supernet b")
    _prepare_out(tmp_path / "out", SearchOptions(space="s.yaml", supernet="runs/a.pt"), space)
    _prepare_out(tmp_path / "out", SearchOptions(space="./s.yaml",
                                                 supernet="./runs/../runs/a.pt"), space)
    _prepare_out(tmp_path / "out", SearchOptions(space=str(tmp_path / "s.yaml"),
                                                 supernet=str(tmp_path / "runs/a.pt")), space)
    with pytest.raises(UsageError, match="differs in: supernet"):
        _prepare_out(tmp_path / "out", SearchOptions(space="s.yaml", supernet="runs/b.pt"),
                     space)
    # the same file moved elsewhere is the same search (its contents say which supernet it
    # is), and the directory records the new place
    (tmp_path / "moved").mkdir()
    (tmp_path / "runs" / "a.pt").rename(tmp_path / "moved" / "a.pt")
    _prepare_out(tmp_path / "out", SearchOptions(space="s.yaml", supernet="moved/a.pt"), space)
    manifest = json.loads((tmp_path / "out" / "search.json").read_text())
    assert manifest["options"]["supernet"] == "moved/a.pt"
    _prepare_out(tmp_path / "out", SearchOptions(space="s.yaml", supernet="moved/a.pt"), space)
    (tmp_path / "moved" / "a.pt").rename(tmp_path / "runs" / "a.pt")
    _prepare_out(tmp_path / "out", SearchOptions(space="s.yaml", supernet="runs/a.pt"), space)
    # the same path with other contents (a retrained or replaced file) is another search
    (tmp_path / "runs" / "a.pt").write_bytes(b"supernet a, trained further")
    with pytest.raises(UsageError, match="the --supernet file's contents"):
        _prepare_out(tmp_path / "out", SearchOptions(space="s.yaml", supernet="runs/a.pt"),
                     space)
    # a search that trained its own supernet, asked again with other limits: refused, with
    # how a new --out can reuse what was trained
    _prepare_out(tmp_path / "own", SearchOptions(space="s.yaml"), space)
    (tmp_path / "own" / "history.csv").write_text("")
    (tmp_path / "own" / "supernet").mkdir()
    (tmp_path / "own" / "supernet" / "supernet.pt").write_bytes(b"trained")
    with pytest.raises(UsageError, match=r"differs in: constraints .*a new --out can reuse "
                                         r"its trained supernet: --supernet .*own/supernet/"
                                         r"supernet.pt\)$"):
        _prepare_out(tmp_path / "own", SearchOptions(space="s.yaml",
                                                     constraints=["accuracy>=50"]), space)
    # not when the training would differ (then that supernet is not this search's)
    with pytest.raises(UsageError) as e:
        _prepare_out(tmp_path / "own", SearchOptions(space="s.yaml", train_epochs=40), space)
    assert "differs in: train_epochs" in str(e.value) and "reuse" not in str(e.value)


def _history(out: Path) -> list[tuple[str, str]]:
    return [(r["id"], r["accuracy"]) for r in csv.DictReader(open(out / "history.csv"))]


def test_ray_workers_evaluate_what_this_process_does(tiny_supernet, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``--workers 2``: the same evaluations, in the same order, with the same accuracies as
    the search in this process; the two kinds of run resume each other's directories."""
    pytest.importorskip("ray")
    space, space_file, ckpt = tiny_supernet
    args = ("--strategy", "nsga2", "--budget", "10")
    assert _search(tmp_path / "seq", space_file, ckpt, *args) == 0
    assert _search(tmp_path / "ray", space_file, ckpt, *args, "--workers", "2") == 0
    assert "evaluations on 2 Ray worker(s) at a local runtime" in capsys.readouterr().out
    seq, par = _history(tmp_path / "seq"), _history(tmp_path / "ray")
    assert len(seq) == 10 and par == seq
    assert len({a for _, a in seq}) > 1  # the accuracies differ: the comparison can fail
    front = json.loads((tmp_path / "ray" / "pareto.json").read_text())
    assert front == json.loads((tmp_path / "seq" / "pareto.json").read_text())
    # a larger budget continues the search made in this process on workers, and back
    assert _search(tmp_path / "seq", space_file, ckpt, *args[:2], "--budget", "14",
                   "--workers", "2") == 0
    assert _search(tmp_path / "ray", space_file, ckpt, *args[:2], "--budget", "14") == 0
    assert _history(tmp_path / "seq") == _history(tmp_path / "ray")
    assert len(_history(tmp_path / "seq")) == 14


def test_ray_options_are_checked(tiny_supernet, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from nas.errors import UsageError
    from nas.search.pipeline import SearchOptions

    space, space_file, ckpt = tiny_supernet
    for kw, message in (({"workers": 0}, "--workers: must be >= 1, got 0"),
                        ({"workers": 2.5}, "--workers: must be an integer >= 1"),
                        ({"ray_address": " "}, "--ray-address: a Ray cluster address")):
        with pytest.raises(UsageError, match=message):
            SearchOptions(**kw).validate()
    assert _exit_status(["search", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    if importlib.util.find_spec("ray") is not None:
        import socket

        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        assert _search(tmp_path / "a", space_file, ckpt, "--ray-address",
                       f"127.0.0.1:{port}") == 1
        err = capsys.readouterr().err
        assert f"--ray-address 127.0.0.1:{port}: no Ray cluster answers there" in err
        assert not (tmp_path / "a").exists()  # said before any work
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert _search(tmp_path / "n", space_file, ckpt, "--workers", "2") == 2
    err = capsys.readouterr().err
    assert "--workers: evaluating on several workers needs Ray" in err
    assert "pip install 'nas-toolkit[ray]'" in err and not (tmp_path / "n").exists()
    assert _search(tmp_path / "n", space_file, ckpt, "--ray-address", "auto") == 2
    assert "--ray-address: evaluating on several workers needs Ray" in capsys.readouterr().err


def test_a_failing_worker_evaluation_is_one_clear_error(tiny_supernet) -> None:
    """An evaluation that raises on a worker comes back as a DistributedError with the
    worker's message, and the pool still stops its runtime."""
    ray = pytest.importorskip("ray")
    from nas.search.distributed import DistributedError, RayEvaluatorPool
    from nas.supernet import load_supernet

    space, _, ckpt = tiny_supernet
    net = load_supernet(ckpt, space=space)
    x, y = torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    with RayEvaluatorPool(net, (x, y), [x], bn_batches=1, workers=1) as pool:
        (acc, secs), = pool.evaluate([space.max()])
        assert 0.0 <= acc <= 100.0 and secs > 0
        with pytest.raises(DistributedError, match="an evaluation failed on a Ray worker: "
                           ) as info:
            pool.evaluate([{"no_such_dimension": 1}])
        assert "\n" not in str(info.value)
        # results come as they are in: the one before a failure is delivered first
        it = pool.evaluate_iter([space.max(), {"no_such_dimension": 1}])
        assert next(it)[0] == acc
        with pytest.raises(DistributedError, match="an evaluation failed on a Ray worker"):
            next(it)
    assert not ray.is_initialized()


def test_workers_that_cannot_be_placed_are_refused_before_any_evaluation(tiny_supernet
                                                                         ) -> None:
    """More workers x threads than the runtime's CPUs, or GPU workers where there is no
    GPU: a one-line error at once (Ray would wait for the resources forever)."""
    ray = pytest.importorskip("ray")
    from nas.search.distributed import DistributedError, RayEvaluatorPool
    from nas.supernet import load_supernet

    space, _, ckpt = tiny_supernet
    net = load_supernet(ckpt, space=space)
    x, y = torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    ray.init(address="local", num_cpus=1, num_gpus=0, include_dashboard=False)
    try:
        with pytest.raises(DistributedError, match=r"--workers x --threads: 2 worker\(s\) "
                           r"need 2 CPUs; the local Ray runtime has 1"):
            RayEvaluatorPool(net, (x, y), [x], bn_batches=1, workers=2)
        with pytest.raises(DistributedError, match=r"--workers on --device cuda: 1 worker\(s\)"
                           r" need 1 GPUs; the local Ray runtime has 0"):
            RayEvaluatorPool(net, (x, y), [x], bn_batches=1, workers=1, device="cuda")
        assert ray.is_initialized()  # a runtime the pool did not start is left running
    finally:
        ray.shutdown()


def test_search_joins_a_ray_cluster(tiny_supernet, tmp_path: Path) -> None:
    """``--ray-address``: a ``nas search`` process joins a running cluster (one head node
    here) and writes the history the in-process search writes."""
    pytest.importorskip("ray")
    import subprocess

    from ray.cluster_utils import Cluster

    space, space_file, ckpt = tiny_supernet
    args = ("--strategy", "evolution", "--budget", "6")
    assert _search(tmp_path / "seq", space_file, ckpt, *args) == 0
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "include_dashboard": False})
    address = cluster.address
    try:
        cmd = [sys.executable, "-c", "import sys; from nas.cli.main import main; "
               "sys.exit(main(sys.argv[1:]))", "search", "--space", str(space_file),
               "--supernet", str(ckpt), "--target", "flops", "params", "--out",
               str(tmp_path / "cl"), "--no-progress", "--threads", "1", *args,
               "--workers", "2", "--ray-address", address]
        done = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"evaluations on 2 Ray worker(s) at {address}" in done.stdout
    assert _history(tmp_path / "cl") == _history(tmp_path / "seq")


def test_configs_outside_the_cost_limits_do_not_spend_the_budget(
        tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.supernet import load_supernet

    space, space_file, ckpt = tiny_supernet
    net = load_supernet(ckpt)
    params = sorted(net.costs(c).params for c in space.sample_many(400, 0))
    limit = params[len(params) // 5]  # about a fifth of the configs are inside
    out = tmp_path / "tight"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "6",
                   "--constraint", f"params<={limit}") == 0
    printed = capsys.readouterr().out
    hist = list(csv.DictReader(open(out / "history.csv")))
    measured = [r for r in hist if r["accuracy_source"] == "measured"]
    outside = [r for r in hist if r["accuracy_source"] == "infeasible"]
    assert len(measured) == 6 and outside  # random proposals mostly miss the limit
    assert all(int(r["params"]) <= limit for r in measured)
    assert all(r["accuracy"] == "" and r["feasible"] == "0" for r in outside)  # not measured
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 6
    assert summary["proposals_outside_cost_limits"] == len(outside)
    assert f"search: 6 evaluations (and {len(outside)} proposals outside" in printed
    # accuracies are held at the precision history.csv keeps: a resume reads back the same
    front = json.loads((out / "pareto.json").read_text())
    assert front and all(round(r["accuracy"], 4) == r["accuracy"] for r in front)
    # resumed with a larger budget: the rows outside the limits still do not count
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "8",
                   "--constraint", f"params<={limit}") == 0
    hist = list(csv.DictReader(open(out / "history.csv")))
    assert sum(r["accuracy_source"] == "measured" for r in hist) == 8


def test_analytic_limits_and_train_epochs_are_checked_before_any_work(
        tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    # no supernet given: an impossible parameter limit is said before training one
    assert main(["search", "--space", str(space_file), "--constraint", "params<=10",
                 "--out", str(tmp_path / "t"), "--no-progress"]) == 1
    assert "--constraint params<=10 is infeasible" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    assert _exit_status(["search", "--space", str(space_file), "--supernet", str(ckpt),
                         "--train-epochs", "3", "--out", str(tmp_path / "e")]) == 2
    assert "--train-epochs: sets the supernet this search trains" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["nsga2", "evolution", "optuna-tpe"])
def test_searchers_are_led_into_tight_cost_limits(name: str) -> None:
    # configs outside the limits are told graded by how far out they lie
    # (outside_limits_values), so searchers move towards the limits; told one flat
    # placeholder, none of these found a config inside a limit that 1 random config in 1000
    # meets (nsga2 proposed 1012 outside it; the README's latency example found nothing)
    from nas.search import Objective, make_searcher, run_search
    from nas.search.constraints import Limit
    from nas.search.pipeline import outside_limits_values
    from nas.searchspace import get_space

    space = get_space("resnet_like")

    def cost(cs: list) -> np.ndarray:
        return np.array([float(space.encode(c).clip(0).sum()) for c in cs])

    lim = Limit("flops", "<=", float(np.sort(cost(space.sample_many(5000, 0)))[5]))

    def evaluate(cs: list) -> np.ndarray:
        c = cost(cs)
        return np.array([[-abs(x - 30.0), x] if lim.holds(x) else
                         outside_limits_values([1e3], float(lim.violation(x))) for x in c])

    s = make_searcher(name, space, [Objective("acc", "max"), Objective("cost", "min")], seed=0)
    r = run_search(s, evaluate, 5, free=lambda cs: ~lim.holds(cost(cs)))
    assert int(lim.holds(cost(r.configs)).sum()) == 5


def test_a_resume_counts_evaluations_and_proposals_outside_apart(
        tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.supernet import load_supernet

    space, space_file, ckpt = tiny_supernet
    net = load_supernet(ckpt)
    params = sorted(net.costs(c).params for c in space.sample_many(400, 0))
    limit = params[len(params) // 10]
    out = tmp_path / "s"
    args = ("--strategy", "random", "--budget", "4", "--constraint", f"params<={limit}")
    assert _search(out, space_file, ckpt, *args) == 0
    hist = list(csv.DictReader(open(out / "history.csv")))
    n_out = sum(r["accuracy_source"] == "infeasible" for r in hist)
    assert n_out and len(hist) - n_out == 4
    capsys.readouterr()
    assert _search(out, space_file, ckpt, *args) == 0
    assert (f"search: resuming with 4 evaluations (and {n_out} proposals outside the cost "
            "limits)") in capsys.readouterr().out


def test_analytic_limit_probes_the_smallest_subnet_whatever_the_value_order() -> None:
    """A space listing its values largest first: its first and last values are neither the
    smallest nor the largest subnet, and 2,000 random samples miss the smallest; the
    feasibility check probes the supernet's own smallest and largest subnets, so a limit only
    the smallest meets is accepted and the error for a tighter one quotes it."""
    from nas.search.constraints import Limit
    from nas.search.pipeline import SearchError, _check_analytic_limits
    from nas.searchspace import Choice, Divides, Group, IntRange
    from nas.searchspace.builtin import blocks_group
    from nas.supernet.base import analytic_costs, size_extremes

    stages, cons = [], []
    for s, (widths, cards) in enumerate((((48, 32, 24), (1, 2, 8)), ((64, 48), (1, 4, 16)))):
        stages.append(Group(str(s), (
            IntRange("depth", 2 - s, 3 - s), Choice("width", widths),
            blocks_group(s, 3 - s, (Choice("kernel", (7, 5, 3)), Choice("cardinality", cards)),
                         min_depth=2 - s))))
        cons += [Divides(f"stages.{s}.blocks.{b}.cardinality", f"stages.{s}.width")
                 for b in range(3 - s)]
    space = Space("rev", [Group("stem", (Choice("width", (32, 16)),)),
                          Group("stages", tuple(stages))], cons, family="resnet_like")
    build = dict(in_channels=1, num_classes=10, input_size=8)

    def cost(cfg):
        return analytic_costs(space, cfg, **build)

    small, big = size_extremes(space, **build)
    least = cost(small).params
    seen = [cost(c).params for c in [space.min(), space.max()] + space.sample_many(2000, 0)]
    assert min(seen) > least  # what the check probed before: it would refuse the limit
    assert cost(big).params >= max(seen)
    _check_analytic_limits([Limit.parse(f"params<={least}")], space, cost, 0,
                           lambda: size_extremes(space, **build))
    with pytest.raises(SearchError, match=re.escape(f"is {least:.4g})")):
        _check_analytic_limits([Limit.parse(f"params<={least - 1}")], space, cost, 0,
                               lambda: size_extremes(space, **build))


def test_search_accuracy_is_what_nas_eval_reports(tiny_supernet, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A search ranks a config by the accuracy ``nas eval`` reports for it at the same
    number of BN-recalibration batches (the same calibration images: the split's seed)."""
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"
    assert _search(out, space_file, ckpt, "--strategy", "random", "--budget", "3",
                   "--bn-batches", "3") == 0
    rows = list(csv.DictReader(open(out / "history.csv")))
    capsys.readouterr()
    accs = []
    for k, row in enumerate(rows):
        cfg = tmp_path / f"c{k}.json"
        cfg.write_text(row["config"])
        assert main(["eval", "--supernet", str(ckpt), "--config", str(cfg), "--bn-batches", "3",
                     "--json"]) == 0
        got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert got["id"] == row["id"]
        accs.append(got["top1"])
    assert [round(a, 4) for a in accs] == [float(r["accuracy"]) for r in rows]


def test_front_larger_than_max_export_is_said_and_json_is_strict(
        tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A front thinned to --max-export says so (printed and in summary.json), and
    pareto.json / summary.json are strict JSON: latencies not asked for are null, not NaN."""
    space, space_file, ckpt = tiny_supernet
    out = tmp_path / "s"

    def strict(text: str) -> object:
        def refuse(name: str) -> None:
            raise ValueError(f"non-standard JSON constant {name}")
        return json.loads(text, parse_constant=refuse)

    assert _search(out, space_file, ckpt, "--strategy", "random", "--max-export", "1") == 0
    printed = capsys.readouterr().out
    summary = strict((out / "summary.json").read_text())
    front = strict((out / "pareto.json").read_text())
    assert summary["front_exported"] == len(front) == 1
    assert summary["front_size"] > 1, "a 12-evaluation two-cost search has a front of one"
    assert f"front: {summary['front_size']} subnets; extracting and timing 1 of them" in printed
    assert f"Pareto front ({summary['front_size']} subnets, 1 exported)" in printed
    assert front[0]["latency_predicted_ms"] is None
    assert len([p for p in (out / "pareto").iterdir() if p.suffix == ".pt"]) == 1
