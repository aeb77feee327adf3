from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli.main import main


def test_evaluate_json(nb201_slice: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "60", "--n-test", "100",
               "--seeds", "2", "--model", "rf", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    res = json.loads(out[0])
    for key in ("kendall_tau_mean", "spearman_mean", "mape_mean", "within_10pct_mean"):
        assert key in res
    assert res["seeds"] == 2 and len(res["per_seed"]) == 2
    assert res["kendall_tau_mean"] > 0.3  # graph features make even 60 rows informative
    assert res["features"] == ["encoding", "counts", "graph", "cost"]


def test_evaluate_json_is_strict_when_a_metric_is_undefined(
        nb201_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A constant target has no Kendall's tau: the JSON line says null, not NaN (which
    strict parsers reject)."""
    import csv

    with open(nb201_slice, newline="") as f:
        rows = list(csv.DictReader(f))
    const = tmp_path / "const.csv"
    with open(const, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "cifar10_test_acc": "50"} for r in rows)
    rc = main(["predictor", "evaluate", "--table", str(const), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "20", "--n-test", "50",
               "--seeds", "1", "--model", "ridge", "--json"])
    out = capsys.readouterr().out.strip()

    def refuse(c: str) -> None:
        raise ValueError(f"non-standard JSON constant {c}")

    res = json.loads(out, parse_constant=refuse)
    assert rc == 0 and res["kendall_tau_mean"] is None and res["mape_mean"] == 0.0


def test_layerwise_fits_raw_latencies_by_default(nb201_slice: Path, tmp_path: Path) -> None:
    from nas.predictors.models import load_predictor

    out = tmp_path / "lw.npz"
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "latency_gold_6226_ms", "--model", "layerwise", "--features",
                 "counts", "--out", str(out)]) == 0
    assert load_predictor(out)[0].target_transform == "none"  # its own default
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "latency_gold_6226_ms", "--model", "layerwise", "--features",
                 "counts", "--target-transform", "normal", "--out", str(out)]) == 0
    assert load_predictor(out)[0].target_transform == "normal"
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "cifar10_test_acc", "--model", "ridge", "--out", str(out)]) == 0
    assert load_predictor(out)[0].target_transform == "normal"


def test_evaluate_table_output_and_errors(nb201_slice: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "latency_gold_6226_ms", "--n-train", "50", "--n-test", "50",
               "--seeds", "1", "--model", "ridge", "--features", "encoding"])
    assert rc == 0
    assert "kendall_tau" in capsys.readouterr().out
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "nope", "--n-train", "50", "--json"])
    err = capsys.readouterr().err
    assert rc == 2 and "no target column 'nope'" in err and "nb201_slice.csv" in err
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "50", "--model", "xgb"])
    assert rc == 2 and "unknown --model 'xgb'" in capsys.readouterr().err
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "50", "--features", "magic"])
    assert rc == 2 and "unknown feature kind 'magic'" in capsys.readouterr().err
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "250", "--n-test", "100"])
    err = capsys.readouterr().err
    assert rc == 2 and "fewer than --n-train + --n-test" in err and "--n-test defaults" in err


def test_fit_then_predict(nb201_slice: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    import numpy as np

    from nas.predictors.pipeline import ConfigPredictor
    from nas.predictors.table import read_table, table_configs
    from nas.searchspace import get_space

    model = tmp_path / "gp.npz"
    rc = main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--model", "gp", "--out", str(model), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and model.exists() and info["rows"] == 300 and info["model"] == "gp"
    assert info["training_fit"]["kendall_tau"] > 0.5
    out = tmp_path / "pred.csv"
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
               "--table", str(nb201_slice), "--std", "--out", str(out)])
    assert rc == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300 and rows[0]["arch"]  # the table's own columns are kept
    got = np.array([float(r["predicted_cifar10_test_acc"]) for r in rows])
    std = np.array([float(r["predicted_cifar10_test_acc_std"]) for r in rows])
    space = get_space("nb201")
    configs = table_configs(read_table(nb201_slice), space)
    expect = ConfigPredictor.load(model, space).predict_configs(configs)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    assert np.all(std >= 0) and std.max() > 0
    # configs from a JSON-lines file, printed
    lines = tmp_path / "configs.jsonl"
    lines.write_text("\n".join(c.to_json() for c in configs[:3]) + "\n")
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
               "--configs", str(lines)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(printed) == 4 and printed[0] == "config,predicted_cifar10_test_acc"
    assert float(printed[1].rsplit(",", 1)[1]) == pytest.approx(expect[0], rel=1e-12)


def test_predict_errors(nb201_slice: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "ridge.npz"
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "latency_gold_6226_ms", "--model", "ridge",
                 "--out", str(model)]) == 0
    capsys.readouterr()
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
               "--table", str(nb201_slice), "--std"])
    assert rc == 2 and "does not report uncertainty" in capsys.readouterr().err
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "resnet_like",
               "--table", str(nb201_slice)])
    assert rc != 0 and "fitted for space 'nb201'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('[{"edge_0_1": "conv_9x9"}]')
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
               "--configs", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "config #1" in err and "bad.json" in err
    rc = main(["predictor", "predict", "--predictor", str(tmp_path / "missing.npz"),
               "--space", "nb201", "--table", str(nb201_slice)])
    assert rc != 0 and "missing.npz" in capsys.readouterr().err


def test_predict_configs_file_errors_and_rerun(nb201_slice: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "rf.npz"
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "cifar10_test_acc", "--model", "rf", "--out", str(model)]) == 0
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"edge_0_1": "skip_connect"},\n  ,\n]\n')
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
               "--configs", str(broken)])
    assert rc == 2 and "line 3" in capsys.readouterr().err
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    rc = main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
               "--configs", str(binary)])
    assert rc == 2 and "UTF-8" in capsys.readouterr().err
    # predicting a file that already holds the prediction columns replaces them
    first, second = tmp_path / "p1.csv", tmp_path / "p2.csv"
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--table", str(nb201_slice), "--std", "--out", str(first)]) == 0
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--table", str(first), "--std", "--out", str(second)]) == 0
    assert first.read_text() == second.read_text()
    # without --std, an earlier run's uncertainty column goes (it belongs to other values)
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--table", str(first), "--out", str(first)]) == 0
    header = first.read_text().splitlines()[0].split(",")
    assert header[-1] == "predicted_cifar10_test_acc" and not any(
        c.endswith("_std") for c in header)
    # --out never replaces an input, nor a file of another kind
    table_bytes, model_bytes = nb201_slice.read_bytes(), model.read_bytes()
    capsys.readouterr()
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "cifar10_test_acc", "--model", "ridge",
                 "--out", str(nb201_slice)]) == 2
    assert "is the --table file" in capsys.readouterr().err
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "cifar10_test_acc", "--model", "ridge", "--out", str(first)]) == 2
    assert "exists and is a text file, not a predictor" in capsys.readouterr().err
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--table", str(nb201_slice), "--out", str(model)]) == 2
    assert "is the --predictor file" in capsys.readouterr().err
    assert nb201_slice.read_bytes() == table_bytes and model.read_bytes() == model_bytes
    refit = tmp_path / "refit.npz"  # an earlier predictor is replaced
    refit.write_bytes(model_bytes)
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "cifar10_test_acc", "--model", "ridge", "--out", str(refit)]) == 0
    assert refit.read_bytes() != model_bytes
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--table", str(nb201_slice), "--std", "--out", str(first)]) == 0
    # NAS-Bench-201 arch strings, one per line, predict as their configs do
    import csv

    rows = list(csv.DictReader(open(nb201_slice, newline="")))[:3]
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(r["arch"] for r in rows) + "\n")
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--configs", str(archs), "--out", str(tmp_path / "a.csv")]) == 0
    by_arch = list(csv.DictReader(open(tmp_path / "a.csv", newline="")))
    by_table = list(csv.DictReader(open(first, newline="")))[:3]
    assert len(by_arch) == 3
    col = "predicted_cifar10_test_acc"
    assert [r[col] for r in by_arch] == [r[col] for r in by_table]
    archs.write_text("|not_an_op~0|+|x|\n")
    assert main(["predictor", "predict", "--predictor", str(model), "--space", "nb201",
                 "--configs", str(archs)]) == 2
    assert "config #1" in capsys.readouterr().err


def test_hand_edited_predictor_headers_and_name_lists(nb201_slice: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """A predictor file whose header was edited by hand is one clear error naming the file
    and the field (not a bare Python error); --features and --proxies take each name once."""
    import numpy as np

    model = tmp_path / "ridge.npz"
    assert main(["predictor", "fit", "--table", str(nb201_slice), "--space", "nb201",
                 "--target", "cifar10_test_acc", "--model", "ridge", "--out", str(model)]) == 0
    with np.load(model, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["header"].tobytes().decode())
    for field, value, expect in (
            ("extra", "abc", "extra must be an object, got str"),
            ("extra", {**header["extra"], "proxy_version": "x"},
             "extra.proxy_version must be an integer, got 'x'"),
            ("extra", {**header["extra"], "kinds": "encoding"},
             "extra.kinds must be a list of names, got 'encoding'"),
            ("extra", {**header["extra"], "kinds": ["encoding", "nope"]},
             "unknown feature kind 'nope'"),
            ("config", [1], "config must be an object, got list")):
        edited = tmp_path / "edited.npz"
        h = {**header, field: value}
        np.savez(edited, **{**arrays, "header": np.frombuffer(json.dumps(h).encode(),
                                                              dtype=np.uint8)})
        capsys.readouterr()
        rc = main(["predictor", "predict", "--predictor", str(edited), "--space", "nb201",
                   "--table", str(nb201_slice)])
        err = capsys.readouterr().err
        assert rc == 2 and f"{edited}: corrupt predictor header" in err and expect in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    base = ["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
            "--target", "cifar10_test_acc", "--n-train", "20", "--n-test", "20"]
    assert main([*base, "--features", "encoding,encoding"]) == 2
    assert "nas predictor evaluate: error: --features: 'encoding' given twice" in \
        capsys.readouterr().err
    assert main([*base, "--features", "zc", "--proxies", ","]) == 2
    assert "--proxies needs at least one proxy" in capsys.readouterr().err
