"""Bad input on the command line: one line naming the flag or field, the right exit status,
nothing written. (Found by running every command with bad values.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli.main import main
from nas.data import DataError
from nas.errors import UsageError
from nas.training import TrainingDivergedError, TrainOptions, register_strategy, train
from nas.training.strategies import Strategy


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse errors exit 2 from inside the parser
        code = int(e.code or 0)
    _, err = capsys.readouterr()
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv, expect", [
    (["spaces", "sample", "nb201", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["spaces", "sample", "nb201", "--n", "x"], "argument --n: must be an integer >= 0"),
    (["train", "--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["train", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["train", "--label-smoothing", "1"], "argument --label-smoothing: must be a number in [0, 1)"),
    (["train", "--device", "nosuch"], "argument --device: 'nosuch' is not a device"),
    (["search", "--space", "resnet_like", "--threads", "0"], "argument --threads: must be >= 1"),
    (["search", "--space", "resnet_like", "--train-epochs", "0"],
     "argument --train-epochs: must be >= 1, got 0"),
    (["eval", "--supernet", "x.pt", "--sample", "1", "--bn-batches", "-1"],
     "argument --bn-batches: must be >= 0"),
    (["profile", "--space", "resnet_like", "--out", "l.json", "--overhead-subnets", "0"],
     "argument --overhead-subnets: must be >= 2"),
    (["predictor", "evaluate", "--table", "t.csv", "--space", "nb201", "--target", "a",
      "--n-train", "0"], "argument --n-train: must be >= 2"),
    # flags this run would not read
    (["train", "--groups", "3"], "--groups: only the multiarch strategy reads it (this run's "
                                 "is sandwich)"),
    (["train", "--strategy", "poa", "--num-random", "2"], "--num-random: only the sandwich"),
    (["train", "--space", "vit_like", "--stem-stride", "2"],
     "--stem-stride: family 'vit_like' (space 'vit_like') has no convolutional stem; drop "
     "--stem-stride"),
    (["search", "--space", "vit_like", "--stem-stride", "1"], "--stem-stride: family 'vit_like'"),
    (["profile", "--space", "vit_like", "--stem-stride", "2", "--out", "l.json"],
     "--stem-stride: family 'vit_like'"),
])
def test_bad_numbers_and_devices_are_usage_errors(argv, expect, capsys) -> None:  # noqa: ANN001
    code, err = run(capsys, *argv)
    assert code == 2 and expect in one_line(err)


def test_cuda_without_a_gpu_is_named(capsys) -> None:  # noqa: ANN001
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = run(capsys, "train", "--device", "cuda")
    assert code == 2 and "'cuda' asked for but CUDA is not available here" in one_line(err)


def test_paths_are_checked_before_any_work(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    afile = tmp_path / "afile"
    afile.write_text("x")
    adir = tmp_path / "adir"
    adir.mkdir()
    cases = [
        (["train", "--out", str(afile)], "exists and is not a directory"),
        (["train", "--out", str(afile / "sub")], "is a file, not a directory"),
        (["train", "--config", str(adir)], f"--config {adir}: is a directory, not a file"),
        (["search", "--space", "resnet_like", "--out", str(afile)], "is not a directory"),
        (["search", "--space", "resnet_like", "--supernet", str(adir)], "is a directory"),
        (["eval", "--supernet", str(adir), "--sample", "1"], "is a directory, not a file"),
        (["spaces", "export", "nb201", "--out", str(tmp_path / "x.txt")],
         "must end in .yaml, .yml or .json"),
        (["spaces", "export", "nb201", "--out", str(afile / "x.yaml")], "is a file"),
        (["spaces", "show", str(adir)], "is a directory; give a space name"),
        (["profile", "--space", "resnet_like", "--out", str(adir)], "is a directory; give a file"),
        (["predictor", "fit", "--table", str(adir), "--space", "nb201", "--target", "a",
          "--out", str(tmp_path / "p.npz")], "--table"),
        (["benchmark", "--table", str(adir), "--space", "nb201", "--objective", "a:max",
          "--strategy", "random", "--budget", "5"], "is a directory, not a file"),
    ]
    for argv, expect in cases:
        code, err = run(capsys, *argv)
        assert code == 2 and expect in one_line(err), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # nothing written


def test_debug_is_accepted_after_the_command(capsys) -> None:  # noqa: ANN001
    with pytest.raises(UsageError):  # --debug re-raises instead of printing one line
        main(["train", "--config", "/nonexistent.yaml", "--debug"])
    code, _ = run(capsys, "spaces", "sample", "nb201", "--debug")
    assert code == 0
    # -v and -q too, before or after the command
    import logging

    for argv, level in ((["-q", "spaces", "list"], logging.WARNING),
                        (["spaces", "list", "-q"], logging.WARNING),
                        (["spaces", "list", "-vv"], logging.DEBUG),
                        (["spaces", "list"], logging.INFO)):
        assert run(capsys, *argv)[0] == 0
        assert logging.getLogger().level == level, argv
    code, err = run(capsys, "spaces", "list", "-q", "-v")
    assert code == 2 and "not allowed with argument" in one_line(err)
    # given on both sides they add up; -q on one side and -v on the other is refused too
    assert run(capsys, "-v", "spaces", "list", "-v")[0] == 0
    assert logging.getLogger().level == logging.DEBUG
    assert run(capsys, "spaces", "-v", "list", "-v")[0] == 0  # (each level its own)
    assert logging.getLogger().level == logging.DEBUG
    code, err = run(capsys, "-q", "spaces", "list", "-v")
    assert code == 2 and "-q/--quiet: not allowed with -v/--verbose" in one_line(err)


def test_output_kind_checks_edge_cases(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """An empty file (``mktemp``) may be replaced; a damaged zip is a binary file, not a
    crash; a UTF-8 character cut by the read is still text; `nas spaces export` does not
    write over the space file it reads."""
    import zipfile

    from nas.cli._common import file_kind

    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    assert run(capsys, "spaces", "export", "nb201", "--out", str(empty))[0] == 0
    assert "edge_0_1" in empty.read_text()
    damaged = tmp_path / "d.npz"
    with zipfile.ZipFile(damaged, "w") as z:
        z.writestr("x.npy", b"0" * 100)
    data = bytearray(damaged.read_bytes())
    data[-22 - 100 + 10:-22] = b"\xff" * 90  # break the central directory, keep its end
    damaged.write_bytes(bytes(data))
    assert file_kind(damaged) == "a binary file"
    cut = tmp_path / "cut.csv"
    cut.write_bytes(b"a" * 65535 + "µ".encode() + b"\n")
    assert file_kind(cut) == "a text file"
    space_file = tmp_path / "s.yaml"
    assert run(capsys, "spaces", "export", "nb201", "--out", str(space_file))[0] == 0
    space_file.write_text("# my notes\n" + space_file.read_text())
    code, err = run(capsys, "spaces", "export", str(space_file), "--out", str(space_file))
    assert code == 2 and "is the space file" in one_line(err)
    assert space_file.read_text().startswith("# my notes")


def test_train_options_file_errors_name_line_and_field(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    cases = {
        "seed: abc\n": ":1: seed: must be an integer in 0..2**32-1, got 'abc'",
        "epochs: 1\nepochs: 2\n": ":2: malformed YAML: duplicate key 'epochs'",
        "epochs: 1\ndeterministic: 'yes'\n": ":2: deterministic: must be true or false",
        "lr: .nan\n": ":1: lr: must be a finite number > 0",
        "data: 5\n": ":1: data: must be a non-empty string, got 5",
        "device: 7\n": ":1: device: must be a non-empty string, got 7",
        "device: tpu\n": ":1: device: 'tpu' is not a device",
        "epochs: 2\nbogus: 1\n": ":2: unknown option 'bogus'",
        "a: [1\n": "malformed YAML: expected ',' or ']'",
    }
    for i, (text, expect) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text)
        code, err = run(capsys, "train", "--config", str(path), "--out", str(tmp_path / "r"))
        assert code == 2 and expect in one_line(err), (text, err)
    assert not (tmp_path / "r").exists()
    # a bad value in the file is said at its line even when a flag of that name is given
    path = tmp_path / "e.yaml"
    path.write_text("space: resnet_like\nepochs: 0\n")
    code, err = run(capsys, "train", "--config", str(path), "--epochs", "5", "--out",
                    str(tmp_path / "r"))
    assert code == 2 and "e.yaml:2: epochs: must be a positive integer, got 0" in one_line(err)


def test_search_options_check_searcher_options(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    from nas.search import make_searcher
    from nas.search.base import Objective
    from nas.searchspace import get_space

    space, objs = get_space("nb201"), [Objective("a", "max")]
    for name, opts, expect in [
        ("evolution", {"population": "abc"}, "option population: must be an integer >= 1"),
        ("evolution", {"population": 0}, "option population: must be an integer >= 1, got 0"),
        ("evolution", {"population": 1.5}, "must be an integer >= 1, got 1.5"),
        ("evolution", {"crossover": 2.0}, "option crossover: must be a number in [0, 1]"),
        ("nsga2", {"pop_size": -1}, "option pop_size"),
        ("random", {"batch": 0}, "option batch"),
        ("linas", {"inner_engine": 3}, "option inner_engine: must be a string"),
    ]:
        with pytest.raises(UsageError, match=expect.replace("[", r"\[").replace("]", r"\]")):
            make_searcher(name, space, objs, **opts)
    make_searcher("evolution", space, objs, population=5, mutation_rate=None)


def test_resume_checks_and_runtime_overrides(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    code, err = run(capsys, "train", "--resume", str(tmp_path))
    assert code == 2 and "not a run directory (no checkpoint.pt" in one_line(err)
    code, err = run(capsys, "train", "--resume", str(tmp_path / "nope"))
    assert code == 2 and "no such run directory" in one_line(err)
    cfg = tmp_path / "quick.yaml"
    cfg.write_text("epochs: 1\nmax_steps_per_epoch: 1\neval_every: 1\nbn_batches: 1\n")
    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--config", str(cfg), "--out", str(run_dir),
               "--no-progress")[0] == 0
    code, err = run(capsys, "train", "--seed", "4294967296", "--out", str(tmp_path / "s"))
    assert code == 2 and "error: --seed: must be an integer in 0..2**32-1" in err  # the flag
    from nas.cli.train import _RESUME_FLAGS
    from nas.training.trainer import RESUME_OVERRIDES

    assert set(_RESUME_FLAGS) | {"download"} == set(RESUME_OVERRIDES)  # one list, two places
    code, err = run(capsys, "train", "--resume", str(run_dir), "--lr", "0.1")
    assert code == 2 and "drop --lr (only --threads, --device, --epochs, and --data" in err
    code = main(["train", "--resume", str(run_dir), "--threads", "1", "--device", "cpu",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "already complete (1 epochs)" in out
    code = main(["train", "--resume", str(run_dir), "--epochs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "done: 2 epochs" in out  # a finished run trained one epoch further
    code, err = run(capsys, "train", "--resume", str(run_dir), "--epochs", "1")
    assert code == 2 and "has already trained 2 epochs; give at least 2, got 1" in err


def test_a_diverging_run_stops_with_a_clear_error(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from nas.training import strategies

    # registered for this test only: the registry is global and other tests list it
    monkeypatch.setattr(strategies, "_STRATEGIES", dict(strategies._STRATEGIES))

    @register_strategy
    class _Diverging(Strategy):
        name = "_test_diverging"

        def step(self, x, y):  # noqa: ANN001, ANN202
            loss = self.ce(self.forward(self.space.min(), x), y) * float("nan")
            loss.backward()
            return {"loss": loss.item()}

    opts = TrainOptions(strategy="_test_diverging", epochs=1, max_steps_per_epoch=2)
    with pytest.raises(TrainingDivergedError, match="loss 'loss' is nan at epoch 1, step 1"):
        train(opts, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == ""  # no NaN row written


def test_npz_data_is_checked(tmp_path: Path) -> None:
    from nas.data import load_dataset

    x = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    y = np.arange(20) % 10
    xn = x.copy()
    xn[0, 0, 0] = np.nan
    cases = {
        "nan": (dict(x_train=xn, y_train=y, x_test=x, y_test=y), "x_train holds NaN"),
        "frac": (dict(x_train=x, y_train=y + 0.5, x_test=x, y_test=y),
                 "y_train must hold integer class labels, got dtype float64 with fractional"),
        "empty": (dict(x_train=x[:0], y_train=y[:0], x_test=x, y_test=y),
                  "the training set is empty"),
    }
    for name, (arrays, expect) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataError, match=expect):
            load_dataset(str(tmp_path / f"{name}.npz"))
    np.savez(tmp_path / "whole.npz", x_train=x, y_train=y.astype(float), x_test=x, y_test=y)
    assert load_dataset(str(tmp_path / "whole.npz")).num_classes == 10  # 3.0 is a label


def test_benchmark_rejects_repeated_objectives(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    table = tmp_path / "t.csv"
    table.write_text("edge_0_1,a\n" + "\n".join(f"none,{i}" for i in range(3)) + "\n")
    code, err = run(capsys, "benchmark", "--table", str(table), "--space", "nb201",
                    "--objective", "a:max", "--objective", "a:min", "--strategy", "random",
                    "--budget", "2")
    assert code == 2 and "column 'a' is given more than once" in one_line(err)
    code, err = run(capsys, "benchmark", "--table", str(table), "--space", "nb201",
                    "--objective", "a:max", "--strategy", "random", "--budget", "2",
                    "--option", "seed=3")
    assert code == 2 and "each run's seed comes from --seeds" in one_line(err)


def test_search_refuses_spaces_without_a_supernet_before_writing(tmp_path: Path,
                                                                  capsys) -> None:  # noqa: ANN001
    for space in ("nb201",):
        out = tmp_path / space
        code, err = run(capsys, "search", "--space", space, "--out", str(out), "--no-progress")
        assert code == 2 and f"no supernet family '{space}'" in one_line(err)
        assert not out.exists()


def test_an_npz_that_is_not_a_predictor(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "rgb.npz"
    np.savez(path, x=np.zeros(3))
    configs = tmp_path / "c.jsonl"
    configs.write_text('{"edge_0_1": "none", "edge_0_2": "none", "edge_1_2": "none", '
                       '"edge_0_3": "none", "edge_1_3": "none", "edge_2_3": "none"}\n')
    code, err = run(capsys, "predictor", "predict", "--predictor", str(path), "--space",
                    "nb201", "--configs", str(configs))
    # a wrong kind of input file: a usage error (exit status 2, as the README says)
    assert code == 2 and "not a predictor file" in one_line(err)


def test_small_input_checks(tmp_path: Path) -> None:
    from nas.data import load_dataset
    from nas.predictors.models import get_predictor

    with pytest.raises(UsageError, match="seed: must be an integer in 0..2"):
        TrainOptions(seed=2**40)  # the calibration seed seed*100003+epoch must fit torch's
    x = np.random.default_rng(0).random((20, 8, 8))
    y = np.arange(20) % 10
    np.savez(tmp_path / "mixed.npz", x_train=(x * 255).astype(np.uint8), y_train=y,
             x_test=x.astype(np.float32), y_test=y)
    with pytest.raises(DataError, match="x_train is uint8 but x_test is float32"):
        load_dataset(str(tmp_path / "mixed.npz"))
    m = get_predictor("ridge").fit(np.random.default_rng(0).random((10, 3)), np.arange(10.0))
    assert m.predict(np.array([0.1, 0.2, 0.3])).shape == (1,)  # one row given as 1-D


# ---- found by a second bad-input pass (2026-11-22): files with unusual but parseable content

MINI_SPACE = """\
name: mini_resnet
family: resnet_like
dims:
  - name: stem
    type: group
    children:
      - {name: width, type: choice, values: [16, 32]STEM_EXTRA}
  - name: stages
    type: group
    children:
      - name: "0"
        type: group
        children:
          - {name: depth, type: int, low: 1, high: 2}
          - {name: width, type: choice, values: WIDTHS}
          - name: blocks
            type: group
            repeat: 2
            depth: stages.0.depth
            children:
              - {name: kernel, type: choice, values: [3, 5]}
              - {name: cardinality, type: choice, values: [16, 1]}
