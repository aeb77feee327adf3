"""Blocks shared by the supernet families and their static subnets, and the cost tally.

A block class is written once and instantiated twice: with elastic layers inside a supernet,
and with static layers (``torch.nn`` and :mod:`nas.supernet.static`) in an extracted subnet.
Both run the same ``forward`` code, so the extracted subnet computes what the supernet
computed, op for op.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.supernet.static import (
    se_hidden,
    to_patches,
    token_attention,
    weight_bytes,
    window_grid,
)


class ConvBNAct(nn.Module):
    """``act(bn(conv(x)))``."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class ResBlock(nn.Module):
    """RegNetX-style bottleneck: 1x1 conv, k x k grouped conv (carries the stride), the
    stage's attention, 1x1 conv, plus a projected or identity shortcut. ``aq0..aq2`` quantize
    the inputs of the three convs (identity at 32 bits)."""

    def __init__(self, conv1: nn.Module, bn1: nn.Module, conv2: nn.Module, bn2: nn.Module,
                 attn: nn.Module, conv3: nn.Module, bn3: nn.Module, aq0: nn.Module,
                 aq1: nn.Module, aq2: nn.Module, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.aq0, self.conv1, self.bn1 = aq0, conv1, bn1
        self.aq1, self.conv2, self.bn2 = aq1, conv2, bn2
        self.attn = attn
        self.aq2, self.conv3, self.bn3 = aq2, conv3, bn3
        self.has_proj = shortcut is not None
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def residual_last_norm(self) -> nn.Module:
        """The batch norm that ends the residual branch (zeroed by ``zero_init_last``)."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        xq = self.aq0(x)
        h = F.relu(self.bn1(self.conv1(xq)))
        h = F.relu(self.bn2(self.conv2(self.aq1(h))))
        h = self.attn(h)
        h = self.bn3(self.conv3(self.aq2(h)))
        if self.has_proj:
            sc = self.shortcut(xq)
        else:
            sc = x
        return F.relu(h + sc)


class MBConv(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, k x k depthwise (carries the stride), the
    stage's attention on the expanded channels, 1x1 project; identity shortcut when
    ``residual``."""

    def __init__(self, expand: nn.Module, bn1: nn.Module, dw: nn.Module, bn2: nn.Module,
                 attn: nn.Module, project: nn.Module, bn3: nn.Module, aq0: nn.Module,
                 aq1: nn.Module, aq2: nn.Module, residual: bool) -> None:
        super().__init__()
        self.aq0, self.expand, self.bn1 = aq0, expand, bn1
        self.aq1, self.dw, self.bn2 = aq1, dw, bn2
        self.attn = attn
        self.aq2, self.project, self.bn3 = aq2, project, bn3
        self.residual = residual

    def residual_last_norm(self) -> nn.Module | None:
        """The batch norm that ends the residual branch, if the block has a shortcut."""
        return self.bn3 if self.residual else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self.bn1(self.expand(self.aq0(x))))
        h = F.relu6(self.bn2(self.dw(self.aq1(h))))
        h = self.attn(h)
        h = self.bn3(self.project(self.aq2(h)))
        if self.residual:
            h = h + x
        return h


