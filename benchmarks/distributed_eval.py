"""Subnet evaluations on Ray workers (``nas search --workers N``) against the same
evaluations in this process.

Both sides evaluate the same configs the way a search does (BN recalibrated on the same
``--bn-batches`` training batches, then top-1 on the validation split): "in-process" one
after the other with ``--local-threads`` torch threads (default ``--threads``), "ray" on
``--workers`` actors with ``--threads`` each (:class:`nas.search.distributed.RayEvaluatorPool`,
started once: its start-up is reported apart). Timed interleaved, the order alternating
every repetition, median of R repetitions, in one run; with the same thread counts the
accuracies of the two sides are checked equal (``--supernet CKPT``: a trained supernet,
whose accuracies are far from chance and differ between configs, which makes that check
stricter; default: an untrained one, for timing).

    python benchmarks/distributed_eval.py [--space resnet_like] [--data digits] [--configs 40]
        [--workers 2] [--threads 1] [--local-threads T] [--reps 5] [--supernet CKPT]
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import islice

import torch

from nas.data import TensorLoader, load_dataset, split
from nas.search.distributed import RayEvaluatorPool
from nas.searchspace import load_space
from nas.supernet import build_supernet
from nas.training import evaluate_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--configs", type=int, default=40, help="configs per repetition")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--local-threads", type=int,
                    help="torch threads of the in-process side (default: --threads); the "
                         "accuracies are compared only when they are the same")
    ap.add_argument("--bn-batches", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--supernet", help="a trained supernet checkpoint of --space")
    args = ap.parse_args()
    local_threads = args.local_threads or args.threads
    torch.set_num_threads(local_threads)
    torch.manual_seed(0)
    data = load_dataset(args.data)
    space = load_space(args.space)
    if args.supernet:
        from nas.supernet import load_supernet
        from nas.training import held_out_split

        net = load_supernet(args.supernet, space=space).eval()
        parts, _ = held_out_split(net, data)
    else:
        net = build_supernet(space, in_channels=data.in_channels,
                             num_classes=data.num_classes, input_size=data.input_size).eval()
        parts = split(data, 0.1, seed=0)
    val = TensorLoader(*parts.val, 256)
    calib = list(islice(TensorLoader(*parts.train, 64, shuffle=True,
                                     generator=torch.Generator().manual_seed(1)),
                        args.bn_batches))
    configs = space.sample_many(args.configs, 0)
    print(f"{args.space} on {args.data}: {len(parts.val[0])} validation images, "
          f"{args.bn_batches} calibration batches of 64, {len(configs)} configs per repetition")

    def in_process() -> list[float]:
        return [evaluate_config(net, c, val, calib, args.bn_batches)["top1"] for c in configs]

    t = time.perf_counter()
    pool = RayEvaluatorPool(net, parts.val, calib, bn_batches=args.bn_batches,
                            workers=args.workers, threads=args.threads)
    start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        first = [a for a, _ in pool.evaluate(configs)]  # workers' first calls (warm-up)
        first_s = time.perf_counter() - t
        ref = in_process()  # warm-up of this side
        same = local_threads == args.threads
        if same and first != ref:
            raise SystemExit("the workers' accuracies differ from this process's")
        agree = sum(a == b for a, b in zip(first, ref))
        times: dict[str, list[float]] = {"in-process": [], "ray": []}
        for r in range(args.reps):
            for side in (("in-process", "ray") if r % 2 == 0 else ("ray", "in-process")):
                t = time.perf_counter()
                accs = in_process() if side == "in-process" else \
                    [a for a, _ in pool.evaluate(configs)]
                times[side].append(time.perf_counter() - t)
                if accs != (ref if side == "in-process" else first):
                    raise SystemExit(f"{side}: accuracies changed between repetitions")
    finally:
        pool.close()
    seq, par = (statistics.median(times[k]) for k in ("in-process", "ray"))
    print(f"ray start-up ({args.workers} workers): {start:.1f} s; their first batch: "
          f"{first_s:.2f} s")
    print(f"in-process ({local_threads} thread(s)): {seq:.2f} s per {len(configs)} configs "
          f"({len(configs) / seq:.1f}/s)")
    print(f"ray, {args.workers} workers x {args.threads} thread(s): {par:.2f} s "
          f"({len(configs) / par:.1f}/s)")
    print(f"speed-up: {seq / par:.2f}x (median of {args.reps} alternating repetitions; "
          f"{min(ref):.1f}-{max(ref):.1f} % over the configs; the two sides agree on "
          f"{agree}/{len(ref)} accuracies)")


if __name__ == "__main__":
    main()
