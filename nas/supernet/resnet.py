"""The ``resnet_like`` supernet family (ResNet/ResNeXt, RegNetX-style bottlenecks).

Layout: a 3x3 stem conv (stride 2 when the input's smaller side is at least 64 pixels, else
1), stages of :class:`~nas.supernet.blocks.ResBlock` (the first block of every stage has a
1x1 projection shortcut; the first block of stages 1.. has stride 2, or 1 once the feature map
is down to one pixel on a side), global average pooling and a linear classifier.

Elastic: stem width, per-stage depth, width (residual stream and block internals), attention
and bits, per-block kernel and cardinality. Dimensions a space lacks take a fixed value
(attention ``none``, bits 32, kernel 3, cardinality 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.errors import ConfigError
from nas.searchspace import Config, Space
from nas.supernet.base import (
    BuildArgs,
    Costs,
    Layout,
    Supernet,
    bits_size_key,
    n_stages,
    register_family,
    require_dimensions,
    require_divides,
    require_layout,
    require_odd_kernels,
    require_positive_ints,
    require_stage_values,
    stage_layout,
    values,
)
from nas.supernet.blocks import (
    ConvBNAct,
    ElasticStage,
    Head,
    ResBlock,
    Stage,
    SubnetModel,
    Tally,
)
from nas.supernet.ops import (
    ElasticActQuant,
    ElasticAttention,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    column_l1,
    importance_order,
)
from nas.supernet.static import (
    InputCheck,
    QConv2d,
    attention_output_signed,
    live_kernel,
    make_act_quant,
    make_attention,
    static_conv,
)


@dataclass(frozen=True)
class ResBlockPlan:
    in_ch: int
    width: int
    kernel: int
    groups: int
    attention: str
    bits: int
    stride: int
    proj: bool
    in_hw: tuple[int, int]
    hw: tuple[int, int]

    @property
    def live_kernel(self) -> tuple[int, int]:
        """The k x k conv's kernel after the crop to its live taps on ``in_hw`` inputs."""
        return live_kernel(self.kernel, self.stride, self.in_hw)


@dataclass(frozen=True)
class ResNetPlan:
    stem_width: int
    stem_stride: int
    stem_hw: tuple[int, int]
    stages: tuple[tuple[ResBlockPlan, ...], ...]
    out_width: int
    out_hw: tuple[int, int]


def layout(space: Space, build: BuildArgs) -> Layout:
    """Stem and stage strides and resolutions: every stage after the first halves."""
    return stage_layout(space, build, lambda s: s > 0)


def _required(space: Space, family: str) -> None:
    require_dimensions(space, family, ["stem.width", "stages.0.width", "stages.0.depth",
                                       *(f"stages.{s}.depth" for s in range(n_stages(space)))])
    require_stage_values(space, family)
    n = n_stages(space)
    require_layout(space, family, n, top=("stem.width",),
                   per_stage=("depth", "width", "attention", "bits"),
                   per_block=("kernel", "cardinality"))
    require_positive_ints(space, family, ("width", "kernel", "cardinality"))
    require_odd_kernels(space, family)
    for s in range(n):  # a grouped conv needs groups that divide its channels
        for b in range(max(space.values(f"stages.{s}.depth"))):
            require_divides(space, family, f"stages.{s}.blocks.{b}.cardinality",
                            f"stages.{s}.width")


