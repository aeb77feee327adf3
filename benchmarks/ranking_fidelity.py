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
import itertools
import json
import logging
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
from nas.training import TrainOptions, evaluate, evaluate_config, evaluate_model, train
from nas.utils.files import atomic_write_text


def spanning_configs(space: Space, n: int, build: dict, seed: int,
                     span: str = "quantiles") -> list[Config]:
    """``n`` configs spanning the FLOPs range. ``quantiles``: at evenly spaced FLOPs
    quantiles (2 % .. 98 %) of 3,000 random samples, i.e. the range random sampling covers;
    ``extremes``: the space's smallest and largest configs and, between them, the random
    samples nearest to evenly spaced log-FLOPs (the whole range the space spans)."""
    pool = space.sample_many(3000, seed)
    flops = np.array([analytic_costs(space, c, **build).flops for c in pool])
    if span == "extremes":
        if n < 2:
            raise SystemExit("--span extremes needs --subnets >= 2 (the smallest and the "
                             "largest config at least)")
        lo, hi = space.min(), space.max()
        f_lo, f_hi = (analytic_costs(space, c, **build).flops for c in (lo, hi))
        targets = np.geomspace(f_lo, f_hi, n)[1:-1]
        picks, used = [], set()
        for t in targets:
            d = np.abs(np.log(flops) - np.log(t))
            d[list(used)] = np.inf
            picks.append(int(np.argmin(d)))
            used.add(picks[-1])
        return [lo] + [pool[i] for i in picks] + [hi]
    order = np.argsort(flops)
    picks = [order[int(round(q * (len(pool) - 1)))] for q in np.linspace(0.02, 0.98, n)]
    return [pool[i] for i in picks]


