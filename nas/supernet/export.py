"""Exporting extracted subnets: TorchScript and ONNX (``onnx`` is an optional extra)."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from nas.supernet.errors import SupernetError
from nas.utils.files import atomic_output

_FRONTEND_LOCK = threading.Lock()
_PARSED: dict[tuple[Any, ...], Any] = {}
_NO_OVERLOADS: set[tuple[Any, ...]] = set()


@contextlib.contextmanager
def _memoized_script_frontend() -> Iterator[None]:
    """Make ``torch.jit.script`` of a model with many modules of few classes cheaper.

    TorchScript's Python front end re-reads and re-parses the source of ``forward`` and
    re-scans every attribute of the class for ``@overload``s once per module *instance*
    (about 0.4 s for an extracted subnet of ~150 modules, most of it this). Within this
    context the parsed definition of each function and the (empty) overload table of each
    class are computed once and reused; type inference and compilation are TorchScript's own,
    so the scripted module is the same. Falls back to plain scripting if the private hooks
    are not there (another torch version).
    """
    try:
        from torch.jit import _recursive as rec

        orig_def, orig_over = rec.get_jit_def, rec.get_overload_annotations
    except (ImportError, AttributeError):
        yield
        return

    def get_jit_def(fn: Any, def_name: str, self_name: str | None = None,
                    is_classmethod: bool = False) -> Any:
        key = (getattr(fn, "__func__", fn), def_name, self_name, is_classmethod)
        if key not in _PARSED:
            _PARSED[key] = orig_def(fn, def_name, self_name=self_name,
                                    is_classmethod=is_classmethod)
        return _PARSED[key]

    def get_overload_annotations(mod: Any, ignored: Any) -> Any:
        key = (type(mod), frozenset(ignored))
        if key in _NO_OVERLOADS:
            return {}
        out = orig_over(mod, ignored)
        if not out:  # an overload table holds bound methods: only the empty one is shared
            _NO_OVERLOADS.add(key)
        return out

    with _FRONTEND_LOCK:
        rec.get_jit_def, rec.get_overload_annotations = get_jit_def, get_overload_annotations
        try:
            yield
        finally:
            rec.get_jit_def, rec.get_overload_annotations = orig_def, orig_over


def export_torchscript(model: nn.Module, path: str | os.PathLike[str] | None = None
                       ) -> torch.jit.ScriptModule:
    """``torch.jit.script`` the model (and save it to ``path`` if given, atomically: a
    temporary file beside it, then a rename). Scripting reuses TorchScript's parse of each
    class's methods across module instances and calls (:func:`_memoized_script_frontend`),
    so exporting many subnets stays cheap."""
    with _memoized_script_frontend():
        scripted = torch.jit.script(model)
    if path is not None:
        with atomic_output(path) as tmp:
            scripted.save(tmp)
    return scripted


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, in_channels: int,
                input_size: tuple[int, int], opset: int = 17) -> None:
    """Export to ONNX with a dynamic batch dimension (TorchScript-based exporter, no
    onnxscript needed); written to a temporary file beside ``path``, then renamed."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SupernetError("ONNX export needs the onnx extra: pip install "
                            "'nas-toolkit[onnx]'") from None
    p = next(model.parameters())
    x = torch.zeros(1, in_channels, *input_size, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), atomic_output(path) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), tmp, input_names=["input"],
                              output_names=["logits"], opset_version=opset,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False)
    finally:
        model.train(was_training)
