"""Multi-architecture batches: ``activate_many`` computes each group exactly as its subnet
would in a separate pass (outputs, batch-norm statistics, gradients)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from nas.searchspace import get_space
from nas.supernet import InputShapeError, SupernetError, build_supernet

from .conftest import randomize


def grads(net):
    return [p.grad if p.grad is not None else None for p in net.parameters()]


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_groups_equal_separate_passes(name, mode):
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=3, num_classes=5, input_size=8)
    randomize(net, 4)
    ref = copy.deepcopy(net)
    net.train(mode == "train")
    ref.train(mode == "train")
    cfgs = [space.min()] + space.sample_many(2, 8) + [space.max()]
    x = torch.randn(12, 3, 8, 8)
    y = torch.randint(0, 5, (12,))
    with net.activate_many(cfgs) as active:
        assert len(active) == 4 and net.active_config is None
        out = net(x)
    F.cross_entropy(out, y, reduction="sum").backward()
    outs = []
    for cfg, xi, yi in zip(cfgs, x.tensor_split(4), y.tensor_split(4)):
        with ref.activate(cfg):
            o = ref(xi)
        F.cross_entropy(o, yi, reduction="sum").backward()
        outs.append(o)
    assert (out - torch.cat(outs)).abs().max().item() <= 1e-6
    for (n, a), b in zip(net.named_buffers(), ref.buffers()):
        assert torch.equal(a, b), n  # running statistics moved group after group
    for (n, p), q in zip(net.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            scale = q.grad.abs().max().item() + 1e-6
            assert (p.grad - q.grad).abs().max().item() <= 1e-5 * scale, n


def test_unequal_groups_and_errors(supernets):
    net = supernets["resnet_like"]
    space = net.space
    cfgs = space.sample_many(3, 2)
    x = torch.randn(7, 3, 8, 8)  # groups of 3, 2, 2
    with torch.no_grad():
        with net.activate_many(cfgs):
            y = net(x)
        for cfg, xi, yi in zip(cfgs, x.tensor_split(3), y.tensor_split(3)):
            with net.activate(cfg):
                assert torch.equal(net(xi), yi)
    with pytest.raises(InputShapeError, match="cannot be split into 3 groups"):
        with net.activate_many(cfgs), torch.no_grad():
            net(x[:2])
    with pytest.raises(SupernetError, match="no configs"):
        with net.activate_many([]):
            pass
    bad = dict(space.max().flat())
    bad["stages.0.width"] = 17
    with pytest.raises(ConfigError, match="stages.0.width"):
        with net.activate_many([space.min(), bad]):
            pass
    # the previous activation comes back afterwards
    with net.activate(space.min()):
        with net.activate_many(cfgs):
            pass
        assert net.active_config == space.min()
    assert net.active_config is None


@pytest.mark.parametrize("name", ["resnet_like", "vit_like"])
def test_shared_weights_give_the_gradients_of_separate_backward_passes(name):
    """``shared_weights`` (one gather per conv and linear for several subnets, one backward
    pass over their summed losses, as ``sandwich`` runs) computes what a backward pass per
    subnet computes, and leaves nothing shared behind."""
    torch.manual_seed(0)
    space = get_space(name)
    net = build_supernet(space, in_channels=3, num_classes=5, input_size=8).train()
    randomize(net, 2)
    ref = copy.deepcopy(net)
    cfgs = [space.max(), space.min(), *space.sample_many(2, 5)]
    x = torch.randn(6, 3, 8, 8)
    y = torch.randint(0, 5, (6,))
    with net.shared_weights(cfgs):
        total = x.new_zeros(())
        for cfg in cfgs:
            with net.activate(cfg):
                total = total + F.cross_entropy(net(x), y)
    total.backward()
    for cfg in cfgs:
        with ref.activate(cfg):
            F.cross_entropy(ref(x), y).backward()
    for (n, p), q in zip(net.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            scale = q.grad.abs().max().item() + 1e-6
            assert (p.grad - q.grad).abs().max().item() <= 1e-5 * scale, n
    for (n, a), b in zip(net.named_buffers(), ref.buffers()):
        assert torch.equal(a, b), n
    assert not any(getattr(m, "_shared", None) for m in net.modules())
    with torch.no_grad(), net.shared_weights(cfgs):  # without autograd: nothing to share
        assert not any(getattr(m, "_shared", None) for m in net.modules())


def test_elastic_linear_gathered_weights_match_plain_slices():
    """The training path of ``ElasticLinear`` (one gather for all settings) gives the
    outputs and gradients of plain slicing, for one setting and for shared ones."""
    from nas.supernet.ops import ElasticLinear, fake_quant_weight

    torch.manual_seed(0)
    lin = ElasticLinear(12, 10)
    with torch.no_grad():
        lin.bias.normal_()
    ref = copy.deepcopy(lin)
    settings = [(12, 10, 32), (7, 5, 8), (12, 4, 4), (7, 5, 8)]
    xs = [torch.randn(3, s[0]) for s in settings]
    lin.share_weights(settings)
    total = 0.0
    for (i, o, b), x in zip(settings, xs):
        lin.set_active(i, o, b)
        total = total + lin(x).square().sum()
    lin.share_weights(None)
    total.backward()
    want = 0.0
    for (i, o, b), x in zip(settings, xs):
        w = fake_quant_weight(ref.weight[:o, :i], b)
        want = want + F.linear(x, w, ref.bias[:o]).square().sum()
    want.backward()
    assert torch.allclose(total, want, rtol=1e-6)
    assert torch.allclose(lin.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(lin.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-6)
    assert lin._shared is None
    lin.set_active(7, 5, 8)  # one setting, no sharing: the same gather path
    x = torch.randn(2, 7)
    assert torch.allclose(lin(x), F.linear(x, fake_quant_weight(ref.weight[:5, :7], 8),
                                           ref.bias[:5]), atol=1e-6)
