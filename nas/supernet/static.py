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
    """Symmetric per-output-channel fake quantization of a conv or linear weight (output
    channels first), with a straight-through gradient. ``bits >= 32`` returns ``w``
    unchanged."""
    if bits >= 32:
        return w
    qmax = float(2 ** (bits - 1) - 1)
    absmax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = (absmax.clamp(min=1e-8) / qmax).reshape([-1] + [1] * (w.dim() - 1))
    q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (q - w).detach()


def weight_bytes(n: int, out_channels: int, bits: int) -> int:
    """Storage of a weight of ``n`` values as :func:`fake_quant_weight` quantizes it: ``bits``
    per value (rounded up to whole bytes) plus one fp32 scale per output channel; fp32 at 32
    bits."""
    return (n * bits + 7) // 8 + 4 * out_channels if bits < 32 else 4 * n


def fake_quant_act(x: Tensor, clip: Tensor, bits: int, signed: bool = True) -> Tensor:
    """Per-tensor fake quantization of activations to ``[-|clip|, |clip|]`` (``signed``:
    ``2**(bits-1) - 1`` levels each side of zero) or to ``[0, |clip|]`` (unsigned:
    ``2**bits - 1`` levels, for inputs that cannot be negative, such as ReLU outputs: one bit
    more resolution than a signed range that wastes its negative half; negative values clamp
    to 0).

    Rounding passes gradients straight through; the learned range ``clip`` gets the
    PACT/LSQ gradient through the clamp and the scale.
    """
    c = clip.abs() + 1e-8
    if signed:
        qmax = float(2 ** (bits - 1) - 1)
        scale = c / qmax
        q = torch.maximum(torch.minimum(x, c), -c) / scale
    else:
        qmax = float(2 ** bits - 1)
        scale = c / qmax
        q = torch.clamp(torch.minimum(x, c), min=0.0) / scale
    q = q + (torch.round(q) - q).detach()
    return q * scale


def attention_output_signed(kind: str) -> bool:
    """Whether a CNN attention's output can be negative for a non-negative input: ``none``,
    ``se`` and ``ese`` scale their input by gates in [0, 1]; ``mhsa`` adds a projection to
    it. Decides whether the activation quantizer after the attention is signed."""
    return kind == "mhsa"


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


