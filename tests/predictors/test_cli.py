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
    assert rc == 1 and "no target column 'nope'" in err and "nb201_slice.csv" in err
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "50", "--model", "xgb"])
    assert rc == 2 and "unknown --model 'xgb'" in capsys.readouterr().err
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "50", "--features", "magic"])
    assert rc == 2 and "unknown feature kind 'magic'" in capsys.readouterr().err
    rc = main(["predictor", "evaluate", "--table", str(nb201_slice), "--space", "nb201",
               "--target", "cifar10_test_acc", "--n-train", "250", "--n-test", "100"])
    assert rc == 1 and "fewer than n_train" in capsys.readouterr().err
