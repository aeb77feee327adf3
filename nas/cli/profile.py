"""``nas profile``: a latency lookup table measured on this device (predictor issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import add_space_argument, not_available


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_space_argument(p)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--validate", type=int, default=20, metavar="N",
                   help="check the table on N random subnets")
    p.add_argument("--out", required=True, metavar="LUT.json")
    p.add_argument("--json", action="store_true", help="print one machine-readable line")


def run(args: argparse.Namespace) -> int:
    return not_available("profile", "the predictor issue")
