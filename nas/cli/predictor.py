"""``nas predictor evaluate``: fit a predictor on a table of measurements (predictor issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import add_space_argument, not_available


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)
    e = sub.add_parser("evaluate", help="fit on N rows, report metrics on M others")
    e.add_argument("--table", required=True, metavar="CSV")
    add_space_argument(e)
    e.add_argument("--target", required=True, metavar="COLUMN")
    e.add_argument("--n-train", type=int, required=True)
    e.add_argument("--n-test", type=int, default=1000)
    e.add_argument("--seeds", type=int, default=5)
    e.add_argument("--model", default="auto")
    e.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    return not_available("predictor", "the predictor issue")
