"""Evaluating subnets of a supernet: BN recalibration, top-1 accuracy and loss."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import UsageError
from nas.searchspace import Config
from nas.supernet import Supernet

log = logging.getLogger(__name__)


def recalibrate_bn(supernet: Supernet, config: Config | Mapping[str, Any],
                   loader: Iterable[Any], batches: int) -> int:
    """Recompute the running BN statistics of ``config``'s layers from ``batches`` training
    batches (a subnet's inherited statistics belong to other widths; this is what makes
    inherited accuracy meaningful). Returns the number of batches used."""
    import operator

    try:
        n = operator.index(batches)  # ints, numpy ints; not floats
    except TypeError:
        n = 0
    if isinstance(batches, bool) or n < 1:
        raise UsageError(f"recalibrate_bn: batches must be an int >= 1, got {batches!r}")
    return supernet.recalibrate_bn(config, loader, max_batches=n)


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` (any network, e.g. an extracted
    subnet) over ``loader``, in eval mode (its mode is restored after)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device  # batches follow the model (any loader)
    correct, total, loss = 0, 0, 0.0
    try:
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    if total == 0:  # 0 % of nothing would read as a real figure
        raise UsageError("evaluate: the loader gave no images (an empty split?)")
    return {"top1": 100.0 * correct / total, "loss": loss / total, "n": total}


@torch.no_grad()
def evaluate(supernet: Supernet, config: Config | Mapping[str, Any],
             loader: Iterable[Any]) -> dict[str, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``config`` over ``loader``, eval mode."""
    with supernet.activate(config):
        return evaluate_model(supernet, loader)


def evaluate_config(supernet: Supernet, config: Config | Mapping[str, Any],
                    loader: Iterable[Any], calib_loader: Iterable[Any] | None,
                    bn_batches: int) -> dict[str, float]:
    """:func:`recalibrate_bn` (when ``bn_batches`` > 0) then :func:`evaluate`."""
    if calib_loader is not None and bn_batches > 0:
        recalibrate_bn(supernet, config, calib_loader, bn_batches)
    return evaluate(supernet, config, loader)


def calibration_batches(train: tuple[Any, Any], batches: int, seed: int,
                        device: str | torch.device = "cpu") -> list[Any]:
    """The batch-norm recalibration batches of ``nas eval``, ``nas extract`` and ``nas
    search``: the first ``batches`` batches of 64 of one shuffle of the training split
    ``train`` (images, labels) seeded by ``seed`` (the split's seed), the same for every
    config, so the three report and export the same statistics for a config at the same
    ``batches``. A last batch of one image is left out (train-mode batch norm needs more
    than one value per channel, and a network that ends at 1x1 has one)."""
    from itertools import islice

    from nas.data import TensorLoader

    loader = TensorLoader(*train, 64, shuffle=True, device=device,
                          generator=torch.Generator().manual_seed(seed))
    out = list(islice(loader, max(int(batches), 0)))
    if len(out) > 1 and len(out[-1][0]) == 1:
        out.pop()
    return out


def check_data_fits(supernet: Supernet, data: Any, name: str, hint: str = "") -> None:
    """A :class:`UsageError` naming ``--data NAME`` unless ``data`` has the channels,
    resolution and classes the supernet was built for (``hint``: what to do instead)."""
    b = supernet.build
    if (data.in_channels, data.num_classes, (data.input_size,) * 2) != (
            b.in_channels, b.num_classes, tuple(b.input_size)):
        raise UsageError(f"--data {name}: {data.describe()} does not fit the supernet (built "
                         f"for {b.in_channels} channels, {b.input_size[0]}x{b.input_size[1]}, "
                         f"{b.num_classes} classes){hint}")


def held_out_split(supernet: Supernet, data: Any, *, seed: int | None = None,
                   default_seed: int = 0) -> tuple[Any, int]:
    """``data`` split as the supernet's training run split it (the seed and fraction its
    checkpoint records), so no subnet is ranked on images the supernet was trained on.
    ``seed`` overrides the recorded seed; ``default_seed`` stands in for a checkpoint that
    records none. Returns the splits and the seed used."""
    from nas.data import split

    meta = getattr(supernet, "checkpoint_meta", None) or {}
    used = seed if seed is not None else int(meta.get("seed", default_seed))
    if seed is not None and "seed" in meta and int(meta["seed"]) != seed:
        log.warning("seed %d: the supernet was trained with seed %d, so this validation split "
                    "holds images it was trained on (its accuracy reads optimistic); leave "
                    "--seed out to use the training run's own held-out images", seed,
                    int(meta["seed"]))
    return split(data, meta.get("val_fraction", 0.1), seed=used), used
