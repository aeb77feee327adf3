"""Helpers shared by CLI commands: console output, argument types and path checks."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from nas.errors import NasError, UsageError
from nas.utils.files import strict_json
from nas.utils.progress import console as progress_console

# Wide when piped, so tables of dotted paths are not cut to 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
# the console progress bars draw on: log lines printed through it go above a live bar
# instead of through it
err_console = progress_console()


def json_line(obj: Any) -> str:
    """``obj`` as one line of strict JSON: NaN and infinities (an undefined metric, e.g.
    Kendall's tau of a constant column or MAPE against a zero) become ``null``."""
    return strict_json(obj)


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


# ---------------------------------------------------------------- argument types
# argparse turns an ArgumentTypeError into ``nas CMD: error: argument --flag: MESSAGE``
# (one line, exit status 2) before any work starts.
def int_at_least(lo: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= lo``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}"
                                             ) from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


def float_in(lo: float, hi: float = math.inf, *, lo_open: bool = False,
             hi_open: bool = True) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in the interval from ``lo`` to ``hi``."""
    lo_s, hi_s = ("(" if lo_open else "["), (")" if hi_open else "]")
    what = (f"a finite number > {lo:g}" if hi == math.inf and lo_open else
            f"a finite number >= {lo:g}" if hi == math.inf else
            f"a number in {lo_s}{lo:g}, {hi:g}{hi_s}")

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        ok = (math.isfinite(v) and (v > lo if lo_open else v >= lo)
              and (v < hi if hi_open else v <= hi))
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return v
    parse.__name__ = what
    return parse


def device_arg(text: str) -> str:
    """An argparse ``type``: a device this machine has (cpu, cuda, cuda:N)."""
    from nas.utils.device import resolve_device

    try:
        resolve_device(text, field="device")
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("device: ")) from None
    return text


# ---------------------------------------------------------------- paths
def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """``--threads`` of the commands that recalibrate a subnet's batch norm (eval, extract)."""
    p.add_argument("--threads", type=int_at_least(1),
                   help="torch CPU threads (default: torch's); a quantized subnet's batch-norm "
                        "statistics move with the thread count, so give the search's --threads "
                        "to reproduce its subnets exactly")


def use_threads(threads: int | None) -> None:
    """Set torch's CPU threads when ``--threads`` was given."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def stem_stride_flag(stem_stride: int | None, space: Any) -> None:
    """``--stem-stride`` given for a space whose family has no convolutional stem: a usage
    error that names the flag (the library names the option, ``stem_stride``)."""
    if stem_stride is None:
        return
    from nas.supernet import family_class

    try:
        cls = family_class(space.family)
    except NasError:  # a family without supernets: said where one is built
        return
    if not cls.has_stem:
        raise UsageError(f"--stem-stride: family {space.family!r} (space {space.name!r}) has "
                         "no convolutional stem; drop --stem-stride")


def input_file(path: str | None, flag: str) -> None:
    """A clear usage error unless ``path`` (given with ``flag``) is an existing file."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a directory, not a file")
    if not p.exists():
        raise UsageError(f"{flag} {path}: no such file")


def file_kind(path: Path) -> str:
    """What an existing file is, as far as ``nas`` tells its own files apart (read cheaply:
    a zip's member names, a checkpoint's ``format`` through a memory map, a text file's
    start): "a predictor", "a supernet checkpoint", "a training checkpoint", "a subnet file",
    "a TorchScript model", "a latency table", "a text file" or "a binary file"."""
    import codecs
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as z:
                    names = z.namelist()
            except (zipfile.BadZipFile, ValueError):  # a damaged archive
                return "a binary file"
            if "header.npy" in names:
                return "a predictor"
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
                return "a TorchScript model"
            if any(n.endswith("/data.pkl") for n in names):
                import torch

                try:
                    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except Exception:  # noqa: BLE001 (not ours, or damaged: a binary file)
                    return "a binary file"
                fmt = obj.get("format") if isinstance(obj, dict) else None
                return {"nas.supernet": "a supernet checkpoint",
                        "nas.train": "a training checkpoint",
                        "nas.subnet": "a subnet file"}.get(fmt, "a binary file")
            return "a binary file"
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return "a binary file"
    try:  # (incremental: a multi-byte character cut at the end of the read is not an error)
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        return "a binary file"
    if text.lstrip().startswith("{") and '"nas.latency_table"' in text[:200]:
        return "a latency table"
    return "a text file"


def output_path(path: str | os.PathLike[str] | None, flag: str, *,
                directory: bool = False, inputs: dict[str, str | None] | None = None,
                replaces: tuple[str, ...] = ()) -> None:
    """A clear usage error, before any work, when ``path`` cannot be written: a directory
    where a file goes (or the reverse), a parent that is a file, or no permission.

    ``inputs`` (flag -> path): files the command reads, which ``path`` must not be (writing
    would replace the input). ``replaces``: the kinds of existing file (:func:`file_kind`)
    that ``path`` may overwrite; an existing file of another kind is refused, so that a
    mistyped ``--out`` cannot destroy a checkpoint or a table. Empty: any file."""
    if path is None:
        return
    p = Path(path)
    if p.exists():
        if directory and not p.is_dir():
            raise UsageError(f"{flag} {path}: exists and is not a directory")
        if not directory and p.is_dir():
            raise UsageError(f"{flag} {path}: is a directory; give a file name")
        for in_flag, in_path in (inputs or {}).items():
            if in_path is not None and Path(in_path).exists() and p.samefile(in_path):
                raise UsageError(f"{flag} {path}: is the {in_flag} file; writing there would "
                                 "replace it (choose another file)")
        if replaces and not directory and p.stat().st_size > 0:  # (empty: `mktemp`)
            kind = file_kind(p)
            if kind not in replaces:
                raise UsageError(f"{flag} {path}: exists and is {kind}, not "
                                 f"{' or '.join(replaces)}; choose another file or remove it")
    parent = p if directory and p.exists() else p.parent
    anc = parent
    while not anc.exists():  # the nearest existing ancestor decides
        anc = anc.parent
    if not anc.is_dir():
        raise UsageError(f"{flag} {path}: {anc} is a file, not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {anc} is not writable")
    # permissions alone do not tell (root passes every check; /proc, read-only mounts,
    # full disks): create and remove a file where the output will go
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=anc, prefix=".nas-probe-"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write in {anc} "
                         f"({e.strerror or e})") from None


def key_values(items: list[str], flag: str, *, reserved: dict[str, str] | None = None
               ) -> dict[str, Any]:
    """``KEY=VALUE`` flags (repeatable) as a dict, each value parsed as JSON where it can be
    (``20``, ``0.5``, ``true``, ``[1, 2]``), else kept as text. ``reserved``: keys set by
    other flags -> the message that says which."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        if key in (reserved or {}):
            raise UsageError(f"{flag} {item!r}: {reserved[key]}")  # type: ignore[index]
        if key in out:
            raise UsageError(f"{flag}: {key!r} given twice")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
