"""Bad input: configs of another space, missing or bad dimensions, wrong tensors."""

from __future__ import annotations

import pytest
import torch

from nas.errors import ConfigError, NasError, UsageError
from nas.searchspace import Choice, Space, get_space
from nas.supernet import (
    InputShapeError,
    SupernetError,
    build_supernet,
    list_families,
)


@pytest.fixture
def net(supernets):
    return supernets["resnet_like"]


def test_config_of_another_space(net):
    other = get_space("mobilenet_like").min()
    with pytest.raises(ConfigError, match="belongs to space 'mobilenet_like', not 'resnet_like'"):
        with net.activate(other):
            pass


def test_missing_dimension_names_field_and_values(net):
    d = net.space.min().to_dict()
    del d["stem"]
    allowed = ", ".join(str(v) for v in net.space.values("stem.width"))
    with pytest.raises(ConfigError, match=rf"stem\.width: missing \(allowed: {allowed}\)"):
        with net.activate(d):
            pass


def test_bad_value_names_field_and_values(net):
    flat = net.space.min().flat()
    flat["stages.1.blocks.0.kernel"] = 4
    with pytest.raises(ConfigError, match=r"stages\.1\.blocks\.0\.kernel: got 4, allowed: "
                                          r".*3.*5.*7"):
        with net.activate(flat):
            pass


def test_rejected_config_leaves_supernet_untouched(net, x):
    cfg = net.space.max()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with net.activate(cfg):
        stem_out = net.stem.conv._out
        with pytest.raises(ConfigError):
            with net.activate({"stem": {"width": 17}}):
                pass
        assert net.active_config == cfg
        assert net.stem.conv._out == stem_out
        with torch.no_grad():
            net(x)
    assert net.active_config is None
    for k, v in net.state_dict().items():
        assert torch.equal(before[k], v), k


def test_activate_nests_and_restores(net):
    a, b = net.space.min(), net.space.max()
    assert net.active_config is None
    with net.activate(a):
        with net.activate(b) as got:
            assert got == b and net.active_config == b
            assert net.stem.conv._out == b["stem.width"]
        assert net.active_config == a and net.stem.conv._out == a["stem.width"]
    assert net.active_config is None


@pytest.mark.parametrize("shape, what", [
    ((2, 1, 8, 8), r"expected a \(batch, 3, 8, 8\) tensor .* got \(2, 1, 8, 8\)"),
    ((2, 3, 16, 16), r"input_size=8x8\), got \(2, 3, 16, 16\)"),
    ((3, 8, 8), r"got \(3, 8, 8\)"),
])
def test_wrong_input_tensor(net, shape, what):
    with net.activate(net.space.min()):
        with pytest.raises(InputShapeError, match=what):
            net(torch.zeros(shape))
    sub = net.extract(net.space.min())
    with pytest.raises((ValueError, RuntimeError), match="expected a \\(batch, 3, 8, 8\\)"):
        sub(torch.zeros(shape))


def test_forward_without_activation(net, x):
    with pytest.raises(SupernetError, match="no config is active"):
        net(x)
    with pytest.raises(SupernetError, match="no config is active"):
        net.extract()


def test_unknown_family_lists_known():
    space = Space("odd", [Choice("a", (1, 2))], family="no_such_family")
    with pytest.raises(UsageError, match="known families: .*mobilenet_like.*resnet_like"):
        build_supernet(space, in_channels=3, num_classes=2, input_size=8)
    assert {"resnet_like", "mobilenet_like"} <= set(list_families())


def test_space_lacking_a_dimension():
    space = Space("thin", [Choice("a", (1, 2))], family="resnet_like")
    with pytest.raises(SupernetError, match="lacks dimension 'stem.width'"):
        build_supernet(space, in_channels=3, num_classes=2, input_size=8)


@pytest.mark.parametrize("kwargs, field", [
    ({"in_channels": 0, "num_classes": 2, "input_size": 8}, "in_channels"),
    ({"in_channels": 3, "num_classes": 2.5, "input_size": 8}, "num_classes"),
    ({"in_channels": 3, "num_classes": 2, "input_size": (8, 0)}, "input_size"),
    ({"in_channels": 3, "num_classes": 2, "input_size": "big"}, "input_size"),
])
def test_bad_build_arguments(kwargs, field):
    with pytest.raises(NasError, match=field):
        build_supernet(get_space("resnet_like"), **kwargs)
