"""Tiny resnet_like- and vit_like-family spaces so that training tests take seconds."""

from __future__ import annotations

import pytest

from nas.searchspace import Choice, Divides, Group, IntRange, Space
from nas.searchspace.builtin import blocks_group


def tiny_resnet(reverse: bool = False) -> Space:
    """``reverse``: every choice listed the other way (largest first), the same networks."""
    def order(values: tuple) -> tuple:
        return values[::-1] if reverse else values

    stages, cons = [], []
    for s, widths in enumerate(((8, 16), (16, 24))):
        stages.append(Group(str(s), (
            IntRange("depth", 1, 2),
            Choice("width", order(widths)),
            Choice("attention", order(("none", "se", "ese", "mhsa"))),
            Choice("bits", order((4, 8, 32)), default=32),
            blocks_group(s, 2, (Choice("kernel", order((3, 5))),
                                Choice("cardinality", order((8, 2, 1)), default=1))),
        )))
        cons += [Divides(f"stages.{s}.blocks.{b}.cardinality", f"stages.{s}.width")
                 for b in range(2)]
    return Space("tiny_resnet", [Group("stem", (Choice("width", (8,)),)),
                                 Group("stages", tuple(stages))], cons, family="resnet_like")


def tiny_vit() -> Space:
    stages, cons = [], []
    for s, dims in enumerate(((16, 24), (24, 32))):
        stages.append(Group(str(s), (
            IntRange("depth", 1, 2),
            Choice("embed_dim", dims),
            Choice("heads", (2, 4)),
            Choice("mlp_ratio", (2, 3)),
            Choice("attention", ("window", "global")),
            Choice("bits", (4, 8, 32), default=32),
        )))
        cons.append(Divides(f"stages.{s}.heads", f"stages.{s}.embed_dim"))
    return Space("tiny_vit", [Group("stages", tuple(stages))], cons, family="vit_like")


@pytest.fixture(scope="session")
def tiny_space() -> Space:
    return tiny_resnet()


@pytest.fixture(scope="session")
def tiny_vit_space() -> Space:
    return tiny_vit()
