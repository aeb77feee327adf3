"""The ``mobilenet_like`` supernet family (MobileNetV2 / OFA MBConv blocks).

Layout: a 3x3 stem conv (stride 2 when the input's smaller side is at least 64 pixels, else
1), stages of :class:`~nas.supernet.blocks.MBConv` (the first block of a stage changes width
and has no shortcut; the first block of stages 0, 1, 2 and 4 has stride 2, or 1 once the
feature map is down to one pixel on a side; stages beyond the fifth keep the resolution), a
1x1 head conv to ``head.width`` (float), global average pooling and a linear classifier.

Elastic: stem width, per-stage depth, width, attention and bits, per-block expand ratio and
kernel, head width. The expanded width of a block is its input width times its expand ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

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
    require_layout,
    require_odd_kernels,
    require_positive_ints,
    require_stage_values,
    stage_layout,
    values,
)
from nas.supernet.blocks import ConvBNAct, ElasticStage, Head, MBConv, Stage, SubnetModel, Tally
from nas.supernet.ops import (
    ElasticActQuant,
    ElasticAttention,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    importance_order,
)
from nas.supernet.resnet import _attn_params
from nas.supernet.static import (
    InputCheck,
    QConv2d,
    attention_output_signed,
    live_kernel,
    make_act_quant,
    make_attention,
    static_conv,
)

STAGE_STRIDES = (2, 2, 2, 1, 2)


@dataclass(frozen=True)
class MBBlockPlan:
    in_ch: int
    out_ch: int
    mid: int
    kernel: int
    attention: str
    bits: int
    stride: int
    residual: bool
    in_hw: tuple[int, int]
    hw: tuple[int, int]

    @property
    def live_kernel(self) -> tuple[int, int]:
        """The depthwise conv's kernel after the crop to its live taps on ``in_hw`` inputs."""
        return live_kernel(self.kernel, self.stride, self.in_hw)


@dataclass(frozen=True)
class MobileNetPlan:
    stem_width: int
    stem_stride: int
    stem_hw: tuple[int, int]
    stages: tuple[tuple[MBBlockPlan, ...], ...]
    last_width: int
    head_width: int
    out_hw: tuple[int, int]


def layout(space: Space, build: BuildArgs) -> Layout:
    """Stem and stage strides and resolutions: stage ``s`` halves when ``STAGE_STRIDES[s]`` is 2."""
    return stage_layout(space, build,
                        lambda s: s < len(STAGE_STRIDES) and STAGE_STRIDES[s] == 2)


def _required(space: Space, family: str) -> None:
    require_dimensions(space, family, ["stem.width", "head.width", "stages.0.width",
                                       *(f"stages.{s}.depth" for s in range(n_stages(space)))])
    require_stage_values(space, family)
    require_layout(space, family, n_stages(space), top=("stem.width", "head.width"),
                   per_stage=("depth", "width", "attention", "bits"),
                   per_block=("expand", "kernel"))
    require_positive_ints(space, family, ("width", "kernel", "expand"))
    require_odd_kernels(space, family)


