"""The ranking-fidelity benchmark split over processes measures what one process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ranking_fidelity.py"
TINY = ["--epochs", "1", "--max-steps-per-epoch", "3", "--subnets", "3", "--threads", "1"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, check=check,
                          capture_output=True, text=True)


def test_split_processes_match_one_process_and_combine(tmp_path: Path) -> None:
    whole = tmp_path / "whole.json"
    run(*TINY, "--strategies", "uniform", "--json", str(whole))
    parts = []
    for only in (["0", "2"], ["1"]):
        parts.append(tmp_path / f"alone{only[0]}.json")
        run(*TINY, "--only", *only, "--strategies", "--json", str(parts[-1]))
    parts.append(tmp_path / "uniform.json")
    run(*TINY, "--only", "--strategies", "uniform", "--json", str(parts[-1]))

    ref = json.loads(whole.read_text())
    split = [json.loads(p.read_text()) for p in parts]
    key = lambda r: r["subnet"]  # noqa: E731
    assert sorted(ref["standalone"], key=key) == sorted(
        (r for s in split for r in s["standalone"]), key=key)
    assert len(ref["standalone"]) == 3 and split[-1]["standalone"] == []
    assert split[-1]["inherited"] == ref["inherited"]  # the supernet training is seeded too

    text = run("--combine", *map(str, parts)).stdout
    for name in ("val", "test"):
        assert f"[{name}] uniform    tau" in text
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({**split[0], "configs": split[0]["configs"][::-1]}))
    out = run("--combine", str(parts[0]), str(bad), check=False)
    assert out.returncode != 0 and "other subnets" in out.stderr
    # results of another recipe (here: more epochs) are not mixed in
    bad.write_text(json.dumps({**split[-1], "options": {**split[-1]["options"], "epochs": 2}}))
    out = run("--combine", str(parts[0]), str(bad), check=False)
    assert out.returncode != 0 and "epochs differ" in out.stderr
    out = run("--combine", str(parts[0]), str(parts[0]), check=False)
    assert out.returncode != 0 and "in another file too" in out.stderr


def test_cuda_graphs_needs_a_cuda_device() -> None:
    out = run(*TINY, "--cuda-graphs", "--strategies", check=False)
    assert out.returncode != 0
    assert "--cuda-graphs: needs --device cuda" in out.stderr


def test_cuda_graphs_train_like_eager(tmp_path: Path) -> None:
    """On a GPU: the graphed stand-alone training learns like the eager one (not bit for
    bit: cuDNN's backward is not deterministic, two eager runs differ as much)."""
    import pytest
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    accs = []
    for graphs in ([], ["--cuda-graphs"]):
        out = tmp_path / f"g{len(graphs)}.json"
        run("--epochs", "2", "--subnets", "2", "--only", "0", "--strategies", "--device",
            "cuda", *graphs, "--json", str(out))
        accs.append(json.loads(out.read_text())["standalone"][0]["val"])
    assert accs[0] > 60 and abs(accs[0] - accs[1]) < 5, accs
