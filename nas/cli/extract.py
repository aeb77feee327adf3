"""``nas extract``: a plain PyTorch model from a supernet checkpoint (supernet issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import not_available


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--supernet", required=True, metavar="CKPT")
    p.add_argument("--config", required=True, metavar="CONFIG.json")
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--format", choices=("state_dict", "torchscript", "onnx"),
                   default="state_dict")


def run(args: argparse.Namespace) -> int:
    return not_available("extract", "the supernet issue")
