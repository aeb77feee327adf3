"""Datasets: real digits, IDX / CIFAR / npz / image-folder readers on files made here,
checksummed downloads (file:// URLs), splits and the batch iterator."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import (
    DataError,
    TensorLoader,
    download_file,
    load_dataset,
    split,
)
from nas.data.datasets import DataNotFoundError, load_cifar10, load_fashion_mnist
from nas.errors import UsageError


def test_digits_is_real_and_standardised() -> None:
    d = load_dataset("digits")
    assert len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.shape[1:] == (1, 8, 8) and d.num_classes == 10
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 0.01
    assert torch.bincount(d.y_test).min() >= 30  # stratified test split
    again = load_dataset("digits")
    assert torch.equal(d.y_test, again.y_test)


def test_split_is_seeded_stratified_and_disjoint() -> None:
    d = load_dataset("digits")
    s1, s2, s3 = split(d, 0.1, seed=1), split(d, 0.1, seed=1), split(d, 0.1, seed=2)
    assert torch.equal(s1.val[1], s2.val[1]) and not torch.equal(s1.val[0], s3.val[0])
    assert len(s1.train[0]) + len(s1.val[0]) == len(d.x_train)
    assert torch.bincount(s1.val[1], minlength=10).min() >= 10
    train_rows = {tuple(r.tolist()) for r in s1.train[0].flatten(1)[:, :16]}
    assert sum(tuple(r.tolist()) in train_rows for r in s1.val[0].flatten(1)[:, :16]) < 10
    with pytest.raises(UsageError, match="val_fraction"):
        split(d, 1.5)


def test_tensor_loader_batches_and_seeded_shuffle() -> None:
    x, y = torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10)
    loader = TensorLoader(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(3))
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(loader) == 3
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    again = list(TensorLoader(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert len(TensorLoader(x, y, 4, drop_last=True)) == 2


def _idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _fake_fmnist(root: Path, n_train: int = 30, n_test: int = 10) -> None:
    rng = np.random.default_rng(0)
    _idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    _idx(root / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    _idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    _idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)


def test_fashion_mnist_idx_reader(tmp_path: Path) -> None:
    _fake_fmnist(tmp_path)
    d = load_dataset("fashion-mnist", root=str(tmp_path))
    assert d.x_train.shape == (30, 1, 28, 28) and d.y_test.tolist() == list(range(10))
    assert d.class_names[9] == "Ankle boot"
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: expected 7840 bytes"):
        load_dataset("fashion-mnist", root=str(tmp_path))
    with pytest.raises(DataError, match="not found; install Debian's dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=str(tmp_path / "nowhere"))


REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not REAL_FMNIST.exists(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    d = load_fashion_mnist()
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.y_train).tolist() == [6000] * 10


def test_download_verifies_checksum(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"nas" * 1000)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    dest = download_file(src.as_uri(), tmp_path / "out" / "file.bin", md5)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(src.as_uri(), tmp_path / "out" / "bad.bin", "0" * 32)
    assert not (tmp_path / "out" / "bad.bin").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.bin"]


def test_fashion_mnist_download_uses_checksums(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "mirror"
    src.mkdir()
    _fake_fmnist(src)
    import nas.data.datasets as ds

    sums = {f: hashlib.md5((src / f).read_bytes()).hexdigest() for f in ds.FASHION_MNIST_FILES}
    monkeypatch.setattr(ds, "FASHION_MNIST_URL", src.as_uri() + "/")
    monkeypatch.setattr(ds, "FASHION_MNIST_FILES", sums)
    d = load_fashion_mnist(root=str(tmp_path / "dl"), download=True)
    assert len(d.x_train) == 30


def _cifar_batch(path: Path, n: int, seed: int, protocol: int = 4) -> None:
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"labels": [int(i % 10) for i in range(n)], b"batch_label": b"batch"}
    path.write_bytes(pickle.dumps(d, protocol=protocol))


def test_cifar10_batches_and_restricted_unpickling(tmp_path: Path) -> None:
    for i in range(1, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}", 4, i)
    _cifar_batch(tmp_path / "test_batch", 5, 9)
    d = load_cifar10(str(tmp_path))
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (5, 3, 32, 32)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_cifar10(str(tmp_path))
    # batches of arbitrary bytes, reported in one line: a huge length prefix, memo indices in
    # the gigabytes (the unpickler would allocate its memo up to them: 12 GB for the second,
    # which can exhaust the machine's memory instead of failing -- refused by the opcode
    # check first), an unhashable dict key (TypeError inside the unpickler)
    for junk in (b"\x80\x02\x8e\x95\xe2\xbeFP?=\xc3\xcd\xefG", b"\x80\x02K@r\xa1|y^",
                 b"\x80\x02K@j\xff\xff\xff\x7f.", b"\x80\x02}(]K\x01u."):
        (tmp_path / "test_batch").write_bytes(junk)
        with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python batch"):
            load_cifar10(str(tmp_path))


def test_cifar10_with_a_batch_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.data import datasets

    for i in (1, 2, 4, 5):
        _cifar_batch(tmp_path / f"data_batch_{i}", 4, i)
    _cifar_batch(tmp_path / "test_batch", 5, 9)
    with pytest.raises(DataError, match=r"cifar10: data_batch_3 missing in .*--download"):
        load_cifar10(str(tmp_path))
    asked: list[str] = []

    def offline(url: str, *a, **kw):  # noqa: ANN002, ANN003, ANN202
        asked.append(url)
        raise DataError("offline")

    monkeypatch.setattr(datasets, "download_file", offline)
    with pytest.raises(DataError, match="offline"):
        load_cifar10(str(tmp_path), download=True)  # a partial copy is completed, not kept
    assert asked == [datasets.CIFAR10_URL]


def test_npz_and_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (12, 6, 6, 3), dtype=np.uint8),
             y_train=np.arange(12) % 3, x_test=rng.integers(0, 256, (6, 6, 6, 3), dtype=np.uint8),
             y_test=np.arange(6) % 3)
    d = load_dataset(str(tmp_path / "d.npz"))
    assert d.x_train.shape == (12, 3, 6, 6) and d.num_classes == 3
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="missing arrays"):
        load_dataset(str(tmp_path / "bad.npz"))
    raw = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut.npz: not a readable .npz file"):
        load_dataset(str(tmp_path / "cut.npz"))

    from PIL import Image

    root = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            img = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(img).save(root / c / f"{i}.png")
    d = load_dataset(str(root))
    assert d.class_names == ["cat", "dog"] and d.x_train.shape[1:] == (1, 8, 8)
    assert len(d.x_train) + len(d.x_test) == 10
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "cat" / "odd.png")
    with pytest.raises(DataError, match="different sizes"):
        load_dataset(str(root))
    with pytest.raises(UsageError, match="unknown dataset 'mnist'; known: cifar10, digits"):
        load_dataset("mnist")


def test_cifar10_batches_of_every_pickle_protocol(tmp_path: Path) -> None:
    # protocol 2 from Python 3 pickles bytes as _codecs.encode(str, 'latin1'), protocol 5
    # pickles arrays with numpy's _frombuffer: both load, through checked stand-ins
    for protocol in (2, 4, 5):
        for i in range(1, 6):
            _cifar_batch(tmp_path / f"data_batch_{i}", 3, i, protocol)
        _cifar_batch(tmp_path / "test_batch", 2, 9, protocol)
        d = load_cifar10(str(tmp_path))
        assert d.x_train.shape == (15, 3, 32, 32) and d.y_test.tolist() == [0, 1]
        rng = np.random.default_rng(9)
        raw = rng.integers(0, 256, (2, 3072), dtype=np.uint8).reshape(2, 3, 32, 32)
        assert torch.allclose(d.x_test[:, 0] * d.std[0] + d.mean[0],
                              torch.from_numpy(raw[:, 0] / 255.0).float(), atol=1e-5)
    from nas.data.datasets import _ArrayOnlyUnpickler

    # (a transposed array reaches _frombuffer with order K and an axis order)
    for arr in (np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.arange(6)[::2],
                np.ones((2, 3), bool), np.arange(24).reshape(2, 3, 4).transpose(1, 0, 2)):
        for protocol in (2, 5):
            got = _ArrayOnlyUnpickler(pickle.dumps(arr, protocol=protocol)).load()
            assert got.dtype == arr.dtype and np.array_equal(got, arr)


def test_cifar10_reader_builds_no_more_than_the_file_holds(tmp_path: Path) -> None:
    """A crafted pickle calling _codecs.encode again and again on one memoized string built
    hundreds of MB from 120 kB; the copying calls are charged against the file's size."""
    import struct

    from nas.data.datasets import _ArrayOnlyUnpickler

    n, k = 100_000, 1000
    p = bytearray(b"\x80\x02c_codecs\nencode\nq\x00")
    p += b"X" + struct.pack("<I", n) + b"a" * n
    p += b"X" + struct.pack("<I", 6) + b"latin1\x86q\x010](" + b"h\x00h\x01R" * k + b"e."
    with pytest.raises(pickle.UnpicklingError, match="builds more data than it holds"):
        _ArrayOnlyUnpickler(bytes(p)).load()
    for i in range(2, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}", 2, i)
    _cifar_batch(tmp_path / "test_batch", 2, 9)
    (tmp_path / "data_batch_1").write_bytes(bytes(p))
    with pytest.raises(DataError, match="data_batch_1: refusing a pickle that builds more data "
                       "than it holds"):
        load_cifar10(str(tmp_path))


