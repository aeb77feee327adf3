"""Elastic layers, batch-norm recalibration, channel reordering and non-built-in spaces."""

from __future__ import annotations

import pytest
import torch

from nas.searchspace import Choice, Condition, Divides, Group, IntRange, Space, get_space
from nas.supernet import Supernet, build_supernet
from nas.supernet.ops import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    Region,
    clear_weight_caches,
    gather_regions,
    group_diagonal,
)
from nas.supernet.static import FakeQuantAct, fake_quant_weight

from .conftest import randomize


def test_group_diagonal_matches_a_loop():
    w = torch.randn(12, 12, 3, 3)
    for g in (1, 2, 3, 4, 6, 12):
        got = group_diagonal(w, g)
        c = 12 // g
        ref = torch.cat([w[j * c:(j + 1) * c, j * c:(j + 1) * c] for j in range(g)])
        assert torch.equal(got, ref)


def test_gather_regions_equals_slicing_values_and_gradients():
    """One gather of several regions returns what slicing returns, and its single gradient
    buffer receives what autograd's slices would have summed (overlapping regions add)."""
    torch.manual_seed(0)
    regions = [Region(8, 8, 1, 0, 7, 0, 7), Region(6, 4, 1, 1, 5, 1, 5),
               Region(8, 8, 4, 2, 3, 2, 3), Region(4, 4, 2, 3, 1, 2, 2),
               Region(8, 8, 4, 2, 3, 2, 3)]  # the same region twice: gradients add
    w = torch.randn(8, 8, 7, 7, requires_grad=True)
    ref = w.detach().clone().requires_grad_()
    outs = gather_regions(w, regions)
    weights = [torch.randn(o.shape) for o in outs]
    sum((o * c).sum() for o, c in zip(outs, weights)).backward()
    for r, o, c in zip(regions, outs, weights):
        v = ref[: r.out, : r.inp, r.r0: r.r0 + r.rn, r.c0: r.c0 + r.cn]
        if r.groups > 1:
            v = group_diagonal(v, r.groups)
        assert torch.equal(o, v.detach()) and o.is_contiguous()
        (v * c).sum().backward()
    assert torch.allclose(w.grad, ref.grad, atol=1e-6)
    # a region no output of which is used contributes nothing
    w.grad = None
    a, _ = gather_regions(w, regions[:2])
    a.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_multiarch_groups_share_one_gather_per_conv(monkeypatch):
    """In a multi-architecture batch every active conv reads its K groups' weights with one
    gather (one gradient buffer per shared weight), and forgets them afterwards."""
    import nas.supernet.ops as ops

    torch.manual_seed(0)
    space = get_space("resnet_like")
    net = build_supernet(space, in_channels=3, num_classes=3, input_size=8).train()
    calls = []
    orig = ops.gather_regions
    monkeypatch.setattr(ops, "gather_regions",
                        lambda w, rs: (calls.append(len(rs)), orig(w, rs))[1])
    cfgs = space.sample_many(4, 3)
    with net.activate_many(cfgs):
        net(torch.randn(8, 3, 8, 8)).sum().backward()
    convs = [m for m in net.modules() if isinstance(m, ElasticConv2d)]
    used = [m for m in convs if m.weight.grad is not None]
    assert len(calls) <= len(used) and max(calls) > 1  # several groups per gather
    assert all(m._shared is None for m in convs)
    # (that the gradients equal those of separate passes: tests/supernet/test_many.py)


def test_kernel_transform_starts_as_centre_crop():
    conv = ElasticConv2d(4, 6, (3, 5, 7))
    for k in (3, 5, 7):
        conv.set_active(4, 6, k)
        s = (7 - k) // 2
        assert torch.equal(conv.derived_weight(), conv.weight[:, :, s:s + k, s:s + k])
    assert sum(p.numel() for p in conv.kernel_transform.parameters()) == 25 * 25 + 9 * 9


