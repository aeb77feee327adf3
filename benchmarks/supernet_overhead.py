"""Supernet overhead: a supernet at a config against the subnet extracted from it.

For each space (``resnet_like``, ``mobilenet_like``; ``--spaces vit_like`` too) and each of
the max config, the min config
and 5 random configs, it times, interleaved in one run (the two models alternate inside every
round, and the order flips every round, so machine load hits both alike):

- a training step: forward + cross-entropy + backward, batch 32, train mode;
- an eval forward under ``torch.no_grad()``, batch 1 and batch 32.

It prints the median times and the ratios supernet / extracted, and the supernet's parameter
split (largest subnet + choice-specific extras). Goals: training step <= 1.05x at the max
config and <= 1.15x at the min; eval forward <= 1.05x.

Usage: ``python benchmarks/supernet_overhead.py [--input-size 32] [--rounds 7] [--threads 2]
[--json out.json]``

``--crop-step`` instead times the kernel crop to live taps: a training step (forward +
backward) of the supernet at the max config, batch ``--batch`` (64) of 1-channel inputs,
with every conv cropped to its live taps (the default) against the same supernet with the
crop switched off (each conv's input size forgotten: the full kernels of before), alternating.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nas.searchspace import get_space
from nas.supernet import build_supernet


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    F.cross_entropy(model(x), y).backward()


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_config(net, cfg, args, gen) -> dict:
    size = args.input_size
    x32 = torch.randn(32, 3, size, size, generator=gen)
    x1 = x32[:1].clone()
    y32 = torch.randint(0, args.classes, (32,), generator=gen)
    sub = net.extract(cfg)
    times: dict[str, dict[str, list[float]]] = {
        m: {"super": [], "sub": []} for m in ("train", "eval32", "eval1")}

    def run(kind: str, which: str) -> float:
        if kind == "train":
            model = net if which == "super" else sub
            model.train()
            model.zero_grad(set_to_none=True)
            if which == "super":
                with net.activate(cfg):
                    return timed(lambda: train_step(net, x32, y32))
            return timed(lambda: train_step(sub, x32, y32))
        model = net if which == "super" else sub
        model.eval()
        xb = x32 if kind == "eval32" else x1
        with torch.no_grad():
            if which == "super":
                with net.activate(cfg):
                    return timed(lambda: net(xb))
            return timed(lambda: sub(xb))

    for r in range(args.rounds + args.warmup):
        order = ("super", "sub") if r % 2 == 0 else ("sub", "super")
        for kind in ("train", "eval32", "eval1"):
            reps = args.eval1_reps if kind == "eval1" else 1
            for which in order:
                t = min(run(kind, which) for _ in range(reps))
                if r >= args.warmup:
                    times[kind][which].append(t)
    out = {"config": cfg.id}
    for kind, d in times.items():
        s, e = statistics.median(d["super"]), statistics.median(d["sub"])
        out[kind] = {"super_ms": 1000 * s, "sub_ms": 1000 * e, "ratio": s / e}
    return out


def crop_step(args: argparse.Namespace) -> None:
    for name in args.spaces:
        crop_step_space(name, args)


def crop_step_space(name: str, args: argparse.Namespace) -> None:
    from nas.supernet.ops import ElasticConv2d

    space = get_space(name)
    net = build_supernet(space, in_channels=1, num_classes=args.classes,
                         input_size=args.input_size).train()
    cfg = space.max()
    x = torch.randn(args.batch, 1, args.input_size, args.input_size)
    y = torch.randint(0, args.classes, (args.batch,))
    convs = [m for m in net.modules() if isinstance(m, ElasticConv2d)]
    sizes = [m.in_hw for m in convs]

    def step(crop: bool) -> float:
        for m, hw in zip(convs, sizes):
            m.in_hw = hw if crop else None
        net.zero_grad(set_to_none=True)
        with net.activate(cfg):
            return timed(lambda: train_step(net, x, y))

    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.warmup + args.rounds):
        for crop in ((True, False) if r % 2 == 0 else (False, True)):
            t = step(crop)
            if r >= args.warmup:
                times[crop].append(t)
    on, off = (statistics.median(times[c]) for c in (True, False))
    print(f"{name}: max config, batch {args.batch}, 1x{args.input_size}x{args.input_size}: "
          f"train step {off * 1000:.1f} ms uncropped, {on * 1000:.1f} ms cropped "
          f"({off / on:.2f}x faster)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per config")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--eval1-reps", type=int, default=5,
                    help="batch-1 eval: best of this many calls per round")
    ap.add_argument("--random", type=int, default=5, help="random configs per space")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spaces", nargs="+", default=["resnet_like", "mobilenet_like"])
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    ap.add_argument("--crop-step", action="store_true",
                    help="time the max config's training step with and without kernel crops")
    ap.add_argument("--batch", type=int, default=64, help="batch of --crop-step")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.crop_step:
        crop_step(args)
        return 0
    gen = torch.Generator().manual_seed(args.seed)
    report = {"args": vars(args), "torch": torch.__version__, "spaces": {}}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input "
          f"{args.input_size}x{args.input_size}, {args.rounds} rounds (median)")
    for name in args.spaces:
        space = get_space(name)
        net = build_supernet(space, in_channels=3, num_classes=args.classes,
                             input_size=args.input_size)
        split = net.param_split()
        print(f"\n{name}: parameter split {split}")
        rng = np.random.default_rng(args.seed)
        cfgs = [("max", space.max()), ("min", space.min())]
        cfgs += [(f"rand{i}", c) for i, c in enumerate(space.sample_many(args.random, rng))]
        rows = []
        print(f"{'config':8} {'train ms s/e':>16} {'ratio':>6} {'eval32 ms s/e':>16} "
              f"{'ratio':>6} {'eval1 ms s/e':>14} {'ratio':>6}")
        for label, cfg in cfgs:
            r = bench_config(net, cfg, args, gen)
            r["label"] = label
            rows.append(r)
            t, e32, e1 = r["train"], r["eval32"], r["eval1"]
            print(f"{label:8} {t['super_ms']:7.1f}/{t['sub_ms']:<8.1f} {t['ratio']:6.3f} "
                  f"{e32['super_ms']:7.1f}/{e32['sub_ms']:<8.1f} {e32['ratio']:6.3f} "
                  f"{e1['super_ms']:6.2f}/{e1['sub_ms']:<7.2f} {e1['ratio']:6.3f}", flush=True)
        report["spaces"][name] = {"param_split": split, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