@register_family("resnet_like")
class ResNetSupernet(Supernet):
    """Supernet of ``resnet_like`` spaces."""

    @classmethod
    def check_space(cls, space: Space) -> None:
        _required(space, cls.family)

    def __init__(self, space: Space, build: BuildArgs) -> None:
        super().__init__(space, build)
        self.check_space(space)
        stem_stride, stem_hw, lay = layout(space, build)
        self.stem = ConvBNAct(
            ElasticConv2d(build.in_channels, max(space.values("stem.width")), (3,), stem_stride,
                          in_hw=build.input_size),
            ElasticBatchNorm2d(max(space.values("stem.width"))), nn.ReLU())
        prev = max(space.values("stem.width"))
        prev_hw = stem_hw
        stages = []
        for s, (stride, hw) in enumerate(lay):
            wmax = max(space.values(f"stages.{s}.width"))
            kinds = values(space, f"stages.{s}.attention", "none")
            bits = values(space, f"stages.{s}.bits", 32)
            blocks = []
            for b in range(max(space.values(f"stages.{s}.depth"))):
                pre = f"stages.{s}.blocks.{b}"
                ks = values(space, f"{pre}.kernel", 3)
                cin = prev if b == 0 else wmax
                st = stride if b == 0 else 1
                shortcut = nn.Sequential(ElasticConv2d(cin, wmax, (1,), st),
                                         ElasticBatchNorm2d(wmax)) if b == 0 else None
                blocks.append(ResBlock(
                    ElasticConv2d(cin, wmax, (1,)), ElasticBatchNorm2d(wmax),
                    ElasticConv2d(wmax, wmax, ks, st, elastic_groups=True,
                                  in_hw=prev_hw if b == 0 else hw),
                    ElasticBatchNorm2d(wmax), ElasticAttention(
                        kinds, wmax, *hw, f"space {space.name!r}: stages.{s}.attention"),
                    ElasticConv2d(wmax, wmax, (1,)), ElasticBatchNorm2d(wmax),
                    ElasticActQuant(bits), ElasticActQuant(bits), ElasticActQuant(bits),
                    shortcut))
            stages.append(ElasticStage(blocks))
            prev, prev_hw = wmax, hw
        self.stages = nn.ModuleList(stages)
        self.head = Head(ElasticLinear(prev, build.num_classes))

    # ------------------------------------------------------------------ plan
    @classmethod
    def make_plan(cls, space: Space, config: Config, build: BuildArgs) -> ResNetPlan:
        stem_stride, stem_hw, lay = layout(space, build)
        prev = config["stem.width"]
        prev_hw = stem_hw
        stages = []
        for s, (stride, hw) in enumerate(lay):
            width = config[f"stages.{s}.width"]
            att = config.get(f"stages.{s}.attention", "none")
            bits = config.get(f"stages.{s}.bits", 32)
            blocks = []
            for b in range(config[f"stages.{s}.depth"]):
                pre = f"stages.{s}.blocks.{b}"
                g = config.get(f"{pre}.cardinality", 1)
                if width % g:
                    raise ConfigError(f"{pre}.cardinality: {g} does not divide "
                                      f"stages.{s}.width={width} (give the space the "
                                      f"constraint {{type: divides, divisor: "
                                      f"{pre}.cardinality, dividend: stages.{s}.width}} so "
                                      "that no such config is drawn)")
                blocks.append(ResBlockPlan(
                    in_ch=prev if b == 0 else width, width=width,
                    kernel=config.get(f"{pre}.kernel", 3), groups=g, attention=att,
                    bits=bits, stride=stride if b == 0 else 1, proj=b == 0,
                    in_hw=prev_hw if b == 0 else hw, hw=hw))
            stages.append(tuple(blocks))
            prev, prev_hw = width, hw
        return ResNetPlan(config["stem.width"], stem_stride, stem_hw, tuple(stages), prev,
                          lay[-1][1] if lay else stem_hw)

    def _apply_plan(self, plan: ResNetPlan) -> None:
        self.stem.conv.set_active(self.build.in_channels, plan.stem_width, 3)
        self.stem.bn.set_active(plan.stem_width)
        for stage, blocks in zip(self.stages, plan.stages):
            stage.set_depth(len(blocks))
            for blk, p in zip(stage.blocks, blocks):
                w = p.width
                # the block's input (the stem's or the previous block's ReLU) and the
                # grouped conv's input (a ReLU) are non-negative: unsigned quantization
                blk.aq0.set_active(p.bits, signed=False)
                blk.aq1.set_active(p.bits, signed=False)
                blk.aq2.set_active(p.bits, signed=attention_output_signed(p.attention))
                blk.conv1.set_active(p.in_ch, w, 1, 1, p.bits)
                blk.conv2.set_active(w, w, p.kernel, p.groups, p.bits)
                blk.conv3.set_active(w, w, 1, 1, p.bits)
                for bn in (blk.bn1, blk.bn2, blk.bn3):
                    bn.set_active(w)
                blk.attn.set_active(p.attention, w)
                if p.proj:
                    blk.shortcut[0].set_active(p.in_ch, w, 1, 1, p.bits)
                    blk.shortcut[1].set_active(w)
        self.head.classifier.set_active(plan.out_width, self.build.num_classes)

    # ------------------------------------------------------------------ static subnet
    @classmethod
    def build_static(cls, plan: ResNetPlan, build: BuildArgs) -> nn.Module:
        stem = ConvBNAct(static_conv(build.in_channels, plan.stem_width, 3, plan.stem_stride,
                                     build.input_size), nn.BatchNorm2d(plan.stem_width),
                         nn.ReLU())
        stages = []
        for blocks in plan.stages:
            out = []
            for p in blocks:
                w, k = p.width, p.kernel
                shortcut = nn.Sequential(
                    QConv2d(p.in_ch, w, 1, stride=p.stride, bias=False, bits=p.bits),
                    nn.BatchNorm2d(w)) if p.proj else None
                out.append(ResBlock(
                    QConv2d(p.in_ch, w, 1, bias=False, bits=p.bits), nn.BatchNorm2d(w),
                    static_conv(w, w, k, p.stride, p.in_hw, groups=p.groups, bits=p.bits),
                    nn.BatchNorm2d(w),
                    make_attention(p.attention, w, *p.hw),
                    QConv2d(w, w, 1, bias=False, bits=p.bits), nn.BatchNorm2d(w),
                    make_act_quant(p.bits, signed=False), make_act_quant(p.bits, signed=False),
                    make_act_quant(p.bits, signed=attention_output_signed(p.attention)),
                    shortcut))
            stages.append(Stage(out))
        return SubnetModel(InputCheck(build.in_channels, *build.input_size), stem,
                           nn.ModuleList(stages), Head(nn.Linear(plan.out_width,
                                                                 build.num_classes)))

    @classmethod
    def plan_costs(cls, plan: ResNetPlan, build: BuildArgs) -> Costs:
        t = Tally()
        t.conv(build.in_channels, plan.stem_width,
               live_kernel(3, plan.stem_stride, build.input_size), 1, plan.stem_hw)
        t.bn(plan.stem_width, plan.stem_hw)
        for blocks in plan.stages:
            for p in blocks:
                w = p.width
                t.act_quant(p.bits, 3)
                t.conv(p.in_ch, w, 1, 1, p.in_hw, p.bits)  # at the block's input resolution
                t.bn(w, p.in_hw)
                t.conv(w, w, p.live_kernel, p.groups, p.hw, p.bits)
                t.bn(w, p.hw)
                t.attention(p.attention, w, p.hw)
                t.conv(w, w, 1, 1, p.hw, p.bits)
                t.bn(w, p.hw)
                if p.proj:
                    t.conv(p.in_ch, w, 1, 1, p.hw, p.bits)
                    t.bn(w, p.hw)
        t.pool(plan.out_width, plan.out_hw)
        t.linear(plan.out_width, build.num_classes)
        return Costs(t.params, t.flops, t.bytes)

    # ------------------------------------------------------------------ utilities
    def size_key(self, path: str, value: Any) -> Any:
        role = path.rsplit(".", 1)[-1]
        if role in ("width", "depth", "kernel"):
            return value
        if role == "cardinality":  # more groups, fewer weights
            return -value
        if role == "bits":
            return bits_size_key(value)
        if role == "attention":
            s = int(path.split(".")[1])
            return _attn_params(value, max(self.space.values(f"stages.{s}.width")),
                                self.stages[s].blocks[0].attn.hw)
        return None

    @torch.no_grad()
    def reorder_channels(self, keep: Config | None = None) -> None:
        """Sort each residual stream's channels (stem output, each stage's output) by the L1
        norm of the weights that read them, most important first (``keep``: see
        :meth:`Supernet.reorder_channels`). Block internals keep their order: the
        block-diagonal weights of elastic cardinality fix it. The full-width network computes
        the same function afterwards (permuted producers and consumers)."""
        kept = self._kept_counts(keep, lambda: [self.stem.conv._out] + [
            stage.blocks[0].conv3._out for stage in self.stages])
        producers: list[tuple[list[nn.Module], list[nn.Module]]] = []
        producers.append(([self.stem.conv], [self.stem.bn]))
        for stage in self.stages:
            convs = [blk.conv3 for blk in stage.blocks] + [stage.blocks[0].shortcut[0]]
            bns = [blk.bn3 for blk in stage.blocks] + [stage.blocks[0].shortcut[1]]
            producers.append((convs, bns))
        for i, (convs, bns) in enumerate(producers):
            consumers: list[nn.Module] = []
            if i > 0:
                consumers += [blk.conv1 for blk in self.stages[i - 1].blocks[1:]]
            if i < len(self.stages):
                first = self.stages[i].blocks[0]
                consumers += [first.conv1, first.shortcut[0]]
            else:
                consumers.append(self.head.classifier)
            imp = sum(column_l1(m) for m in consumers)
            perm = importance_order(imp, kept[i] if kept else None)
            for c in convs:
                c.permute_out(perm)
            for bn in bns:
                bn.permute(perm)
            for m in consumers:
                m.permute_in(perm)



def _attn_params(kind: str, c: int, hw: tuple[int, int]) -> int:
    t = Tally()
    t.attention(kind, c, hw)
    return t.params
