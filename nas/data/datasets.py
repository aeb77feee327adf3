"""Real image datasets held in memory as tensors.

Every loader returns an :class:`ImageData`: float32 images ``(N, C, H, W)`` standardised with
the training set's per-channel mean and std, int64 labels, and the metadata a supernet is
built from (channels, input size, class count). Nothing is decoded per item during training.

Registered names (``load_dataset(name)``):

- ``digits`` — scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download). It
  has no official test split: a fixed, stratified 20 % (seed 0) is the test set.
- ``fashion-mnist`` — the four IDX files (``.gz`` or not) from a directory; default
  ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``); with
  ``download=True`` they are fetched and their MD5 checked.
- ``cifar10`` — the python batches (``data_batch_1..5``, ``test_batch``) from a directory, or
  downloaded (MD5 checked). The batches are pickles: they are read with a restricted unpickler
  that only admits numpy array reconstruction, so no code in the file can run.

Paths: a directory of class sub-folders (``class/image.png``, optionally under ``train/`` and
``test/``) or a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (read with
``allow_pickle=False``).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nas.errors import NasError, UsageError
from nas.utils.files import NPZ_LOAD_ERRORS, file_digest, npz_load_error

log = logging.getLogger(__name__)


class DataError(NasError):
    """A dataset that cannot be found, read or trusted (names the file and what is wrong)."""


class DataFileError(DataError, UsageError):
    """A dataset file given that is not there or not of its kind (an ``.npz`` without the
    arrays, a file that is no ``.npz``): a usage error, exit status 2 on the command line,
    like any other wrong input file."""


class DataNotFoundError(DataFileError):
    """A dataset file or directory that is not there."""


@dataclass
class ImageData:
    """A dataset in memory: standardised images and labels, train and test parts."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.x_train.shape[-1])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test images, "
                f"{self.in_channels}x{self.input_size}x{self.input_size}, "
                f"{self.num_classes} classes")


def _class_list(ids: np.ndarray, names: list[str] | None) -> str:
    """Up to five class indices (with their names, where known) for a message."""
    shown = [f"{i} ({names[i]})" if names else str(i) for i in (int(v) for v in ids[:5])]
    return ", ".join(shown) + (", ..." if len(ids) > 5 else "")


