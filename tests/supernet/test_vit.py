"""The ``vit_like`` family: windowed attention against a brute-force reference, padded
windows and odd grids exact after extraction and through TorchScript, patch sizes, errors."""

from __future__ import annotations

import pytest
import torch

from nas.errors import ConfigError
from nas.searchspace import Choice, Group, IntRange, Space, get_space
from nas.supernet import SupernetError, build_supernet, export_torchscript, measured_costs
from nas.supernet.static import token_attention
from nas.supernet.vit import head_width, patch_size, vit_layout

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
    flat["stages.0.heads"] = 5  # not one of its values
    with pytest.raises(ConfigError, match="stages.0.heads"):
        with net.activate(flat):
            pass

    def make(attention=("global", "window"), depth=(1, 2)):
        stage = Group("0", (IntRange("depth", *depth), Choice("embed_dim", (8, 16)),
                            Choice("heads", (1, 3)), Choice("attention", attention)))
        return Space("v", [Group("stages", (stage,))], family="vit_like")

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


def _heads_first_space() -> Space:
    stage = Group("0", (IntRange("depth", 1, 2), Choice("heads", (1, 3)),
                        Choice("embed_dim", (8, 12, 16))))
    return Space("heads_first", [Group("stages", (stage,))], family="vit_like")


def test_largest_config_has_the_most_heads_and_the_widest_dimension():
    """heads declared before embed_dim: the largest config is the widest network with the
    most heads, and every weight but the extras belongs to it."""
    space = _heads_first_space()
    net = build_supernet(space, in_channels=1, num_classes=2, input_size=8)
    big = net.largest_config()
    assert big["stages.0.embed_dim"] == 16 and big["stages.0.heads"] == 3
    split = net.param_split()  # adds up
    assert split["largest_subnet"] == sum(p.numel() for p in net.extract(big).parameters())


def test_heads_have_one_width_in_every_subnet():
    """ViT-ResNAS's elastic heads: a head is ``head_width`` channels of q/k/v in every
    config (16 = 16 // 1 over 3 heads, rounded up: 6), so fewer heads drop whole heads and a
    narrower stream keeps them; the subnet's projections are the supernet's first rows and
    columns, whatever the embedding dimension."""
    torch.manual_seed(0)
    space = _heads_first_space()
    assert head_width(space, 0) == 6
    net = build_supernet(space, in_channels=1, num_classes=2, input_size=8).eval()
    randomize(net, 2)
    big = net.stages[0].blocks[0].attn
    assert big.q.weight.shape == (18, 16) and big.proj.weight.shape == (16, 18)
    x = torch.randn(2, 1, 8, 8)
    for heads in (1, 3):
        for dim in (8, 12, 16):
            cfg = {"stages.0.depth": 1, "stages.0.heads": heads, "stages.0.embed_dim": dim}
            sub = net.extract(cfg)
            attn = sub.stages[0].blocks[0].attn
            assert attn.heads == heads
            assert attn.q.weight.shape == (6 * heads, dim)
            assert torch.equal(attn.q.weight, big.q.weight[:6 * heads, :dim])
            assert torch.equal(attn.proj.weight, big.proj.weight[:dim, :6 * heads])
            with torch.no_grad(), net.activate(cfg):
                assert torch.allclose(sub(x), net(x), atol=1e-5)
    assert net.costs({"stages.0.depth": 1, "stages.0.heads": 3, "stages.0.embed_dim": 8}) \
        .params > net.costs({"stages.0.depth": 1, "stages.0.heads": 1,
                             "stages.0.embed_dim": 8}).params


def test_the_reduction_skip_is_an_average_pool_padded_with_zeros():
    """ViT-ResNAS's residual spatial reduction: with its main path silenced (conv and
    position embedding zero), a reduction maps tokens to their 2x2 average pool (an odd side:
    the cut windows average their own tokens) with zero channels appended, and its skip path
    holds no parameters."""
    space = get_space("vit_like")
    net = build_supernet(space, in_channels=1, num_classes=3, input_size=(28, 28)).eval()
    red = net.stages[2].blocks[0]  # a 7x7 grid reduced to 4x4
    # (aq: the main path's activation quantizers, one learned range per bit width)
    assert {n.split(".")[0] for n, _ in red.named_parameters()} == {"norm", "aq", "conv", "pos"}
    with torch.no_grad():
        red.conv.weight.zero_()
        red.conv.bias.zero_()
        red.pos.pos.zero_()
    cfg = space.max()
    d_in, d = cfg["stages.1.embed_dim"], cfg["stages.2.embed_dim"]
    x = torch.randn(2, 49, d_in)
    with torch.no_grad(), net.activate(cfg):
        y = red(x)
    grid = x.transpose(1, 2).reshape(2, d_in, 7, 7)
    want = torch.nn.functional.avg_pool2d(grid, 2, 2, ceil_mode=True).flatten(2).transpose(1, 2)
    assert y.shape == (2, 16, d)
    assert torch.allclose(y[..., :d_in], want, atol=1e-6)
    assert torch.equal(y[..., d_in:], torch.zeros(2, 16, d - d_in))
    assert torch.allclose(y[0, 15, :d_in], x[0, 48, :d_in])  # the corner: one token alone


def test_reorder_sorts_whole_heads_by_importance():
    """ViT-ResNAS's rewiring: each block's heads are re-sorted as whole heads (their q/k/v
    rows and output-projection columns together) by importance, most important first, and
    the full network computes what it did."""
    torch.manual_seed(0)
    space = _heads_first_space()
    net = build_supernet(space, in_channels=1, num_classes=2, input_size=8).eval()
    randomize(net, 3)
    attn = net.stages[0].blocks[0].attn
    with torch.no_grad():  # make the last head clearly the most important
        attn.q.weight[12:18] *= 10
    x = torch.randn(2, 1, 8, 8)
    big = net.largest_config()
    with torch.no_grad(), net.activate(big):
        before = net(x)
    q_last = attn.q.weight[12:18].clone()
    net.reorder_channels()
    with torch.no_grad(), net.activate(big):
        assert torch.allclose(net(x), before, atol=1e-5)
    # now the first head, its rows in their order (their columns follow the stream's sort)
    assert torch.equal(attn.q.weight[:6].sort(dim=1).values, q_last.sort(dim=1).values)
    imp = (attn.proj.weight.abs().sum(0) + sum(m.weight.abs().sum(1) + m.bias.abs()
                                               for m in (attn.q, attn.k, attn.v)))
    per_head = imp.reshape(3, 6).sum(1)
    assert per_head[0] >= per_head[1] >= per_head[2]
