"""Helpers shared by CLI commands: console output and the not-yet-available message."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

# Wide when piped, so tables of dotted paths are not cut to 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False)


def not_available(command: str, issue: str) -> int:
    """Print that a command's implementation has not landed yet; exit status 1."""
    print(f"nas {command}: not available yet ({issue} has not landed); "
          "the command and its flags are in place", file=sys.stderr)
    return 1


def add_space_argument(p: argparse.ArgumentParser, flag: bool = True) -> None:
    """``--space NAME|FILE`` (or a positional ``space``)."""
    help_ = "a registered space name (see `nas spaces`) or a YAML/JSON space file"
    if flag:
        p.add_argument("--space", required=True, metavar="NAME|FILE", help=help_)
    else:
        p.add_argument("space", metavar="NAME|FILE", help=help_)
