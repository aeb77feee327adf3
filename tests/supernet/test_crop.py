"""Kernel cropping on tiny feature maps: the dead-tap rule, checked against real convs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from nas.searchspace import get_space
from nas.supernet import build_supernet, measured_costs
from nas.supernet.ops import ElasticConv2d
from nas.supernet.static import QConv2d, conv_window, live_taps

from .conftest import randomize

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def brute_live(size: int, kernel: int, stride: int) -> set[int]:
    """Offsets (from the centre) of the taps through which some output reads an in-bounds
    input, by enumeration."""
    p = kernel // 2
    n_out = (size + 2 * p - kernel) // stride + 1
    return {t - p for t in range(kernel) for i in range(n_out)
            if 0 <= i * stride - p + t < size}


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_live_taps_match_enumeration(stride):
    for size, kernel in itertools.product(range(1, 12), (1, 3, 5, 7, 9)):
        before, after = live_taps(size, kernel, stride)
        assert set(range(-before, after + 1)) == brute_live(size, kernel, stride), \
            (size, kernel, stride)


@pytest.mark.parametrize("stride", [1, 2])
def test_each_tap_is_dead_exactly_when_the_rule_says(stride):
    """A one-hot kernel at a tap gives a non-zero output iff the tap is live."""
    for h, w in ((1, 1), (2, 2), (2, 3), (3, 5), (4, 4), (1, 6), (8, 8)):
        x = torch.rand(1, 1, h, w) + 0.5  # strictly positive: a live tap shows
        for k in (3, 5, 7):
            rows, cols = live_taps(h, k, stride), live_taps(w, k, stride)
            for r, c in itertools.product(range(k), range(k)):
                wt = torch.zeros(1, 1, k, k)
                wt[0, 0, r, c] = 1.0
                y = F.conv2d(x, wt, stride=stride, padding=k // 2)
                live = (-rows[0] <= r - k // 2 <= rows[1]) and (-cols[0] <= c - k // 2 <= cols[1])
                assert bool(y.abs().sum() > 0) == live, (h, w, k, stride, r, c)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_cropped_conv_equals_uncropped(stride):
    g = torch.Generator().manual_seed(0)
    for (h, w), k, groups in itertools.product(
            ((1, 1), (2, 2), (2, 5), (3, 3), (4, 4), (4, 7), (5, 2), (8, 8), (9, 9)),
            (1, 3, 5, 7), (1, 2)):
        x = torch.randn(2, 4, h, w, generator=g)
        wt = torch.randn(6, 4 // groups, k, k, generator=g)
        ref = F.conv2d(x, wt, stride=stride, padding=k // 2, groups=groups)
        (r0, rn), (c0, cn), pad = conv_window(k, stride, (h, w))
        got = F.conv2d(x, wt[:, :, r0:r0 + rn, c0:c0 + cn], stride=stride, padding=pad,
                       groups=groups)
        assert got.shape == ref.shape, ((h, w), k, stride)
        assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5), ((h, w), k, stride)
        if stride == 1:  # the symmetric rule of the docs: min(k, 2 s - 1) per axis
            assert (rn, cn) == (min(k, 2 * h - 1), min(k, 2 * w - 1))


def test_elastic_conv_crops_after_the_kernel_transform():
    torch.manual_seed(0)
    for stride, hw in ((1, (2, 2)), (1, (1, 3)), (2, (2, 2)), (2, (4, 4)), (2, (3, 6))):
        big = ElasticConv2d(4, 4, (3, 5, 7), stride)
        crop = ElasticConv2d(4, 4, (3, 5, 7), stride, in_hw=hw)
        with torch.no_grad():
            for k in ("3x3", "5x5"):
                big.kernel_transform[k].add_(0.1 * torch.randn_like(big.kernel_transform[k]))
        crop.load_state_dict(big.state_dict())
        x = torch.randn(3, 4, *hw)
        for k in (3, 5, 7):
            big.set_active(4, 4, k)
            crop.set_active(4, 4, k)
            assert crop.active_kernel == tuple(
                n for _, n in conv_window(k, stride, hw)[:2])
            assert torch.allclose(crop(x), big(x), atol=1e-5), (stride, hw, k)


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like"])
def test_extracted_kernels_are_cropped(name):
    """On 8x8 inputs the max config's deep convs run cropped, in the supernet and in the
    extracted model alike, and the network computes what the uncropped one would."""
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=3, num_classes=5, input_size=8)
    randomize(net, 2)
    net.eval()
    cfg = space.max()
    sub = net.extract(cfg)
    convs = [m for m in sub.modules() if isinstance(m, QConv2d)]
    assert any(m.kernel_size[0] < 7 for m in convs if m.kernel_size != (1, 1))
    assert any(m.kernel_size == (1, 1) and m.padding == (0, 0) and m.stride == (1, 1)
               and m.groups > 1 or m.kernel_size == (1, 1) for m in convs)
    # reference: the same weights with the crops undone (input size unknown to every conv)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad(), net.activate(cfg):
        y = net(x)
        for m in net.modules():
            if isinstance(m, ElasticConv2d):
                m.in_hw = None
                m.set_active(m._in, m._out, m._k, m._groups, m._bits)
        y_full = net(x)
    assert torch.allclose(y, y_full, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(sub(x), y)


@pytest.mark.parametrize("size", [(5, 9), (3, 2), (1, 4)])
@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_non_square_inputs(name, size):
    """Odd, non-square and one-pixel inputs: crops per axis; the extracted model equals the
    supernet, the supernet equals its uncropped self, and fvcore agrees with the analytic
    count exactly."""
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=2, num_classes=3, input_size=size)
    randomize(net, 6)
    net.eval()
    x = torch.randn(2, 2, *size)
    for cfg in [space.max()] + space.sample_many(2, 4):
        sub = net.extract(cfg)
        with torch.no_grad():
            with net.activate(cfg):
                y = net(x)
            assert (sub(x) - y).abs().max().item() <= 1e-5
        assert net.costs(cfg) == measured_costs(sub, 2, size)
    convs = [m for m in net.modules() if isinstance(m, ElasticConv2d)]
    sizes = [m.in_hw for m in convs]
    with torch.no_grad(), net.activate(space.max()):
        y = net(x)
        for m in convs:
            m.in_hw = None
            m.set_active(m._in, m._out, m._k, m._groups, m._bits)
        try:
            assert torch.allclose(net(x), y, atol=1e-5)
        finally:
            for m, hw in zip(convs, sizes):
                m.in_hw = hw