def _finish(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
            y_test: np.ndarray, class_names: list[str] | None = None,
            scale: float = 255.0, where: str | None = None) -> ImageData:
    """Scale to [0, 1], standardise with the training set's per-channel statistics.

    ``where`` names the data in messages (the path given; default ``name``). With
    ``class_names`` there are exactly that many classes and labels must index them.
    """
    where = where or name
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        y = np.asarray(y)
        if y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
            raise DataError(f"{where}: {key} must be one class label per image (1-D), got "
                            f"shape {y.shape}")
        if y.dtype.kind == "f" and y.size and not np.all(np.isfinite(y)):
            raise DataError(f"{where}: {key} holds NaN or infinite labels")
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and y.size
                                               and np.all(np.isfinite(y))
                                               and np.all(y == np.round(y))):
            if y.size:
                raise DataError(f"{where}: {key} must hold integer class labels, got dtype "
                                f"{y.dtype}" + (" with fractional values"
                                                if y.dtype.kind == "f" else ""))
    if np.asarray(x_train).shape[0] == 0:
        raise DataError(f"{where}: the training set is empty")
    if np.asarray(x_test).shape[0] == 0:  # training and search never use the test set
        log.warning("%s: the test set is empty; `nas eval --split test` has nothing to "
                    "evaluate", where)

    def prep(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[:, None]
        return x.astype(np.float32) / scale

    xt, xs = prep(x_train), prep(x_test)
    for key, x in (("x_train", xt), ("x_test", xs)):
        if not np.all(np.isfinite(x)):
            raise DataError(f"{where}: {key} holds NaN or infinite pixel values")
    if xt.shape[1:] != xs.shape[1:]:
        raise DataError(f"{where}: train images are {xt.shape[1:]}, test images {xs.shape[1:]}")
    if xt.shape[2] != xt.shape[3]:
        raise DataError(f"{where}: images must be square, got {xt.shape[2]}x{xt.shape[3]}")
    mean = xt.mean(axis=(0, 2, 3))
    std = xt.std(axis=(0, 2, 3)) + 1e-6
    xt = (xt - mean[None, :, None, None]) / std[None, :, None, None]
    xs = (xs - mean[None, :, None, None]) / std[None, :, None, None]
    yt = np.asarray(y_train).astype(np.int64).ravel()
    ys = np.asarray(y_test).astype(np.int64).ravel()
    if len(yt) != len(xt) or len(ys) != len(xs):
        raise DataError(f"{where}: {len(xt)} train images but {len(yt)} labels, "
                        f"{len(xs)} test images but {len(ys)} labels")
    if yt.min() < 0 or (len(ys) and ys.min() < 0):
        raise DataError(f"{where}: labels must be >= 0")
    wider = len(ys) and ys.max() > yt.max()  # the test labels set the class count
    top = int(max(yt.max(), ys.max() if len(ys) else 0))
    if class_names and top >= len(class_names):
        raise DataError(f"{where}: label {top} but only {len(class_names)} classes "
                        f"(labels 0..{len(class_names) - 1})")
    num_classes = len(class_names) if class_names else top + 1
    present = np.unique(yt)
    if len(present) < 2:
        raise DataError(f"{where}: the training set has one class (label {int(present[0])}); "
                        "classification needs at least 2")
    # labels are class indices 0..K-1: the head gets K outputs. Mostly unused indices (ids,
    # years, codes) would build a huge head and fail late, or train one that is mostly unused
    if num_classes > 2 * len(present) and num_classes > len(present) + 10:
        raise DataError(f"{where}: labels must be class indices 0..K-1; these go up to "
                        f"{num_classes - 1}" + (" (in the test labels)" if wider else "")
                        + f" but only {len(present)} distinct values occur in the training "
                        "set (re-index them, e.g. with numpy.unique(y, return_inverse=True))")
    unused = np.setdiff1d(np.arange(num_classes), present)
    if len(unused):
        outside = np.setdiff1d(ys, present)
        cause = (f"; test labels outside the training labels ({_class_list(outside, class_names)})"
                 + (f" widen the head to {num_classes} outputs" if wider and not class_names
                    else "")
                 if len(outside) else "")
        log.warning("%s: %d of the %d classes have no training images (%s)%s", where,
                    len(unused), num_classes, _class_list(unused, class_names), cause)
    return ImageData(
        name=name, x_train=torch.from_numpy(np.ascontiguousarray(xt)),
        y_train=torch.from_numpy(yt), x_test=torch.from_numpy(np.ascontiguousarray(xs)),
        y_test=torch.from_numpy(ys), num_classes=num_classes,
        class_names=class_names or [str(i) for i in range(num_classes)],
        mean=mean.tolist(), std=std.tolist(),
    )


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``: ``fraction`` of every class held out, seeded."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(len(idx) * fraction))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


# ----------------------------------------------------------------------------- downloads
def download_file(url: str, dest: str | os.PathLike[str], md5: str, *,
                  timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` (atomically) and verify its MD5; an existing file with the
    right checksum is kept. A wrong checksum removes the download and raises."""
    dest = Path(dest)
    if dest.exists() and file_md5(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    log.info("downloading %s", url)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            shutil.copyfileobj(r, f, length=1 << 20)
        got = file_md5(Path(tmp))
        if got != md5:
            raise DataError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); "
                            "the download was discarded")
        os.replace(tmp, dest)
    except OSError as e:
        raise DataError(f"{url}: download failed ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def file_md5(path: Path) -> str:
    return file_digest(path, "md5")  # the datasets' published checksums are MD5


# ----------------------------------------------------------------------------- loaders
def load_digits(root: str | None = None, download: bool = False) -> ImageData:
    """scikit-learn's bundled 8x8 digits; a fixed stratified 20 % (seed 0) is the test set."""
    if root is not None:
        log.warning("digits is bundled with scikit-learn: --data-root %s is not used", root)
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.float32)  # (1797, 8, 8), values 0..16
    y = d.target
    train, test = _stratified_split(y, 0.2, seed=0)
    return _finish("digits", x[train], y[train], x[test], y[test], scale=16.0)


FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) of unsigned bytes into a numpy array."""
    opener: Callable[..., io.BufferedIOBase] = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(shape))
    if len(raw) - header != n:
        raise DataError(f"{path}: expected {n} bytes of data for shape {shape}, "
                        f"got {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(root: str | None = None, download: bool = False) -> ImageData:
    """Fashion-MNIST from its four IDX files."""
    base = Path(root or "/usr/share/datasets/fashion-mnist")
    arrays = {}
    for fname, md5 in FASHION_MNIST_FILES.items():
        path = base / fname
        if not path.exists() and (base / fname[:-3]).exists():
            path = base / fname[:-3]
        if not path.exists():
            if download:
                path = download_file(FASHION_MNIST_URL + fname, base / fname, md5)
            else:
                raise DataNotFoundError(
                    f"fashion-mnist: {base / fname} not found; install Debian's "
                    "dataset-fashion-mnist, point --data-root at the IDX files, or download "
                    "them first (`nas train --data fashion-mnist --download`)"
                )
        arrays[fname.split("-idx")[0]] = read_idx(path)
    return _finish("fashion-mnist", arrays["train-images"], arrays["train-labels"],
                   arrays["t10k-images"], arrays["t10k-labels"], FASHION_MNIST_CLASSES)


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asking for a global (or arguments) the CIFAR-10 reader does not admit."""


def _latin1_encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol <= 2: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _RefusedGlobal(f"refusing _codecs.encode with encoding {encoding!r} (only "
                             "latin1)")
    return text.encode("latin-1")


def _plain_frombuffer(buf: object, dtype: object, shape: object, order: object,
                      axis_order: object = None) -> np.ndarray:
    """numpy's ``_frombuffer`` (protocol 5 arrays), for plain numeric arrays only."""
    def ints(v: object) -> bool:
        return isinstance(v, tuple) and all(type(i) is int and i >= 0 for i in v)

    if not (isinstance(buf, (bytes, bytearray)) and isinstance(dtype, np.dtype)
            and dtype.kind in "biufc" and dtype.fields is None and not dtype.shape
            and ints(shape) and order in ("C", "F", "K")
            and (axis_order is None or ints(axis_order))):
        raise _RefusedGlobal(f"refusing numpy _frombuffer of {dtype!r} (only plain numeric "
                             "arrays)")
    array = np.frombuffer(buf, dtype=dtype)
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order="F" if order == "F" else "C")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits plain containers and numpy array reconstruction only; nothing else can load.

    Protocol 5 pickles arrays with numpy's ``_frombuffer`` and Python 3's protocol 2 pickles
    bytes with ``_codecs.encode``: both are replaced by checked stand-ins above.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
    _STAND_INS: dict[tuple[str, str], Callable[..., object]] = {
        ("numpy.core.numeric", "_frombuffer"): _plain_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _plain_frombuffer,
        ("_codecs", "encode"): _latin1_encode,
    }

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        # what the copying calls (bytes from text, numpy scalars) may build in all: a real
        # pickle holds each of them once, so no more than the file; a crafted one calling
        # them again and again on one memoized argument would otherwise build without bound
        self._budget = len(data) + 1024

    def _charged(self, fn: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            out = fn(*args)
            self._budget -= int(getattr(out, "nbytes", None) or len(out))  # type: ignore[arg-type]
            if self._budget < 0:
                raise _RefusedGlobal("refusing a pickle that builds more data than it holds")
            return out
        return call

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._STAND_INS:
            fn = self._STAND_INS[module, name]
            # (frombuffer makes views of the file's own buffers: nothing to charge)
            return fn if name == "_frombuffer" else self._charged(fn)
        if (module, name) in self._ALLOWED:
            found = super().find_class(module, name)
            return self._charged(found) if name == "scalar" else found
        raise _RefusedGlobal(f"refusing to load {module}.{name}")


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


def _check_pickle_ops(data: bytes) -> None:
    """Walk the opcodes before unpickling: a memo index no real pickle of this size can use
    would make the unpickler allocate its memo up to that index (a 9-byte file can ask for
    gigabytes), and truncated or unknown opcodes are refused here, cheaply."""
    import pickletools

    limit = len(data)
    for op, arg, _ in pickletools.genops(data):
        if op.name in _MEMO_OPS and not 0 <= int(arg) <= limit:
            raise ValueError(f"memo index {arg} out of range for a {limit}-byte pickle")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = path.read_bytes()
        _check_pickle_ops(data)
        d = _ArrayOnlyUnpickler(data).load()
    except FileNotFoundError:
        raise DataNotFoundError(f"cifar10: {path} not found") from None
    except _RefusedGlobal as e:
        raise DataFileError(f"{path}: {e}; the CIFAR-10 reader loads numpy arrays only, so "
                            "no code in the file can run") from None
    except Exception as e:  # noqa: BLE001 - arbitrary bytes make the unpickler raise anything
        raise DataFileError(f"{path}: not a CIFAR-10 python batch "
                        f"({type(e).__name__}: {e})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataFileError(f"{path}: not a CIFAR-10 python batch (no data/labels)")
    x = np.asarray(d[b"data"], dtype=np.uint8)
    if x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{path}: CIFAR-10 data must be (N, 3072), got {x.shape}")
    return x.reshape(-1, 3, 32, 32), np.asarray(d[b"labels"], dtype=np.int64)


def load_cifar10(root: str | None = None, download: bool = False) -> ImageData:
    """CIFAR-10 from the python batches in ``root`` (or ``root/cifar-10-batches-py``;
    default ``~/.cache/nas/cifar10``, where ``download`` puts them)."""
    base = Path(root or "~/.cache/nas/cifar10").expanduser()
    if (base / "cifar-10-batches-py").is_dir():
        base = base / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (base / n).exists()]
    if missing:
        if not download:
            what = ("no python batches" if len(missing) == len(names)
                    else f"{', '.join(missing)} missing")
            raise DataNotFoundError(f"cifar10: {what} in {base}; pass the directory that holds "
                            "data_batch_1..5 and test_batch, or download it first "
                            "(`nas train --data cifar10 --download`)")
        archive = download_file(CIFAR10_URL, base / "cifar-10-python.tar.gz", CIFAR10_MD5)
        with tarfile.open(archive) as tar:
            tar.extractall(base, filter="data")
        base = base / "cifar-10-batches-py"
    parts = [_read_cifar_batch(base / f"data_batch_{i}") for i in range(1, 6)]
    xt = np.concatenate([p[0] for p in parts])
    yt = np.concatenate([p[1] for p in parts])
    xs, ys = _read_cifar_batch(base / "test_batch")
    return _finish("cifar10", xt, yt, xs, ys, CIFAR10_CLASSES)


def load_npz(path: str | os.PathLike[str]) -> ImageData:
    """Arrays ``x_train, y_train, x_test, y_test``; images (N, H, W), (N, C, H, W) or
    (N, H, W, C) with C in 1, 3; pixel values 0..255 (uint8) or already in [0, 1] (float)."""
    path = Path(path)
    names = ("x_train", "y_train", "x_test", "y_test")
    arrays: dict[str, np.ndarray] = {}
    pickled = None
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy file named .npz
            raise DataFileError(f"{path}: a single .npy array, not an .npz archive of "
                                f"{', '.join(names)}")
        with z:
            found = sorted(z.files)
            for k in names:
                if k not in z.files:
                    continue
                try:
                    arrays[k] = z[k]
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    pickled = k
                    break
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except DataFileError:
        raise
    except NPZ_LOAD_ERRORS as e:
        raise DataFileError(f"{path}: not a readable .npz file ({npz_load_error(e)})") from None
    if pickled:
        raise DataFileError(f"{path}: array {pickled} holds pickled Python objects; pickled "
                            "data is never loaded (save it as a numeric array)")
    missing = [k for k in names if k not in arrays]
    if missing:
        raise DataFileError(f"{path}: missing arrays {', '.join(missing)} (it holds "
                            f"{', '.join(found) or 'none'}; a dataset needs "
                            f"{', '.join(names)})")
    xs = []
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        if x.ndim not in (3, 4):
            raise DataError(f"{path}: {key} must be (N, H, W) or (N, C, H, W), got {x.shape}")
        xs.append(x)
    if (xs[0].dtype == np.uint8) != (xs[1].dtype == np.uint8):
        raise DataError(f"{path}: x_train is {xs[0].dtype} but x_test is {xs[1].dtype}; give both "
                        "as uint8 (0..255) or both as floats in [0, 1]")
    scale = 255.0 if xs[0].dtype == np.uint8 else 1.0
    return _finish(path.stem, xs[0], arrays["y_train"], xs[1], arrays["y_test"], scale=scale,
                   where=str(path))


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def load_image_folder(path: str | os.PathLike[str], *, test_fraction: float = 0.2,
                      seed: int = 0) -> ImageData:
    """A directory of ``class/image.png`` (or ``train/class/...`` and ``test/class/...``).

    Images are decoded once, here; all must have the same size. Grey images stay one channel
    unless any image has colour, then all become RGB. Without ``train``/``test`` folders a
    stratified ``test_fraction`` (seeded) is the test set; one of the two alone is refused.
    Every class folder (sorted) is a class, one without images too (with a warning).
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise (DataError if root.exists() else DataNotFoundError)(f"{root}: not a directory")
    split_dirs = (root / "train").is_dir() and (root / "test").is_dir()
    for have, lack in (("train", "test"), ("test", "train")):
        # train/ holding class folders is the split layout, not a class named train
        if (root / have).is_dir() and not (root / lack).is_dir() and any(
                d.is_dir() and not d.name.startswith(".") for d in (root / have).iterdir()):
            raise DataFileError(f"{root}: has {have}/ with class folders but no {lack}/; the "
                                "train/test layout needs both train/CLASS/IMAGE.png and "
                                "test/CLASS/IMAGE.png (or put the class folders in "
                                f"{root} itself)")
    parts = [root / "train", root / "test"] if split_dirs else [root]
    # hidden folders (.ipynb_checkpoints, .git) are not classes
    classes = sorted({d.name for p in parts for d in p.iterdir()
                      if d.is_dir() and not d.name.startswith(".")})
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected {root}/CLASS/IMAGE.png)")
    images: list[list[Image.Image]] = [[] for _ in parts]
    labels: list[list[int]] = [[] for _ in parts]
    for k, p in enumerate(parts):
        for ci, c in enumerate(classes):
            d = p / c
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                if f.suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                try:
                    with Image.open(f) as im:
                        im.load()
                        images[k].append(im.copy())
                except OSError as e:
                    raise DataError(f"{f}: cannot be decoded as an image ({e})") from None
                labels[k].append(ci)
    all_images = [im for group in images for im in group]
    if not all_images:
        raise DataError(f"{root}: no images found ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    sizes = {im.size for im in all_images}
    if len(sizes) != 1:
        raise DataError(f"{root}: images have different sizes {sorted(sizes)[:4]}; "
                        "resize them to one size first")
    wide = ("I;16", "I;16B", "I;16L", "I")
    mode = "L" if all(im.mode in ("L", "1", *wide) for im in all_images) else "RGB"

    def grey(im: Image.Image) -> np.ndarray:
        if im.mode in wide:  # 16-bit grey: keep its range (convert("L") clips it at 255)
            a = np.asarray(im, dtype=np.float64)
            return np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
        return np.asarray(im.convert("L"), dtype=np.uint8)

    def stack(group: list[Image.Image]) -> np.ndarray:
        if not group:  # an empty train/ or test/: _finish says what that means
            w, h = next(iter(sizes))
            return np.zeros((0, h, w) if mode == "L" else (0, 3, h, w), np.uint8)
        if mode == "L":
            return np.stack([grey(im) for im in group])
        arr = np.stack([np.asarray(im.convert(mode), dtype=np.uint8) for im in group])
        return arr.transpose(0, 3, 1, 2)

    if split_dirs:
        xt, yt = stack(images[0]), np.array(labels[0])
        xs, ys = stack(images[1]), np.array(labels[1])
    else:
        x, y = stack(images[0]), np.array(labels[0])
        train, test = _stratified_split(y, test_fraction, seed)
        xt, yt, xs, ys = x[train], y[train], x[test], y[test]
    # every class folder is a class, in sorted order: one without images is kept (the warning
    # names it), so the class count and class_names agree wherever it sorts
    return _finish(root.name, xt, yt, xs, ys, classes, where=str(root))


_DATASETS: dict[str, Callable[..., ImageData]] = {
    "digits": load_digits,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}


def register_dataset(name: str, loader: Callable[..., ImageData]) -> None:
    """Register ``loader(root=None, download=False) -> ImageData`` under ``name``."""
    _DATASETS[name] = loader


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def load_dataset(name_or_path: str, *, root: str | None = None,
                 download: bool = False) -> ImageData:
    """A registered dataset by name, a ``.npz`` file, or an image folder."""
    if name_or_path in _DATASETS:
        return _DATASETS[name_or_path](root=root, download=download)
    p = Path(name_or_path)
    if p.suffix == ".npz":
        return load_npz(p)
    if p.is_dir():
        return load_image_folder(p)
    if p.exists():
        raise DataFileError(f"{p}: not a .npz file or an image folder")
    if any(sep and sep in name_or_path for sep in (os.sep, os.altsep)):  # a path, not a name
        raise DataNotFoundError(f"{name_or_path}: no such file or directory")
    raise UsageError(
        f"unknown dataset {name_or_path!r}; known: {', '.join(sorted(_DATASETS))}, "
        "or the path of a .npz file or an image folder"
    )
