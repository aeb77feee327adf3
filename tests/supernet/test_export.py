"""TorchScript and ONNX exports are written atomically: a failed export leaves no partial file
(and an older file at the path intact), a successful one leaves no temporary beside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.supernet import export_onnx, export_torchscript

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 5)).eval()


def _torn_write(path: object, *args: object, **kwargs: object) -> None:
    """A writer killed half-way: some bytes at the path it was given, then an error."""
    Path(str(path)).write_bytes(b"half a model")
    raise OSError("No space left on device")


def _check_mode(path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_torchscript_export_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    path = tmp_path / "sub" / "model.pt"
    export_torchscript(model, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    _check_mode(path)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(torch.jit.load(path)(x), model(x))
    before = path.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(torch.jit.RecursiveScriptModule, "save",
                  lambda self, f, **kw: _torn_write(f))
        with pytest.raises(OSError, match="No space left"):
            export_torchscript(model, path)
    assert path.read_bytes() == before  # the old export survives, untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary
    with monkeypatch.context() as m:
        m.setattr(torch.jit.RecursiveScriptModule, "save",
                  lambda self, f, **kw: _torn_write(f))
        with pytest.raises(OSError):
            export_torchscript(model, tmp_path / "new.pt")
    assert not (tmp_path / "new.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_onnx_export_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = pytest.importorskip("onnx")
    model = _model()
    path = tmp_path / "model.onnx"
    export_onnx(model, path, in_channels=3, input_size=(6, 6))
    onnx.checker.check_model(onnx.load(str(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    _check_mode(path)
    before = path.read_bytes()
    monkeypatch.setattr(torch.onnx, "export", lambda model, args, f, **kw: _torn_write(f))
    with pytest.raises(OSError, match="No space left"):
        export_onnx(model, path, in_channels=3, input_size=(6, 6))
    assert path.read_bytes() == before
    with pytest.raises(OSError):
        export_onnx(model, tmp_path / "new.onnx", in_channels=3, input_size=(6, 6))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
