"""``nas train``: train a weight-sharing supernet (lands with the training issue)."""

from __future__ import annotations

import argparse

from nas.cli._common import add_space_argument, not_available


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_space_argument(p)
    p.add_argument("--strategy", default="sandwich",
                   help="sandwich, multiarch, poa, progressive or uniform (default: sandwich)")
    p.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    p.add_argument("--config", metavar="YAML", help="training options file")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run where it stopped")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    return not_available("train", "the supernet-training issue")
