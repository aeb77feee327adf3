"""``stem_stride``: a CNN supernet whose stem halves the input (e.g. 28x28 Fashion-MNIST run at
14x14 from the first stage on), carried through checkpoints, extraction and latency tables."""

from __future__ import annotations

import pytest
import torch

from nas.errors import UsageError
from nas.predictors.latency import TableSettings, current_settings
from nas.searchspace import get_space
from nas.supernet import (
    BuildArgs,
    analytic_costs,
    build_supernet,
    load_subnet,
    load_supernet,
    save_subnet,
    save_supernet,
)
from nas.training import TrainOptions

from .conftest import randomize

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like"])
def test_stride_two_stem_halves_every_resolution_and_extracts_exactly(name, tmp_path):
    space = get_space(name)
    net = build_supernet(space, in_channels=1, num_classes=4, input_size=16, stem_stride=2)
    auto = build_supernet(space, in_channels=1, num_classes=4, input_size=16)
    randomize(net, 1)
    net.eval()
    cfg = space.sample(3)
    assert net.plan(cfg).stem_stride == 2 and net.plan(cfg).stem_hw == (8, 8)
    assert auto.plan(cfg).stem_stride == 1 and auto.plan(cfg).stem_hw == (16, 16)
    assert net.costs(cfg).flops < auto.costs(cfg).flops
    assert net.costs(cfg) == analytic_costs(space, cfg, **net.build.kwargs)
    x = torch.randn(2, 1, 16, 16)
    sub = net.extract(cfg)
    with torch.no_grad(), net.activate(cfg):
        y = net(x)
        assert (y - sub(x)).abs().max().item() <= 1e-4
    # checkpoints keep the stride: the reloaded supernet and subnet compute the same
    path = tmp_path / "net.pt"
    save_supernet(net, path)
    loaded = load_supernet(path).eval()
    assert loaded.build.stem_stride == 2
    save_subnet(sub, cfg, tmp_path / "sub.pt", **net.build.kwargs)
    model, got = load_subnet(tmp_path / "sub.pt")
    with torch.no_grad(), loaded.activate(cfg):
        assert torch.equal(loaded(x), y)
        assert (model.eval()(x) - y).abs().max().item() <= 1e-4


def test_build_args_round_trip_and_bad_values():
    b = BuildArgs.make(1, 10, 28, 2)
    assert b.to_dict() == {"in_channels": 1, "num_classes": 10, "input_size": [28, 28],
                           "stem_stride": 2}
    assert BuildArgs.from_dict(b.to_dict()) == b
    # files written before the option: no key, the automatic stride
    auto = BuildArgs.make(1, 10, 28)
    assert "stem_stride" not in auto.to_dict() and BuildArgs.from_dict(auto.to_dict()) == auto
    for bad in (3, 0, True, "2", 2.0):
        with pytest.raises(UsageError, match=r"^stem_stride: must be one of \[1, 2\]"):
            BuildArgs.make(1, 10, 28, bad)
    with pytest.raises(UsageError, match="stem_stride: family 'vit_like' has no convolutional"):
        build_supernet(get_space("vit_like"), in_channels=3, num_classes=10, input_size=16,
                       stem_stride=2)
    with pytest.raises(UsageError, match="^stem_stride: must be 1, 2 or null"):
        TrainOptions(stem_stride=4)
    with pytest.raises(UsageError, match="^stem_stride: must be 1, 2 or null"):
        TrainOptions(stem_stride=2.0)
    assert TrainOptions(stem_stride=2).stem_stride == 2


def test_latency_settings_carry_the_stride():
    s = current_settings(input_size=28, in_channels=1, stem_stride=2)
    assert TableSettings.from_dict(s.to_dict()) == s
    auto = current_settings(input_size=28, in_channels=1)
    assert s.differences(auto) == ["stem_stride: 2 vs None"]
    legacy = {k: v for k, v in auto.to_dict().items() if k != "stem_stride"}
    assert TableSettings.from_dict(legacy) == auto


def test_a_latency_table_of_a_family_without_a_stem_refuses_the_stride(tmp_path):
    from nas.predictors.latency import build_latency_table

    with pytest.raises(UsageError, match="stem_stride: family 'vit_like' has no convolutional"):
        build_latency_table(get_space("vit_like"), input_size=16, stem_stride=2,
                            out=tmp_path / "t.json", progress=False)


def test_latency_settings_compare_the_stride_as_built_and_refuse_bad_files(tmp_path):
    small = current_settings(input_size=8)
    assert small.differences(current_settings(input_size=8, stem_stride=1)) == []
    assert small.differences(current_settings(input_size=8, stem_stride=2)) == \
        ["stem_stride: None vs 2"]
    big = current_settings(input_size=64)
    assert big.differences(current_settings(input_size=64, stem_stride=2)) == []
    for bad in (3, 0, True, 2.7, "2"):
        with pytest.raises(ValueError, match=r"settings.stem_stride: must be one of \[1, 2\]"):
            TableSettings.from_dict({**small.to_dict(), "stem_stride": bad})


def test_training_refuses_the_stride_for_vit_before_reading_data(tmp_path):
    from nas.training import train

    opts = TrainOptions(space="vit_like", stem_stride=2, data=str(tmp_path / "nope.npz"))
    with pytest.raises(UsageError, match="stem_stride: family 'vit_like' has no convolutional"):
        train(opts, tmp_path / "run", progress=False)
