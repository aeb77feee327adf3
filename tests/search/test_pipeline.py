"""``nas search`` end to end on a tiny supernet: outputs, resume, constraints, errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

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
    opts = TrainOptions(epochs=2, threads=1, batch_size=32, train_subset=256, bn_batches=2,
                        lr=0.2)
    train(opts, root / "run", space=space, progress=False)
    return space, space_file, root / "run" / "supernet.pt"


def _search(tmp: Path, space_file: Path, ckpt: Path, *extra: str) -> int:
    return main(["search", "--space", str(space_file), "--supernet", str(ckpt), "--target",
                 "flops", "params", "--budget", "12", "--out", str(tmp), "--no-progress",
                 "--threads", "1", *extra])


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
    accs = [r["accuracy"] for r in front]
    flops = [r["flops"] for r in front]
    assert flops == sorted(flops) and accs == sorted(accs)  # a front: more cost, more accuracy
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 12 and summary["versions"]["torch"] == torch.__version__
    # the same command again: nothing is evaluated twice
    assert _search(out, space_file, ckpt, "--strategy", "evolution") == 0
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 12
    # a larger budget continues the same search
    assert _search(out, space_file, ckpt, "--strategy", "evolution", "--budget", "15") == 0
    hist2 = list(csv.DictReader(open(out / "history.csv")))
    assert len(hist2) == 15 and hist2[:12] == hist
    capsys.readouterr()
    assert _search(out, space_file, ckpt, "--strategy", "evolution", "--seed", "3") == 2
    assert "holds a different search (differs in: seed)" in capsys.readouterr().err


def test_constraints(tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    assert _search(tmp_path / "a", space_file, ckpt, "--constraint", "params<=10") == 1
    err = capsys.readouterr().err
    assert "--constraint params<=10 is infeasible" in err and "the best params seen" in err
    assert _search(tmp_path / "b", space_file, ckpt, "--constraint", "latency<=banana") == 2
    limit = 6000
    assert _search(tmp_path / "c", space_file, ckpt, "--constraint", f"params<={limit}") == 0
    front = json.loads((tmp_path / "c" / "pareto.json").read_text())
    assert front and all(r["params"] <= limit for r in front)


def test_errors(tiny_supernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space, space_file, ckpt = tiny_supernet
    assert main(["search", "--space", "resnet_like", "--supernet", str(ckpt), "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 1
    assert "checkpoint holds space 'tiny_resnet', not 'resnet_like'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before the output directory was made
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    assert _search(tmp_path / "w", space_file, bad) == 1
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


def test_search_trains_its_own_supernet(tiny_supernet, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --supernet the search trains one into its output directory first (and a
    second run of the same command finds it trained)."""
    space, space_file, _ = tiny_supernet
    out = tmp_path / "own"
    args = ["search", "--space", str(space_file), "--target", "params", "--budget", "4",
            "--train-epochs", "1", "--out", str(out), "--no-progress", "--threads", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "supernet: training 1 epochs" in printed and "Pareto front" in printed
    assert (out / "supernet" / "supernet.pt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 4 and summary["timings"]["supernet_s"] > 0
    assert main(args) == 0
    assert "supernet: trained already" in capsys.readouterr().out
