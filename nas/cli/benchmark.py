"""``nas benchmark``: replay a searcher against a table of measurements (search issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import add_space_argument, not_available


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", required=True, metavar="CSV")
    add_space_argument(p)
    p.add_argument("--objective", action="append", required=True, metavar="COLUMN:max|min")
    p.add_argument("--strategy", required=True)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    return not_available("benchmark", "the search issue")
