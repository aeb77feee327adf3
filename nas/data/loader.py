"""Seeded train/validation splits and a batch iterator over in-memory tensors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nas.data.datasets import ImageData, _stratified_split
from nas.errors import UsageError


@dataclass
class Splits:
    """Train, validation (held out from the training set, for search) and test parts."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    data: ImageData

    def describe(self) -> str:
        return (f"{self.data.name}: {len(self.train[0])} train / {len(self.val[0])} val / "
                f"{len(self.test[0])} test")


def split(data: ImageData, val_fraction: float = 0.1, seed: int = 0) -> Splits:
    """Hold out a stratified, seeded ``val_fraction`` of the training set for validation.

    Subnets are ranked on the validation part during search; the test set is never used
    for that.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in (0, 1), got {val_fraction}")
    keep, held = _stratified_split(data.y_train.numpy(), val_fraction, seed)
    keep_t, held_t = torch.from_numpy(keep), torch.from_numpy(held)
    return Splits(
        train=(data.x_train[keep_t], data.y_train[keep_t]),
        val=(data.x_train[held_t], data.y_train[held_t]),
        test=(data.x_test, data.y_test),
        data=data,
    )


class TensorLoader:
    """Batches from in-memory tensors: one index permutation per epoch, no per-item work.

    Args:
        x, y: images and labels.
        batch_size: images per batch.
        shuffle: reshuffle every epoch with ``generator`` (seeded: same order for a seed).
        drop_last: drop the final short batch.
        device: where batches are moved (``None``: stay where the tensors are).
        generator: a ``torch.Generator`` for shuffling; its state can be saved to resume.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, drop_last: bool = False,
                 device: torch.device | str | None = None,
                 generator: torch.Generator | None = None) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if len(x) != len(y):
            raise UsageError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = torch.device(device) if device is not None else None
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min((i + 1) * self.batch_size, n))
            if order is None:
                xb, yb = self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                xb, yb = self.x[idx], self.y[idx]
            if self.device is not None:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
            yield xb, yb


def subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` examples (all of them if ``n >= len(x)``)."""
    if n >= len(x):
        return x, y
    idx = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(len(x))[:n]))
    return x[idx], y[idx]