def test_kernel_transforms_of_live_taps_only_equal_transform_then_crop():
    """The kernel transforms compute only the taps the next transform or the live crop reads;
    the result equals transforming whole kernels and cropping after (OFA's definition), in
    values and in the gradients of the weight and the transforms."""
    from nas.supernet.static import conv_window

    torch.manual_seed(0)
    for hw, stride in (((1, 1), 1), ((2, 2), 1), ((3, 3), 2), ((9, 9), 1)):
        conv = ElasticConv2d(6, 6, (3, 5, 7), stride=stride, elastic_groups=True, in_hw=hw)
        with torch.no_grad():
            for t in conv.kernel_transform.values():
                t.add_(0.2 * torch.randn_like(t))
        for k in (3, 5, 7):
            for groups in (1, 2):
                conv.set_active(6, 6, k, groups)
                w = conv.weight
                ref = w[:, :, (7 - k) // 2:(7 + k) // 2, (7 - k) // 2:(7 + k) // 2] \
                    if k == 7 else w[:, :, 1:6, 1:6]
                if groups > 1:
                    ref = group_diagonal(ref, groups)
                cur = 7 if k == 7 else 5
                for kk in (5, 3):
                    if kk < k:
                        continue
                    s = (cur - kk) // 2
                    ref = ref[:, :, s:s + kk, s:s + kk]
                    o, i = ref.shape[:2]
                    ref = (ref.reshape(o * i, kk * kk) @ conv.kernel_transform[f"{kk}x{kk}"].T
                           ).reshape(o, i, kk, kk)
                    cur = kk
                (r0, rn), (c0, cn), _ = conv_window(k, stride, hw)
                ref = ref[:, :, r0:r0 + rn, c0:c0 + cn]
                got = conv.derived_weight()
                assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-6), (hw, k)
                g = torch.randn(ref.shape)
                params = [conv.weight, *conv.kernel_transform.values()]
                ga = torch.autograd.grad((conv.training_weights([conv._setting[:5]])[0] * g)
                                         .sum(), params, allow_unused=True)
                gb = torch.autograd.grad((ref * g).sum(), params, allow_unused=True)
                for a, b in zip(ga, gb):
                    assert (a is None) == (b is None) or (a is None and not b.any()) \
                        or (b is None and not a.any())
                    if a is not None and b is not None:
                        assert torch.allclose(a, b, atol=1e-5)


def test_elastic_conv_equals_torch_conv():
    torch.manual_seed(0)
    conv = ElasticConv2d(8, 8, (3, 5), stride=2, elastic_groups=True)
    with torch.no_grad():
        conv.kernel_transform["3x3"].add_(0.1 * torch.randn(9, 9))
    x = torch.randn(2, 4, 9, 9)
    conv.set_active(4, 4, 3, groups=2)
    ref = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, bias=False)
    with torch.no_grad():
        w = conv.weight[:4, :4, 1:4, 1:4]
        w = torch.cat([w[:2, :2], w[2:, 2:]])
        w = (w.reshape(-1, 9) @ conv.kernel_transform["3x3"].T).reshape(4, 2, 3, 3)
        ref.weight.copy_(w)
        assert torch.allclose(conv(x), ref(x), atol=1e-6)
        cached = conv(x)  # eval-time cache: same result, invalidated by in-place updates
        assert torch.equal(cached, conv(x))
        conv.weight.mul_(2)
        assert torch.allclose(conv(x), 2 * ref(x), atol=1e-5)


def _cached_convs():
    """Elastic convs whose eval weight is a slice, a crop, a transform or a quantization of
    the shared weight, with their active settings and inputs."""
    torch.manual_seed(0)
    out = []
    c = ElasticConv2d(8, 8, (3, 7), in_hw=(2, 2))  # max kernel cropped: a strided view
    c.set_active(8, 8, 7)
    out.append((c, torch.randn(2, 8, 2, 2)))
    c = ElasticConv2d(8, 8, (3,))  # channel slice: a strided view
    c.set_active(4, 6, 3)
    out.append((c, torch.randn(2, 4, 5, 5)))
    c = ElasticConv2d(8, 8, (3, 5), elastic_groups=True)  # transform + groups
    c.set_active(4, 4, 3, groups=2)
    out.append((c, torch.randn(2, 4, 5, 5)))
    c = ElasticConv2d(8, 8, (3,))  # fake-quantized full weight
    c.set_active(8, 8, 3, bits=4)
    out.append((c, torch.randn(2, 8, 5, 5)))
    return out


def _reference(conv, x):
    with torch.no_grad():
        w = fake_quant_weight(conv.derived_weight(), conv._bits).contiguous()
        return torch.nn.functional.conv2d(x, w, None, conv.stride, conv._pad, 1, conv._groups)


