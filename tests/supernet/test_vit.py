"""The ``vit_like`` family: windowed attention against a brute-force reference, padded
windows and odd grids exact after extraction and through TorchScript, patch sizes, errors."""

from __future__ import annotations

import pytest
import torch

from nas.errors import ConfigError
from nas.searchspace import Choice, Divides, Group, IntRange, Space, get_space
from nas.supernet import SupernetError, build_supernet, export_torchscript, measured_costs
from nas.supernet.static import token_attention
from nas.supernet.vit import patch_size, vit_layout

from .conftest import randomize

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated",
                                        "ignore::DeprecationWarning")


def reference_attention(q, k, v, heads, hw, window):
    """Attention over all N tokens with an explicit N x N mask: token i may attend to token
    j iff both lie in the same ``window x window`` cell of the grid (no padding tricks)."""
    b, n, c = q.shape
    d = c // heads
    rows = torch.arange(n) // hw[1]
    cols = torch.arange(n) % hw[1]
    if window > 0:
        cell = (rows // window) * 1000 + cols // window
        allowed = cell[:, None] == cell[None, :]
    else:
        allowed = torch.ones(n, n, dtype=torch.bool)
    qh, kh, vh = (t.reshape(b, n, heads, d).transpose(1, 2) for t in (q, k, v))
    s = qh @ kh.transpose(-2, -1) * d ** -0.5
    s = s.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(s, -1) @ vh).transpose(1, 2).reshape(b, n, c)


@pytest.mark.parametrize("hw", [(8, 8), (7, 7), (5, 3), (4, 9), (2, 2), (1, 6)])
@pytest.mark.parametrize("window", [0, 4, 2])
def test_token_attention_matches_masked_reference(hw, window):
    g = torch.Generator().manual_seed(0)
    n = hw[0] * hw[1]
    q, k, v = (torch.randn(2, n, 12, generator=g) for _ in range(3))
    for heads in (1, 3, 4):
        got = token_attention(q, k, v, heads, hw, window)
        want = reference_attention(q, k, v, heads, hw, window)
        assert torch.allclose(got, want, atol=1e-5), (hw, window, heads)
    if window and (hw[0] > window or hw[1] > window):  # local attention really is local
        assert not torch.allclose(token_attention(q, k, v, 2, hw, window),
                                  token_attention(q, k, v, 2, hw, 0), atol=1e-3)


def test_patch_sizes_and_layout():
    assert [patch_size((s, s)) for s in (4, 8, 15, 16, 28, 32, 64, 224, 512)] == \
        [1, 1, 1, 2, 2, 4, 8, 16, 16]
    from nas.supernet.base import BuildArgs

    space = get_space("vit_like")
    p, grid, lay = vit_layout(space, BuildArgs(1, 10, (28, 28)))
    assert (p, grid) == (2, (14, 14))
    assert [hw for _, hw in lay] == [(14, 14), (7, 7), (4, 4)]
    assert [st for st, _ in lay] == [1, 2, 2]


@pytest.mark.parametrize("size", [(14, 14), (10, 6), (3, 5)])
def test_padded_windows_and_odd_grids_extract_exactly(size):
    """Grids that are not multiples of the 4x4 window (padded, masked windows), non-square
    and tiny inputs: the extracted model equals the supernet, TorchScript equals both, and
    fvcore agrees with the analytic count."""
    torch.manual_seed(0)
    space = get_space("vit_like")
    net = build_supernet(space, in_channels=2, num_classes=4, input_size=size)
    randomize(net, 3)
    net.eval()
    x = torch.randn(2, 2, *size)
    flat = space.max().flat()
    for s in range(3):
        flat[f"stages.{s}.attention"] = "window"
    cfgs = [space.config(flat), space.min()] + space.sample_many(4, 11)
    for cfg in cfgs:
        with torch.no_grad():
            with net.activate(cfg):
                y = net(x)
            sub = net.extract(cfg)
            assert torch.allclose(sub(x), y, atol=1e-5), cfg.to_json()
            assert torch.allclose(export_torchscript(sub)(x), y, atol=1e-5), cfg.to_json()
        assert net.costs(cfg) == measured_costs(sub, 2, size), cfg.to_json()


