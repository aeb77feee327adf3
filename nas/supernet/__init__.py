"""Weight-sharing supernets with exact subnet extraction.

>>> import torch
>>> from nas.searchspace import get_space
>>> space = get_space("resnet_like")
>>> net = build_supernet(space, in_channels=3, num_classes=10, input_size=8).eval()
>>> x = torch.randn(2, 3, 8, 8)
>>> cfg = space.min()
>>> with net.activate(cfg):
...     y = net(x)
>>> sub = net.extract(cfg)          # plain PyTorch, copied weights
>>> bool((sub(x) - y).abs().max() <= 1e-5)
True

Kernel cropping on small feature maps. Every resolution in a supernet is fixed by the input
size it was built for, so each ``k x k`` conv (padding ``k // 2``, stride ``st``) knows its
input size ``s`` per axis. Output ``i`` reads input ``i * st + o`` through the tap at offset
``o`` from the centre, and the outputs start at ``0, st, ..., last = ((s - 1) // st) * st``,
so a tap is *dead* (it only ever multiplies zero padding) iff ``o > s - 1`` or ``o < -last``.
The supernet and the extracted model both run the kernel the config's kernel transform
yields, cropped to its live taps (:func:`nas.supernet.static.conv_window`), with padding equal
to the live taps before the centre: at stride 1 that is the centre ``min(k, 2 s - 1)`` per
axis (a 7x7 kernel on a 2x2 map runs as its central 3x3, on a 1x1 map as its centre tap);
at stride 2 the leading side can lose one more tap (a 7x7 stride-2 conv on a 2x2 map keeps
offsets 0 and 1: a 2x2 kernel, padding 0). Outputs are the uncropped conv's up to the order
of summation, and the extracted model is the smaller, equivalent module; parameter and FLOP
counts (fvcore and :func:`analytic_costs`) count the cropped kernels, and
:meth:`Supernet.param_split` reports the held-but-cropped taps separately.

Multi-architecture batches: ``with net.activate_many([cfg1, ..., cfgK]): y = net(x)`` runs
group ``k`` of the batch (``x.tensor_split(K)``) through subnet ``k``, exactly as K separate
passes would (see :meth:`Supernet.activate_many`). A training step that runs several subnets
on the same batch and then one backward pass over their summed losses can wrap the forwards
in ``with net.shared_weights(configs):`` so that each shared conv weight gets one gradient
buffer instead of one per subnet (:meth:`Supernet.shared_weights`).

Families register with :func:`register_family`; :func:`build_supernet` picks one by
``space.family`` (``resnet_like``, ``mobilenet_like``, ``vit_like``).

Supernet checkpoint format (``save_supernet`` / ``load_supernet``), a ``torch.save`` file that
``torch.load(..., weights_only=True)`` reads::

    {"format": "nas.supernet", "version": 3,
     "family": "resnet_like",                    # informative; the space's family decides
     "space": space.to_dict(),                   # the full space definition
     "build": {"in_channels": 3, "num_classes": 10, "input_size": [32, 32]},
                                                 # (+ "stem_stride": 1|2 when set)
     "state_dict": supernet.state_dict(),        # CPU tensors
     "meta": {...}}                              # free, plain types (epoch, metrics, ...)

Loading rebuilds the supernet from ``space`` and ``build`` and loads ``state_dict`` strictly;
a file of another format, version or space (when one is asked for) raises
:class:`CheckpointError`; so does a version-1 file of a quantized ``resnet_like`` or
``mobilenet_like`` network (written with signed activation quantizers after ReLUs) and a
``vit_like`` file of version 1 or 2 (heads that split one width, reductions with a learned
skip convolution).
Extracted subnets save as ``{"format": "nas.subnet", "version": 3, "family", "space",
"config": config.to_dict(), "build", "state_dict"}`` (``save_subnet`` / ``load_subnet``).
"""

from __future__ import annotations

from nas.supernet.base import (
    BuildArgs,
    Costs,
    Supernet,
    analytic_costs,
    build_subnet,
    build_supernet,
    family_class,
    list_families,
    register_family,
    zero_init_last,
)
from nas.supernet.checkpoint import load_subnet, load_supernet, save_subnet, save_supernet
from nas.supernet.costs import measured_costs, model_size_bytes
from nas.supernet.errors import CheckpointError, InputShapeError, SupernetError
from nas.supernet.export import export_onnx, export_torchscript

__all__ = [
    "BuildArgs", "CheckpointError", "Costs", "InputShapeError", "Supernet", "SupernetError",
    "analytic_costs", "build_subnet", "build_supernet", "export_onnx", "export_torchscript",
    "family_class", "list_families", "load_subnet", "load_supernet", "measured_costs",
    "model_size_bytes", "register_family", "save_subnet", "save_supernet", "zero_init_last",
]