def live_taps(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The live taps of a ``kernel``-tap conv axis with padding ``kernel // 2`` and ``stride``
    over an input of ``size`` pixels, as the offsets ``(-before, after)`` from the centre tap.

    Output ``i`` reads input ``i * stride + o`` through the tap at offset ``o`` (``|o| <=
    kernel // 2``); the outputs start at ``0, stride, ..., last = ((size - 1) // stride) *
    stride``. A tap is live iff some output reads an in-bounds input through it, i.e. iff
    ``-last <= o <= size - 1``; every other tap only ever multiplies zero padding and is dead.
    So ``before = min(kernel // 2, last)`` and ``after = min(kernel // 2, size - 1)``: at stride
    1 the kernel shrinks symmetrically to ``min(kernel, 2 * size - 1)`` taps; at stride 2 the
    left side can lose more (a 2-pixel axis at stride 2 keeps offsets 0 and 1 only).
    """
    p = kernel // 2
    last = ((size - 1) // stride) * stride
    return min(p, last), min(p, size - 1)


def conv_window(kernel: int, stride: int, in_hw: tuple[int, int] | None
                ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Where a ``kernel x kernel`` conv (padding ``kernel // 2``, ``stride``) on ``in_hw``
    inputs reads live taps: ``(rows, cols, padding)``, ``rows = (first, size)`` the slice of
    kernel rows to keep (likewise ``cols``) and ``padding = (pad_h, pad_w)`` for the cropped
    conv, which then computes exactly the uncropped conv's output (same size, same values up
    to the order of summation) with fewer multiply-adds. ``in_hw=None`` keeps the kernel.

    The padding of the cropped conv is the number of live taps before the centre; its output
    size ``(size + 2 * pad - taps) // stride + 1`` equals the uncropped ``(size - 1) // stride
    + 1`` because the taps dropped after the centre never exceed ``(size - 1) % stride``
    beyond those dropped before it (see :func:`live_taps`).
    """
    p = kernel // 2
    if in_hw is None:
        return (0, kernel), (0, kernel), (p, p)
    out = []
    for size in in_hw:
        before, after = live_taps(int(size), kernel, stride)
        out.append((p - before, before + after + 1, before))
    (r0, rn, ph), (c0, cn, pw) = out
    return (r0, rn), (c0, cn), (ph, pw)


def live_kernel(kernel: int, stride: int, in_hw: tuple[int, int] | None) -> tuple[int, int]:
    """``(rows, cols)`` of a ``kernel x kernel`` conv cropped to its live taps on ``in_hw``."""
    rows, cols, _ = conv_window(kernel, stride, in_hw)
    return rows[1], cols[1]


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


class QLinear(nn.Linear):
    """``nn.Linear`` whose weight is fake-quantized to ``bits`` (per output feature) in the
    forward pass (``bits=32``: a plain linear layer)."""

    def __init__(self, *args, bits: int = 32, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.bits = int(bits)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, fake_quant_weight(self.weight, self.bits), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


class FakeQuantAct(nn.Module):
    """Per-tensor activation fake quantization with a learned range ``clip``, signed or
    unsigned (:func:`fake_quant_act`)."""

    def __init__(self, bits: int, clip: float = 4.0, signed: bool = True) -> None:
        super().__init__()
        self.bits = int(bits)
        self.signed = bool(signed)
        self.clip = nn.Parameter(torch.tensor(float(clip)))
        # False only in a subnet extracted before its bit width was trained: then the range
        # is initialised from the first training batch, as the supernet does (not saved: a
        # loaded subnet's range is its own)
        self.register_buffer("initialized", torch.tensor(True), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                self.clip.copy_(x.detach().abs().max().clamp(min=1e-3))
                self.initialized.fill_(True)
        return fake_quant_act(x, self.clip, self.bits, self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}" + ("" if self.signed else ", unsigned")


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


def static_conv(cin: int, cout: int, kernel: int, stride: int, in_hw: tuple[int, int] | None,
                *, groups: int = 1, bits: int = 32, bias: bool = False) -> QConv2d:
    """The static ``kernel x kernel`` conv (padding ``kernel // 2``, no bias) on ``in_hw``
    inputs, cropped to its live taps (:func:`conv_window`): the module an elastic conv with
    the same ``in_hw`` extracts to."""
    rows, cols, pad = conv_window(kernel, stride, in_hw)
    return QConv2d(cin, cout, (rows[1], cols[1]), stride=stride, padding=pad, groups=groups,
                   bias=bias, bits=bits)


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


def make_act_quant(bits: int, signed: bool = True) -> nn.Module:
    """``FakeQuantAct(bits, signed=signed)``, or ``nn.Identity`` for 32 bits."""
    return nn.Identity() if bits >= 32 else FakeQuantAct(bits, signed=signed)


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


# ------------------------------------------------------------------------- vision transformer
def to_patches(x: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` images as ``(B, (H // patch) * (W // patch), C * patch * patch)``
    non-overlapping patches in row-major order (a remainder of fewer than ``patch`` rows or
    columns is dropped, as a stride-``patch`` convolution would)."""
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    if patch == 1:
        return x.flatten(2).transpose(1, 2)
    x = x[:, :, : gh * patch, : gw * patch]
    x = x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, gh * gw, c * patch * patch)


def window_grid(hw: tuple[int, int], window: int) -> tuple[int, int]:
    """The window of local attention on an ``hw`` token grid: ``window x window`` tokens,
    cut to the grid's sides (``window <= 0``: global attention, one window of the whole
    grid)."""
    if window <= 0:
        return hw
    return min(window, hw[0]), min(window, hw[1])


def token_attention(q: Tensor, k: Tensor, v: Tensor, heads: int, hw: tuple[int, int],
                    window: int) -> Tensor:
    """Multi-head self-attention over a ``hw`` grid of tokens; ``q, k, v`` are ``(B, N, C)``
    with ``N = hw[0] * hw[1]`` in row-major order and ``C`` divisible by ``heads``.

    ``window <= 0`` (or a window covering the grid): every token attends to every token.
    Otherwise (Swin-style local attention, no shift) the grid is cut into non-overlapping
    ``window x window`` windows and tokens attend within their window only; a grid whose
    sides are not multiples of the window is padded at the bottom and right, and the padded
    positions are masked out as keys (every window holds at least one real token).
    """
    b, n, c = q.shape
    d = c // heads
    h, w = hw[0], hw[1]
    wh, ww = window_grid((h, w), window)
    scale = float(d) ** -0.5
    if wh == h and ww == w:
        qh = q.reshape(b, n, heads, d).transpose(1, 2)
        kh = k.reshape(b, n, heads, d).transpose(1, 2)
        vh = v.reshape(b, n, heads, d).transpose(1, 2)
        attn = torch.softmax(torch.matmul(qh, kh.transpose(-2, -1)) * scale, dim=-1)
        return torch.matmul(attn, vh).transpose(1, 2).reshape(b, n, c)
    ph, pw = (wh - h % wh) % wh, (ww - w % ww) % ww
    gh, gw = (h + ph) // wh, (w + pw) // ww
    length = wh * ww
    qw = _windows(q, b, h, w, ph, pw, gh, gw, wh, ww, heads, d)
    kw = _windows(k, b, h, w, ph, pw, gh, gw, wh, ww, heads, d)
    vw = _windows(v, b, h, w, ph, pw, gh, gw, wh, ww, heads, d)
    scores = torch.matmul(qw, kw.transpose(-2, -1)) * scale  # (B*G, heads, L, L)
    if ph > 0 or pw > 0:
        valid = torch.zeros(h + ph, w + pw, dtype=torch.bool, device=q.device)
        valid[:h, :w] = True
        valid = valid.reshape(gh, wh, gw, ww).permute(0, 2, 1, 3).reshape(gh * gw, 1, 1, length)
        scores = scores.masked_fill(~valid.repeat(b, 1, 1, 1), float("-inf"))
    out = torch.matmul(torch.softmax(scores, dim=-1), vw)  # (B*G, heads, L, d)
    out = out.reshape(b, gh, gw, heads, wh, ww, d).permute(0, 1, 4, 2, 5, 3, 6)
    out = out.reshape(b, h + ph, w + pw, c)[:, :h, :w]
    return out.reshape(b, n, c)


def _windows(t: Tensor, b: int, h: int, w: int, ph: int, pw: int, gh: int, gw: int, wh: int,
             ww: int, heads: int, d: int) -> Tensor:
    """``(B, N, C)`` tokens as ``(B * windows, heads, wh * ww, d)`` per-window heads."""
    t = t.reshape(b, h, w, heads * d)
    if ph > 0 or pw > 0:
        t = F.pad(t, [0, 0, 0, pw, 0, ph])
    t = t.reshape(b, gh, wh, gw, ww, heads, d).permute(0, 1, 3, 5, 2, 4, 6)
    return t.reshape(b * gh * gw, heads, wh * ww, d)


class PosEmbed(nn.Module):
    """A learned position embedding added to ``(B, N, C)`` tokens."""

    def __init__(self, tokens: int, channels: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, tokens, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pos
