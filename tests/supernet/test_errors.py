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


def _mini_resnet(*, blocks: int = 2, depth: int = 2, stage_names=("0",), divides: bool = True,
                 block_dims=("kernel", "cardinality"), widths=(16, 24),
                 conditional: bool = True) -> Space:
    """A one- or two-stage resnet_like space; the arguments break it in one way each."""
    from nas.searchspace import Divides, Group, IntRange

    dims = {"kernel": Choice("kernel", (3, 5)), "cardinality": Choice("cardinality", (16, 1)),
            "kernel_size": Choice("kernel_size", (3, 5)), "odd": Choice("kernel", (3, 4))}
    stages, cons = [], []
    for name in stage_names:
        from nas.searchspace import Condition

        block_groups = tuple(Group(str(b), tuple(dims[d] for d in block_dims),
                                   when=(Condition(f"stages.{name}.depth", ">", b),)
                                   if b and conditional else ())
                             for b in range(blocks))
        stages.append(Group(name, (IntRange("depth", 1, depth), Choice("width", widths),
                                   Group("blocks", block_groups))))
        if divides and "cardinality" in block_dims:
            cons += [Divides(f"stages.{name}.blocks.{b}.cardinality", f"stages.{name}.width")
                     for b in range(blocks)]
    return Space("mini", [Group("stem", (Choice("width", (8,)),)),
                          Group("stages", tuple(stages))], cons, family="resnet_like")


@pytest.mark.parametrize("kwargs, message", [
    ({"stage_names": ("0", "2")}, r"lacks dimension 'stages.1.width' but has stage 2"),
    ({"block_dims": ("kernel_size",)}, r"'stages.0.blocks.0.kernel_size' is not one the "
                                       r"family builds from .*known: .*blocks.B.kernel"),
    ({"blocks": 2, "depth": 3}, r"stages.0.depth allows 3 blocks but stages.0.blocks.2 has "
                                r"no dimensions .*repeat: 3"),
    ({"conditional": False}, r"stages.0.blocks.1.kernel exists at every depth, but a network "
                             r"with stages.0.depth = 1 does not run block 1"),
    ({"divides": False}, r"stages.0.blocks.0.cardinality=16 does not divide stages.0.width=24.*"
                         r"add Divides"),
    ({"block_dims": ("odd",)}, r"stages.0.blocks.0.kernel allows 4; kernel sizes must be odd"),
])
def test_resnet_space_the_family_cannot_build(kwargs, message):
    """Spaces that would silently train something other than they say are refused when the
    supernet is built, naming the dimension: a stage after a gap in the numbering, a
    misspelt dimension, a block a depth runs without dimensions (or one no depth runs), a
    cardinality that may not divide its width, an even kernel."""
    with pytest.raises(SupernetError, match=message):
        build_supernet(_mini_resnet(**kwargs), in_channels=1, num_classes=2, input_size=8)
    build_supernet(_mini_resnet(), in_channels=1, num_classes=2, input_size=8)  # the base is fine
    # a width every cardinality divides needs no constraint
    build_supernet(_mini_resnet(divides=False, widths=(16, 32)), in_channels=1, num_classes=2,
                   input_size=8)


def test_a_block_no_depth_runs():
    """A block beyond the deepest depth: its condition never holds, so the space is refused
    when it is made; a definition stored before that check (a checkpoint) loads, and the
    family refuses to build it."""
    from nas.errors import SpaceDefinitionError
    from nas.searchspace import Space

    with pytest.raises(SpaceDefinitionError, match=r"stages.0.blocks.2.kernel: condition "
                       r"'stages.0.depth > 2' never holds \(stages.0.depth takes 1..2\)"):
        _mini_resnet(blocks=3, depth=2)
    d = _mini_resnet(blocks=3, depth=3).to_dict()
    d["dims"][1]["children"][0]["children"][0]["high"] = 2  # depth 1..2, as stored once
    with pytest.raises(SupernetError, match=r"stages.0.blocks.2 has dimensions but "
                       r"stages.0.depth allows at most 2 blocks"):
        build_supernet(Space.from_dict(d, stored=True), in_channels=1, num_classes=2,
                       input_size=8)


def test_largest_and_smallest_within_constraints():
    """The largest and smallest subnets are the most and least of each dimension the
    constraints allow together (greedy, in declaration order), not an error when the
    extremes of everything at once are forbidden; and they follow value size, whatever
    order the space lists its values in."""
    from nas.searchspace import Compare, Divides, Group, IntRange

    def space(order):
        from nas.searchspace.builtin import blocks_group

        s0 = Group("0", (IntRange("depth", 1, 2), Choice("width", order((16, 24, 64))),
                         blocks_group(0, 2, (Choice("kernel", order((3, 5))),
                                             Choice("cardinality", order((16, 8, 1)))))))
        s1 = Group("1", (IntRange("depth", 1, 1), Choice("width", order((16, 48))),
                         Group("blocks", (Group("0", (Choice("kernel", (3,)),)),))))
        cons = [Divides(f"stages.0.blocks.{b}.cardinality", "stages.0.width") for b in range(2)]
        cons.append(Compare("stages.1.width", ">=", "stages.0.width"))  # forbids width 64
        return Space("c", [Group("stem", (Choice("width", (8,)),)), Group("stages", (s0, s1))],
                     cons, family="resnet_like")

    fwd, rev = space(lambda v: v), space(lambda v: v[::-1])
    a, b = (build_supernet(s, in_channels=1, num_classes=2, input_size=8) for s in (fwd, rev))
    big, small = a.largest_config(), a.smallest_config()
    assert big["stages.0.width"] == 24 and big["stages.1.width"] == 48  # 64 is forbidden
    assert big["stages.0.blocks.1.cardinality"] == 1 and big["stages.0.blocks.1.kernel"] == 5
    # the smallest: width 16, then the most groups that divide it
    assert small["stages.0.depth"] == 1 and small["stages.0.width"] == 16
    assert small["stages.0.blocks.0.cardinality"] == 16
    assert b.largest_config().flat() == big.flat() and b.smallest_config().flat() == small.flat()
    params = [a.costs(c).params for c in fwd.sample_many(300, 0)]
    assert a.costs(big).params >= max(params) and a.costs(small).params <= min(params)