def test_cifar10_refuses_globals_and_arguments_it_does_not_admit(tmp_path: Path) -> None:
    import codecs
    import os

    try:  # numpy 2; numpy 1 named the module numpy.core
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover
        from numpy.core.numeric import _frombuffer

    for i in range(1, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}", 2, i)

    class Call:
        def __init__(self, *reduced) -> None:  # noqa: ANN002
            self.reduced = reduced

        def __reduce__(self):  # noqa: ANN204
            return self.reduced

    ran = tmp_path / "ran"
    cases = [
        (Call(os.system, (f"touch {ran}",)), 2, r"refusing to load (posix|nt)\.system"),
        (Call(os.system, (f"touch {ran}",)), 5, r"refusing to load (posix|nt)\.system"),
        (Call(codecs.encode, ("abc", "rot13")), 2,
         "refusing _codecs.encode with encoding 'rot13'"),
        (Call(_frombuffer, (b"\0" * 8, np.dtype(object), (1,), "C")), 5,
         r"refusing numpy _frombuffer of dtype\('O'\)"),
        (Call(_frombuffer, (b"\0" * 8, np.dtype(np.uint8), ("8",), "C")), 5,
         "refusing numpy _frombuffer"),
    ]
    for payload, protocol, refused in cases:
        (tmp_path / "test_batch").write_bytes(
            pickle.dumps({b"data": payload, b"labels": [0]}, protocol=protocol))
        with pytest.raises(DataError) as e:
            load_cifar10(str(tmp_path))
        msg = str(e.value)
        assert re.search(f"test_batch: {refused}.*the CIFAR-10 reader loads numpy arrays only",
                         msg), msg
        assert "not a CIFAR-10 python batch" not in msg and "\n" not in msg
    assert not ran.exists()