def test_window_attention_changes_the_function():
    torch.manual_seed(0)
    space = get_space("vit_like")
    net = build_supernet(space, in_channels=1, num_classes=3, input_size=16).eval()
    randomize(net, 1)
    flat = space.max().flat()
    x = torch.randn(2, 1, 16, 16)
    outs = {}
    with torch.no_grad():
        for kind in ("global", "window"):
            flat["stages.0.attention"] = kind
            with net.activate(flat):
                outs[kind] = net(x)
    assert not torch.allclose(outs["global"], outs["window"], atol=1e-4)
    g, w = (net.costs({**flat, "stages.0.attention": k}).flops for k in ("global", "window"))
    assert w < g  # 16 tokens per window instead of 64


def test_bad_spaces_and_configs():
    space = get_space("vit_like")
    net = build_supernet(space, in_channels=1, num_classes=3, input_size=8)
    flat = space.max().flat()
    flat["stages.0.heads"] = 3  # does not divide 128
    with pytest.raises(ConfigError, match="stages.0.heads"):
        with net.activate(flat):
            pass

    def make(attention=("global", "window"), depth=(1, 2)):
        stage = Group("0", (IntRange("depth", *depth), Choice("embed_dim", (8, 16)),
                            Choice("heads", (1, 2)), Choice("attention", attention)))
        return Space("v", [Group("stages", (stage,))], [Divides("stages.0.heads",
                                                               "stages.0.embed_dim")],
                     family="vit_like")

    with pytest.raises(SupernetError, match="stages.0.attention allows 'axial'"):
        build_supernet(make(attention=("global", "axial")), in_channels=1, num_classes=2,
                       input_size=8)
    with pytest.raises(SupernetError, match="stages.0.depth allows 0"):
        build_supernet(make(depth=(0, 2)), in_channels=1, num_classes=2, input_size=8)
    no_dims = Space("v", [Group("stages", (Group("0", (IntRange("depth", 1, 2),)),))],
                    family="vit_like")
    with pytest.raises(SupernetError, match="lacks dimension 'stages.0.embed_dim'"):
        build_supernet(no_dims, in_channels=1, num_classes=2, input_size=8)
    s0 = Group("0", (IntRange("depth", 1, 2), Choice("embed_dim", (8, 16))))
    s2 = Group("2", (IntRange("depth", 1, 2), Choice("embed_dim", (8, 16))))
    gap = Space("v", [Group("stages", (s0, s2))], family="vit_like")
    with pytest.raises(SupernetError, match="lacks dimension 'stages.1.embed_dim' but has "
                                            "stage 2"):
        build_supernet(gap, in_channels=1, num_classes=2, input_size=8)
    # a small space of its own builds, trains a step and extracts exactly
    small = make()
    net = build_supernet(small, in_channels=1, num_classes=2, input_size=(6, 10))
    x = torch.randn(3, 1, 6, 10)
    for cfg in small.sample_many(4, 0):
        with net.activate(cfg):
            net.train()
            net(x).sum().backward()
            net.eval()
            with torch.no_grad():
                assert torch.allclose(net.extract(cfg)(x), net(x), atol=1e-5)


def test_recalibration_is_a_no_op_without_batch_norm():
    space = get_space("vit_like")
    net = build_supernet(space, in_channels=1, num_classes=3, input_size=8)

    def batches():
        raise AssertionError("no batch should be read")
        yield  # pragma: no cover

    assert net.recalibrate_bn(space.min(), batches()) == 0


def _heads_first_space(constrained: bool = True) -> Space:
    stage = Group("0", (IntRange("depth", 1, 2), Choice("heads", (1, 3)),
                        Choice("embed_dim", (8, 12, 16))))
    cons = [Divides("stages.0.heads", "stages.0.embed_dim")] if constrained else []
    return Space("heads_first", [Group("stages", (stage,))], cons, family="vit_like")


def test_largest_config_keeps_the_widest_dimension():
    """heads declared before embed_dim: ``max()`` keeps 3 heads and gives up width (12); the
    largest config is the widest network, with whatever heads divide it."""
    space = _heads_first_space()
    assert space.max()["stages.0.embed_dim"] == 12
    net = build_supernet(space, in_channels=1, num_classes=2, input_size=8)
    big = net.largest_config()
    assert big["stages.0.embed_dim"] == 16 and big["stages.0.heads"] == 1
    split = net.param_split()  # adds up (it raised with the narrower "largest" config)
    assert split["largest_subnet"] == sum(p.numel() for p in net.extract(big).parameters())


def test_heads_that_cannot_split_a_dimension_are_refused_at_build():
    with pytest.raises(SupernetError, match=r"stages.0.heads=3 does not divide "
                                            r"stages.0.embed_dim=8.*add Divides"):
        build_supernet(_heads_first_space(constrained=False), in_channels=1, num_classes=2,
                       input_size=8)
