"""``nas train``: train a weight-sharing supernet into a run directory (resumable)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nas.cli._common import (
    console,
    device_arg,
    float_in,
    input_file,
    int_at_least,
    output_path,
    stem_stride_flag,
)

# flags that map one to one onto TrainOptions fields
_FLAGS = ("space", "strategy", "data", "data_root", "epochs", "batch_size", "lr", "optimizer",
          "device", "seed", "threads", "label_smoothing", "num_random", "groups", "stem_stride",
          "schedule", "weight_decay", "momentum", "warmup_epochs", "checkpoint_minutes")
# what a resumed run may change: runtime settings (they do not change what is computed on
# CPU), its length (the learning-rate schedule is re-planned over the new epochs) and where
# its data is read from (checked to be the same data)
# (nas.training.trainer.RESUME_OVERRIDES, less the --download switch: not imported here, so
# that the CLI starts without torch)
_RESUME_FLAGS = ("threads", "device", "epochs", "data", "data_root")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", metavar="NAME|FILE", help="search space (default: resnet_like)")
    p.add_argument("--strategy", choices=("sandwich", "multiarch", "poa", "progressive",
                                          "uniform"),
                   help="sandwich (default), multiarch, poa, progressive, uniform")
    p.add_argument("--data", help="digits (default), fashion-mnist, cifar10, a .npz or an "
                   "image folder")
    p.add_argument("--data-root", help="directory of the dataset's files")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument("--config", metavar="YAML", help="options file (unknown keys are rejected); "
                   "flags override it")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/train-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run where it stopped")
    p.add_argument("--epochs", type=int_at_least(1), help="training epochs (default: 12); with "
                   "--resume, the run's new total (train a finished run further; the "
                   "learning-rate schedule is re-planned over it)")
    p.add_argument("--batch-size", type=int_at_least(1), help="images per step (default: 64)")
    p.add_argument("--lr", type=float_in(0, lo_open=True),
                   help="peak learning rate (default: 0.2 for sgd, 0.001 for adamw)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"),
                   help="sgd or adamw (default: adamw for vit_like spaces, sgd otherwise)")
    p.add_argument("--schedule", choices=("cosine", "step", "constant"),
                   help="learning-rate schedule after the warm-up (default: cosine)")
    p.add_argument("--weight-decay", type=float_in(0),
                   help="weight decay, not on biases and norms (default: 5e-5 for sgd, 0.05 "
                        "for adamw)")
    p.add_argument("--momentum", type=float_in(0, 1),
                   help="sgd momentum, Nesterov (default: 0.9)")
    p.add_argument("--warmup-epochs", type=float_in(0),
                   help="linear learning-rate warm-up, in epochs (default: 1)")
    p.add_argument("--checkpoint-minutes", type=float_in(0, lo_open=True),
                   help="also checkpoint mid-epoch after this many minutes (default: 5)")
    p.add_argument("--label-smoothing", type=float_in(0, 1),
                   help="label smoothing of the largest subnet's loss (default: 0.1)")
    p.add_argument("--stem-stride", type=int, choices=(1, 2),
                   help="stride of the CNN stem (default: 2 from 64 pixels up, else 1)")
    p.add_argument("--num-random", type=int_at_least(0), help="sandwich: random subnets per step")
    p.add_argument("--groups", type=int_at_least(1), help="multiarch: subnets per step")
    p.add_argument("--device", type=device_arg, help="cpu (default), cuda, cuda:1, ...; with "
                   "--resume, the device to continue on")
    p.add_argument("--threads", type=int_at_least(1), help="torch CPU threads; with --resume, "
                   "the threads to continue with")
    p.add_argument("--seed", type=int_at_least(0), help="random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from nas.errors import UsageError
    from nas.searchspace import load_space
    from nas.training import OptionError, TrainOptions, train

    progress = not args.no_progress
    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.is_file():
            raise UsageError(f"--resume {args.resume}: is a file, not a run directory (the "
                             "directory `nas train --out` made)")
        if not run_dir.is_dir():
            raise UsageError(f"--resume {args.resume}: no such run directory")
        if not (run_dir / "checkpoint.pt").exists():
            from nas.errors import DirectoryInUseError
            from nas.utils.files import directory_holder

            holder = directory_holder(run_dir)
            if holder is not None:  # still in its first epoch
                raise DirectoryInUseError(f"{run_dir}: is being trained by {holder} (before its "
                                    "first checkpoint); wait for it to finish or stop it")
            if (run_dir / "options.yaml").exists():  # a run stopped before its first save
                raise UsageError(f"--resume {args.resume}: the run there stopped before its "
                                 "first checkpoint, so there is nothing to resume; start it "
                                 f"again with --out {args.resume}")
            raise UsageError(f"--resume {args.resume}: not a run directory (no checkpoint.pt; "
                             "`nas train --out DIR` makes one)")
        given = [f for f in _FLAGS + ("config", "out")
                 if f not in _RESUME_FLAGS and getattr(args, f, None) is not None]
        if given:
            raise UsageError(f"--resume continues with the run's own options; drop "
                             f"--{given[0].replace('_', '-')} (only --threads, --device, "
                             "--epochs, and --data/--data-root to read the same data from a "
                             "new place may change)")
        runtime = {f: getattr(args, f) for f in _RESUME_FLAGS if getattr(args, f) is not None}
        if args.download:  # data deleted since: fetched again (checked to be the same)
            runtime["download"] = True
        t = time.perf_counter()
        result = train(TrainOptions(), args.resume, resume=True, progress=progress,
                       announce=lambda run: console.print(f"resuming {run}"),
                       resume_overrides=runtime)
    else:
        input_file(args.config, "--config")
        output_path(args.out, "--out", directory=True)
        overrides = {f: getattr(args, f) for f in _FLAGS if getattr(args, f) is not None}
        if args.download:
            overrides["download"] = True
        try:
            opts = (TrainOptions.from_yaml(args.config, overrides) if args.config
                    else TrainOptions.from_dict(overrides, where="flags"))
        except OptionError as e:  # an option given as a flag is named as the flag
            # (a bad value in the file itself is said at its line, even when a flag of the
            # same name is given too: from_yaml checks the file alone first)
            if e.option in overrides and not e.unknown and e.where in ("flags", "options"):
                raise UsageError(f"--{e.option.replace('_', '-')}: {e.reason}") from None
            raise
        for flag, strategy in (("num_random", "sandwich"), ("groups", "multiarch")):
            if getattr(args, flag) is not None and opts.strategy != strategy:
                raise UsageError(f"--{flag.replace('_', '-')}: only the {strategy} strategy "
                                 f"reads it (this run's is {opts.strategy}); drop it or pass "
                                 f"--strategy {strategy}")
        space = load_space(opts.space)
        stem_stride_flag(args.stem_stride, space)
        out = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
        t = time.perf_counter()
        result = train(opts, out, progress=progress, space=space,
                       announce=lambda run: console.print(f"run directory: {run}"))
    if result.already_complete:
        console.print(f"{result.run_dir} is already complete ({result.epochs_done} epochs); "
                      "nothing to do")
        console.print(f"supernet: {result.run_dir / 'supernet.pt'}")
        return 0
    last = result.history[-1] if result.history else {}
    accs = "  ".join(f"{k.replace('val_acc_', 'val acc ')} {v:.2f}%" for k, v in last.items()
                     if k.startswith("val_acc_"))
    console.print(f"done: {result.epochs_done} epochs in {time.perf_counter() - t:.0f}s  {accs}")
    console.print(f"supernet: {result.run_dir / 'supernet.pt'}")
    return 0
