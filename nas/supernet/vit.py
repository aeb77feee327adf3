"""The ``vit_like`` supernet family: multi-stage vision transformers in the ViT-ResNAS style
(Liao et al., "Searching for Efficient Multi-Stage Vision Transformers", 2021).

Layout: a patch embedding (non-overlapping ``p x p`` patches, a linear projection and a
learned position embedding; ``p`` is the largest power of two up to 16 that leaves at least
8 tokens on the input's smaller side: 1 for 8x8 digits, 2 for 28x28, 4 for 32x32, 16 for
224x224), then stages of pre-norm transformer blocks. Between stages ViT-ResNAS's residual
spatial reduction halves the token grid and widens the embedding: layer norm, a 3x3 stride-2
convolution and a new position embedding, plus a skip path without parameters (2x2 average
pool, zero channels appended). The head is a layer norm, the mean over tokens and a linear
classifier.

Elastic, per stage: depth, embedding dimension (the residual stream), heads (each head has
the stage's fixed width, :func:`head_width` -- the largest embedding dimension over the
largest number of heads -- so the q/k/v projections are ``heads * head_width`` wide and a
subnet with fewer heads drops whole heads, as ViT-ResNAS's 64-wide heads), MLP ratio (hidden
width ``mlp_ratio * embed_dim``), attention (``global``: every token attends to every token;
``window``: local 4x4 windows, Swin-style without the shift) and bits (fake quantization of
the linear and reduction weights and their inputs; the patch embedding and the classifier
stay float). Every subnet slices the largest weights: the first ``embed_dim`` channels of
the stream, the first ``heads`` heads, the first ``hidden`` units of the MLP.

Differences from ViT-ResNAS, kept small on purpose: the head averages the tokens instead of
reading a class token, and heads and MLP ratio are chosen per stage, where ViT-ResNAS
chooses them per block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.searchspace import Config, Space
from nas.supernet.base import (
    STAGE_VALUE_RULES,
    BuildArgs,
    Costs,
    Supernet,
    bits_size_key,
    down,
    register_family,
    require_dimensions,
    require_layout,
    require_stage_values,
    stride_for,
    values,
)
from nas.supernet.blocks import (
    ElasticStage,
    PatchEmbed,
    Reduction,
    Stage,
    SubnetModel,
    Tally,
    TokenAttention,
    TokenHead,
    TransformerBlock,
)
from nas.supernet.errors import SupernetError
from nas.supernet.ops import (
    ElasticActQuant,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticPosEmbed,
    column_l1,
    importance_order,
)
from nas.supernet.static import (
    InputCheck,
    PosEmbed,
    QLinear,
    live_kernel,
    make_act_quant,
    static_conv,
)

WINDOW = 4  # side of the local attention windows, in tokens
ATTENTIONS = ("global", "window")


@dataclass(frozen=True)
class VitBlockPlan:
    dim: int
    heads: int
    head_dim: int  # width of one head: q/k/v are heads * head_dim wide
    hidden: int
    window: int  # 0: global attention
    bits: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class VitReducePlan:
    in_dim: int
    dim: int
    bits: int
    stride: int
    in_hw: tuple[int, int]
    hw: tuple[int, int]


@dataclass(frozen=True)
class VitPlan:
    patch: int
    grid: tuple[int, int]
    stem_dim: int
    stages: tuple[tuple[Any, ...], ...]  # stage s > 0 starts with its VitReducePlan
    out_dim: int
    out_hw: tuple[int, int]


def vit_stages(space: Space) -> int:
    """Number of stages: ``stages.0.embed_dim``, ``stages.1.embed_dim``, ... in the space."""
    s = 0
    while space.has(f"stages.{s}.embed_dim"):
        s += 1
    return s


def head_width(space: Space, stage: int) -> int:
    """The width of one attention head in ``stage``, the same in every config: the stage's
    largest embedding dimension over its largest number of heads, rounded up (the largest
    network's q/k/v projections are as wide as its stream)."""
    return -(-_max(space, f"stages.{stage}.embed_dim", 0)
             // _max(space, f"stages.{stage}.heads", 1))


def patch_size(input_size: tuple[int, int]) -> int:
    """The patch side: the largest power of two up to 16 leaving >= 8 tokens per side (1
    when the input is smaller than 16 pixels)."""
    p = 1
    while p < 16 and min(input_size) // (2 * p) >= 8:
        p *= 2
    return p


def vit_layout(space: Space, build: BuildArgs
               ) -> tuple[int, tuple[int, int], list[tuple[int, tuple[int, int]]]]:
    """Patch size, token grid, and per stage the reduction stride and the stage's grid (the
    same for every config)."""
    p = patch_size(build.input_size)
    grid = (build.input_size[0] // p, build.input_size[1] // p)
    hw = grid
    out = []
    for s in range(vit_stages(space)):
        stride = stride_for(hw) if s > 0 else 1
        hw = (down(hw[0], stride), down(hw[1], stride))
        out.append((stride, hw))
    return p, grid, out


def _check_space(space: Space, family: str) -> None:
    ns = vit_stages(space)
    if ns == 0:
        raise SupernetError(f"space {space.name!r} (family {family}) lacks dimension "
                            "'stages.0.embed_dim'")
    require_dimensions(space, family, [f"stages.{s}.{d}" for s in range(ns)
                                       for d in ("embed_dim", "depth")])
    require_stage_values(space, family, ns, (
        *STAGE_VALUE_RULES, ("embed_dim", 1, None, "a positive int"),
        ("heads", 1, None, "a positive int"), ("mlp_ratio", 1, None, "a positive int")))
    require_layout(space, family, ns, stage_dim="embed_dim",
                   per_stage=("embed_dim", "depth", "heads", "mlp_ratio", "attention", "bits"))
    for s in range(ns):
        path = f"stages.{s}.attention"
        if space.has(path):
            bad = [v for v in space.values(path) if v not in ATTENTIONS]
            if bad:
                raise SupernetError(f"space {space.name!r} (family {family}): {path} allows "
                                    f"{bad[0]!r}; known: {', '.join(ATTENTIONS)}")


def _max(space: Space, path: str, default: int) -> int:
    return max(values(space, path, default))


@register_family("vit_like")
class VitSupernet(Supernet):
    """Supernet of ``vit_like`` spaces (see the module docstring)."""

    has_stem = False  # a patch embedding, not a strided conv stem

    @classmethod
    def check_space(cls, space: Space) -> None:
        _check_space(space, cls.family)

    def __init__(self, space: Space, build: BuildArgs) -> None:
        super().__init__(space, build)
        self.check_space(space)
        patch, grid, lay = vit_layout(space, build)
        fin = build.in_channels * patch * patch
        d0 = _max(space, "stages.0.embed_dim", 0)
        self.stem = PatchEmbed(ElasticLinear(fin, d0), ElasticPosEmbed(grid[0] * grid[1], d0),
                               patch)
        prev, prev_hw = d0, grid
        stages = []
        for s, (stride, hw) in enumerate(lay):
            d = _max(space, f"stages.{s}.embed_dim", 0)
            hidden = d * _max(space, f"stages.{s}.mlp_ratio", 4)
            width = head_width(space, s) * _max(space, f"stages.{s}.heads", 1)  # of q/k/v
            bits = values(space, f"stages.{s}.bits", 32)
            blocks: list[nn.Module] = []
            if s > 0:
                blocks.append(Reduction(
                    ElasticLayerNorm(prev), ElasticActQuant(bits),
                    ElasticConv2d(prev, d, (3,), stride, bias=True, in_hw=prev_hw),
                    ElasticPosEmbed(hw[0] * hw[1], d), prev_hw, stride))
            for _ in range(_max(space, f"stages.{s}.depth", 1)):
                attn = TokenAttention(ElasticActQuant(bits), ElasticLinear(d, width),
                                      ElasticLinear(d, width), ElasticLinear(d, width),
                                      ElasticActQuant(bits), ElasticLinear(width, d), 1, 0, hw)
                blocks.append(TransformerBlock(
                    ElasticLayerNorm(d), attn, ElasticLayerNorm(d), ElasticActQuant(bits),
                    ElasticLinear(d, hidden), ElasticActQuant(bits), ElasticLinear(hidden, d)))
            stages.append(ElasticStage(blocks))
            prev, prev_hw = d, hw
        self.stages = nn.ModuleList(stages)
        self.head = TokenHead(ElasticLayerNorm(prev), ElasticLinear(prev, build.num_classes))
        for m in self.modules():  # ViT initialisation of the linear layers
            if isinstance(m, ElasticLinear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ plan
    @classmethod
    def make_plan(cls, space: Space, config: Config, build: BuildArgs) -> VitPlan:
        patch, grid, lay = vit_layout(space, build)
        prev, prev_hw = config["stages.0.embed_dim"], grid
        stages = []
        for s, (stride, hw) in enumerate(lay):
            pre = f"stages.{s}"
            d = config[f"{pre}.embed_dim"]
            heads = config.get(f"{pre}.heads", 1)
            bits = config.get(f"{pre}.bits", 32)
            window = WINDOW if config.get(f"{pre}.attention", "global") == "window" else 0
            blocks: list[Any] = []
            if s > 0:
                blocks.append(VitReducePlan(prev, d, bits, stride, prev_hw, hw))
            block = VitBlockPlan(d, heads, head_width(space, s),
                                 d * config.get(f"{pre}.mlp_ratio", 4), window, bits, hw)
            blocks += [block] * config[f"{pre}.depth"]
            stages.append(tuple(blocks))
            prev, prev_hw = d, hw
        return VitPlan(patch, grid, config["stages.0.embed_dim"], tuple(stages), prev,
                       prev_hw)

    def _apply_plan(self, plan: VitPlan) -> None:
        fin = self.build.in_channels * plan.patch * plan.patch
        self.stem.proj.set_active(fin, plan.stem_dim)
        self.stem.pos.set_active(plan.stem_dim)
        for stage, blocks in zip(self.stages, plan.stages):
            stage.set_depth(len(blocks))
            for blk, p in zip(stage.blocks, blocks):
                if isinstance(p, VitReducePlan):
                    blk.norm.set_active(p.in_dim)
                    blk.aq.set_active(p.bits)
                    blk.conv.set_active(p.in_dim, p.dim, 3, 1, p.bits)
                    blk.pos.set_active(p.dim)
                    continue
                d, width = p.dim, p.heads * p.head_dim
                a = blk.attn
                a.aq.set_active(p.bits)
                a.aq_out.set_active(p.bits)
                for m in (a.q, a.k, a.v):
                    m.set_active(d, width, p.bits)
                a.proj.set_active(width, d, p.bits)
                a.__dict__.update(heads=p.heads, window=p.window)  # plain ints
                blk.norm1.set_active(d)
                blk.norm2.set_active(d)
                blk.aq1.set_active(p.bits)
                blk.aq2.set_active(p.bits)
                blk.fc1.set_active(d, p.hidden, p.bits)
                blk.fc2.set_active(p.hidden, d, p.bits)
        self.head.norm.set_active(plan.out_dim)
        self.head.classifier.set_active(plan.out_dim, self.build.num_classes)

    # ------------------------------------------------------------------ static subnet
    @classmethod
    def build_static(cls, plan: VitPlan, build: BuildArgs) -> nn.Module:
        fin = build.in_channels * plan.patch * plan.patch
        stem = PatchEmbed(nn.Linear(fin, plan.stem_dim),
                          PosEmbed(plan.grid[0] * plan.grid[1], plan.stem_dim), plan.patch)
        stages = []
        for blocks in plan.stages:
            out: list[nn.Module] = []
            for p in blocks:
                if isinstance(p, VitReducePlan):
                    out.append(Reduction(
                        nn.LayerNorm(p.in_dim), make_act_quant(p.bits),
                        static_conv(p.in_dim, p.dim, 3, p.stride, p.in_hw, bits=p.bits,
                                    bias=True),
                        PosEmbed(p.hw[0] * p.hw[1], p.dim), p.in_hw, p.stride))
                    continue
                d, b, width = p.dim, p.bits, p.heads * p.head_dim
                attn = TokenAttention(make_act_quant(b), QLinear(d, width, bits=b),
                                      QLinear(d, width, bits=b), QLinear(d, width, bits=b),
                                      make_act_quant(b), QLinear(width, d, bits=b), p.heads,
                                      p.window, p.hw)
                out.append(TransformerBlock(
                    nn.LayerNorm(d), attn, nn.LayerNorm(d), make_act_quant(b),
                    QLinear(d, p.hidden, bits=b), make_act_quant(b),
                    QLinear(p.hidden, d, bits=b)))
            stages.append(Stage(out))
        head = TokenHead(nn.LayerNorm(plan.out_dim), nn.Linear(plan.out_dim, build.num_classes))
        return SubnetModel(InputCheck(build.in_channels, *build.input_size), stem,
                           nn.ModuleList(stages), head)

    @classmethod
    def plan_costs(cls, plan: VitPlan, build: BuildArgs) -> Costs:
        t = Tally()
        tokens = plan.grid[0] * plan.grid[1]
        t.linear(build.in_channels * plan.patch * plan.patch, plan.stem_dim, tokens)
        t.params += tokens * plan.stem_dim  # position embedding
        t.bytes += 4 * tokens * plan.stem_dim
        for blocks in plan.stages:
            for p in blocks:
                if isinstance(p, VitReducePlan):
                    t.act_quant(p.bits, 1)
                    t.layer_norm(p.in_dim, p.in_hw[0] * p.in_hw[1])
                    t.conv(p.in_dim, p.dim, live_kernel(3, p.stride, p.in_hw), 1, p.hw, p.bits,
                           bias=True)
                    t.params += p.hw[0] * p.hw[1] * p.dim  # its position embedding
                    t.bytes += 4 * p.hw[0] * p.hw[1] * p.dim
                    continue  # (the skip path's average pool: no FLOPs, as fvcore counts)
                d, n, width = p.dim, p.hw[0] * p.hw[1], p.heads * p.head_dim
                t.act_quant(p.bits, 4)
                t.layer_norm(d, n)
                t.layer_norm(d, n)
                for _ in range(3):
                    t.linear(d, width, n, p.bits)
                t.linear(width, d, n, p.bits)
                t.token_attention(width, p.hw, p.window)
                t.linear(d, p.hidden, n, p.bits)
                t.linear(p.hidden, d, n, p.bits)
        t.layer_norm(plan.out_dim, plan.out_hw[0] * plan.out_hw[1])
        t.linear(plan.out_dim, build.num_classes)
        return Costs(t.params, t.flops, t.bytes)

    # ------------------------------------------------------------------ utilities
    def size_key(self, path: str, value: Any) -> Any:
        # attention does not change the parameter count: it takes the value nearest the
        # space's matching end that the constraints allow
        role = path.rsplit(".", 1)[-1]
        if role in ("embed_dim", "depth", "heads", "mlp_ratio"):
            return value
        if role == "bits":
            return bits_size_key(value)
        return None

    @torch.no_grad()
    def reorder_channels(self, keep: Config | None = None) -> None:
        """Sort the residual-stream channels and each block's MLP hidden units by the L1 norm
        of the weights that read them, most important first (``keep``: see
        :meth:`Supernet.reorder_channels`); the full network computes the same function
        afterwards. The reductions' skip paths carry stream channel ``c`` of a stage to
        channel ``c`` of the next, so a channel keeps one place in every stage it reaches: the
        first stage's channels are sorted by their importance summed over all the stages, the
        channels a later stage adds by theirs over that stage and the ones after it (a space
        whose largest embedding narrows from a stage to the next keeps the stream's order).
        Each block's attention heads are sorted as whole heads by the L1 norm of their q/k/v
        rows and biases and their output-projection columns (ViT-ResNAS's ``rewiring``), so a
        subnet with fewer heads keeps the most important ones."""
        def counts() -> list[int]:
            out = []
            for s, stage in enumerate(self.stages):
                blocks = list(stage.blocks)
                out.append(self.stem.proj._out if s == 0 else blocks[0].conv._out)
                for b in blocks:
                    if isinstance(b, TransformerBlock):  # MLP units, then heads' channels
                        out += [b.fc1._out, b.attn.q._out]
            return out

        kept = iter(self._kept_counts(keep, counts) or [])
        stream_keeps: list[int | None] = []
        imps = []
        for s, stage in enumerate(self.stages):
            tbs = [b for b in stage.blocks if isinstance(b, TransformerBlock)]
            stream_keeps.append(next(kept, None))
            hd = head_width(self.space, s)
            for tb in tbs:  # MLP hidden units: fc1 rows, fc2 columns
                perm = importance_order(tb.fc2.weight.abs().sum(dim=0), next(kept, None))
                tb.fc1.permute_out(perm)
                tb.fc2.permute_in(perm)
                keep_width = next(kept, None)  # heads: whole blocks of hd q/k/v rows
                a = tb.attn
                imp = column_l1(a.proj) + sum(
                    m.weight.abs().sum(dim=1) + (m.bias.abs() if m.bias is not None else 0)
                    for m in (a.q, a.k, a.v))
                heads = importance_order(imp.reshape(-1, hd).sum(dim=1),
                                         None if keep_width is None else keep_width // hd)
                perm = (heads[:, None] * hd + torch.arange(hd, device=heads.device)).flatten()
                for m in (a.q, a.k, a.v):
                    m.permute_out(perm)
                a.proj.permute_in(perm)
            imps.append(sum(column_l1(m) for m in self._stream_readers(s)))
        for s, perm in enumerate(stream_orders(imps, stream_keeps)):
            blocks = list(self.stages[s].blocks)
            if s == 0:
                self.stem.proj.permute_out(perm)
                self.stem.pos.permute(perm)
            else:
                blocks[0].conv.permute_out(perm)
                blocks[0].pos.permute(perm)
            for tb in blocks:
                if isinstance(tb, TransformerBlock):
                    tb.attn.proj.permute_out(perm)
                    tb.fc2.permute_out(perm)
                    tb.norm1.permute(perm)
                    tb.norm2.permute(perm)
            for m in self._stream_readers(s):
                m.permute_in(perm)
            if s + 1 < len(self.stages):
                self.stages[s + 1].blocks[0].norm.permute(perm)
            else:
                self.head.norm.permute(perm)

    def _stream_readers(self, s: int) -> list[nn.Module]:
        """The layers that read stage ``s``'s stream: its blocks' q/k/v and first MLP layer,
        and the next reduction's convolution (the classifier after the last stage)."""
        out: list[nn.Module] = []
        for tb in self.stages[s].blocks:
            if isinstance(tb, TransformerBlock):
                out += [tb.attn.q, tb.attn.k, tb.attn.v, tb.fc1]
        out.append(self.stages[s + 1].blocks[0].conv if s + 1 < len(self.stages)
                   else self.head.classifier)
        return out


def stream_orders(imps: list[torch.Tensor], keeps: list[int | None]) -> list[torch.Tensor]:
    """Per stage, the permutation of its stream channels (``imps[s]``: their importances in
    stage ``s``; ``keeps[s]``: the channels a kept config uses there, see
    :func:`~nas.supernet.ops.importance_order`) when the reductions carry channel ``c`` of
    one stage to channel ``c`` of the next: a channel's importance is summed over every stage
    from the first that has it, each stage's permutation extends the one before, and each
    kept count cuts the channels into parts sorted on their own. Identities where a stage's
    stream is narrower than the one before."""
    sizes = [len(v) for v in imps]
    if any(b < a for a, b in zip(sizes, sizes[1:])):
        return [torch.arange(n, device=v.device) for n, v in zip(sizes, imps)]
    out: list[torch.Tensor] = []
    for s, n in enumerate(sizes):
        lo = sizes[s - 1] if s else 0
        total = sum(imps[t][lo:n] for t in range(s, len(imps)))
        cuts = sorted({k - lo for k in keeps[s:] if k is not None and lo < k < n})
        parts = []
        for a, b in zip([0, *cuts], [*cuts, n - lo]):
            parts.append(torch.argsort(total[a:b], descending=True, stable=True) + a + lo)
        out.append(torch.cat([*([out[-1]] if out else []), *parts]))
    return out