def test_npz_messages_name_the_file_once_and_the_array(tmp_path: Path) -> None:
    x = np.zeros((4, 6, 6), np.uint8)
    np.savez(tmp_path / "missing.npz", x_train=x, y_train=np.arange(4) % 2)
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "missing.npz"))
    assert str(e.value) == (f"{tmp_path / 'missing.npz'}: missing arrays x_test, y_test (it "
                            "holds x_train, y_train; a dataset needs x_train, y_train, x_test, "
                            "y_test)")
    np.savez(tmp_path / "objs.npz", x_train=x, y_train=np.array([0, "a", None, 1], object),
             x_test=x, y_test=np.arange(4) % 2)
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "objs.npz"))
    assert str(e.value) == (f"{tmp_path / 'objs.npz'}: array y_train holds pickled Python "
                            "objects; pickled data is never loaded (save it as a numeric array)")
    np.save(tmp_path / "one.npy", x)
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(DataError, match=r"one.npz: a single .npy array, not an .npz archive"):
        load_dataset(str(tmp_path / "one.npz"))
    np.savez(tmp_path / "nonsquare.npz", x_train=np.zeros((4, 6, 5)), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 6, 5)), y_test=np.arange(2))
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nonsquare.npz'}: images must "
                                                  "be square, got 6x5")):
        load_dataset(str(tmp_path / "nonsquare.npz"))


