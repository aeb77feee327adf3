"""Saving and loading supernets and extracted subnets (``torch.load(weights_only=True)``).

See the :mod:`nas.supernet` docstring for the file formats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import NasError
from nas.searchspace import Config, Space
from nas.supernet.base import BuildArgs, Supernet, build_subnet, build_supernet
from nas.supernet.errors import CheckpointError, NotACheckpointError
from nas.utils.files import atomic_torch_save, torch_load_weights

SUPERNET_FORMAT = "nas.supernet"
SUBNET_FORMAT = "nas.subnet"
# 2: activation quantizers after a ReLU are unsigned. Version-1 files were written with
# signed ones throughout: those of the CNN families with quantized bits would compute
# otherwise and are refused; the rest (nb201, float-only CNNs) still load.
# 3: vit_like heads have a fixed width per stage and its reductions ViT-ResNAS's skip path
# without parameters; vit_like files of versions 1 and 2 are refused.
VERSION = 3
_READABLE = (1, 2, 3)
_SIGNEDNESS_CHANGED = ("resnet_like", "mobilenet_like")


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_torch_save(obj, path)


def save_supernet(supernet: Supernet, path: str | os.PathLike[str], *,
                  meta: Mapping[str, Any] | None = None) -> None:
    """Write a supernet checkpoint (atomically). ``meta``: JSON-like extras (plain types)."""
    payload = {
        "format": SUPERNET_FORMAT,
        "version": VERSION,
        "family": supernet.family,
        "space": supernet.space.to_dict(),
        "build": supernet.build.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in supernet.state_dict().items()},
        "meta": dict(meta or {}),
    }
    _atomic_save(payload, Path(path))


def _what_file(p: Path) -> str | None:
    """What a file that torch cannot load looks like, when it says: text (a JSON or YAML
    file given by mistake), or a torch file cut short."""
    try:
        with open(p, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        # a whole zip whose contents torch refuses says why itself (e.g. a global that
        # would run code); one without its central directory was cut short
        return None if zipfile.is_zipfile(p) else "a torch zip file that is cut short"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        kind = "JSON" if text.lstrip().startswith(("{", "[")) else "text"
        return f"it is a {kind} file; checkpoints are written by nas train / nas extract"
    return None


def _read(path: str | os.PathLike[str], kind: str, device: Any) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise NotACheckpointError(f"{p}: " + ("is a directory, not a file" if p.is_dir()
                                               else "no such file"))
    try:
        payload = torch_load_weights(p, map_location=device or "cpu")
    except (OSError, ValueError) as e:
        raise NotACheckpointError(f"{p}: not a readable {kind} checkpoint "
                                  f"({_what_file(p) or e})") from None
    want = SUPERNET_FORMAT if kind == "supernet" else SUBNET_FORMAT
    if not isinstance(payload, dict) or payload.get("format") != want:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise NotACheckpointError(f"{p}: not a {kind} checkpoint (format {got!r}, expected "
                                  f"{want!r})")
    if payload.get("version") not in _READABLE:
        raise CheckpointError(f"{p}: {kind} checkpoint version {payload.get('version')!r} is "
                              f"not supported (supported: {', '.join(map(str, _READABLE))})")
    missing = [k for k in ("space", "build", "state_dict") if k not in payload]
    if missing:
        raise CheckpointError(f"{p}: {kind} checkpoint lacks {missing[0]!r}")
    return payload


def _space_and_build(p: str | os.PathLike[str], payload: dict[str, Any],
                     space: Space | None, kind: str) -> tuple[Space, BuildArgs]:
    try:
        stored = Space.from_dict(payload["space"], stored=True)
        b = payload["build"]
        build = BuildArgs.from_dict(b)
    except (NasError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{p}: corrupt checkpoint header ({e})") from None
    if space is not None and space.fingerprint != stored.fingerprint:
        # a file of an earlier version whose networks changed says so first (its space
        # definition may have changed with them: vit_like's heads no longer divide)
        _refuse_changed(p, payload, kind, stored)
        same = " (same name, different definition)" if space.name == stored.name else ""
        raise CheckpointError(f"{p}: checkpoint holds space {stored.name!r}, not "
                              f"{space.name!r}{same}")
    return stored, build


def signed_v1_differs(space: Space, config: Config | None = None) -> bool:
    """Whether a version-1 file of ``space`` (``config``: of that subnet only) computed
    otherwise than version 2 does: its quantized CNN layers had signed activation quantizers
    where version 2 has unsigned ones (after ReLUs)."""
    if space.family not in _SIGNEDNESS_CHANGED:
        return False
    paths = [q for q in space.paths if q.rsplit(".", 1)[-1] == "bits"]
    if config is None:
        return any(v < 32 for q in paths for v in space.values(q))
    return any(config.get(q, 32) < 32 for q in paths)


def version_change(space: Space, version: Any, config: Config | None = None
                   ) -> tuple[str, str] | None:
    """Why a file of ``version`` holding ``space`` (``config``: that subnet only) computed
    otherwise than this version does, as ``(networks, reason)``; ``None`` when it loads as
    it is. Training checkpoints (:mod:`nas.training`) follow the same rule."""
    if space.family == "vit_like" and version in (1, 2):
        return ("vit_like networks", "their attention split one q/k/v width among any number "
                "of heads and their reductions had a learned 1x1 skip convolution; version 3 "
                "gives heads a fixed width and the reductions ViT-ResNAS's skip path without "
                "parameters")
    if version == 1 and signed_v1_differs(space, config):
        return (f"quantized {space.family} networks", "its activation quantizers after ReLUs "
                "were signed, version 2 makes them unsigned")
    return None


def _refuse_changed(p: str | os.PathLike[str], payload: dict[str, Any], kind: str,
                    space: Space, config: Config | None = None) -> None:
    change = version_change(space, payload.get("version"), config)
    if change is not None:
        again = ("train the supernet again" if kind == "supernet" else
                 "extract it again from a supernet trained by this version")
        raise CheckpointError(f"{p}: {kind} checkpoint version {payload.get('version')} is not "
                              f"supported for {change[0]} ({change[1]}); {again}")


def load_problem(e: Exception) -> str:
    """The first specific line of a ``load_state_dict`` error (its first line is only
    "Error(s) in loading state_dict for ...")."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    detail = next((ln for ln in lines[1:]), lines[0] if lines else type(e).__name__)
    return detail if len(detail) <= 300 else detail[:297] + "..."


