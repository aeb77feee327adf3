"""Static modules of extracted subnets: fake quantization and attention.

These are the only non-``torch.nn`` modules an extracted subnet contains. They hold plain
weights of one fixed size, are picklable, and script with TorchScript and export to ONNX.
The elastic modules of :mod:`nas.supernet.ops` compute exactly the same functions through
the same functions defined here (:func:`fake_quant_weight`, :func:`fake_quant_act`,
:func:`mhsa_core`), which is what makes extraction exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fake_quant_weight(w: Tensor, bits: int) -> Tensor:
    """Symmetric per-output-channel fake quantization of a conv weight, with a
    straight-through gradient. ``bits >= 32`` returns ``w`` unchanged."""
    if bits >= 32:
        return w
    qmax = float(2 ** (bits - 1) - 1)
    absmax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = (absmax.clamp(min=1e-8) / qmax).reshape(-1, 1, 1, 1)
    q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (q - w).detach()


def fake_quant_act(x: Tensor, clip: Tensor, bits: int) -> Tensor:
    """Symmetric per-tensor fake quantization of activations to ``[-|clip|, |clip|]``.

    Rounding passes gradients straight through; the learned range ``clip`` gets the
    PACT/LSQ gradient through the clamp and the scale.
    """
    qmax = float(2 ** (bits - 1) - 1)
    c = clip.abs() + 1e-8
    scale = c / qmax
    q = torch.maximum(torch.minimum(x, c), -c) / scale
    q = q + (torch.round(q) - q).detach()
    return q * scale


def se_hidden(channels: int) -> int:
    """Hidden width of a squeeze-excitation module on ``channels`` channels (monotone)."""
    return max(8, channels // 4)


def mhsa_heads(channels: int) -> int:
    """Number of attention heads for ``channels`` channels: the largest of 4, 2, 1 dividing
    it."""
    for h in (4, 2):
        if channels % h == 0:
            return h
    return 1


def mhsa_core(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Multi-head attention over spatial positions: ``q, k, v`` are ``(B, C, H, W)``."""
    b, c, h, w = q.shape
    d = c // heads
    n = h * w
    q = q.reshape(b, heads, d, n)
    k = k.reshape(b, heads, d, n)
    v = v.reshape(b, heads, d, n)
    attn = torch.softmax(torch.matmul(q.transpose(-2, -1), k) * (float(d) ** -0.5), dim=-1)
    out = torch.matmul(v, attn.transpose(-2, -1))
    return out.reshape(b, c, h, w)


class QConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is fake-quantized to ``bits`` in the forward pass
    (``bits=32``: a plain convolution)."""

    def __init__(self, *args, bits: int = 32, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.bits = int(bits)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, fake_quant_weight(self.weight, self.bits), self.bias, self.stride,
                        self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


class FakeQuantAct(nn.Module):
    """Per-tensor activation fake quantization with a learned range ``clip``."""

    def __init__(self, bits: int, clip: float = 4.0) -> None:
        super().__init__()
        self.bits = int(bits)
        self.clip = nn.Parameter(torch.tensor(float(clip)))

    def forward(self, x: Tensor) -> Tensor:
        return fake_quant_act(x, self.clip, self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(relu(fc1(avgpool(x)))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = se_hidden(channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class EffectiveSE(nn.Module):
    """Effective squeeze-excitation (CenterMask/VoVNetV2): ``x * hardsigmoid(fc(avgpool(x)))``
    with one full-width fully connected layer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return x * F.hardsigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


class SpatialMHSA(nn.Module):
    """Multi-head self-attention over the ``H*W`` positions of a feature map, with a learned
    additive position encoding, 1x1 projections and a residual connection."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.heads = mhsa_heads(channels)
        self.pos = nn.Parameter(torch.zeros(channels, height, width))
        self.q = nn.Conv2d(channels, channels, 1, bias=True)
        self.k = nn.Conv2d(channels, channels, 1, bias=True)
        self.v = nn.Conv2d(channels, channels, 1, bias=True)
        self.proj = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        t = x + self.pos
        out = mhsa_core(self.q(t), self.k(t), self.v(t), self.heads)
        return x + self.proj(out)


def make_attention(kind: str, channels: int, height: int, width: int) -> nn.Module:
    """The static attention module ``kind`` (``none`` gives ``nn.Identity``)."""
    if kind == "none":
        return nn.Identity()
    if kind == "se":
        return SqueezeExcite(channels)
    if kind == "ese":
        return EffectiveSE(channels)
    if kind == "mhsa":
        return SpatialMHSA(channels, height, width)
    raise ValueError(f"unknown attention {kind!r}; known: {', '.join(ATTENTIONS)}")


ATTENTIONS: tuple[str, ...] = ("none", "se", "ese", "mhsa")


def make_act_quant(bits: int) -> nn.Module:
    """``FakeQuantAct(bits)``, or ``nn.Identity`` for 32 bits."""
    return nn.Identity() if bits >= 32 else FakeQuantAct(bits)


class InputCheck(nn.Module):
    """Raises ``ValueError`` for an input that is not ``(N, C, H, W)`` of the built shape
    (scriptable; the first module of every extracted subnet)."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.height = int(height)
        self.width = int(width)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(1) != self.channels or x.size(2) != self.height \
                or x.size(3) != self.width:
            raise ValueError("input: expected a (batch, " + str(self.channels) + ", "
                             + str(self.height) + ", " + str(self.width)
                             + ") tensor, got shape " + str(list(x.shape)))
        return x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.height}x{self.width}"