def test_npz_test_labels_and_test_set(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = np.zeros((6, 4, 4), np.uint8)
    np.savez(tmp_path / "wide.npz", x_train=x, y_train=np.arange(6) % 3, x_test=x[:3],
             y_test=np.array([0, 1, 7]))
    with caplog.at_level("WARNING", logger="nas.data.datasets"):
        d = load_dataset(str(tmp_path / "wide.npz"))
    assert d.num_classes == 8 and len(d.class_names) == 8
    assert (f"{tmp_path / 'wide.npz'}: 5 of the 8 classes have no training images "
            "(3, 4, 5, 6, 7); test labels outside the training labels (7) widen the head to "
            "8 outputs") in caplog.text
    caplog.clear()
    np.savez(tmp_path / "gap.npz", x_train=x, y_train=np.array([0, 2] * 3), x_test=x[:2],
             y_test=np.array([0, 2]))
    with caplog.at_level("WARNING", logger="nas.data.datasets"):
        assert load_dataset(str(tmp_path / "gap.npz")).num_classes == 3
    assert "1 of the 3 classes have no training images (1)" in caplog.text
    assert "test labels" not in caplog.text
    # training and search never use the test set: an empty one loads, with a warning
    caplog.clear()
    np.savez(tmp_path / "notest.npz", x_train=x, y_train=np.arange(6) % 3, x_test=x[:0],
             y_test=np.zeros(0, int))
    with caplog.at_level("WARNING", logger="nas.data.datasets"):
        d = load_dataset(str(tmp_path / "notest.npz"))
    assert d.x_test.shape == (0, 1, 4, 4) and d.num_classes == 3
    assert (f"{tmp_path / 'notest.npz'}: the test set is empty; `nas eval --split test` has "
            "nothing to evaluate") in caplog.text


def _images(folder: Path, n: int, size: int = 8) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size, size), 10 * i, np.uint8)).save(folder / f"{i}.png")


def test_image_folder_layouts_and_empty_classes(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    half = tmp_path / "half"
    _images(half / "train" / "cat", 3)
    _images(half / "train" / "dog", 3)
    with pytest.raises(DataError, match=r"half: has train/ with class folders but no test/; "
                                        r"the train/test layout needs both"):
        load_dataset(str(half))
    (half / "train").rename(half / "test")
    with pytest.raises(DataError, match="has test/ with class folders but no train/"):
        load_dataset(str(half))
    _images(half / "train" / "cat", 2)
    _images(half / "train" / "dog", 2)
    d = load_dataset(str(half))
    assert (len(d.x_train), len(d.x_test), d.class_names) == (4, 6, ["cat", "dog"])
    vehicles = tmp_path / "vehicles"  # a flat folder with a class named train
    for c in ("bus", "car", "train"):
        _images(vehicles / c, 5)
    assert load_dataset(str(vehicles)).class_names == ["bus", "car", "train"]
    empty_test = tmp_path / "empty_test"
    _images(empty_test / "train" / "a", 2)
    _images(empty_test / "train" / "b", 2)
    (empty_test / "test" / "a").mkdir(parents=True)
    with caplog.at_level("WARNING", logger="nas.data.datasets"):
        d = load_dataset(str(empty_test))
    assert d.x_test.shape == (0, 1, 8, 8) and d.class_names == ["a", "b"]
    assert f"{empty_test}: the test set is empty" in caplog.text
    (empty_test / "test" / "a").rename(empty_test / "a")
    (empty_test / "train").rename(empty_test / "test")
    (empty_test / "a").rename(empty_test / "train")
    with pytest.raises(DataError, match="empty_test: the training set is empty"):
        load_dataset(str(empty_test))

    # an empty class folder is kept as a class with the same warning wherever it sorts
    for empty in ("bird", "zebra"):
        root = tmp_path / empty
        for c in ("cat", "dog", "fox"):
            _images(root / c, 5)
        (root / empty).mkdir()
        caplog.clear()
        with caplog.at_level("WARNING", logger="nas.data.datasets"):
            d = load_dataset(str(root))
        assert d.num_classes == len(d.class_names) == 4
        assert empty in d.class_names and (d.y_train == d.class_names.index(empty)).sum() == 0
        assert (f"{root}: 1 of the 4 classes have no training images "
                f"({d.class_names.index(empty)} ({empty}))") in caplog.text


def test_a_path_that_is_not_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for given in ("nosuchdir/", "sub/nosuchdir", str(tmp_path / "gone")):
        with pytest.raises(DataNotFoundError) as e:
            load_dataset(given)
        assert str(e.value) == f"{given}: no such file or directory"
    (tmp_path / "data.h5").write_bytes(b"x")
    with pytest.raises(DataError, match="data.h5: not a .npz file or an image folder"):
        load_dataset("data.h5")
    with pytest.raises(UsageError, match="unknown dataset 'nosuchdir'; known:"):
        load_dataset("nosuchdir")