constraints:
  - {type: divides, divisor: stages.0.blocks.0.cardinality, dividend: stages.0.width}
  - {type: divides, divisor: stages.0.blocks.1.cardinality, dividend: stages.0.width}
"""


def mini_space(tmp_path: Path, stem_extra: str = "", widths: str = "[24, 32]",
               name: str = "mini.yaml") -> Path:
    p = tmp_path / name
    p.write_text(MINI_SPACE.replace("STEM_EXTRA", stem_extra).replace("WIDTHS", widths))
    return p


def test_space_files_hold_plain_data(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Lists and mappings of a YAML space file do not reach what is saved (the line-tracking
    loader's types could not be written back), and values of the wrong shape are refused."""
    from nas.searchspace import load_space

    p = mini_space(tmp_path, ", ordinal: true")
    code, _ = run(capsys, "spaces", "export", str(p), "--out", str(tmp_path / "x.yaml"))
    assert code == 0 and load_space(tmp_path / "x.yaml").fingerprint == load_space(p).fingerprint
    for extra, expect in (
            (", default: [16]", "width: default [16] is not one of [16, 32]"),
            (", ordinal: [true]", "width: ordinal must be true or false, got [True]"),
            (", ordinal: 'false'", "width: ordinal must be true or false, got 'false'"),
            (", values2: 1", "values2"),
    ):
        code, err = run(capsys, "spaces", "show", str(mini_space(tmp_path, extra)))
        assert code == 1 and expect in one_line(err), (extra, err)  # bad file content
    cond = mini_space(tmp_path, "").read_text().replace(
        "values: [24, 32]}", "values: [24, 32], when: {path: stem.width, op: '==', "
        "value: [16]}}")
    (tmp_path / "c.yaml").write_text(cond)
    code, err = run(capsys, "spaces", "show", str(tmp_path / "c.yaml"))
    assert code == 1 and "condition '==' (for a list use 'in')" in one_line(err)
    code, err = run(capsys, "spaces", "show", str(mini_space(tmp_path, "", "[[24], [32]]")))
    assert code == 1 and "got [24] (list)" in one_line(err)  # not the loader's class name