def load_supernet(path: str | os.PathLike[str], *, space: Space | None = None,
                  device: torch.device | str | None = None) -> Supernet:
    """Load a supernet checkpoint. ``space``: raise unless the checkpoint holds this space."""
    payload = _read(path, "supernet", device)
    stored, build = _space_and_build(path, payload, space, "supernet")
    _refuse_changed(path, payload, "supernet", stored)
    try:
        net = build_supernet(stored, **build.kwargs, device=device)
    except NasError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the supernet of space "
                              f"{stored.name!r} ({load_problem(e)})") from None
    net.checkpoint_meta = dict(payload.get("meta") or {})
    return net


def save_subnet(model: nn.Module, config: Config, path: str | os.PathLike[str], *,
                in_channels: int, num_classes: int, input_size: int | tuple[int, int],
                stem_stride: int | None = None) -> None:
    """Write an extracted subnet as its state dict plus config, space and build arguments.
    Raises :class:`CheckpointError` when the model's weights are not those the config and
    build arguments make (the file could not be loaded back)."""
    build = BuildArgs.make(in_channels, num_classes, input_size, stem_stride)
    state = model.state_dict()
    want = build_subnet(config.space, config, **build.kwargs, device="meta").state_dict()
    problem = next((f"no {k}" for k in want if k not in state), None) or next(
        (f"an unexpected {k}" for k in state if k not in want), None) or next(
        (f"{k} is {tuple(state[k].shape)}, the config makes {tuple(v.shape)}"
         for k, v in want.items() if state[k].shape != v.shape), None)
    if problem is not None:
        raise CheckpointError(
            f"save_subnet: the model is not config {config.id} built for {build.in_channels} "
            f"channels, {build.num_classes} classes, input {build.input_size[0]}x"
            f"{build.input_size[1]} ({problem}); pass the config and build arguments it was "
            "extracted with")
    payload = {
        "format": SUBNET_FORMAT,
        "version": VERSION,
        "family": config.space.family,
        "space": config.space.to_dict(),
        "config": config.to_dict(),
        "build": build.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }
    _atomic_save(payload, Path(path))


def load_subnet(path: str | os.PathLike[str], *, space: Space | None = None,
                device: torch.device | str | None = None) -> tuple[nn.Module, Config]:
    """Load a subnet written by :func:`save_subnet`: the rebuilt model, in eval mode (as a
    TorchScript file loads; ``.train()`` to fine-tune it), and its config. ``space``: raise
    unless the file holds a config of this space."""
    payload = _read(path, "subnet", device)
    space, build = _space_and_build(path, payload, space, "subnet")
    if "config" not in payload:
        raise CheckpointError(f"{path}: subnet checkpoint lacks 'config'")
    try:
        cfg = space.config(payload["config"])
    except NasError as e:
        raise CheckpointError(f"{path}: corrupt config ({e})") from None
    _refuse_changed(path, payload, "subnet", space, cfg)
    try:
        model = build_subnet(space, cfg, **build.kwargs, device=device)
    except NasError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: weights do not fit config {cfg.id} "
                              f"({load_problem(e)})") from None
    return model.eval(), cfg
