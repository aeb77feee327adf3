"""``nas eval``: accuracy, params and FLOPs of subnets of a supernet checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from nas.cli._common import (
    add_threads_argument,
    console,
    device_arg,
    input_file,
    int_at_least,
    json_line,
    use_threads,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--supernet", required=True, metavar="CKPT")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", metavar="CONFIG.json", help="a config file of the space")
    g.add_argument("--sample", type=int_at_least(0), metavar="N",
                   help="N random configs (and the smallest and largest subnets)")
    p.add_argument("--data", help="dataset the supernet was trained on (default: the one its "
                   "checkpoint names)")
    p.add_argument("--data-root")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="validation split (default; what search uses) or the test set")
    p.add_argument("--bn-batches", type=int_at_least(0), default=8,
                   help="BN recalibration batches (default: 8)")
    p.add_argument("--seed", type=int_at_least(0),
                   help="seed of the split, the calibration batches and the sampled configs "
                        "(default: the training run's, so the validation split is the one it "
                        "held out)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu (default) or cuda[:N]")
    add_threads_argument(p)
    p.add_argument("--json", action="store_true", help="one JSON object per config")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from nas.data import TensorLoader, load_dataset
    from nas.searchspace import load_config
    from nas.supernet import load_supernet
    from nas.training import (
        calibration_batches,
        check_data_fits,
        evaluate_config,
        held_out_split,
    )
    from nas.utils.progress import task_progress

    input_file(args.supernet, "--supernet")
    input_file(args.config, "--config")
    use_threads(args.threads)
    net = load_supernet(args.supernet, device=args.device)
    space = net.space
    meta = net.checkpoint_meta
    if args.data is None and args.data_root is None:  # the run's own data, where it was
        args.data_root = meta.get("data_root")
    args.data = args.data or meta.get("data") or "digits"
    data = load_dataset(args.data, root=args.data_root)
    check_data_fits(net, data, args.data)
    parts, seed = held_out_split(net, data, seed=args.seed)  # the run's own held-out images
    xs, ys = parts.val if args.split == "val" else parts.test
    loader = TensorLoader(xs, ys, 256, device=args.device)
    roles: dict[Any, str] = {}
    if args.config:
        configs = [load_config(space, args.config)]
    else:
        # the smallest and the largest subnets (the training's min and max), then samples
        roles = {net.largest_config(): "largest", net.smallest_config(): "smallest"}
        configs = list(dict.fromkeys([net.smallest_config(), net.largest_config()]
                                     + space.sample_many(args.sample, seed)))
    table = Table("id", "subnet", "top-1 %", "loss", "params", "MFLOPs", "size KiB",
                  title=f"{space.name} on {data.name} ({args.split})")
    calib = calibration_batches(parts.train, args.bn_batches, seed, args.device)
    with task_progress("eval: subnets", len(configs),
                       enabled=len(configs) > 1 and not args.no_progress) as advance:
        for cfg in configs:
            r = evaluate_config(net, cfg, loader, calib, args.bn_batches)
            c = net.costs(cfg)
            role = roles.get(cfg, "sampled" if roles else "")
            if args.json:
                print(json_line({"id": cfg.id, "subnet": role or None, "top1": r["top1"],
                                  "loss": r["loss"], "params": c.params, "flops": c.flops,
                                  "size_bytes": c.size_bytes, "config": cfg.to_dict()}))
            else:
                table.add_row(cfg.id, role, f"{r['top1']:.2f}", f"{r['loss']:.3f}",
                              f"{c.params:,}", f"{c.flops / 1e6:.2f}",
                              f"{c.size_bytes / 1024:.1f}")
            advance()
    if not args.json:
        console.print(table)
    return 0
