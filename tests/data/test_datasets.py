"""Datasets: real digits, IDX / CIFAR / npz / image-folder readers on files made here,
checksummed downloads (file:// URLs), splits and the batch iterator."""

from __future__ import annotations

import gzip
import hashlib
import pickle
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
from nas.data.datasets import load_cifar10, load_fashion_mnist
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


def _cifar_batch(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"labels": [int(i % 10) for i in range(n)]}
    path.write_bytes(pickle.dumps(d))


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
