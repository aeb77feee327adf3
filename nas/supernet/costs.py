"""Costs of extracted subnets measured on the module (fvcore) and counted by hand.

:func:`measured_costs` runs fvcore's tracer on a static model; the analytic counter
(:meth:`Supernet.costs`, :func:`nas.supernet.analytic_costs`) builds nothing and agrees with
it (see :class:`~nas.supernet.base.Costs` for the FLOP convention).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from nas.supernet.base import Costs
from nas.supernet.static import QConv2d, QLinear, weight_bytes

log = logging.getLogger(__name__)


def model_size_bytes(model: nn.Module) -> int:
    """Parameter bytes: fake-quantized conv and linear weights at their bits plus one fp32
    scale per output channel, everything else fp32."""
    total = 0
    counted: set[int] = set()
    for m in model.modules():
        if isinstance(m, (QConv2d, QLinear)) and m.bits < 32:
            total += weight_bytes(m.weight.numel(), m.weight.shape[0], m.bits)
            counted.add(id(m.weight))
    for p in model.parameters():
        if id(p) not in counted:
            total += 4 * p.numel()
    return total


def measured_costs(model: nn.Module, in_channels: int, input_size: tuple[int, int]) -> Costs:
    """Parameters, FLOPs (fvcore, batch 1, eval mode) and size of a static model."""
    from fvcore.nn import FlopCountAnalysis

    p = next(model.parameters())
    x = torch.zeros(1, in_channels, *input_size, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            fca = FlopCountAnalysis(model, x)
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            fca.tracer_warnings("none")
            flops = int(fca.total())
    finally:
        model.train(was_training)
    params = sum(q.numel() for q in model.parameters())
    return Costs(params, flops, model_size_bytes(model))
