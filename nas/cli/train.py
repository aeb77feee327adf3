"""``nas train``: train a weight-sharing supernet into a run directory (resumable)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nas.cli._common import console

# flags that map one to one onto TrainOptions fields
_FLAGS = ("space", "strategy", "data", "data_root", "epochs", "batch_size", "lr", "optimizer",
          "device", "seed", "threads", "label_smoothing", "num_random", "groups")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", metavar="NAME|FILE", help="search space (default: resnet_like)")
    p.add_argument("--strategy", help="sandwich (default), multiarch, poa, progressive, uniform")
    p.add_argument("--data", help="digits (default), fashion-mnist, cifar10, a .npz or an "
                   "image folder")
    p.add_argument("--data-root", help="directory of the dataset's files")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument("--config", metavar="YAML", help="options file (unknown keys are rejected); "
                   "flags override it")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/train-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run where it stopped")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("sgd", "adamw"))
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--num-random", type=int, help="sandwich: random subnets per step")
    p.add_argument("--groups", type=int, help="multiarch: subnets per step")
    p.add_argument("--device", help="cpu (default), cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from nas.errors import UsageError
    from nas.searchspace import load_space
    from nas.training import TrainOptions, train

    progress = not args.no_progress
    if args.resume:
        given = [f for f in _FLAGS + ("config", "out") if getattr(args, f, None) is not None]
        if given:
            raise UsageError(f"--resume continues with the run's own options; drop "
                             f"--{given[0].replace('_', '-')}")
        t = time.perf_counter()
        result = train(TrainOptions(), args.resume, resume=True, progress=progress,
                       announce=lambda run: console.print(f"resuming {run}"))
    else:
        overrides = {f: getattr(args, f) for f in _FLAGS if getattr(args, f) is not None}
        if args.download:
            overrides["download"] = True
        opts = (TrainOptions.from_yaml(args.config, overrides) if args.config
                else TrainOptions.from_dict(overrides, where="flags"))
        space = load_space(opts.space)
        out = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
        t = time.perf_counter()
        result = train(opts, out, progress=progress, space=space,
                       announce=lambda run: console.print(f"run directory: {run}"))
    last = result.history[-1] if result.history else {}
    accs = "  ".join(f"{k.replace('val_acc_', 'val acc ')} {v:.2f}%" for k, v in last.items()
                     if k.startswith("val_acc_"))
    console.print(f"done: {result.epochs_done} epochs in {time.perf_counter() - t:.0f}s  {accs}")
    console.print(f"supernet: {result.run_dir / 'supernet.pt'}")
    return 0