class Stage(nn.Module):
    """A static stage: its blocks in order."""

    def __init__(self, blocks: Iterable[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


class ElasticStage(nn.Module):
    """A supernet stage: runs its first ``depth`` blocks (elastic depth); the rest cost
    nothing."""

    def __init__(self, blocks: Iterable[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.set_depth(len(self.blocks))

    def set_depth(self, depth: int) -> None:
        self._run: tuple[nn.Module, ...] = tuple(self.blocks[:depth])

    def forward(self, x: Tensor) -> Tensor:
        for blk in self._run:
            x = blk(x)
        return x

    def export_children(self) -> Iterator[tuple[str, nn.Module]]:
        for i, blk in enumerate(self._run):
            yield f"blocks.{i}", blk


class Head(nn.Module):
    """Global average pooling, flatten, classifier."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SubnetModel(nn.Module):
    """An extracted subnet: input check, stem, stages, (optional neck) and head."""

    def __init__(self, input_check: nn.Module, stem: nn.Module, stages: nn.ModuleList,
                 head: nn.Module, neck: nn.Module | None = None) -> None:
        super().__init__()
        self.input_check = input_check
        self.stem = stem
        self.stages = stages
        self.neck = neck if neck is not None else nn.Identity()
        self.head = head

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(self.input_check(x))
        for stage in self.stages:
            x = stage(x)
        return self.neck(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


# ------------------------------------------------------------------------ vision transformer
class PatchEmbed(nn.Module):
    """ViT patch embedding: non-overlapping ``patch x patch`` patches, a linear projection
    of each, plus a learned position embedding; ``(B, C, H, W)`` images to ``(B, N, D)``
    tokens."""

    def __init__(self, proj: nn.Module, pos: nn.Module, patch: int) -> None:
        super().__init__()
        self.proj = proj
        self.pos = pos
        self.patch = int(patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.pos(self.proj(to_patches(x, self.patch)))


class TokenAttention(nn.Module):
    """Multi-head self-attention of ``(B, N, D)`` tokens on an ``hw`` grid, global or in
    local windows (:func:`~nas.supernet.static.token_attention`); ``aq``/``aq_out`` quantize
    the inputs of the q/k/v and output projections (identity at 32 bits)."""

    def __init__(self, aq: nn.Module, q: nn.Module, k: nn.Module, v: nn.Module,
                 aq_out: nn.Module, proj: nn.Module, heads: int, window: int,
                 hw: tuple[int, int]) -> None:
        super().__init__()
        self.aq, self.q, self.k, self.v = aq, q, k, v
        self.aq_out, self.proj = aq_out, proj
        self.heads = int(heads)
        self.window = int(window)
        self.hw = (int(hw[0]), int(hw[1]))

    def forward(self, x: Tensor) -> Tensor:
        t = self.aq(x)
        out = token_attention(self.q(t), self.k(t), self.v(t), self.heads, self.hw,
                              self.window)
        return self.proj(self.aq_out(out))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + fc2(gelu(fc1(norm2(x))))``
    (``aq1``/``aq2`` quantize the inputs of ``fc1``/``fc2``)."""

    def __init__(self, norm1: nn.Module, attn: nn.Module, norm2: nn.Module, aq1: nn.Module,
                 fc1: nn.Module, aq2: nn.Module, fc2: nn.Module) -> None:
        super().__init__()
        self.norm1, self.attn = norm1, attn
        self.norm2, self.aq1, self.fc1, self.aq2, self.fc2 = norm2, aq1, fc1, aq2, fc2

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.aq2(F.gelu(self.fc1(self.aq1(self.norm2(x))))))


def _average_pool(x: Tensor, k: int) -> Tensor:
    """``k x k`` average pooling of stride ``k`` whose windows cut by the bottom or right
    edge average the pixels they hold (``avg_pool2d(ceil_mode=True)``, written with explicit
    padding: ONNX Runtime's ceil-mode pooling divides such windows otherwise)."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = (-h) % k, (-w) % k
    if not ph and not pw:
        return F.avg_pool2d(x, k)
    ones = F.pad(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device), (0, pw, 0, ph))
    return F.avg_pool2d(F.pad(x, (0, pw, 0, ph)), k) / F.avg_pool2d(ones, k)


class Reduction(nn.Module):
    """Residual spatial reduction between ViT stages (ViT-ResNAS): the ``hw`` token grid as a
    feature map; the main path is ``norm``, a 3x3 convolution of stride ``stride`` to the next
    stage's width and a new position embedding ``pos``; the skip path has no parameters: a
    ``stride x stride`` average pool (windows cut by an odd side average their pixels) and
    zero channels appended up to the new width (or the first channels kept, for a narrower
    one); back to tokens."""

    def __init__(self, norm: nn.Module, aq: nn.Module, conv: nn.Module, pos: nn.Module,
                 hw: tuple[int, int], stride: int) -> None:
        super().__init__()
        self.norm, self.aq, self.conv, self.pos = norm, aq, conv, pos
        self.hw = (int(hw[0]), int(hw[1]))
        self.stride = int(stride)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        h, w = self.hw[0], self.hw[1]
        main = self.aq(self.norm(x)).transpose(1, 2).reshape(b, c, h, w)
        y = self.pos(self.conv(main).flatten(2).transpose(1, 2))
        skip = x.transpose(1, 2).reshape(b, c, h, w)
        if self.stride > 1:
            skip = _average_pool(skip, self.stride)
        skip = skip.flatten(2).transpose(1, 2)
        out = y.shape[-1]
        skip = F.pad(skip, (0, out - c)) if out > c else skip[..., :out]
        return y + skip


class TokenHead(nn.Module):
    """Layer norm, the mean over tokens, classifier."""

    def __init__(self, norm: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.norm(x).mean(dim=1))


# --------------------------------------------------------------------------------- cost tally
class Tally:
    """Analytic parameter, FLOP (fvcore convention) and byte counts, layer by layer."""

    def __init__(self) -> None:
        self.params = 0
        self.flops = 0
        self.bytes = 0

    def conv(self, cin: int, cout: int, k: int | tuple[int, int], groups: int,
             hw: tuple[int, int], bits: int = 32, bias: bool = False) -> None:
        kh, kw = (k, k) if isinstance(k, int) else k
        n = cout * (cin // groups) * kh * kw
        self.params += n + (cout if bias else 0)
        self.flops += n * hw[0] * hw[1]
        self.bytes += weight_bytes(n, cout, bits) + (4 * cout if bias else 0)

    def bn(self, c: int, hw: tuple[int, int]) -> None:
        self.params += 2 * c
        self.flops += 2 * c * hw[0] * hw[1]
        self.bytes += 8 * c

    def pool(self, c: int, hw: tuple[int, int]) -> None:
        self.flops += c * hw[0] * hw[1]

    def linear(self, fin: int, fout: int, tokens: int = 1, bits: int = 32) -> None:
        """A linear layer with bias applied to ``tokens`` vectors."""
        n = fin * fout
        self.params += n + fout
        self.flops += n * tokens
        self.bytes += weight_bytes(n, fout, bits) + 4 * fout

    def layer_norm(self, c: int, tokens: int) -> None:
        self.params += 2 * c
        self.flops += 5 * c * tokens  # fvcore: 5 per element with an affine transform
        self.bytes += 8 * c

    def token_attention(self, c: int, hw: tuple[int, int], window: int) -> None:
        """The two matmuls of multi-head attention over ``hw`` tokens (padded windows)."""
        wh, ww = window_grid(hw, window)
        gh, gw = -(-hw[0] // wh), -(-hw[1] // ww)
        length = wh * ww
        self.flops += 2 * gh * gw * length * length * c

    def act_quant(self, bits: int, count: int) -> None:
        if bits < 32:
            self.params += count
            self.bytes += 4 * count

    def attention(self, kind: str, c: int, hw: tuple[int, int]) -> None:
        if kind == "se":
            h = se_hidden(c)
            self.pool(c, hw)
            self.conv(c, h, 1, 1, (1, 1), bias=True)
            self.conv(h, c, 1, 1, (1, 1), bias=True)
        elif kind == "ese":
            self.pool(c, hw)
            self.conv(c, c, 1, 1, (1, 1), bias=True)
        elif kind == "mhsa":
            n = hw[0] * hw[1]
            self.params += c * n
            self.bytes += 4 * c * n
            for _ in range(4):
                self.conv(c, c, 1, 1, hw, bias=True)
            self.flops += 2 * c * n * n
