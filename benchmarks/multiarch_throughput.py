"""Multi-architecture batches (issue 4 goal: ``multiarch`` with K=4 processes >= 1.3x the
images·subnets per second of 4 separate passes).

Both sides train the same 4 sampled subnets on the same batch of B images, each subnet on its
own B/4 images: ``multiarch`` does it in one step (one grouped forward through
``Supernet.activate_many``, one backward, one optimizer step); "separate" does 4 full
training steps (forward, backward, clip, optimizer step each); "looped" is the same single
step written by hand (K ``activate`` forwards in one graph), a check on ``activate_many``'s
own overhead. The optimizer is the trainer's for the space's family (SGD for the CNN
families, AdamW for ``vit_like``).
Timed interleaved (the order rotating every repetition), median of R repetitions, in one run.

    python benchmarks/multiarch_throughput.py [--space resnet_like] [--batch 64] [--reps 7]
        [--warmup 8] [--default-allocator]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from nas.data import load_dataset
from nas.searchspace import load_space
from nas.supernet import build_supernet
from nas.training import TrainOptions, make_strategy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--warmup", type=int, default=8, help="untimed reps first (default 8)")
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's allocator as it is (by default it keeps freed memory, "
                         "as `nas train` makes it: nas.utils.memory.steady_allocator)")
    args = ap.parse_args()
    if not args.default_allocator:
        from nas.utils.memory import steady_allocator

        print(f"steady allocator: {steady_allocator()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset(args.data)
    space = load_space(args.space)
    net = build_supernet(space, in_channels=data.in_channels, num_classes=data.num_classes,
                         input_size=data.input_size).train()
    opts = TrainOptions(groups=args.groups, batch_size=args.batch).resolved(space.family)
    # the trainer's optimizer for this family (SGD with Nesterov momentum for the CNNs, AdamW
    # for vit_like; no weight decay on biases, norms and quantizer ranges) at a small lr
    from nas.training.trainer import _optimizer

    opt = _optimizer(opts.replace(lr=opts.lr / 20), net)
    print(f"optimizer: {type(opt).__name__}")
    k = args.groups
    x, y = data.x_train[: args.batch], data.y_train[: args.batch]

    # per seed, a strategy (made before the timing) and the K subnets its first step trains
    # (the strategy's own draw: each dimension's values in turn across the groups), which
    # the other two sides train too
    strats, groups = {}, {}

    def prepare(seed: int) -> None:
        strats[seed] = make_strategy("multiarch", net, opts, np.random.default_rng(seed))
        groups[seed] = make_strategy("multiarch", net, opts, np.random.default_rng(seed)
                                     ).group_configs(k)

    def multiarch(seed: int) -> None:
        opt.zero_grad(set_to_none=True)
        strats[seed].step(x, y)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    def looped(seed: int) -> None:
        configs = groups[seed]
        opt.zero_grad(set_to_none=True)
        total = x.new_zeros(())
        for cfg, idx in zip(configs, torch.arange(len(x)).chunk(k)):
            with net.activate(cfg):
                total = total + torch.nn.functional.cross_entropy(net(x[idx]), y[idx]) / k
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    def separate(seed: int) -> None:
        configs = groups[seed]
        for cfg, idx in zip(configs, torch.arange(len(x)).chunk(k)):
            opt.zero_grad(set_to_none=True)
            with net.activate(cfg):
                loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()

    times: dict[str, list[float]] = {"multiarch": [], "looped": [], "separate": []}
    # warm-up: the process's heap grows to its high-water mark over the first steps (each
    # new page is a page fault; a multiarch step, holding K subnets' graphs, needs the most
    # memory and took ~38,000 faults in its first step, still hundreds to thousands in steps
    # 2-7); training runs thousands of steps past that, so the timed reps start after it
    for r in range(args.warmup):
        prepare(10_000 + r)
    for r in range(args.reps):
        prepare(r + 1)
    for r in range(args.warmup):
        multiarch(10_000 + r)
        looped(10_000 + r)
        separate(10_000 + r)
    sides = [("multiarch", multiarch), ("looped", looped), ("separate", separate)]
    for r in range(args.reps):
        # rotate the order every rep: whichever side runs first after another pays for it
        # (a fixed order made the first side look 10-20% slower)
        for name, fn in sides[r % 3:] + sides[:r % 3]:
            t = time.perf_counter()
            fn(r + 1)  # same seed: the same K subnets on both sides
            times[name].append(time.perf_counter() - t)
    med = {n: statistics.median(v) for n, v in times.items()}
    rate = {n: args.batch / med[n] for n in med}  # each image goes through one subnet
    print(f"{args.space}, batch {args.batch}, K={k}, median of {args.reps} interleaved reps")
    for n in ("multiarch", "looped", "separate"):
        print(f"  {n:10s} {med[n] * 1000:8.1f} ms/step  {rate[n]:8.1f} images·subnets/s")
    # the same ratio from each repetition's own pair (the two sides ran seconds apart, on
    # the same K subnets): the machine's speed drifts between repetitions, and pairing
    # takes that drift out of the comparison
    paired = statistics.median(s / m for s, m in zip(times["separate"], times["multiarch"]))
    print(f"ratio multiarch/separate: {rate['multiarch'] / rate['separate']:.2f}x of the "
          f"medians, {paired:.2f}x median of paired reps (goal >= 1.3x)")


if __name__ == "__main__":
    main()
