"""Shared fixtures: small randomised supernets of the built-in spaces (8x8 inputs)."""

from __future__ import annotations

import pytest
import torch

from nas.searchspace import get_space
from nas.supernet import build_supernet
from nas.supernet.ops import (
    ElasticActQuant,
    ElasticBatchNorm2d,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticMHSA,
    ElasticPosEmbed,
)

SPACES = ("resnet_like", "mobilenet_like", "vit_like")
SIZE = 8
CLASSES = 5


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread avoids sync overhead."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def randomize(net: torch.nn.Module, seed: int = 0) -> None:
    """Make every tensor matter: non-identity kernel transforms, non-trivial batch-norm
    statistics and affine terms, layer-norm affine terms, quantizer ranges, position
    encodings, a unit-scale head."""
    g = torch.Generator().manual_seed(seed)

    def rnd(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(t.shape, generator=g) * (hi - lo) + lo

    with torch.no_grad():
        for name, p in net.named_parameters():
            if "kernel_transform" in name:
                n = p.shape[0]
                p.copy_(torch.eye(n) + 0.05 * torch.randn(n, n, generator=g))
        for m in net.modules():
            if isinstance(m, ElasticBatchNorm2d):
                m.weight.copy_(rnd(m.weight, 0.5, 1.5))
                m.bias.copy_(rnd(m.bias, -0.2, 0.2))
                m.running_mean.copy_(rnd(m.running_mean, -0.2, 0.2))
                m.running_var.copy_(rnd(m.running_var, 0.5, 2.0))
            elif isinstance(m, ElasticActQuant) and m.clip is not None:
                m.clip.copy_(rnd(m.clip, 1.0, 3.0))
                m.initialized.fill_(True)
            elif isinstance(m, ElasticLinear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.max_in ** 0.5)
                m.bias.copy_(rnd(m.bias, -0.5, 0.5))
            elif isinstance(m, (ElasticMHSA, ElasticPosEmbed)):
                m.pos.copy_(torch.randn(m.pos.shape, generator=g) * 0.5)
            elif isinstance(m, ElasticLayerNorm):
                m.weight.copy_(rnd(m.weight, 0.5, 1.5))
                m.bias.copy_(rnd(m.bias, -0.2, 0.2))


@pytest.fixture(scope="session")
def supernets():
    """``{space name: eval-mode randomised supernet}`` built once per session."""
    torch.manual_seed(0)
    out = {}
    for name in SPACES:
        net = build_supernet(get_space(name), in_channels=3, num_classes=CLASSES,
                             input_size=SIZE)
        randomize(net, 1)
        out[name] = net.eval()
    return out


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
