"""``nas extract``: a plain PyTorch model from a supernet checkpoint.

Formats: ``state_dict`` (a ``nas.subnet`` file: state dict + config + space + build
arguments, readable with ``torch.load(weights_only=True)``; see :mod:`nas.supernet`),
``torchscript`` (``torch.jit.load``-able) and ``onnx``.
"""

from __future__ import annotations

import argparse
import sys

from nas.cli._common import (
    add_threads_argument,
    device_arg,
    input_file,
    int_at_least,
    output_path,
    use_threads,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--supernet", required=True, metavar="CKPT",
                   help="supernet checkpoint (nas.supernet format)")
    p.add_argument("--config", required=True, metavar="CONFIG.json",
                   help="config of the checkpoint's space (JSON or YAML)")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the model")
    p.add_argument("--format", choices=("state_dict", "torchscript", "onnx"),
                   default="state_dict", help="output format (default: state_dict)")
    p.add_argument("--device", type=device_arg, default="cpu",
                   help="device to extract on (default: cpu)")
    p.add_argument("--data", help="training data for the batch-norm recalibration (default: "
                   "the data the supernet was trained on, from its checkpoint)")
    p.add_argument("--data-root", help="directory of the dataset's files")
    p.add_argument("--bn-batches", type=int_at_least(0), default=8,
                   help="batches the subnet's batch-norm statistics are recalibrated on before "
                        "extraction, as `nas eval` does (default: 8; 0: keep the checkpoint's "
                        "running statistics, which belong to whichever config was calibrated "
                        "last)")
    p.add_argument("--seed", type=int_at_least(0),
                   help="seed of the split and the calibration batches (default: the training "
                        "run's, as `nas eval`)")
    add_threads_argument(p)


def _recalibrate(net: object, cfg: object, args: argparse.Namespace) -> None:
    """The config's batch-norm statistics from the training split, exactly as ``nas eval``
    computes them (same split, batches and seed): the extracted model then scores what
    ``nas eval`` reports for the config."""
    from nas.data import load_dataset
    from nas.training import (
        calibration_batches,
        check_data_fits,
        held_out_split,
        recalibrate_bn,
    )

    meta = net.checkpoint_meta  # type: ignore[attr-defined]
    if args.data is None and args.data_root is None:  # the run's own data, where it was
        args.data_root = meta.get("data_root")
    name = args.data or meta.get("data") or "digits"
    data = load_dataset(name, root=args.data_root)
    check_data_fits(net, data, name,  # type: ignore[arg-type]
                    hint="; give its training data or --bn-batches 0")
    parts, seed = held_out_split(net, data, seed=args.seed)  # type: ignore[arg-type]
    calib = calibration_batches(parts.train, args.bn_batches, seed, args.device)
    recalibrate_bn(net, cfg, calib, args.bn_batches)  # type: ignore[arg-type]


# what an existing --out may be for each format (an earlier export, or a file that is none of
# nas's own: ONNX is a binary file)
_REPLACES = {"state_dict": ("a subnet file",), "torchscript": ("a TorchScript model",),
             "onnx": ("a binary file",)}


def run(args: argparse.Namespace) -> int:
    from nas.searchspace import load_config
    from nas.supernet import (
        export_onnx,
        export_torchscript,
        load_supernet,
        save_subnet,
    )

    input_file(args.supernet, "--supernet")
    input_file(args.config, "--config")
    output_path(args.out, "--out", inputs={"--supernet": args.supernet, "--config": args.config},
                replaces=_REPLACES[args.format])
    use_threads(args.threads)
    net = load_supernet(args.supernet, device=args.device)
    cfg = load_config(net.space, args.config)
    if args.bn_batches > 0:
        _recalibrate(net, cfg, args)
    model = net.extract(cfg).eval()
    b = net.build
    if args.format == "state_dict":
        save_subnet(model, cfg, args.out, **b.kwargs)
    elif args.format == "torchscript":
        export_torchscript(model, args.out)
    else:
        export_onnx(model, args.out, in_channels=b.in_channels, input_size=b.input_size)
    c = net.costs(cfg)
    print(f"wrote {args.out} ({args.format}): config {cfg.id} of {net.space.name}, "
          f"{c.params:,} params, {c.flops / 1e6:.1f} MFLOPs, {c.size_bytes / 1024:.1f} KB",
          file=sys.stdout)
    return 0
