"""Atomic file writes: write to a temporary file beside the target, fsync, then rename."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nas.errors import DirectoryInUseError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[str]:
    """A temporary file name beside ``path`` for a writer that wants a file name (or opens it
    itself); when the block succeeds the file is fsynced and renamed onto ``path``, when it
    fails it is removed: readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make every written file private
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_torch_save(obj: object, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: readers never see a
    half-written checkpoint, and a killed writer leaves the old file intact."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def remove_stale_temporaries(directory: str | os.PathLike[str], names: Iterable[str]) -> int:
    """Delete the temporary files a killed writer of the files ``names`` left in
    ``directory`` (``.NAME.XXXXXXXX.tmp`` from :func:`atomic_output`, or ``.NAME.tmpPID``
    from versions before it, and nothing else: the directory may hold a user's own hidden
    files); returns how many. Only for directories this process alone writes to (a run
    directory it holds the lock of)."""
    import re

    n = 0
    for name in names:
        own = re.compile(rf"\.{re.escape(name)}\.(?:[A-Za-z0-9_]{{8}}\.tmp|tmp[0-9]+)")
        for p in Path(directory).glob(f".{glob.escape(name)}.*tmp*"):
            if own.fullmatch(p.name) and p.is_file():
                p.unlink()
                n += 1
    return n


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def strict_json(obj: Any, **kwargs: Any) -> str:
    """``obj`` as strict JSON (``json.dumps`` keywords pass through): NaN and infinities (an
    undefined metric, a latency that was not measured) become ``null``, numpy and torch
    scalars plain numbers. ``json.dumps`` would write bare ``NaN``, which JSON parsers other
    than Python's refuse."""
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # numpy / torch scalar
            return clean(v.item())
        return v
    return json.dumps(clean(obj), allow_nan=False, **kwargs)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def torch_load_weights(path: str | os.PathLike[str], map_location: object = "cpu") -> object:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, nothing
    executed. Whatever the file holds, a failure is a ``ValueError`` whose message is the
    reader's own reason in one line (:func:`_load_error`; the weights-only unpickler raises
    ``IndexError``, ``KeyError`` and others on arbitrary bytes, not only
    ``UnpicklingError``); a missing or unreadable file is an ``OSError`` as usual."""
    import torch

    with open(path, "rb") as f:  # OSError for missing / unreadable files, as usual
        try:
            return torch.load(f, map_location=map_location, weights_only=True)
        except Exception as e:  # noqa: BLE001 - garbage input can raise anything here
            raise ValueError(_load_error(e)) from None


def _load_error(e: Exception) -> str:
    """The informative part of a failed weights-only load: the unpickler's own reason (not
    torch's advice to retry with ``weights_only=False``, which would run the file's code)."""
    import pickle
    import re

    text = str(e).strip()
    # a global the weights-only unpickler refuses: said as what it is (nothing ran)
    g = re.search(r"unsupported GLOBAL (\S+)|Unsupported global: GLOBAL (\S+)", text)
    if g:
        return (f"it asks to load {(g.group(1) or g.group(2)).rstrip('.')}, which is "
                "refused: only tensors "
                "and plain data are loaded, and nothing in the file ran")
    m = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    line = m.group(1) if m else (text.splitlines()[0] if text else "")
    line = line.split(". ")[0].strip().rstrip(".")
    if isinstance(e, (pickle.UnpicklingError, RuntimeError)) and line:
        return line
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


# what np.load(path, allow_pickle=False) raises on a file that is not a readable .npz archive
# (a damaged zip header can also claim an unknown compression method, zip version or
# encryption: NotImplementedError / RuntimeError from zipfile)
NPZ_LOAD_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                   NotImplementedError, RuntimeError)


def npz_load_error(e: BaseException) -> str:
    """The reason, in a few words, for one of :data:`NPZ_LOAD_ERRORS` (numpy's advice to load
    pickles is not passed on)."""
    if isinstance(e, ValueError) and "allow_pickle" in str(e):
        return "not an .npz archive; pickled data is never loaded"
    if isinstance(e, (ValueError, OSError)):
        return str(e)
    return "corrupt or truncated .npz archive"


class DirectoryLock:
    """An exclusive lock on a directory that a process writes into (its ``.lock`` file, held
    with ``flock``, so the OS releases it when the process dies): a second ``nas train
    --resume`` or ``nas search`` of the same directory is refused while the first runs.

    ``doing`` says what the holder does to the directory, for the message ("is being trained
    by process 123"). Where ``fcntl`` does not exist (Windows) and on filesystems without
    ``flock`` (NFS without lockd, some FUSE mounts) it warns once and does nothing. Usable as
    a context manager.
    """

    def __init__(self, directory: str | os.PathLike[str], doing: str = "used") -> None:
        self.path = Path(directory) / ".lock"
        self.doing = doing
        self.what = str(directory)  # what the message names
        self._f: Any = None

    @classmethod
    def for_file(cls, path: str | os.PathLike[str], doing: str = "written") -> DirectoryLock:
        """The lock of one file that a process builds over time (``.NAME.lock`` beside it),
        for a file that may sit among others (a latency table in the working directory)."""
        p = Path(path)
        lock = cls(p.parent, doing)
        lock.path = p.parent / f".{p.name}.lock"
        lock.what = str(p)
        return lock

    def acquire(self) -> None:
        """Take the lock, writing this process's id into it; raise
        :class:`~nas.errors.DirectoryInUseError` naming the holder if another process has it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover
            return
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                f.close()
                log.warning("%s: cannot lock the directory here (%s); make sure no other "
                            "process writes into it", self.path.parent, e.strerror or e)
                return
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise DirectoryInUseError(
                f"{self.what}: is being {self.doing} by {holder} (it holds "
                f"{self.path}); wait for it to finish or stop it") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        self._f = f

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # (closing drops the lock)
            self._f = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def directory_holder(directory: str | os.PathLike[str]) -> str | None:
    """Who holds ``directory``'s :class:`DirectoryLock` (``"process N"``), or ``None`` when
    no process does."""
    lock = DirectoryLock(directory)
    if not lock.path.exists():
        return None
    try:
        lock.acquire()
    except DirectoryInUseError:
        try:
            return lock.path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            return "another process"
    lock.release()
    return None
