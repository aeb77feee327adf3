"""Gradients at a config reach exactly the shared weights that config uses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.searchspace import get_space
from nas.supernet import build_supernet
from nas.supernet.ops import (
    ElasticActQuant,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticMHSA,
    ElasticPosEmbed,
)

from .conftest import randomize


def conv_mask(m: ElasticConv2d) -> torch.Tensor:
    """Where a conv's weight gradient may be non-zero at its active setting, derived
    independently of the forward code from the active ints."""
    mask = torch.zeros_like(m.weight, dtype=torch.bool)
    kmax = m.kernel_sizes[-1]
    # a smaller kernel reads the centre of the next larger size through the transforms
    span = kmax if m._k == kmax else min(k for k in m.kernel_sizes if k > m._k)
    s = (kmax - span) // 2
    rows, cols = slice(s, s + span), slice(s, s + span)
    if m._k == kmax and m.in_hw is not None:
        # no transform: only the live taps on the conv's input size (independent rule:
        # a tap is live iff some output position reads an in-bounds pixel through it)
        p = kmax // 2
        live = []
        for size in m.in_hw:
            n_out = (size - 1) // m.stride + 1
            taps = [t for t in range(kmax)
                    if any(0 <= i * m.stride - p + t < size for i in range(n_out))]
            live.append(slice(taps[0], taps[-1] + 1))
        rows, cols = live
    if m.depthwise:
        mask[: m._out, :, rows, cols] = True
        return mask
    cg_out, cg_in = m._out // m._groups, m._in // m._groups
    for g in range(m._groups):
        mask[g * cg_out:(g + 1) * cg_out, g * cg_in:(g + 1) * cg_in, rows, cols] = True
    return mask


def expected_masks(net) -> dict[int, torch.Tensor]:
    masks: dict[int, torch.Tensor] = {}
    for m in net.active_modules():
        if isinstance(m, ElasticConv2d):
            masks[id(m.weight)] = conv_mask(m)
            if m.bias is not None:
                b = torch.zeros_like(m.bias, dtype=torch.bool)
                b[: m._out] = True
                masks[id(m.bias)] = b
            for k in m._chain:
                t = m.kernel_transform[f"{k}x{k}"]
                masks[id(t)] = torch.ones_like(t, dtype=torch.bool)
        elif isinstance(m, (ElasticBatchNorm2d, ElasticLayerNorm)):
            for p in (m.weight, m.bias):
                b = torch.zeros_like(p, dtype=torch.bool)
                b[: m._c] = True
                masks[id(p)] = b
        elif isinstance(m, ElasticLinear):
            w = torch.zeros_like(m.weight, dtype=torch.bool)
            w[: m._out, : m._in] = True
            masks[id(m.weight)] = w
            b = torch.zeros_like(m.bias, dtype=torch.bool)
            b[: m._out] = True
            masks[id(m.bias)] = b
        elif isinstance(m, ElasticActQuant) and m._idx >= 0:
            b = torch.zeros_like(m.clip, dtype=torch.bool)
            b[m._idx] = True
            masks[id(m.clip)] = b
        elif isinstance(m, ElasticMHSA):
            b = torch.zeros_like(m.pos, dtype=torch.bool)
            b[: m._c] = True
            masks[id(m.pos)] = b
        elif isinstance(m, ElasticPosEmbed):
            b = torch.zeros_like(m.pos, dtype=torch.bool)
            b[:, :, : m._c] = True
            masks[id(m.pos)] = b
    return masks


CONFIGS = {
    "resnet_like": {
        "stem": {"width": 24},
        "stages": [
            {"depth": 2, "width": 32, "attention": "mhsa", "bits": 8,
             "blocks": [{"kernel": 3, "cardinality": 2}, {"kernel": 5, "cardinality": 4}]},
            {"depth": 1, "width": 64, "attention": "se", "bits": 32,
             "blocks": [{"kernel": 7, "cardinality": 1}]},
            {"depth": 1, "width": 128, "attention": "ese", "bits": 4,
             "blocks": [{"kernel": 3, "cardinality": 16}]},
            {"depth": 2, "width": 256, "attention": "none", "bits": 32,
             "blocks": [{"kernel": 5, "cardinality": 8}, {"kernel": 3, "cardinality": 1}]},
        ],
    },
}


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_gradients_reach_exactly_the_used_weights(name):
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=3, num_classes=4, input_size=8)
    randomize(net, 3)
    cfg = space.config(CONFIGS[name]) if name in CONFIGS else space.sample(17)
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    net.train()
    with net.activate(cfg):
        F.cross_entropy(net(x), y).backward()
        masks = expected_masks(net)
    assert masks
    for pname, p in net.named_parameters():
        mask = masks.get(id(p))
        if mask is None:
            assert p.grad is None, f"{pname} got a gradient but the config does not use it"
            continue
        assert p.grad is not None, f"{pname} is used but got no gradient"
        assert torch.count_nonzero(p.grad[~mask]) == 0, f"{pname}: gradient outside its slice"
        assert torch.count_nonzero(p.grad[mask]) > 0, f"{pname}: no gradient inside its slice"
