"""``nas search``: the main job (lands with the search issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import add_space_argument, not_available

TARGETS = ("latency", "flops", "params", "size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_space_argument(p)
    p.add_argument("--target", nargs="+", choices=TARGETS, default=["latency"],
                   help="cost objective(s) minimised jointly with accuracy (default: latency)")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="hard limit, e.g. latency<=3ms or params<=1e6 (repeatable)")
    p.add_argument("--supernet", metavar="CKPT", help="search an existing supernet")
    p.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    p.add_argument("--strategy", default="linas", help="searcher name (default: linas)")
    p.add_argument("--budget", type=int, help="number of real evaluations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", metavar="DIR", help="output directory (resumes if it exists)")


def run(args: argparse.Namespace) -> int:
    from nas.searchspace import load_space

    load_space(args.space)  # bad space names fail now, with the list of known ones
    return not_available("search", "the search issue")
