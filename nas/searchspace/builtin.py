"""The built-in spaces: ``resnet_like``, ``mobilenet_like``, ``vit_like`` and ``nb201``.

Input channels, resolution and class count are not part of any space: they come from the data
when a supernet is built. Values are listed from the cheapest to the most expensive option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.errors import ConfigError
from nas.searchspace.constraints import Compare, Constraint, Divides
from nas.searchspace.dims import Choice, Condition, Group, IntRange
from nas.searchspace.registry import register_arch_format, register_space
from nas.searchspace.space import Config, Space

ATTENTION_CNN = ("none", "se", "ese", "mhsa")
BITS = (4, 8, 32)


def blocks_group(stage: int, max_depth: int, children: Sequence[Any],
                 min_depth: int = 1) -> Group:
    """Groups ``"0"``..``max_depth-1`` of per-block dimensions; block ``i`` exists when the
    stage's depth exceeds ``i`` (no condition where the minimum depth already ensures it)."""
    depth = f"stages.{stage}.depth"
    return Group("blocks", tuple(
        Group(str(i), tuple(children),
              when=(Condition(depth, ">", i),) if i >= min_depth else ())
        for i in range(max_depth)
    ))


@register_space("resnet_like")
def resnet_like() -> Space:
    """ResNet/ResNeXt family: a stem and 4 stages of RegNetX-style bottleneck blocks
    (1x1 conv, k x k grouped conv with ``cardinality`` groups, 1x1 conv; all at the stage
    width), the stage's attention after each block's grouped conv, and the stage's
    quantization bits for weights and activations. The first block of stages 1-3 halves the
    resolution."""
    max_depth = (3, 4, 6, 3)
    # CIFAR-ResNet scale (16..256 channels), so that supernets train in minutes on a CPU.
    widths = ((16, 24, 32), (32, 48, 64), (64, 96, 128), (128, 192, 256))
    defaults = (24, 48, 96, 192)
    stages = []
    cons: list[Constraint] = []
    for s in range(4):
        # cheapest first: 16 groups is the sparsest grouped conv, 1 the dense one
        block = (Choice("kernel", (3, 5, 7)),
                 Choice("cardinality", (16, 8, 4, 2, 1), default=1))
        stages.append(Group(str(s), (
            IntRange("depth", 1, max_depth[s], default=min(2, max_depth[s])),
            Choice("width", widths[s], default=defaults[s]),
            Choice("attention", ATTENTION_CNN),
            Choice("bits", BITS, default=32),
            blocks_group(s, max_depth[s], block),
        )))
        for b in range(max_depth[s]):
            cons.append(Divides(f"stages.{s}.blocks.{b}.cardinality", f"stages.{s}.width"))
        if s:
            cons.append(Compare(f"stages.{s}.width", ">=", f"stages.{s - 1}.width"))
    return Space(
        "resnet_like",
        [Group("stem", (Choice("width", (16, 24, 32), default=24),)),
         Group("stages", tuple(stages))],
        cons,
        family="resnet_like",
        description=resnet_like.__doc__ or "",
    )


@register_space("mobilenet_like")
def mobilenet_like() -> Space:
    """MobileNetV2/OFA family: a stem, 5 stages of MBConv blocks (1x1 expand, k x k
    depthwise, optional SE, 1x1 project) with per-block expand ratio and kernel, per-stage
    depth, width, attention and bits, and a 1x1 head before pooling. Stages 0, 1, 2 and 4
    halve the resolution in their first block."""
    widths = ((24, 32), (40, 48), (80, 96), (112, 128), (160, 192))
    stages = []
    for s in range(5):
        block = (Choice("expand", (3, 4, 6), default=4), Choice("kernel", (3, 5, 7)))
        stages.append(Group(str(s), (
            IntRange("depth", 2, 4, default=3),
            Choice("width", widths[s]),
            Choice("attention", ("none", "se")),
            Choice("bits", BITS, default=32),
            blocks_group(s, 4, block, min_depth=2),
        )))
    return Space(
        "mobilenet_like",
        [Group("stem", (Choice("width", (16, 24)),)),
         Group("stages", tuple(stages)),
         Group("head", (Choice("width", (640, 960, 1280), default=960),))],
        family="mobilenet_like",
        description=mobilenet_like.__doc__ or "",
    )


@register_space("vit_like")
def vit_like() -> Space:
    """Multi-stage ViT in the ViT-ResNAS style: a patch embedding (a linear projection of
    non-overlapping patches, i.e. a stride-p convolution), 3 stages of
    transformer blocks with residual spatial reduction between stages (token grid halved,
    embedding widened). Per stage: depth, embedding dim, heads (of a fixed width per stage:
    16, 32 and 48 channels), MLP ratio, attention (``global`` over all tokens or ``window``:
    local 4x4 windows), bits."""
    dims = ((64, 96, 128), (128, 192, 256), (256, 320, 384))
    stages = []
    for s in range(3):
        stages.append(Group(str(s), (
            IntRange("depth", 1, 4, default=2),
            Choice("embed_dim", dims[s], default=dims[s][1]),
            Choice("heads", (2, 3, 4, 6, 8), default=4),
            Choice("mlp_ratio", (2, 3, 4), default=4),
            Choice("attention", ("window", "global"), default="global"),
            Choice("bits", BITS, default=32),
        )))
    return Space("vit_like", [Group("stages", tuple(stages))], family="vit_like",
                 description=vit_like.__doc__ or "")


NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = tuple((j, i) for i in range(1, 4) for j in range(i))  # (from, to), string order


@register_space("nb201")
def nb201() -> Space:
    """NAS-Bench-201 cell: 4 nodes, 6 edges (``edge_j_i`` from node j to node i), each one of
    5 operations. Configs print and parse as NAS-Bench-201 strings."""
    return Space(
        "nb201",
        [Choice(f"edge_{j}_{i}", NB201_OPS, default="nor_conv_3x3") for j, i in NB201_EDGES],
        family="nb201",
        arch_format="nb201",
        description=nb201.__doc__ or "",
    )


def _nb201_parse(space: Space, text: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ConfigError(f"a NAS-Bench-201 string is needed, got {text!r}")
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise ConfigError(
            f"{text!r} is not a NAS-Bench-201 string: expected 3 nodes separated by '+', "
            f"e.g. |nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|"
        )
    out: dict[str, Any] = {}
    for i, node in enumerate(nodes, start=1):
        parts = node.strip().strip("|").split("|")
        if len(parts) != i:
            raise ConfigError(f"{text!r}: node {i} must have {i} inputs, got {len(parts)}")
        for j, tok in enumerate(parts):
            op, sep, src = tok.partition("~")
            if not sep or src != str(j):
                raise ConfigError(f"{text!r}: node {i} input {j} must read 'op~{j}', got {tok!r}")
            out[f"edge_{j}_{i}"] = op
    return out


def _nb201_format(space: Space, config: Config) -> str:
    nodes = []
    for i in range(1, 4):
        nodes.append("|" + "|".join(f"{config[f'edge_{j}_{i}']}~{j}" for j in range(i)) + "|")
    return "+".join(nodes)


register_arch_format("nb201", _nb201_parse, _nb201_format)
