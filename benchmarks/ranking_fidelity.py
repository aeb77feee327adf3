"""Ranking fidelity of supernet training strategies (issue 4 goal: Kendall's tau >= 0.7 for
the best strategy).

Eight subnets spanning the FLOPs range are trained stand-alone (their extracted architecture
from scratch) with the same budget (epochs, batch size, optimizer, schedule) as the supernets;
each strategy's supernet then ranks them by inherited validation accuracy after BN
recalibration. Prints the stand-alone and inherited accuracies and Kendall's tau per strategy.

    python benchmarks/ranking_fidelity.py [--data digits] [--epochs 30] [--strategies ...]
        [--resize S] [--train-subset N] [--val-fraction F]

``--standalone-seeds K`` trains each stand-alone subnet K times (seeds ``seed + i + 1000 j``,
``j = 0 .. K-1``; ``j = 0`` is the single run's seed) and ranks against the mean: the
stand-alone reference is itself a noisy measurement. ``--standalone-first J`` starts at
repetition ``J`` (to spread the repetitions over processes; with ``--strategies`` given no
names, only the stand-alone accuracies are printed).

``--resize S`` area-downsamples the dataset's images to S x S first (e.g. Fashion-MNIST to
7 x 7, which a CPU can train 11 times in a session; the data stays real), written to a
temporary ``.npz`` that the trainer reads; ``--train-subset N`` trains every network (the
stand-alone ones and the supernets) on the same seeded N training images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau

from nas.data import TensorLoader, load_dataset, split, subset
from nas.searchspace import Config, Space, get_space
from nas.supernet import analytic_costs, build_subnet, zero_init_last
from nas.training import TrainOptions, evaluate_config, train


def spanning_configs(space: Space, n: int, build: dict, seed: int) -> list[Config]:
    """``n`` configs at evenly spaced FLOPs quantiles of random samples."""
    pool = space.sample_many(3000, seed)
    flops = np.array([analytic_costs(space, c, **build).flops for c in pool])
    order = np.argsort(flops)
    picks = [order[int(round(q * (len(pool) - 1)))] for q in np.linspace(0.02, 0.98, n)]
    return [pool[i] for i in picks]


def train_standalone(model: torch.nn.Module, opts: TrainOptions, x: torch.Tensor,
                     y: torch.Tensor, seed: int) -> None:
    """The supernet's recipe (optimizer, schedule, epochs, batch) on one fixed network."""
    torch.manual_seed(seed)
    if opts.zero_init_last:  # initialised as the supernets are
        zero_init_last(model)
    loader = TensorLoader(x, y, opts.batch_size, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(seed))
    # the trainer's own optimizer (weight decay off for biases, BN and quantiser ranges) and
    # schedule (warm-up, then opts.schedule), so the stand-alone reference follows the
    # supernets' recipe exactly
    from nas.training.trainer import _lr_lambda, _optimizer

    params = list(model.parameters())
    opt = _optimizer(opts, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(opts, len(loader)))
    model.train()
    for _ in range(opts.epochs):
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=opts.label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
            opt.step()
            sched.step()


def resized_npz(name: str, size: int, out: Path) -> str:
    """``name``'s images area-downsampled to ``size`` x ``size`` (pixel values in [0, 1]) as
    a ``.npz`` file the trainer can load."""
    data = load_dataset(name)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)

    def small(x: torch.Tensor) -> np.ndarray:
        raw = (x * std + mean).clamp(0, 1)
        return F.adaptive_avg_pool2d(raw, size).numpy().astype(np.float32)

    path = out / f"{data.name}_{size}x{size}.npz"
    np.savez(path, x_train=small(data.x_train), y_train=data.y_train.numpy(),
             x_test=small(data.x_test), y_test=data.y_test.numpy())
    return str(path)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return 100.0 * float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--subnets", type=int, default=8)
    ap.add_argument("--strategies", nargs="*", default=["sandwich", "poa", "uniform"])
    ap.add_argument("--standalone-seeds", type=int, default=1)
    ap.add_argument("--standalone-first", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resize", type=int, default=None)
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    if args.resize:
        args.data = resized_npz(args.data, args.resize, Path(tmp.name))
    space = get_space(args.space)
    data = load_dataset(args.data)
    parts = split(data, args.val_fraction, seed=args.seed)
    x_train, y_train = parts.train
    if args.train_subset:
        x_train, y_train = subset(x_train, y_train, args.train_subset, seed=args.seed)
    print(f"{data.describe()}; training on {len(x_train)}, validating on {len(parts.val[0])}",
          flush=True)
    build = {"in_channels": data.in_channels, "num_classes": data.num_classes,
             "input_size": data.input_size}
    base = TrainOptions(space=args.space, data=args.data, epochs=args.epochs, seed=args.seed,
                        threads=args.threads, val_fraction=args.val_fraction,
                        train_subset=args.train_subset).resolved(space.family)
    configs = spanning_configs(space, args.subnets, build, args.seed)
    flops = [analytic_costs(space, c, **build).flops for c in configs]
    t = time.perf_counter()
    alone = []
    reps = range(args.standalone_first, args.standalone_seeds)
    for i, cfg in enumerate(configs):
        accs = []
        for j in reps:
            model = build_subnet(space, cfg, **build)
            train_standalone(model, base, x_train, y_train, seed=args.seed + i + 1000 * j)
            accs.append(accuracy(model, *parts.val))
            print(f"stand-alone {i} (seed repetition {j}): {flops[i] / 1e6:7.2f} MFLOPs  "
                  f"val {accs[-1]:.2f}%", flush=True)
        alone.append(float(np.mean(accs)))
    print(f"stand-alone training: {time.perf_counter() - t:.0f}s")
    val = TensorLoader(*parts.val, 256)
    for name in args.strategies:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            net = train(base.replace(strategy=name), Path(d) / "run", progress=False).supernet
        inherited = []
        for cfg in configs:
            calib = TensorLoader(x_train, y_train, 64, shuffle=True,
                                 generator=torch.Generator().manual_seed(args.seed))
            inherited.append(evaluate_config(net, cfg, val, calib, 16)["top1"])
        tau = kendalltau(alone, inherited).statistic
        print(f"{name:10s} tau {tau:+.3f}  inherited {[round(a, 1) for a in inherited]}  "
              f"({time.perf_counter() - t:.0f}s)", flush=True)
    print(f"stand-alone accuracies {[round(a, 1) for a in alone]}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
