"""``nas eval``: accuracy, params and FLOPs of subnets (lands with the training issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import not_available


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--supernet", required=True, metavar="CKPT")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", metavar="CONFIG.json")
    g.add_argument("--sample", type=int, metavar="N", help="evaluate N random configs")
    p.add_argument("--data", default="digits")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    return not_available("eval", "the supernet-training issue")