def test_eval_cache_is_contiguous_and_exact():
    convs = _cached_convs()
    # the crop and the channel slice are strided views of the shared weight ...
    assert [c.derived_weight().is_contiguous() for c, _ in convs[:2]] == [False, False]
    for conv, x in convs:
        with torch.no_grad():
            y = conv(x)
            w = conv.active_weight()
            assert w.is_contiguous()  # ... the eval cache is not
            assert w is conv.active_weight()  # cached
            assert torch.equal(y, _reference(conv, x))


def test_eval_cache_is_invalidated():
    for conv, x in _cached_convs():
        with torch.no_grad():
            before = conv(x)
            conv.weight.mul_(2)  # in-place update: version bump
            assert torch.allclose(conv(x), 2 * before, atol=1e-5)
            conv.load_state_dict({"weight": conv.weight * 0.5}, strict=False)
            assert torch.allclose(conv(x), before, atol=1e-5)
            conv.weight.data.mul_(3)  # invisible to the key: clear explicitly
            clear_weight_caches(conv)
            assert torch.allclose(conv(x), 3 * before, atol=1e-5)
            # a new storage for the weight (as a device move gives)
            conv.weight.data = conv.weight.data / 3
            assert torch.allclose(conv(x), before, atol=1e-5)


@pytest.mark.parametrize("opt", ["sgd", "sgd_fused", "adamw_fused"])
def test_eval_cache_sees_optimizer_steps(opt):
    # fused optimizers update in place without bumping versions; the step hook catches them
    cls, kwargs = {"sgd": (torch.optim.SGD, {}),
                   "sgd_fused": (torch.optim.SGD, {"fused": True}),
                   "adamw_fused": (torch.optim.AdamW, {"fused": True})}[opt]
    for conv, x in _cached_convs():
        try:
            o = cls(conv.parameters(), lr=0.5, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pytest.skip(f"{opt} not available")
        with torch.no_grad():
            conv(x)
        conv(x).square().sum().backward()
        o.step()
        with torch.no_grad():
            assert torch.equal(conv(x), _reference(conv, x))


def test_supernet_eval_weights_are_contiguous():
    net = build_supernet(get_space("resnet_like"), in_channels=3, num_classes=3,
                         input_size=16).eval()
    space = net.space
    for cfg in [space.max(), space.min(), *space.sample_many(4, 1)]:
        with net.activate(cfg), torch.no_grad():
            net(torch.randn(1, 3, 16, 16))
            for m in net.active_modules():
                if isinstance(m, ElasticConv2d):
                    assert m.active_weight().is_contiguous(), cfg.id


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like"])
def test_recalibrate_bn_is_the_exact_average(name):
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=3, num_classes=3, input_size=8)
    randomize(net, 5)
    net.eval()
    cfg = space.sample(1)
    batches = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    # reference: the static subnet with PyTorch's cumulative averaging (momentum=None)
    ref = net.extract(cfg).train()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for b in batches:
            ref(b)
    untouched = net.stem.bn.running_mean[cfg["stem.width"]:].clone()
    assert net.recalibrate_bn(cfg, batches) == 3
    assert not net.training
    with net.activate(cfg):
        state = net.subnet_state_dict()
    for k, v in ref.state_dict().items():
        if k.endswith(("running_mean", "running_var")):
            assert torch.allclose(state[k], v, atol=1e-5, rtol=1e-4), k
    assert torch.equal(net.stem.bn.running_mean[cfg["stem.width"]:], untouched)
    assert all(m._recal < 0 for m in net.modules() if isinstance(m, ElasticBatchNorm2d))