@register_family("mobilenet_like")
class MobileNetSupernet(Supernet):
    """Supernet of ``mobilenet_like`` spaces."""

    @classmethod
    def check_space(cls, space: Space) -> None:
        _required(space, cls.family)

    def __init__(self, space: Space, build: BuildArgs) -> None:
        super().__init__(space, build)
        self.check_space(space)
        stem_stride, stem_hw, lay = layout(space, build)
        stem_max = max(space.values("stem.width"))
        self.stem = ConvBNAct(ElasticConv2d(build.in_channels, stem_max, (3,), stem_stride,
                                            in_hw=build.input_size),
                              ElasticBatchNorm2d(stem_max), nn.ReLU6())
        prev, prev_hw = stem_max, stem_hw
        stages = []
        for s, (stride, hw) in enumerate(lay):
            wmax = max(space.values(f"stages.{s}.width"))
            kinds = values(space, f"stages.{s}.attention", "none")
            bits = values(space, f"stages.{s}.bits", 32)
            blocks = []
            for b in range(max(space.values(f"stages.{s}.depth"))):
                pre = f"stages.{s}.blocks.{b}"
                cin = prev if b == 0 else wmax
                mid = cin * max(values(space, f"{pre}.expand", 6))
                blocks.append(MBConv(
                    ElasticConv2d(cin, mid, (1,)), ElasticBatchNorm2d(mid),
                    ElasticConv2d(mid, mid, values(space, f"{pre}.kernel", 3),
                                  stride if b == 0 else 1, depthwise=True,
                                  in_hw=prev_hw if b == 0 else hw),
                    ElasticBatchNorm2d(mid), ElasticAttention(
                        kinds, mid, *hw, f"space {space.name!r}: stages.{s}.attention"),
                    ElasticConv2d(mid, wmax, (1,)), ElasticBatchNorm2d(wmax),
                    ElasticActQuant(bits), ElasticActQuant(bits), ElasticActQuant(bits),
                    residual=b > 0))
            stages.append(ElasticStage(blocks))
            prev, prev_hw = wmax, hw
        self.stages = nn.ModuleList(stages)
        head_max = max(space.values("head.width"))
        self.neck = ConvBNAct(ElasticConv2d(prev, head_max, (1,)), ElasticBatchNorm2d(head_max),
                              nn.ReLU6())
        self.head = Head(ElasticLinear(head_max, build.num_classes))

    # ------------------------------------------------------------------ plan
    @classmethod
    def make_plan(cls, space: Space, config: Config, build: BuildArgs) -> MobileNetPlan:
        stem_stride, stem_hw, lay = layout(space, build)
        prev, prev_hw = config["stem.width"], stem_hw
        stages = []
        for s, (stride, hw) in enumerate(lay):
            width = config[f"stages.{s}.width"]
            att = config.get(f"stages.{s}.attention", "none")
            bits = config.get(f"stages.{s}.bits", 32)
            blocks = []
            for b in range(config[f"stages.{s}.depth"]):
                pre = f"stages.{s}.blocks.{b}"
                cin = prev if b == 0 else width
                blocks.append(MBBlockPlan(
                    in_ch=cin, out_ch=width, mid=cin * config.get(f"{pre}.expand", 6),
                    kernel=config.get(f"{pre}.kernel", 3), attention=att, bits=bits,
                    stride=stride if b == 0 else 1, residual=b > 0,
                    in_hw=prev_hw if b == 0 else hw, hw=hw))
            stages.append(tuple(blocks))
            prev, prev_hw = width, hw
        return MobileNetPlan(config["stem.width"], stem_stride, stem_hw, tuple(stages), prev,
                             config["head.width"], prev_hw)

    def _apply_plan(self, plan: MobileNetPlan) -> None:
        self.stem.conv.set_active(self.build.in_channels, plan.stem_width, 3)
        self.stem.bn.set_active(plan.stem_width)
        for stage, blocks in zip(self.stages, plan.stages):
            stage.set_depth(len(blocks))
            for blk, p in zip(stage.blocks, blocks):
                # the block's input may be a linear bottleneck's output (signed); the
                # depthwise and project convs' inputs follow a ReLU6 (unsigned)
                blk.aq0.set_active(p.bits)
                blk.aq1.set_active(p.bits, signed=False)
                blk.aq2.set_active(p.bits, signed=attention_output_signed(p.attention))
                blk.expand.set_active(p.in_ch, p.mid, 1, 1, p.bits)
                blk.bn1.set_active(p.mid)
                blk.dw.set_active(p.mid, p.mid, p.kernel, p.mid, p.bits)
                blk.bn2.set_active(p.mid)
                blk.attn.set_active(p.attention, p.mid)
                blk.project.set_active(p.mid, p.out_ch, 1, 1, p.bits)
                blk.bn3.set_active(p.out_ch)
        self.neck.conv.set_active(plan.last_width, plan.head_width, 1)
        self.neck.bn.set_active(plan.head_width)
        self.head.classifier.set_active(plan.head_width, self.build.num_classes)

    def _forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(self.neck(x))

    # ------------------------------------------------------------------ static subnet
    @classmethod
    def build_static(cls, plan: MobileNetPlan, build: BuildArgs) -> nn.Module:
        stem = ConvBNAct(static_conv(build.in_channels, plan.stem_width, 3, plan.stem_stride,
                                     build.input_size), nn.BatchNorm2d(plan.stem_width),
                         nn.ReLU6())
        stages = []
        for blocks in plan.stages:
            out = []
            for p in blocks:
                k = p.kernel
                out.append(MBConv(
                    QConv2d(p.in_ch, p.mid, 1, bias=False, bits=p.bits), nn.BatchNorm2d(p.mid),
                    static_conv(p.mid, p.mid, k, p.stride, p.in_hw, groups=p.mid, bits=p.bits),
                    nn.BatchNorm2d(p.mid),
                    make_attention(p.attention, p.mid, *p.hw),
                    QConv2d(p.mid, p.out_ch, 1, bias=False, bits=p.bits),
                    nn.BatchNorm2d(p.out_ch),
                    make_act_quant(p.bits), make_act_quant(p.bits, signed=False),
                    make_act_quant(p.bits, signed=attention_output_signed(p.attention)),
                    residual=p.residual))
            stages.append(Stage(out))
        neck = ConvBNAct(QConv2d(plan.last_width, plan.head_width, 1, bias=False),
                         nn.BatchNorm2d(plan.head_width), nn.ReLU6())
        return SubnetModel(InputCheck(build.in_channels, *build.input_size), stem,
                           nn.ModuleList(stages),
                           Head(nn.Linear(plan.head_width, build.num_classes)), neck)

    @classmethod
    def plan_costs(cls, plan: MobileNetPlan, build: BuildArgs) -> Costs:
        t = Tally()
        t.conv(build.in_channels, plan.stem_width,
               live_kernel(3, plan.stem_stride, build.input_size), 1, plan.stem_hw)
        t.bn(plan.stem_width, plan.stem_hw)
        for blocks in plan.stages:
            for p in blocks:
                t.act_quant(p.bits, 3)
                t.conv(p.in_ch, p.mid, 1, 1, p.in_hw, p.bits)
                t.bn(p.mid, p.in_hw)
                t.conv(p.mid, p.mid, p.live_kernel, p.mid, p.hw, p.bits)
                t.bn(p.mid, p.hw)
                t.attention(p.attention, p.mid, p.hw)
                t.conv(p.mid, p.out_ch, 1, 1, p.hw, p.bits)
                t.bn(p.out_ch, p.hw)
        t.conv(plan.last_width, plan.head_width, 1, 1, plan.out_hw)
        t.bn(plan.head_width, plan.out_hw)
        t.pool(plan.head_width, plan.out_hw)
        t.linear(plan.head_width, build.num_classes)
        return Costs(t.params, t.flops, t.bytes)

    # ------------------------------------------------------------------ utilities
    def size_key(self, path: str, value: Any) -> Any:
        role = path.rsplit(".", 1)[-1]
        if role in ("width", "depth", "kernel", "expand"):
            return value
        if role == "bits":
            return bits_size_key(value)
        if role == "attention":
            s = int(path.split(".")[1])
            block = self.stages[s].blocks[0]
            return _attn_params(value, block.expand.max_out, block.attn.hw)
        return None

    @torch.no_grad()
    def reorder_channels(self, keep: Config | None = None) -> None:
        """Sort each block's expanded channels by the L1 norm of the project conv's columns
        that read them (OFA), most important first (``keep``: see
        :meth:`Supernet.reorder_channels`, OFA's ``re_organize_middle_weights`` at a later
        expand stage); expand conv, batch norms, depthwise conv and attention follow. The
        function at full width and expansion is unchanged."""
        blocks = [blk for stage in self.stages for blk in stage.blocks]
        kept = self._kept_counts(keep, lambda: [blk.expand._out for blk in blocks])
        for i, blk in enumerate(blocks):
            imp = blk.project.weight.abs().sum(dim=(0, 2, 3))
            perm = importance_order(imp, kept[i] if kept else None)
            blk.expand.permute_out(perm)
            blk.bn1.permute(perm)
            blk.dw.permute_out(perm)
            blk.bn2.permute(perm)
            blk.attn.permute(perm)
            blk.project.permute_in(perm)
