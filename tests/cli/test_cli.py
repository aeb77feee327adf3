"""The CLI skeleton: exit codes, one-line errors, and the spaces commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli.main import main
from nas.searchspace import get_space


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces")
    assert code == 0
    for name in ("resnet_like", "mobilenet_like", "vit_like", "nb201"):
        assert name in out
    assert "15,625" in out
    assert run(capsys, "spaces", "list")[:2] == (0, out)  # the action its help names
    code, out, _ = run(capsys, "spaces", "show", "resnet_like")
    assert code == 0 and "stages.2.blocks.5.cardinality" in out and "stages.2.depth > 5" in out


def test_spaces_sample_is_reproducible_and_valid(capsys: pytest.CaptureFixture[str]) -> None:
    _, out1, _ = run(capsys, "spaces", "sample", "resnet_like", "--n", "5", "--seed", "4")
    _, out2, _ = run(capsys, "spaces", "sample", "resnet_like", "--n", "5", "--seed", "4")
    assert out1 == out2
    lines = out1.strip().splitlines()
    assert len(lines) == 5
    space = get_space("resnet_like")
    for line in lines:
        assert space.contains(json.loads(line))


def test_spaces_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = get_space("resnet_like")
    good = tmp_path / "good.json"
    good.write_text(space.default().to_json())
    code, out, _ = run(capsys, "spaces", "validate", "resnet_like", str(good))
    assert code == 0 and space.default().id in out
    d = space.default().to_dict()
    d["stages"][2]["blocks"][1]["kernel"] = 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    code, _, err = run(capsys, "spaces", "validate", "resnet_like", str(bad))
    assert code == 1
    assert err.count("\n") == 1 and "stages.2.blocks.1.kernel: got 4, allowed: 3, 5, 7" in err
    # what `nas spaces sample --n 2` writes is two configs: said so (not "malformed YAML")
    two = tmp_path / "two.jsonl"
    two.write_text(space.default().to_json() + "\n" + space.min().to_json() + "\n")
    code, _, err = run(capsys, "spaces", "validate", "resnet_like", str(two))
    assert code == 1 and "holds 2 configs, one JSON per line" in err
    # a space with a text form reads a config written in it (a NAS-Bench-201 string)
    nb201 = get_space("nb201")
    cfg = nb201.sample(3)
    arch = tmp_path / "arch.txt"
    arch.write_text(nb201.format_arch(cfg) + "\n")
    code, out, _ = run(capsys, "spaces", "validate", "nb201", str(arch))
    assert code == 0 and cfg.id in out
    arch.write_text("|nor_conv_3x3~0|+|bad|\n")
    code, _, err = run(capsys, "spaces", "validate", "nb201", str(arch))
    assert code == 1 and "neither JSON/YAML nor its text form" in err
    # a JSON config with a syntax error is said as JSON, in a space with a text form too
    broken = tmp_path / "broken.json"
    broken.write_text(cfg.to_json()[:-1] + "\n")
    code, _, err = run(capsys, "spaces", "validate", "nb201", str(broken))
    assert code == 1 and "malformed JSON" in err


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "spaces", "show", "resnet")
    assert code == 2 and err.count("\n") == 1 and "known spaces:" in err
    with pytest.raises(SystemExit) as e:
        main(["search", "--space", "resnet_like", "--target", "speed"])
    assert e.value.code == 2


def test_main_job_flags_exist() -> None:
    """The main job's flags parse (running it is tests/search/test_pipeline.py's job, on a
    tiny space)."""
    from nas.cli.main import build_parser

    args = build_parser().parse_args([
        "search", "--space", "resnet_like", "--target", "latency", "flops", "--constraint",
        "latency<=3ms", "--budget", "10", "--seed", "1", "--supernet", "s.pt", "--data",
        "digits", "--strategy", "nsga2", "--device", "cpu", "--out", "o"])
    assert (args.space, args.target, args.constraint, args.budget, args.seed) == (
        "resnet_like", ["latency", "flops"], ["latency<=3ms"], 10, 1)
    assert (args.supernet, args.data, args.strategy, args.device, args.out) == (
        "s.pt", "digits", "nsga2", "cpu", "o")


def test_console_script_and_debug(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\ndims: [\n")
    r = subprocess.run([sys.executable, "-m", "nas", "spaces", "show", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "malformed YAML" in r.stderr
    r = subprocess.run([sys.executable, "-m", "nas", "--debug", "spaces", "show", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_sigterm_is_said_and_exits_143(monkeypatch, capsys) -> None:  # noqa: ANN001
    """SIGTERM during a command ends it as Ctrl-C does, with a line saying so (it had ended
    `nas search` silently); a search says that the same command resumes it."""
    import os
    import signal

    import nas.cli.search as search_cli

    def terminated(args):  # noqa: ANN001, ANN202
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("not reached")

    monkeypatch.setattr(search_cli, "run", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["search", "--space", "resnet_like"]) == 143
    err = capsys.readouterr().err
    assert "nas search: interrupted (SIGTERM); the same command again resumes it" in err
    assert signal.getsignal(signal.SIGTERM) == before  # restored
