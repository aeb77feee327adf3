"""``nas extract``: a plain PyTorch model from a supernet checkpoint.

Formats: ``state_dict`` (a ``nas.subnet`` file: state dict + config + space + build
arguments, readable with ``torch.load(weights_only=True)``; see :mod:`nas.supernet`),
``torchscript`` (``torch.jit.load``-able) and ``onnx``.
"""

from __future__ import annotations

import argparse
import sys

from nas.cli._common import device_arg, input_file, output_path


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
    output_path(args.out, "--out")
    net = load_supernet(args.supernet, device=args.device)
    cfg = load_config(net.space, args.config)
    model = net.extract(cfg).eval()
    b = net.build
    if args.format == "state_dict":
        save_subnet(model, cfg, args.out, in_channels=b.in_channels,
                    num_classes=b.num_classes, input_size=b.input_size)
    elif args.format == "torchscript":
        export_torchscript(model, args.out)
    else:
        export_onnx(model, args.out, in_channels=b.in_channels, input_size=b.input_size)
    c = net.costs(cfg)
    print(f"wrote {args.out} ({args.format}): config {cfg.id} of {net.space.name}, "
          f"{c.params:,} params, {c.flops / 1e6:.1f} MFLOPs, {c.size_bytes / 1e6:.2f} MB",
          file=sys.stdout)
    return 0
