"""Exporting extracted subnets: TorchScript and ONNX (``onnx`` is an optional extra)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from nas.supernet.errors import SupernetError


def export_torchscript(model: nn.Module, path: str | os.PathLike[str] | None = None
                       ) -> torch.jit.ScriptModule:
    """``torch.jit.script`` the model (and save it to ``path`` if given)."""
    scripted = torch.jit.script(model)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        scripted.save(str(path))
    return scripted


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, in_channels: int,
                input_size: tuple[int, int], opset: int = 17) -> None:
    """Export to ONNX with a dynamic batch dimension (TorchScript-based exporter, no
    onnxscript needed)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SupernetError("ONNX export needs the onnx extra: pip install "
                            "'nas-toolkit[onnx]'") from None
    p = next(model.parameters())
    x = torch.zeros(1, in_channels, *input_size, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(path), input_names=["input"],
                              output_names=["logits"], opset_version=opset,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False)
    finally:
        model.train(was_training)