def test_resnet_widths_must_be_positive_ints(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    for widths, bad in (("[24.0, 32.0]", "24.0"), ("[16.5, 32]", "16.5")):
        p = mini_space(tmp_path, "", widths)
        code, err = run(capsys, "train", "--space", str(p), "--epochs", "1",
                        "--out", str(tmp_path / "never"))
        assert code == 1, err
        assert (f"stages.0.width allows {bad}; its values must be positive integers"
                in one_line(err))
        assert not (tmp_path / "never").exists()
    # strings: no cardinality divides them, so the space file itself is refused at load,
    # naming the constraint and the values that are no numbers
    p = mini_space(tmp_path, "", '["24", "32"]')
    code, err = run(capsys, "train", "--space", str(p), "--epochs", "1",
                    "--out", str(tmp_path / "never"))
    assert code == 1, err
    assert ("this constraint admits no config: stages.0.blocks.0.cardinality must divide "
            "stages.0.width (stages.0.width has values that are not numbers: '24', '32')"
            in one_line(err))
    assert not (tmp_path / "never").exists()


def test_options_files_odd_keys_numbers_and_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "o.yaml"
    p.write_text("1: 2\na: 3\n")  # keys of mixed types
    with pytest.raises(UsageError, match="unknown option 1; known options"):
        TrainOptions.from_yaml(p)
    p.write_text("lr: 1e-3\nweight_decay: 5E-5\nwarmup_epochs: 2\n")  # YAML 1.1: strings
    o = TrainOptions.from_yaml(p)
    assert (o.lr, o.weight_decay, o.warmup_epochs) == (1e-3, 5e-5, 2.0)
    p.write_text("lr: abc\n")
    with pytest.raises(UsageError, match="lr: must be a finite number > 0, got 'abc'"):
        TrainOptions.from_yaml(p)
    j = tmp_path / "o.json"
    j.write_text('{"epochs": 1, "epochs": 2}')
    with pytest.raises(UsageError, match="o.json: malformed JSON: duplicate key 'epochs'"):
        TrainOptions.from_yaml(j)


def test_resume_names_a_file_for_what_it_is(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    f = tmp_path / "tiny.yaml"
    f.write_text("epochs: 1\n")
    code, err = run(capsys, "train", "--resume", str(f))
    assert code == 2 and "is a file, not a run directory" in one_line(err)


def test_tables_with_a_byte_order_mark(tmp_path: Path) -> None:
    from nas.predictors.table import read_table

    p = tmp_path / "t.csv"
    p.write_bytes("\ufeffarch,acc\n|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|,"
                  "1.5\n".encode())
    table = read_table(p)
    assert "arch" in table.columns


def test_a_closed_pipe_ends_quietly() -> None:
    """`nas spaces sample ... | head -1`: the reader goes away; the command stops with the
    status of a tool killed by SIGPIPE and no 'Broken pipe' error."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "nas", "spaces", "sample", "resnet_like",
                          "--n", "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait() == 141, err
    assert b"Broken pipe" not in err


def test_resume_of_a_run_in_its_first_epoch(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """--resume of a run without a checkpoint yet: while a process trains it, that is said
    (not 'it stopped before its first checkpoint'); once none does, the run is one to start
    again."""
    from nas.utils.files import DirectoryLock

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "options.yaml").write_text("epochs: 1\n")
    lock = DirectoryLock(run_dir)
    lock.acquire()  # as a training process holds it
    try:
        code, err = run(capsys, "train", "--resume", str(run_dir))
        assert code == 1 and "is being trained by process" in one_line(err)
    finally:
        lock.release()
    code, err = run(capsys, "train", "--resume", str(run_dir))
    assert code == 2 and "stopped before its first checkpoint" in one_line(err)


def test_ctrl_c_while_the_arguments_are_read(monkeypatch, capsys) -> None:  # noqa: ANN001
    """Ctrl-C in the first second (argparse's --device check imports torch) is the one-line
    interruption of any other moment, not a traceback."""
    import argparse

    def interrupted(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", interrupted)
    code, err = run(capsys, "profile", "--space", "resnet_like", "--out", "x.json")
    assert code == 130 and one_line(err) == "nas: interrupted (SIGINT)"


def test_ctrl_c_while_the_commands_are_imported(monkeypatch, capsys) -> None:  # noqa: ANN001
    """Ctrl-C while the parser is built (it imports every command's module, and torch with
    them: the slowest second of a start) is the same one line."""
    import importlib

    def interrupted(name, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    code, err = run(capsys, "spaces")
    assert code == 130 and one_line(err) == "nas: interrupted (SIGINT)"


@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_second_signal_in_training_is_said_with_what_resumes(
        tmp_path: Path, capsys, monkeypatch, signame: str, status: int) -> None:  # noqa: ANN001
    """Training stopped at once by a second signal: one line, the signal's status, and the
    command that continues (only where there is a checkpoint to continue from)."""
    import nas.cli.train as cli_train

    run_dir = tmp_path / "r"
    run_dir.mkdir()

    def stopped(args):  # noqa: ANN001, ANN202
        e = KeyboardInterrupt(f"interrupted again ({signame}): stopped at once, without a "
                              "checkpoint of the steps since the last one")
        e.signal, e.run = signame, run_dir
        raise e

    monkeypatch.setattr(cli_train, "run", stopped)
    code, err = run(capsys, "train", "--epochs", "1")
    assert code == status and "start it again with --out" in one_line(err)
    (run_dir / "checkpoint.pt").write_bytes(b"")
    code, err = run(capsys, "train", "--epochs", "1")
    assert code == status
    assert one_line(err).endswith(f"`nas train --resume {run_dir}` continues from the last "
                                  "checkpoint")


def test_unknown_arguments_are_reported_by_their_command(capsys) -> None:  # noqa: ANN001
    code, err = run(capsys, "spaces", "list", "extra")
    assert code == 2 and one_line(err) == ("nas spaces list: error: unrecognized arguments: "
                                           "extra (see nas spaces list --help)")
    for argv in (["--bogus"], ["--bogus", "spaces", "list"]):  # given to `nas` itself
        code, err = run(capsys, *argv)
        assert code == 2 and one_line(err).startswith("nas: error: unrecognized arguments: "
                                                      "--bogus"), argv


def test_every_subcommand_help_opens_with_its_description(capsys) -> None:  # noqa: ANN001
    """``nas predictor fit --help`` says what the command does, in the words ``nas predictor
    --help`` lists it with."""
    for argv, says in ((["predictor", "fit", "--help"], "fit on every row of a table"),
                       (["spaces", "sample", "--help"], "random valid configs")):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert out.split("\n\n")[1].startswith(says), out