def _randomized_supernet(name: str) -> tuple[Space, Supernet]:
    """A seeded supernet of the built-in space ``name`` on 8x8 inputs, its weights and
    batch-norm statistics randomized (so channel orders matter), in eval mode."""
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=3, num_classes=3, input_size=8)
    randomize(net, 6)
    return space, net.eval()


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_reorder_channels_keeps_the_full_width_function(name, x):
    space, net = _randomized_supernet(name)
    full = [space.max(), net.largest_config()]
    # random configs at full widths (and full expansion): the permuted channels are all used
    for cfg in space.sample_many(6, 3):
        flat = cfg.flat()
        for p in flat:
            if p.endswith(("width", "expand", "embed_dim", "mlp_ratio")):
                flat[p] = max(space.values(p))
        for p in flat:  # vit_like: heads that divide the (now largest) embedding dimension
            if p.endswith("heads"):
                dim = flat[p.replace("heads", "embed_dim")]
                flat[p] = max(h for h in space.values(p) if dim % h == 0)
            if p.endswith("bits") and name == "vit_like":
                # float: the permuted sums round differently in the last bit, and a value that
                # sits on a quantization boundary then flips a whole level (seen at 8 bits)
                flat[p] = 32
        full.append(space.config(flat))
    narrow = space.min()
    with torch.no_grad():
        before = []
        for cfg in full + [narrow]:
            with net.activate(cfg):
                before.append(net(x))
        w0 = {k: v.clone() for k, v in net.state_dict().items()}
        net.reorder_channels()
        for cfg, y in zip(full, before):
            with net.activate(cfg):
                assert (net(x) - y).abs().max() <= 1e-5, cfg.to_json()
        with net.activate(narrow):
            assert not torch.allclose(net(x), before[-1])  # narrow subnets changed channels
    assert any(not torch.equal(w0[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_reorder_channels_keeping_a_width(name, x):
    # OFA's second sort: with keep, the channels the kept config uses stay its own (only
    # their order changes, in producers and consumers alike), so the kept config and the
    # full network compute what they did; a narrower config gets other channels
    from nas.supernet.ops import importance_order

    imp = torch.tensor([1.0, 5.0, 3.0, 9.0, 2.0, 8.0])
    assert importance_order(imp).tolist() == [3, 5, 1, 2, 4, 0]
    assert importance_order(imp, 3).tolist() == [1, 2, 0, 3, 5, 4]
    space, net = _randomized_supernet(name)
    full = net.largest_config()
    flat = full.flat()
    for p in flat:
        if p.endswith(("width", "expand", "embed_dim", "mlp_ratio")):
            vals = space.values(p)
            flat[p] = vals[-2] if len(vals) > 1 else vals[-1]
        if p.endswith("heads"):  # vit_like: fewer heads (whole heads are kept)
            flat[p] = sorted(space.values(p))[-2]
    keep = space.config(flat)
    narrow = space.min()
    with torch.no_grad():
        before = {}
        for cfg in (full, keep, narrow):
            with net.activate(cfg):
                before[cfg] = net(x)
        net.reorder_channels(keep=keep)
        for cfg in (full, keep):
            with net.activate(cfg):
                assert (net(x) - before[cfg]).abs().max() <= 1e-4, cfg.to_json()
        with net.activate(narrow):
            assert not torch.allclose(net(x), before[narrow])


def _small_resnet_space() -> Space:
    stages, cons = [], []
    for s, widths in enumerate(((8, 12), (12, 24))):
        block = (Choice("kernel", (1, 3)), Choice("cardinality", (1, 2, 4)))
        stages.append(Group(str(s), (
            IntRange("depth", 1, 2), Choice("width", widths),
            Choice("attention", ("none", "ese", "mhsa")), Choice("bits", (2, 6, 32)),
            Group("blocks", tuple(Group(str(b), block, when=(Condition(
                f"stages.{s}.depth", ">", b),) if b else ()) for b in range(2))))))
        cons += [Divides(f"stages.{s}.blocks.{b}.cardinality", f"stages.{s}.width")
                 for b in range(2)]
    return Space("tiny_resnet", [Group("stem", (Choice("width", (4, 8)),)),
                                 Group("stages", tuple(stages))], cons, family="resnet_like")


def _small_mobile_space() -> Space:
    stages = []
    for s, widths in enumerate(((8, 16), (16, 24), (24, 32))):
        block = (Choice("expand", (2, 3)), Choice("kernel", (3, 5)))
        stages.append(Group(str(s), (
            IntRange("depth", 1, 3), Choice("width", widths),
            Choice("attention", ("none", "se", "ese", "mhsa")),
            Group("blocks", tuple(Group(str(b), block, when=(Condition(
                f"stages.{s}.depth", ">", b),) if b else ()) for b in range(3))))))
    return Space("tiny_mobile", [Group("stem", (Choice("width", (8, 12)),)),
                                 Group("stages", tuple(stages)),
                                 Group("head", (Choice("width", (32, 48)),))],
                 family="mobilenet_like")


@pytest.mark.parametrize("make", [_small_resnet_space, _small_mobile_space])
def test_spaces_with_other_values_build_and_extract_exactly(make):
    torch.manual_seed(0)
    space = make()
    net = build_supernet(space, in_channels=2, num_classes=3, input_size=(6, 10))
    randomize(net, 2)
    net.eval()
    x = torch.randn(3, 2, 6, 10)
    for cfg in [space.min(), space.max()] + space.sample_many(25, 0):
        with torch.no_grad():
            with net.activate(cfg):
                y = net(x)
            sub = net.extract(cfg)
            assert (sub(x) - y).abs().max() <= 1e-5
        assert net.costs(cfg).params == sum(p.numel() for p in sub.parameters())
    split = net.param_split()
    assert split["total"] == sum(p.numel() for p in net.parameters())


def _one_stage(bits=(4, 32), depth=(1, 2), attention=None):  # noqa: ANN001, ANN202
    block = (Choice("kernel", (3,)), Choice("cardinality", (1,)))
    extra = (Choice("attention", attention),) if attention else ()
    stage = Group("0", (IntRange("depth", *depth), Choice("width", (8,)),
                        Choice("bits", bits), *extra,
                        Group("blocks", tuple(Group(str(b), block, when=(Condition(
                            "stages.0.depth", ">", b),) if b else ()) for b in range(depth[1])))))
    return Space("one", [Group("stem", (Choice("width", (8,)),)), Group("stages", (stage,))],
                 family="resnet_like")


def test_recalibration_changes_batch_norm_only_and_fails_cleanly():
    """Recalibrating runs only the batch norms in train mode: a quantiser whose range was never
    trained keeps it (it used to set it from the calibration batch, so results depended on
    which config was evaluated first); an empty or failing recalibration leaves the
    statistics as they were; max_batches takes exactly that many batches."""
    from nas.supernet.ops import ElasticActQuant

    torch.manual_seed(0)
    space = _one_stage(bits=(4, 32))
    net = build_supernet(space, in_channels=1, num_classes=3, input_size=8)
    net.eval()
    net.stages[0].blocks[0].train()  # a per-module mode the user set is kept as well
    cfg = space.config({"stem": {"width": 8}, "stages": [
        {"depth": 1, "width": 8, "bits": 4, "blocks": [{"kernel": 3, "cardinality": 1}]}]})
    quants = [m for m in net.modules() if isinstance(m, ElasticActQuant) and m.clip is not None]
    clips = [m.clip.detach().clone() for m in quants]
    it = iter([torch.randn(4, 1, 8, 8) for _ in range(5)])
    assert net.recalibrate_bn(cfg, it, max_batches=2) == 2
    assert len(list(it)) == 3
    assert all(torch.equal(m.clip, c) and not m.initialized.any() for m, c in zip(quants, clips))
    assert not net.training and net.stages[0].blocks[0].training
    before = net.stem.bn.running_mean.clone()
    with pytest.raises(Exception, match="no batches"):
        net.recalibrate_bn(cfg, [])
    assert torch.equal(net.stem.bn.running_mean, before)
    with pytest.raises(Exception, match="expected a"):  # the second batch has 2 channels
        net.recalibrate_bn(cfg, [torch.randn(4, 1, 8, 8), torch.randn(4, 2, 8, 8)])
    assert torch.equal(net.stem.bn.running_mean, before)
    with pytest.raises(Exception, match="max_batches must be an int >= 1"):
        net.recalibrate_bn(cfg, [torch.randn(4, 1, 8, 8)], max_batches=0)


def test_stage_values_no_network_can_have_are_refused():
    from nas.supernet import SupernetError

    for bits in ((1, 32), (0, 32), (32, 64)):  # (64: float as 32 is, under another id)
        with pytest.raises(SupernetError, match="stages.0.bits allows"):
            build_supernet(_one_stage(bits=bits), in_channels=1, num_classes=3, input_size=8)
    with pytest.raises(SupernetError, match="stages.0.depth allows 0"):
        build_supernet(_one_stage(depth=(0, 2)), in_channels=1, num_classes=3, input_size=8)
    with pytest.raises(SupernetError, match=r"space '.*': stages\.0\.attention: 'cbam' is not "
                       r"supported; known: none, se"):
        build_supernet(_one_stage(attention=("none", "cbam")), in_channels=1, num_classes=3,
                       input_size=8)
    from nas.searchspace import IntRange, Space

    with pytest.raises(Exception, match="the space names no family, so no supernet can be "
                       "built for it"):
        build_supernet(Space("x", [IntRange("a", 1, 2)]), in_channels=1, num_classes=3,
                       input_size=8)
    # a space without float bits: its largest config's quantiser ranges are its own
    net = build_supernet(_one_stage(bits=(4, 8)), in_channels=1, num_classes=3, input_size=8)
    split = net.param_split()
    assert split["total"] == sum(p.numel() for p in net.parameters())


def test_activating_the_config_in_place_skips_the_module_updates(monkeypatch):
    """Plans are cached by config and the modules are only updated when the plan changes
    (activating the same config again cost ~0.6 ms of module updates per call); outputs stay
    those of the config, also after multi-architecture batches moved the modules."""
    torch.manual_seed(0)
    space = get_space("resnet_like")
    net = build_supernet(space, in_channels=3, num_classes=3, input_size=8).eval()
    randomize(net, 1)
    a, b = space.min(), space.max()
    calls = []
    orig = type(net)._apply_plan
    monkeypatch.setattr(type(net), "_apply_plan", lambda self, p: (calls.append(1), orig(self, p)))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        for _ in range(3):
            with net.activate(a):
                ya = net(x)
        assert len(calls) == 1
        with net.activate_many([b, a]):
            net(torch.randn(4, 3, 8, 8))
        with net.activate(a):  # the modules hold a's plan again after the groups: no update
            assert torch.equal(net(x), ya)
        with net.activate(b):
            yb = net(x)
        assert torch.allclose(yb, net.extract(b).eval()(x), atol=1e-5)


def test_unsigned_activation_quantization_uses_every_level():
    """After a ReLU the activation quantizer is unsigned: 2**b - 1 levels on [0, clip] (a
    signed range would spend half of its 2**b - 1 levels on values that never occur), the
    range still learns, and the ResNet supernet uses it where inputs cannot be negative."""
    from nas.supernet.static import attention_output_signed, fake_quant_act

    x = torch.linspace(0, 1, 1001)
    clip = torch.tensor(1.0, requires_grad=True)
    for bits in (4, 8):
        uq, sq = fake_quant_act(x, clip, bits, signed=False), fake_quant_act(x, clip, bits)
        assert len(torch.unique(uq)) == 2 ** bits
        assert len(torch.unique(sq)) == 2 ** (bits - 1)
        assert (uq - x).abs().max() <= 0.5 / (2 ** bits - 1) + 1e-6
        assert (uq - x).abs().max() < (sq - x).abs().max() / 1.9
    assert torch.equal(fake_quant_act(torch.tensor([-0.3, 2.0]), clip, 4, signed=False),
                       torch.tensor([0.0, 1.0]))  # clamped to [0, clip]
    fake_quant_act(x * 2, clip, 4, signed=False).sum().backward()
    assert clip.grad is not None and clip.grad > 0  # values above the range pull it up
    assert [attention_output_signed(k) for k in ("none", "se", "ese", "mhsa")] == [
        False, False, False, True]

    block = (Choice("kernel", (3,)), Choice("cardinality", (1,)))
    space = Space("att", [Group("stem", (Choice("width", (8,)),)), Group("stages", (Group("0", (
        IntRange("depth", 1, 1), Choice("width", (8,)), Choice("attention", ("none", "mhsa")),
        Choice("bits", (4, 32)), Group("blocks", (Group("0", block),)))),))],
        family="resnet_like")
    torch.manual_seed(0)
    net = build_supernet(space, in_channels=1, num_classes=3, input_size=8).eval()
    randomize(net)
    x = torch.randn(2, 1, 8, 8)
    for att, signed in (("none", False), ("mhsa", True)):
        cfg = space.config({"stem": {"width": 8}, "stages": [
            {"depth": 1, "width": 8, "bits": 4, "attention": att,
             "blocks": [{"kernel": 3, "cardinality": 1}]}]})
        with net.activate(cfg):
            blk = net.stages[0].blocks[0]
            assert [m._signed for m in (blk.aq0, blk.aq1, blk.aq2)] == [False, False, signed]
            sub = net.extract(cfg).eval()
            with torch.no_grad():
                assert torch.equal(sub(x), net(x))
        quants = [m for m in sub.modules() if isinstance(m, FakeQuantAct)]
        assert [m.signed for m in quants] == [False, False, signed]