def graph_forward_backward(model: torch.nn.Module, sample: torch.Tensor) -> None:
    """Replace ``model``'s training-mode forward (and its backward) by CUDA graphs
    (``torch.cuda.make_graphed_callables``): a static subnet's step then costs its GPU work,
    not ~6,000 kernel launches from Python (the eager step of these small networks is bound
    by launches: 18-60 ms per step on an H200 whatever their FLOPs). The arithmetic is the
    eager one; the optimizer step and the loss stay eager (the learning rate changes every
    step). The capture's warm-up passes would move the batch-norm running statistics: they
    are put back."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    torch.cuda.synchronize()
    torch.cuda.make_graphed_callables(model, (sample,))
    model.load_state_dict(saved)  # in place: the graphs keep reading the same tensors


def train_standalone(model: torch.nn.Module, opts: TrainOptions, x: torch.Tensor,
                     y: torch.Tensor, seed: int, cuda_graphs: bool = False) -> None:
    """The supernet's recipe (optimizer, schedule, epochs, batch) on one fixed network;
    ``cuda_graphs``: its forward and backward passes replayed as CUDA graphs (the same
    computation, faster)."""
    torch.manual_seed(seed)
    if opts.zero_init_last:  # initialised as the supernets are
        zero_init_last(model)
    model.train()
    if cuda_graphs:  # a fixed-size sample batch, not from the loader (its shuffling RNG)
        graph_forward_backward(model, x[:opts.batch_size].to(opts.device))
    loader = TensorLoader(x, y, opts.batch_size, shuffle=True, drop_last=True,
                          device=opts.device, generator=torch.Generator().manual_seed(seed))
    steps = min(len(loader), opts.max_steps_per_epoch or len(loader))
    # the trainer's own optimizer (weight decay off for biases, BN and quantiser ranges) and
    # schedule (warm-up, then opts.schedule), so the stand-alone reference follows the
    # supernets' recipe exactly
    from nas.training.trainer import _lr_lambda, _optimizer

    params = list(model.parameters())
    opt = _optimizer(opts, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(opts, steps))
    for _ in range(opts.epochs):
        for xb, yb in itertools.islice(loader, steps):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=opts.label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
            opt.step()
            sched.step()


def resized_npz(name: str, size: int, out: Path, root: str | None = None) -> str:
    """``name``'s images area-downsampled to ``size`` x ``size`` (pixel values in [0, 1]) as
    a ``.npz`` file the trainer can load."""
    data = load_dataset(name, root=root)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)

    def small(x: torch.Tensor) -> np.ndarray:
        raw = (x * std + mean).clamp(0, 1)
        return F.adaptive_avg_pool2d(raw, size).numpy().astype(np.float32)

    path = out / f"{data.name}_{size}x{size}.npz"
    np.savez(path, x_train=small(data.x_train), y_train=data.y_train.numpy(),
             x_test=small(data.x_test), y_test=data.y_test.numpy())
    return str(path)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> float:
    return evaluate_model(model, TensorLoader(x, y, 1000, device=device))["top1"]


def tau(a: list[float], b: list[float]) -> float:
    return float(kendalltau(a, b).statistic)


def write_json(path: str, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def combine(paths: list[str]) -> None:
    """Print the taus from the ``--json`` files of several processes."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    configs = parts[0]["configs"]

    def recipe(part: dict) -> dict:
        # what must match for the accuracies to be comparable: every option but the
        # runtime ones (and the data path, a temporary file under --resize: the data is
        # compared by its description and the resize)
        skip = {"device", "threads", "data", "data_root", "strategy"}
        return {**{k: v for k, v in part["options"].items() if k not in skip},
                "describe": part["describe"], "resize": part.get("resize")}

    for p, part in zip(paths, parts):
        if part["configs"] != configs:
            raise SystemExit(f"{p}: other subnets than {paths[0]} (another space, data, seed "
                             "or --subnets)")
        a, b = recipe(part), recipe(parts[0])
        if a != b:
            diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            raise SystemExit(f"{p}: trained otherwise than {paths[0]} ({', '.join(diff)} "
                             "differ)")
    n = len(configs)
    alone: dict[str, dict[int, dict[int, float]]] = {"val": {}, "test": {}}
    inherited: dict[str, dict[str, list[float]]] = {}
    for p, part in zip(paths, parts):
        for r in part["standalone"]:
            if not 0 <= r["subnet"] < n:
                raise SystemExit(f"{p}: subnet index {r['subnet']} is not in 0..{n - 1}")
            if r["subnet"] in alone["val"].get(r["rep"], {}):
                raise SystemExit(f"{p}: stand-alone subnet {r['subnet']} (repetition "
                                 f"{r['rep']}) is in another file too")
            for split_name in ("val", "test"):
                alone[split_name].setdefault(r["rep"], {})[r["subnet"]] = r[split_name]
        for name, accs in part["inherited"].items():
            if name in inherited:
                raise SystemExit(f"{p}: strategy {name} is in another file too")
            inherited[name] = accs
    print(f"{n} subnets, {parts[0]['flops'][0] / 1e6:.1f} -> {parts[0]['flops'][-1] / 1e6:.1f}"
          f" MFLOPs; {parts[0]['describe']}")
    for split_name in ("val", "test"):
        reps = {j: [d[i] for i in range(n)] for j, d in sorted(alone[split_name].items())
                if len(d) == n}
        if not reps:
            print(f"[{split_name}] no complete stand-alone repetition")
            continue
        mean = [float(a) for a in np.mean(list(reps.values()), axis=0)]
        print(f"[{split_name}] stand-alone, mean of repetitions {sorted(reps)}: "
              f"{[round(a, 2) for a in mean]}")
        for j, accs in reps.items():
            print(f"[{split_name}]   repetition {j}: {[round(a, 2) for a in accs]}")
        # the reference's own noise: each pair of repetitions over the subnets both hold
        # (an unfinished repetition too)
        for j, k in itertools.combinations(sorted(alone[split_name]), 2):
            a, b = alone[split_name][j], alone[split_name][k]
            common = sorted(set(a) & set(b))
            if len(common) >= 3:
                print(f"[{split_name}]   repetitions {j} vs {k}: tau "
                      f"{tau([a[i] for i in common], [b[i] for i in common]):+.3f} "
                      f"({len(common)} subnets)")
        for name, accs in inherited.items():
            per_rep = ", ".join(f"{tau(r, accs[split_name]):+.3f}" for r in reps.values())
            print(f"[{split_name}] {name:10s} tau {tau(mean, accs[split_name]):+.3f} vs the mean"
                  f" (per repetition: {per_rep})  inherited "
                  f"{[round(a, 2) for a in accs[split_name]]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--stem-stride", type=int, choices=(1, 2), default=None)
    ap.add_argument("--max-steps-per-epoch", type=int, default=None,
                    help="smoke runs and timing probes only")
    ap.add_argument("--subnets", type=int, default=8)
    ap.add_argument("--span", choices=("quantiles", "extremes"), default="quantiles",
                    help="which subnets: FLOPs quantiles of random samples, or from the "
                         "smallest to the largest config (log-spaced FLOPs)")
    ap.add_argument("--strategies", nargs="*", default=["sandwich", "poa", "uniform"])
    ap.add_argument("--standalone-seeds", type=int, default=1)
    ap.add_argument("--standalone-first", type=int, default=0)
    ap.add_argument("--only", nargs="*", type=int, default=None,
                    help="train only these stand-alone subnets (none: no stand-alone)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="train the stand-alone subnets with CUDA graphs (same arithmetic, "
                         "2-3x faster on an H200; needs --device cuda)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resize", type=int, default=None)
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--json", default=None, help="write this process's accuracies here")
    ap.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                    help="print the taus from --json files of several processes, then exit")
    args = ap.parse_args()
    if args.cuda_graphs and not args.device.startswith("cuda"):
        raise SystemExit(f"--cuda-graphs: needs --device cuda, got --device {args.device}")
    if args.combine:
        combine(args.combine)
        return
    # the trainer's per-epoch lines (time, losses, validation of the largest and smallest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    data_root = args.data_root
    if args.resize:
        args.data = resized_npz(args.data, args.resize, Path(tmp.name), root=data_root)
        data_root = None
    space = get_space(args.space)
    data = load_dataset(args.data, root=data_root)
    parts = split(data, args.val_fraction, seed=args.seed)
    x_train, y_train = parts.train
    if args.train_subset:
        x_train, y_train = subset(x_train, y_train, args.train_subset, seed=args.seed)
    describe = (f"{data.describe()}; training on {len(x_train)}, validating on "
                f"{len(parts.val[0])}, testing on {len(parts.test[0])}")
    print(describe, flush=True)
    build = {"in_channels": data.in_channels, "num_classes": data.num_classes,
             "input_size": data.input_size, "stem_stride": args.stem_stride}
    extra = {} if args.batch_size is None else {"batch_size": args.batch_size}
    base = TrainOptions(space=args.space, data=args.data, data_root=data_root,
                        epochs=args.epochs, seed=args.seed, threads=args.threads,
                        val_fraction=args.val_fraction, train_subset=args.train_subset,
                        stem_stride=args.stem_stride, device=args.device,
                        max_steps_per_epoch=args.max_steps_per_epoch,
                        **extra).resolved(space.family)
    configs = spanning_configs(space, args.subnets, build, args.seed, args.span)
    flops = [analytic_costs(space, c, **build).flops for c in configs]
    result = {"describe": describe, "resize": args.resize,
              "configs": [dict(c) for c in configs], "flops": flops,
              "options": base.to_dict(), "cuda_graphs": args.cuda_graphs,
              "standalone": [], "inherited": {}, "seconds": {}}
    only = range(len(configs)) if args.only is None else args.only
    bad = [i for i in only if not 0 <= i < len(configs)]
    if bad:
        raise SystemExit(f"--only: {bad} not in 0..{len(configs) - 1}")
    t = time.perf_counter()
    alone: dict[str, list[float]] = {"val": [], "test": []}
    reps = range(args.standalone_first, args.standalone_seeds)
    for i in only:
        cfg = configs[i]
        accs: dict[str, list[float]] = {"val": [], "test": []}
        for j in reps:
            seed = args.seed + i + 1000 * j
            torch.manual_seed(seed)  # the initial weights too: the same in any process split
            model = build_subnet(space, cfg, **build, device=args.device)
            train_standalone(model, base, x_train, y_train, seed=seed,
                             cuda_graphs=args.cuda_graphs)
            for name in ("val", "test"):
                accs[name].append(accuracy(model, *getattr(parts, name), args.device))
            result["standalone"].append({"subnet": i, "rep": j, "val": accs["val"][-1],
                                         "test": accs["test"][-1]})
            if args.json:
                write_json(args.json, result)
            print(f"stand-alone {i} (seed repetition {j}): {flops[i] / 1e6:7.2f} MFLOPs  "
                  f"val {accs['val'][-1]:.2f}%  test {accs['test'][-1]:.2f}%", flush=True)
        for name in ("val", "test"):
            alone[name].append(float(np.mean(accs[name])) if accs[name] else float("nan"))
    result["seconds"]["standalone"] = time.perf_counter() - t
    print(f"stand-alone training: {time.perf_counter() - t:.0f}s", flush=True)
    loaders = {name: TensorLoader(*getattr(parts, name), 256, device=args.device)
               for name in ("val", "test")}
    complete = args.only is None and len(reps) > 0
    for strategy in args.strategies:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            net = train(base.replace(strategy=strategy), Path(d) / "run",
                        progress=False).supernet
        inherited: dict[str, list[float]] = {"val": [], "test": []}
        for cfg in configs:
            calib = TensorLoader(x_train, y_train, 64, shuffle=True, device=args.device,
                                 generator=torch.Generator().manual_seed(args.seed))
            inherited["val"].append(evaluate_config(net, cfg, loaders["val"], calib, 16)["top1"])
            inherited["test"].append(evaluate(net, cfg, loaders["test"])["top1"])
        result["inherited"][strategy] = inherited
        result["seconds"][strategy] = time.perf_counter() - t
        if args.json:
            write_json(args.json, result)
        taus = (f"tau val {tau(alone['val'], inherited['val']):+.3f} test "
                f"{tau(alone['test'], inherited['test']):+.3f}  " if complete else "")
        print(f"{strategy:10s} {taus}inherited val {[round(a, 1) for a in inherited['val']]}"
              f" test {[round(a, 1) for a in inherited['test']]}  "
              f"({time.perf_counter() - t:.0f}s)", flush=True)
    if complete:
        for name in ("val", "test"):
            print(f"stand-alone accuracies ({name}) {[round(a, 1) for a in alone[name]]}")
    if args.json:
        write_json(args.json, result)
    tmp.cleanup()


if __name__ == "__main__":
    main()
