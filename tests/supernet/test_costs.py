"""The analytic cost counter agrees with fvcore on the extracted model."""

from __future__ import annotations

import pytest

from nas.supernet import analytic_costs, measured_costs

N = 15

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_analytic_matches_fvcore(name, supernets):
    net = supernets[name]
    space = net.space
    cfgs = [space.min(), space.max(), net.largest_config()] + space.sample_many(N, 99)
    for cfg in cfgs:
        sub = net.extract(cfg)
        got = net.costs(cfg)
        ref = measured_costs(sub, 3, (8, 8))
        assert got.params == ref.params == sum(p.numel() for p in sub.parameters())
        assert got.flops == ref.flops, (cfg.to_json(), got, ref)  # cropped kernels too
        assert got.size_bytes == ref.size_bytes
        assert analytic_costs(space, cfg, in_channels=3, num_classes=5, input_size=8) == got


def test_size_accounts_for_bits(supernets):
    net = supernets["resnet_like"]
    base = net.space.max().flat()
    sizes = {}
    for bits in (4, 8, 32):
        flat = dict(base)
        for s in range(4):
            flat[f"stages.{s}.bits"] = bits
        sizes[bits] = net.costs(flat)
    assert sizes[4].size_bytes < sizes[8].size_bytes < sizes[32].size_bytes
    # parameters only differ by the activation quantizer ranges, FLOPs not at all
    assert sizes[4].flops == sizes[32].flops
    assert sizes[32].params < sizes[8].params == sizes[4].params
    assert sizes[32].size_bytes == 4 * sizes[32].params


def test_param_split_adds_up(supernets):
    for net in supernets.values():
        split = net.param_split()
        extras = split["kernel_transforms"] + split["attention_variants"] + \
            split["act_quant_ranges"] + split["cropped_kernel_taps"]
        assert split["total"] == sum(p.numel() for p in net.parameters())
        assert split["largest_subnet"] + extras == split["total"]
        assert split["largest_subnet"] == sum(
            p.numel() for p in net.extract(net.largest_config()).parameters())
        assert split["act_quant_ranges"] > 0
        if net.family != "vit_like":  # one kernel size (3x3 reductions), none cropped at 8x8
            assert split["kernel_transforms"] > 0
            assert split["cropped_kernel_taps"] > 0  # 8x8 inputs: the deep 7x7 kernels shrink
