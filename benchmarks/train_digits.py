"""Supernet training on digits with default options (issue 4 goal: in <= 2 minutes on 2 cores
the largest subnet reaches >= 97 % and the smallest >= 92 % validation accuracy).

Runs ``nas train``'s library call with the default options (resnet_like, sandwich) and prints
the wall time and the validation accuracy of the largest and smallest subnets after BN
recalibration, per epoch and at the end.

    python benchmarks/train_digits.py [--space resnet_like] [--strategy sandwich] [--epochs N]
        [--out DIR]

The goal is set for ``resnet_like``; ``--space vit_like`` trains the transformer family with
its own default recipe (AdamW) for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from nas.training import TrainOptions, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--strategy", default="sandwich")
    ap.add_argument("--epochs", type=int, help="default: the library default")
    ap.add_argument("--threads", type=int, help="default: torch's default")
    ap.add_argument("--out", help="keep the run here (default: a temporary directory)")
    args = ap.parse_args()
    changes = {"strategy": args.strategy, "space": args.space}
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.threads:
        changes["threads"] = args.threads
    opts = TrainOptions().replace(**changes)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nas-bench-"))
    if out.exists() and args.out:
        shutil.rmtree(out)
    t = time.perf_counter()
    result = train(opts, out, progress=False)
    wall = time.perf_counter() - t
    for row in result.history:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    last = result.history[-1]
    print(f"digits {opts.space} {opts.strategy}: {opts.epochs} epochs in {wall:.1f}s; "
          f"largest {last['val_acc_max']:.2f}% (goal >= 97), smallest "
          f"{last['val_acc_min']:.2f}% (goal >= 92); wall-time goal <= 120 s")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
