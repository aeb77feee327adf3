"""Elastic layers: one largest weight, sliced to the active architecture.

Every elastic module holds the weights of its largest variant once. The supernet sets the
active sizes with ``set_active(...)`` (plain Python ints) when a config is activated; the
forward pass only reads them. No module changes another module in ``forward``.

``active_state()`` returns the tensors of the active variant under the names of the matching
static module (:mod:`nas.supernet.static` or ``torch.nn``); extraction copies them.

Eval-time caching: when autograd is off, a conv caches its derived (sliced, kernel-transformed,
group-extracted, fake-quantized, cropped) weight as a *contiguous* tensor, so repeated eval
forwards cost what the static layer costs. A slice ``w[:out, :in]`` or a kernel crop
``w[:, :, r:r+n, c:c+n]`` of the shared weight is a strided view; handed to ``F.conv2d`` as is,
the CPU convolution copies it to a fresh contiguous tensor on every call, and for large
weights that fresh allocation (page faults on new memory) costs more than the convolution
itself: the ``resnet_like`` max config ran 1.25-1.35x its extracted model in eval for this
alone (see ``benchmarks/RESULTS.md``, issue 3). The cache is keyed on the active setting,
the versions and storage addresses of the tensors it is derived from (so in-place updates,
``load_state_dict`` and device moves invalidate it; the cache keeps those storages alive, so
an address cannot be reused by another tensor while it is cached) and the number of optimizer
steps taken in the process (fused optimizers update parameters without bumping their
versions). Writes through ``.data`` bypass all of these: call :meth:`ElasticConv2d.clear_cache`
(or :func:`clear_weight_caches`) after them. Training always derives the weight afresh
(gradients flow through the slicing and the kernel transform).

Training-time slicing: the active part of a shared conv weight (channels, block diagonal,
kernel taps) is read by one gather (:func:`gather_regions`) whose backward adds into one
zero-initialised gradient. Chained slicing ops would each allocate and zero a gradient the
size of their input in the backward pass — up to four whole-weight buffers per conv and
subnet, the largest single cost of a CPU backward pass here. Several subnets of one training
step read their parts with one gather (:meth:`ElasticConv2d.share_weights`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.optim.optimizer import register_optimizer_step_post_hook

from nas.supernet.errors import SupernetError
from nas.supernet.static import (
    ATTENTIONS,
    conv_window,
    fake_quant_act,
    fake_quant_weight,
    mhsa_core,
    mhsa_heads,
    se_hidden,
)

# optimizer steps taken in this process (any optimizer); part of every eval-cache key, because
# fused optimizers update parameters in place without bumping their version counters
_OPTIMIZER_STEPS = [0]


def _count_optimizer_step(*_: object) -> None:
    _OPTIMIZER_STEPS[0] += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def clear_weight_caches(module: nn.Module) -> None:
    """Drop the eval-time weight caches of every elastic conv below ``module`` (needed only
    after writing weights through ``.data``, which no cache key can see)."""
    for m in module.modules():
        if isinstance(m, ElasticConv2d):
            m.clear_cache()


def group_diagonal(w: Tensor, groups: int) -> Tensor:
    """The block-diagonal part of a dense ``(C, C, k, k)`` weight as the ``(C, C/groups, k,
    k)`` weight of a grouped conv: output channel ``o`` of group ``j`` keeps input channels
    ``j*C/groups .. (j+1)*C/groups``."""
    c_out, c_in, kh, kw = w.shape
    cg = c_out // groups
    blocks = w.reshape(groups, cg, groups, c_in // groups, kh, kw)
    return blocks.diagonal(dim1=0, dim2=2).permute(4, 0, 1, 2, 3).reshape(c_out, c_in // groups,
                                                                           kh, kw)


def _out_taps(chain: tuple[int, ...], crop: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """Rows and columns of a kernel after the transforms ``chain`` and the crop ``crop``."""
    return (crop[0][1], crop[1][1]) if crop else (chain[-1], chain[-1])


class Region(NamedTuple):
    """The part of a shared ``(max_out, max_in, k, k)`` conv weight an active setting reads:
    output channels ``[:out]``, input channels ``[:inp]`` (block-diagonal with ``groups``
    blocks, as :func:`group_diagonal`), kernel rows ``r0 .. r0+rn`` and columns
    ``c0 .. c0+cn``."""

    out: int
    inp: int
    groups: int
    r0: int
    rn: int
    c0: int
    cn: int

    def _box(self, w: Tensor) -> Tensor:
        """The channels and kernel taps of the region in ``w`` (a strided view)."""
        return w[: self.out, : self.inp, self.r0: self.r0 + self.rn, self.c0: self.c0 + self.cn]

    def view(self, w: Tensor) -> Tensor:
        """The region of ``w`` (a strided view unless ``groups > 1``), ``(out, inp/groups,
        rn, cn)``."""
        v = self._box(w)
        return group_diagonal(v, self.groups) if self.groups > 1 else v

    def add_into(self, g: Tensor, grad: Tensor) -> None:
        """``g[region] += grad`` (``grad`` shaped like :meth:`view`'s result), in place."""
        v = self._box(g)
        if self.groups == 1:
            v.add_(grad)
            return
        n = self.groups
        co, ci = self.out // n, self.inp // n
        # splitting a dimension is always a view: the diagonal blocks, in place
        blocks = v.view(n, co, n, ci, self.rn, self.cn).diagonal(dim1=0, dim2=2)
        blocks.add_(grad.view(n, co, ci, self.rn, self.cn).permute(1, 2, 3, 4, 0))


class _GatherRegions(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: Tensor, regions: tuple[Region, ...]) -> tuple[Tensor, ...]:
        ctx.regions = regions
        ctx.shape = weight.shape
        return tuple(r.view(weight).clone(memory_format=torch.contiguous_format)
                     for r in regions)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, None]:
        live = [(r, g) for r, g in zip(ctx.regions, grads) if g is not None]
        if not live:
            return None, None
        out = live[0][1].new_zeros(ctx.shape)
        for r, g in live:
            r.add_into(out, g)
        return out, None


def gather_regions(weight: Tensor, regions: Sequence[Region]) -> tuple[Tensor, ...]:
    """Contiguous copies of ``regions`` of ``weight``; their gradients flow back into one
    zero-initialised gradient of ``weight`` (one allocation however many regions)."""
    return _GatherRegions.apply(weight, tuple(regions))


class _SharedTrainingWeights:
    """What elastic layers with a shared weight (convs, linears) do alike in training: derive
    the weights of several subnets of one step at once (:meth:`share_weights`) and use them
    (:meth:`training_weight`). A layer provides ``training_weights(settings)``,
    ``set_active(*setting)`` and :meth:`share_key`, the active setting as
    ``training_weights`` takes it."""

    def share_key(self) -> tuple[int, ...]:
        raise NotImplementedError

    def share_weights(self, settings: Sequence[tuple[int, ...]] | None) -> None:
        """Several subnets of one training step (``Supernet.shared_weights``, multi-
        architecture batches): derive the training weights of all ``settings`` (as
        :meth:`share_key` gives them) now, in one ``training_weights`` call, and use them in
        forward passes at those settings until ``share_weights(None)``; their gradients then
        reach the shared weight through one buffer."""
        if settings is None:
            self.__dict__["_shared"] = None
            return
        prev = self.share_key()
        uniq = list(dict.fromkeys(tuple(s) for s in settings))
        ws = self.training_weights(uniq)  # type: ignore[attr-defined]
        self.__dict__["_shared"] = dict(zip(uniq, ws))
        self.set_active(*prev)  # type: ignore[attr-defined]

    def training_weight(self) -> Tensor:
        """The active setting's training weight: the shared one where :meth:`share_weights`
        derived it, else derived now."""
        shared = self.__dict__.get("_shared")
        key = self.share_key()
        w = shared.get(key) if shared is not None else None
        return w if w is not None else self.training_weights([key])[0]  # type: ignore[attr-defined]


class ElasticConv2d(_SharedTrainingWeights, nn.Module):
    """Conv with elastic input/output channels, kernel size and groups.

    Args:
        max_in: largest input channel count (ignored when ``depthwise``).
        max_out: largest output channel count.
        kernel_sizes: the odd kernel sizes this conv can take; the weight holds the largest,
            smaller kernels are its centre passed through learned ``k*k x k*k`` transforms
            (OFA), one per smaller size, initialised to the identity.
        stride: fixed stride; padding is ``k // 2``.
        depthwise: one input channel per output channel (groups = active channels).
        bias: whether there is a bias.
        elastic_groups: allow ``groups > 1`` (cardinality); needs ``in == out`` when active.
        in_hw: the (fixed) input resolution, if known. The active kernel is then cropped to
            its live taps (:func:`~nas.supernet.static.conv_window`): on tiny feature maps
            the outer taps of a large kernel only ever read zero padding, so the cropped conv
            computes the same output with far less work (a 7x7 kernel on a 2x2 map runs as
            its central 3x3, on a 1x1 map as its centre tap). The crop is taken after the
            kernel transform, so it is exact for every kernel size.
    """

    def __init__(self, max_in: int, max_out: int, kernel_sizes: Sequence[int] = (1,),
                 stride: int = 1, *, depthwise: bool = False, bias: bool = False,
                 elastic_groups: bool = False, in_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        ks = tuple(sorted({int(k) for k in kernel_sizes}))
        if any(k % 2 == 0 or k < 1 for k in ks):
            raise SupernetError(f"kernel sizes must be odd and positive, got {ks}")
        self.kernel_sizes = ks
        self.max_in = int(max_in)
        self.max_out = int(max_out)
        self.depthwise = depthwise
        self.elastic_groups = elastic_groups
        self.stride = int(stride)
        self.in_hw = None if in_hw is None else (int(in_hw[0]), int(in_hw[1]))
        kmax = ks[-1]
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, kmax, kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        self.kernel_transform = nn.ParameterDict(
            {f"{k}x{k}": nn.Parameter(torch.eye(k * k)) for k in ks[:-1]}
        )
        self.set_active(self.max_in, self.max_out, kmax, 1, 32)

    def set_active(self, in_ch: int, out_ch: int, kernel: int, groups: int = 1,
                   bits: int = 32) -> None:
        """Activate ``in_ch -> out_ch`` channels, a ``kernel`` kernel, ``groups`` groups and
        ``bits``-bit weights (called by the supernet when a config is activated)."""
        if self.depthwise:
            in_ch, groups = out_ch, out_ch
        if not (0 < in_ch <= self.max_in or self.depthwise) or not 0 < out_ch <= self.max_out:
            raise SupernetError(f"channels {in_ch}->{out_ch} exceed {self.max_in}->{self.max_out}")
        if kernel not in self.kernel_sizes:
            raise SupernetError(f"kernel {kernel} not in {self.kernel_sizes}")
        if not self.depthwise and groups != 1:
            if not self.elastic_groups or in_ch != out_ch or out_ch % groups:
                raise SupernetError(f"groups={groups} not possible for {in_ch}->{out_ch}")
        in_ch, out_ch, kernel, groups, bits = (int(in_ch), int(out_ch), int(kernel),
                                               int(groups), int(bits))
        rows, cols, pad = conv_window(kernel, self.stride, self.in_hw)
        crop = rows[1] < kernel or cols[1] < kernel
        # plain ints only: set through __dict__ (nn.Module.__setattr__ costs ~5 us a call,
        # and activation sets these on every conv of the network)
        self.__dict__.update(
            _in=in_ch, _out=out_ch, _k=kernel, _groups=groups, _bits=bits, _rows=rows,
            _cols=cols, _pad=pad, _crop=crop,
            _chain=tuple(k for k in reversed(self.kernel_sizes[:-1]) if k >= kernel),
            _plain=(kernel == self.kernel_sizes[-1] and out_ch == self.max_out and not crop
                    and (self.depthwise or (in_ch == self.max_in and groups == 1))),
            _setting=(in_ch, out_ch, kernel, groups, bits, *rows, *cols))
        if not hasattr(self, "_cache"):
            self.clear_cache()
            self.__dict__["_shared"] = None

    def share_key(self) -> tuple[int, ...]:
        """``(in, out, kernel, groups, bits)`` of the active setting."""
        return self._setting[:5]

    def clear_cache(self) -> None:
        """Forget the cached eval-time weight (rebuilt on the next no-grad forward)."""
        self.__dict__.update(_cache=None, _cache_key=(), _cache_refs=())

    @property
    def active_kernel(self) -> tuple[int, int]:
        """The kernel the active setting really runs: ``(rows, cols)`` after the crop to live
        taps (the config's kernel when ``in_hw`` is unknown or the map is large enough)."""
        return self._rows[1], self._cols[1]

    def region(self) -> Region:
        """The part of the shared weight the active setting reads (see :class:`Region`):
        the centre of the largest kernel that the kernel transforms start from, or, at the
        largest kernel, just its live taps."""
        if self.depthwise:
            out, cin = self._out, 1
        else:
            out, cin = self._out, self._in
        if self._chain:
            kc = self._chain[0]
            s = (self.kernel_sizes[-1] - kc) // 2
            rows = cols = (s, kc)
        else:
            rows, cols = self._rows, self._cols
        groups = 1 if self.depthwise else self._groups
        return Region(out, cin, groups, rows[0], rows[1], cols[0], cols[1])

    def _transform(self, x: Tensor, chain: tuple[int, ...], crop: tuple[tuple[int, int], ...]
                   ) -> Tensor:
        """The kernel transforms (OFA) and the crop to live taps on ``x``, kernels flattened
        to rows of ``chain[0]**2`` taps (the centre that :meth:`region` reads). Each step
        computes only the taps the next one reads (its centre) and the last only the live
        taps of ``crop`` (empty: all): the same values as transforming everything and
        cropping after, with less work. Returns rows of the output taps."""
        for j, k in enumerate(chain):
            if j + 1 < len(chain):
                n = chain[j + 1]
                s = (k - n) // 2
                rows, cols = (s, n), (s, n)
            elif crop:
                rows, cols = crop
            else:
                rows = cols = (0, k)
            t = self.kernel_transform[f"{k}x{k}"]
            if rows[1] < k or cols[1] < k:
                # the output taps' rows of the transform (plain slicing: its backward is
                # deterministic on every device, unlike an index_select's)
                t = t.view(k, k, k * k)[rows[0]: rows[0] + rows[1], cols[0]: cols[0] + cols[1]]
                t = t.reshape(rows[1] * cols[1], k * k)
            x = F.linear(x, t)
        return x

    def _finish(self, w: Tensor, chain: tuple[int, ...], crop: tuple[tuple[int, int], ...]
                ) -> Tensor:
        """:meth:`_transform` on a weight ``w`` read from :meth:`region`."""
        if not chain:
            return w
        o, i = w.shape[0], w.shape[1]
        rn, cn = _out_taps(chain, crop)
        return self._transform(w.reshape(o * i, -1), chain, crop).reshape(o, i, rn, cn)

    def _finish_args(self) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        crop = (self._rows, self._cols) if self._chain and self._crop else ()
        return self._chain, crop

    def derived_weight(self) -> Tensor:
        """The active weight before fake quantization: sliced, group-extracted,
        kernel-transformed and cropped to the live taps (differentiable; views of the shared
        weight where possible)."""
        if self._plain:
            return self.weight
        return self._finish(self.region().view(self.weight), *self._finish_args())

    def training_weights(self, settings: Sequence[tuple[int, int, int, int, int]]
                         ) -> list[Tensor]:
        """The active weights (fake-quantized, differentiable) of several settings
        ``(in, out, kernel, groups, bits)`` at once (one for a single subnet, several for
        :meth:`share_weights`).
        Their parts of the shared weight are read by one :func:`gather_regions`, whose
        backward accumulates all of them into one gradient (a slice's backward would
        allocate and zero a gradient of the whole shared weight per setting and layer of
        slicing), and settings with the same kernel transforms share their matrix products.
        Leaves the last setting active."""
        jobs = []
        for st in settings:
            if tuple(st) != self._setting[:5]:
                self.set_active(*st)
            jobs.append((None if self._plain else self.region(), *self._finish_args(),
                         self._bits))
        regions = [r for r, _, _, _ in jobs if r is not None]
        raw = iter(gather_regions(self.weight, regions) if regions else ())
        ws: list[Tensor] = [self.weight if r is None else next(raw) for r, _, _, _ in jobs]
        batches: dict[tuple[object, ...], list[int]] = {}
        for j, (r, chain, crop, _) in enumerate(jobs):
            if r is not None and chain:
                batches.setdefault((chain, crop), []).append(j)
        for (chain, crop), idx in batches.items():
            if len(idx) == 1:
                ws[idx[0]] = self._finish(ws[idx[0]], chain, crop)  # type: ignore[arg-type]
                continue
            flat = torch.cat([ws[j].reshape(-1, chain[0] ** 2) for j in idx])  # type: ignore[index]
            out = self._transform(flat, chain, crop)  # type: ignore[arg-type]
            rn, cn = _out_taps(chain, crop)  # type: ignore[arg-type]
            sizes = [ws[j].shape[0] * ws[j].shape[1] for j in idx]
            for j, part in zip(idx, out.split(sizes)):
                ws[j] = part.reshape(ws[j].shape[0], ws[j].shape[1], rn, cn)
        return [fake_quant_weight(w, bits) for w, (_, _, _, bits) in zip(ws, jobs)]

    def _sources(self) -> list[Tensor]:
        """The parameters the active weight is derived from."""
        return [self.weight, *(self.kernel_transform[f"{k}x{k}"] for k in self._chain)]

    def _source_key(self) -> tuple[int, ...]:
        key = [*self._setting, _OPTIMIZER_STEPS[0]]
        for t in self._sources():
            key += [t._version, t.data_ptr()]
        return tuple(key)

    def active_weight(self) -> Tensor:
        """The weight the forward pass uses (derived, then fake-quantized)."""
        if self._plain and self._bits >= 32:
            return self.weight
        if torch.is_grad_enabled():
            return self.training_weight()
        key = self._source_key()
        if self._cache is None or key != self._cache_key:
            # contiguous: a strided view of the shared weight would be copied by the conv into
            # freshly allocated memory on every call (see the module docstring)
            w = fake_quant_weight(self.derived_weight(), self._bits).contiguous()
            # the detached sources keep the keyed storages alive (no address reuse)
            self.__dict__.update(_cache=w, _cache_key=key,
                                 _cache_refs=tuple(t.detach() for t in self._sources()))
        return self._cache

    def forward(self, x: Tensor) -> Tensor:
        b = self.bias
        if b is not None and self._out != self.max_out:
            b = b[: self._out]
        return F.conv2d(x, self.active_weight(), b, self.stride, self._pad, 1, self._groups)

    def active_state(self) -> dict[str, Tensor]:
        out = {"weight": self.derived_weight().detach()}
        if self.bias is not None:
            out["bias"] = self.bias[: self._out].detach()
        return out

    def permute_out(self, perm: Tensor) -> None:
        """Reorder output channels (rows of the weight and the bias)."""
        with torch.no_grad():
            self.weight.copy_(self.weight[perm])
            if self.bias is not None:
                self.bias.copy_(self.bias[perm])

    def permute_in(self, perm: Tensor) -> None:
        """Reorder input channels (columns of the weight; rows too when depthwise)."""
        with torch.no_grad():
            if self.depthwise:
                self.permute_out(perm)
            else:
                self.weight.copy_(self.weight[:, perm])

    def extra_repr(self) -> str:
        kind = "depthwise, " if self.depthwise else ""
        return (f"{kind}max {self.max_in}->{self.max_out}, kernels={self.kernel_sizes}, "
                f"stride={self.stride}, active {self._in}->{self._out} k={self._k} "
                f"(runs {self._rows[1]}x{self._cols[1]}) "
                f"g={self._groups} bits={self._bits}")


class ElasticBatchNorm2d(nn.Module):
    """Batch norm over the first ``c`` of ``max_c`` channels, with sliced running statistics.

    ``begin_recalibration()`` switches the running statistics to a cumulative average
    (PyTorch's ``momentum=None``), used by :meth:`Supernet.recalibrate_bn`.
    """

    def __init__(self, max_c: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.max_c = int(max_c)
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(max_c))
        self.bias = nn.Parameter(torch.zeros(max_c))
        self.register_buffer("running_mean", torch.zeros(max_c))
        self.register_buffer("running_var", torch.ones(max_c))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self._recal: int = -1
        self.set_active(self.max_c)

    def set_active(self, c: int) -> None:
        if not 0 < c <= self.max_c:
            raise SupernetError(f"batch norm: {c} channels exceed {self.max_c}")
        self.__dict__["_c"] = int(c)  # a plain int; skips nn.Module.__setattr__

    def begin_recalibration(self) -> None:
        """Reset the active slice of the running statistics; average the next batches."""
        with torch.no_grad():
            self.running_mean[: self._c].zero_()
            self.running_var[: self._c].fill_(1.0)
        self._recal = 0

    def end_recalibration(self) -> None:
        self._recal = -1

    def forward(self, x: Tensor) -> Tensor:
        c = self._c
        if c == self.max_c:
            w, b, rm, rv = self.weight, self.bias, self.running_mean, self.running_var
        else:
            w, b = self.weight[:c], self.bias[:c]
            rm, rv = self.running_mean[:c], self.running_var[:c]
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if self._recal >= 0:
                self._recal += 1
                momentum = 1.0 / self._recal
        return F.batch_norm(x, rm, rv, w, b, self.training, momentum, self.eps)

    def active_state(self) -> dict[str, Tensor]:
        c = self._c
        return {"weight": self.weight[:c].detach(), "bias": self.bias[:c].detach(),
                "running_mean": self.running_mean[:c], "running_var": self.running_var[:c],
                "num_batches_tracked": self.num_batches_tracked}

    def permute(self, perm: Tensor) -> None:
        with torch.no_grad():
            for t in (self.weight, self.bias, self.running_mean, self.running_var):
                t.copy_(t[perm])

    def extra_repr(self) -> str:
        return f"max {self.max_c}, active {self._c}"


class ElasticLinear(_SharedTrainingWeights, nn.Module):
    """Linear layer with elastic input and output features and fake-quantized weights (per
    output feature, ``bits`` 32: float)."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True) -> None:
        super().__init__()
        self.max_in, self.max_out = int(max_in), int(max_out)
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        nn.init.normal_(self.weight, 0.0, 0.01)
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        self.set_active(self.max_in, self.max_out)

    def set_active(self, in_f: int, out_f: int, bits: int = 32) -> None:
        if not (0 < in_f <= self.max_in and 0 < out_f <= self.max_out):
            raise SupernetError(f"linear {in_f}->{out_f} exceeds {self.max_in}->{self.max_out}")
        in_f, out_f, bits = int(in_f), int(out_f), int(bits)
        self.__dict__.update(_in=in_f, _out=out_f, _bits=bits, _setting=(in_f, out_f, bits),
                             _plain=in_f == self.max_in and out_f == self.max_out)
        if "_shared" not in self.__dict__:
            self.__dict__["_shared"] = None

    def training_weights(self, settings: Sequence[tuple[int, int, int]]) -> list[Tensor]:
        """The active weights (fake-quantized, differentiable) of several settings
        ``(in, out, bits)`` at once, as :meth:`ElasticConv2d.training_weights`: the parts of
        the shared weight are read by one :func:`gather_regions`, whose backward adds them
        into one gradient (two slices' backward would allocate and zero a whole-weight
        gradient each, per setting). First-order only, as the convs' gather (no
        ``create_graph`` double backward through it). Leaves the last setting active."""
        jobs: list[tuple[Region | None, int]] = []
        for st in settings:
            if tuple(st) != self._setting:
                self.set_active(*st)
            jobs.append((None if self._plain else Region(self._out, self._in, 1, 0, 1, 0, 1),
                         self._bits))
        regions = [r for r, _ in jobs if r is not None]
        w4 = self.weight.view(self.max_out, self.max_in, 1, 1)
        raw = iter(gather_regions(w4, regions) if regions else ())
        ws = [self.weight if r is None else next(raw).view(r.out, r.inp) for r, _ in jobs]
        return [fake_quant_weight(w, bits) for w, (_, bits) in zip(ws, jobs)]

    def share_key(self) -> tuple[int, ...]:
        """``(in, out, bits)`` of the active setting."""
        return self._setting

    def forward(self, x: Tensor) -> Tensor:
        b = self.bias
        if b is not None and self._out != self.max_out:
            b = b[: self._out]
        if self._plain and self._bits >= 32:
            w = self.weight
        elif torch.is_grad_enabled():
            w = self.training_weight()
        else:
            w = self.weight if self._plain else self.weight[: self._out, : self._in]
            w = fake_quant_weight(w, self._bits)
        return F.linear(x, w, b)

    def active_state(self) -> dict[str, Tensor]:
        out = {"weight": self.weight[: self._out, : self._in].detach()}
        if self.bias is not None:
            out["bias"] = self.bias[: self._out].detach()
        return out

    def permute_in(self, perm: Tensor) -> None:
        with torch.no_grad():
            self.weight.copy_(self.weight[:, perm])

    def permute_out(self, perm: Tensor) -> None:
        with torch.no_grad():
            self.weight.copy_(self.weight[perm])
            if self.bias is not None:
                self.bias.copy_(self.bias[perm])

    def extra_repr(self) -> str:
        return (f"max {self.max_in}->{self.max_out}, active {self._in}->{self._out} "
                f"bits={self._bits}")


class ElasticLayerNorm(nn.Module):
    """Layer norm over the last dimension's first ``c`` of ``max_c`` features."""

    def __init__(self, max_c: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.max_c = int(max_c)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(max_c))
        self.bias = nn.Parameter(torch.zeros(max_c))
        self.set_active(self.max_c)

    def set_active(self, c: int) -> None:
        if not 0 < c <= self.max_c:
            raise SupernetError(f"layer norm: {c} features exceed {self.max_c}")
        self.__dict__["_c"] = int(c)

    def forward(self, x: Tensor) -> Tensor:
        c = self._c
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def active_state(self) -> dict[str, Tensor]:
        c = self._c
        return {"weight": self.weight[:c].detach(), "bias": self.bias[:c].detach()}

    def permute(self, perm: Tensor) -> None:
        with torch.no_grad():
            for t in (self.weight, self.bias):
                t.copy_(t[perm])

    def extra_repr(self) -> str:
        return f"max {self.max_c}, active {self._c}"


class ElasticPosEmbed(nn.Module):
    """A learned position embedding of ``tokens x max_c``, added to ``(B, tokens, c)``
    tokens through its first ``c`` channels."""

    def __init__(self, tokens: int, max_c: int) -> None:
        super().__init__()
        self.max_c = int(max_c)
        self.pos = nn.Parameter(torch.zeros(1, tokens, max_c))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.set_active(self.max_c)

    def set_active(self, c: int) -> None:
        if not 0 < c <= self.max_c:
            raise SupernetError(f"position embedding: {c} channels exceed {self.max_c}")
        self.__dict__["_c"] = int(c)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pos[:, :, : self._c]

    def active_state(self) -> dict[str, Tensor]:
        return {"pos": self.pos[:, :, : self._c].detach()}

    def permute(self, perm: Tensor) -> None:
        with torch.no_grad():
            self.pos.copy_(self.pos[:, :, perm])


class ElasticActQuant(nn.Module):
    """Activation fake quantization with one learned range per bit width; ``bits=32`` (or a
    width it was not built for: never activated) is the identity.

    The range of a bit width is initialised from the absolute maximum of the first batch seen
    in training at that width (the module only updates its own state).
    """

    def __init__(self, bits_options: Iterable[int], init_clip: float = 4.0) -> None:
        super().__init__()
        self.bits_options = tuple(sorted({int(b) for b in bits_options if int(b) < 32}))
        n = len(self.bits_options)
        self.clip = nn.Parameter(torch.full((n,), float(init_clip))) if n else None
        self.register_buffer("initialized", torch.zeros(n, dtype=torch.bool))
        self.set_active(32)

    def set_active(self, bits: int, signed: bool = True) -> None:
        """Quantize to ``bits`` (32: identity); ``signed=False`` for inputs that cannot be
        negative (see :func:`~nas.supernet.static.fake_quant_act`). A bit width keeps one
        range whether signed or not."""
        if bits < 32 and bits not in self.bits_options:
            raise SupernetError(f"activation quantizer: bits {bits} not in {self.bits_options}")
        self.__dict__.update(_bits=int(bits),  # plain values; skips nn.Module.__setattr__
                             _idx=self.bits_options.index(bits) if bits < 32 else -1,
                             _signed=bool(signed))

    def forward(self, x: Tensor) -> Tensor:
        i = self._idx
        if i < 0:
            return x
        if self.training and not bool(self.initialized[i]):
            # through .data: no version bump, so graphs of other subnets built earlier in the
            # same step (multi-architecture batches) stay valid
            self.clip.data[i] = x.detach().abs().max().clamp(min=1e-3)
            self.initialized[i] = True
        return fake_quant_act(x, self.clip[i], self._bits, self._signed)

    def active_state(self) -> dict[str, Tensor]:
        if self._idx < 0:
            return {}
        return {"clip": self.clip[self._idx].detach()}

    def active_flags(self) -> dict[str, Tensor]:
        """Whether the active width's range was initialised (the static quantizer's
        non-persistent ``initialized``: a subnet extracted before its width was trained
        initialises the range from its first training batch, as the supernet would)."""
        if self._idx < 0:
            return {}
        return {"initialized": self.initialized[self._idx].detach()}


# ----------------------------------------------------------------------------------- attention
class ElasticSE(nn.Module):
    """Squeeze-excitation elastic in width (hidden width ``se_hidden(c)``)."""

    def __init__(self, max_c: int) -> None:
        super().__init__()
        self.fc1 = ElasticConv2d(max_c, se_hidden(max_c), bias=True)
        self.fc2 = ElasticConv2d(se_hidden(max_c), max_c, bias=True)

    def set_active(self, c: int, height: int, width: int) -> None:
        h = se_hidden(c)
        self.fc1.set_active(c, h, 1)
        self.fc2.set_active(h, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))

    def permute(self, perm: Tensor) -> None:
        self.fc1.permute_in(perm)
        self.fc2.permute_out(perm)


class ElasticESE(nn.Module):
    """Effective squeeze-excitation elastic in width."""

    def __init__(self, max_c: int) -> None:
        super().__init__()
        self.fc = ElasticConv2d(max_c, max_c, bias=True)

    def set_active(self, c: int, height: int, width: int) -> None:
        self.fc.set_active(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * F.hardsigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))

    def permute(self, perm: Tensor) -> None:
        self.fc.permute_in(perm)
        self.fc.permute_out(perm)


class ElasticMHSA(nn.Module):
    """Spatial multi-head self-attention elastic in width; heads ``mhsa_heads(c)``."""

    def __init__(self, max_c: int, height: int, width: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(max_c, height, width) * 0.02)
        self.q = ElasticConv2d(max_c, max_c, bias=True)
        self.k = ElasticConv2d(max_c, max_c, bias=True)
        self.v = ElasticConv2d(max_c, max_c, bias=True)
        self.proj = ElasticConv2d(max_c, max_c, bias=True)
        for m in (self.q, self.k, self.v):
            nn.init.xavier_uniform_(m.weight)
        nn.init.normal_(self.proj.weight, 0.0, 0.02)
        self.max_c = int(max_c)
        self.set_active(max_c, height, width)

    def set_active(self, c: int, height: int, width: int) -> None:
        if tuple(self.pos.shape[1:]) != (height, width):
            raise SupernetError(f"mhsa built for {tuple(self.pos.shape[1:])}, not "
                                f"{(height, width)}")
        for m in (self.q, self.k, self.v, self.proj):
            m.set_active(c, c, 1)
        self._c = int(c)
        self._heads = mhsa_heads(c)

    def forward(self, x: Tensor) -> Tensor:
        pos = self.pos if self._c == self.max_c else self.pos[: self._c]
        t = x + pos
        out = mhsa_core(self.q(t), self.k(t), self.v(t), self._heads)
        return x + self.proj(out)

    def active_state(self) -> dict[str, Tensor]:
        out = {"pos": self.pos[: self._c].detach()}
        for name in ("q", "k", "v", "proj"):
            for k, v in getattr(self, name).active_state().items():
                out[f"{name}.{k}"] = v
        return out

    def permute(self, perm: Tensor) -> None:
        with torch.no_grad():
            self.pos.copy_(self.pos[perm])
        for m in (self.q, self.k, self.v):
            m.permute_in(perm)
        self.proj.permute_out(perm)


class ElasticAttention(nn.Module):
    """The attention variants of one position (``se``, ``ese``, ``mhsa``, as allowed by the
    space); exactly one (or none) runs, chosen at activation."""

    def __init__(self, kinds: Iterable[str], max_c: int, height: int, width: int,
                 where: str = "attention") -> None:
        super().__init__()
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in ATTENTIONS]
        if bad:
            raise SupernetError(f"{where}: {bad[0]!r} is not supported; known: "
                                f"{', '.join(ATTENTIONS)}")
        self.kinds = kinds
        self.hw = (int(height), int(width))
        variants: dict[str, nn.Module] = {}
        for k in kinds:
            if k == "se":
                variants[k] = ElasticSE(max_c)
            elif k == "ese":
                variants[k] = ElasticESE(max_c)
            elif k == "mhsa":
                variants[k] = ElasticMHSA(max_c, height, width)
        self.variants = nn.ModuleDict(variants)
        self.set_active("none" if "none" in kinds else kinds[0], max_c)

    def set_active(self, kind: str, c: int) -> None:
        if kind not in self.kinds:
            raise SupernetError(f"attention {kind!r} not built here (built: {self.kinds})")
        self._kind = kind
        # a tuple, not a Module attribute: nn.Module would register it as a child
        self._run: tuple[nn.Module, ...] = (self.variants[kind],) if kind != "none" else ()
        for m in self._run:
            m.set_active(c, *self.hw)

    def forward(self, x: Tensor) -> Tensor:
        for m in self._run:
            x = m(x)
        return x

    def active_state(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for m in self._run:
            collect_state(m, "", out)
        return out

    def active_modules(self) -> Iterable[nn.Module]:
        return self._run

    def permute(self, perm: Tensor) -> None:
        for m in self.variants.values():
            m.permute(perm)


def importance_order(imp: Tensor, keep: int | None = None) -> Tensor:
    """The channel permutation that sorts ``imp`` (one importance per channel), most
    important first; with ``keep``, the first ``keep`` channels stay the first ``keep`` (each
    part sorted on its own): OFA's re-sort after a width stretch, which reorders the channels
    a narrower width will use without changing the set the trained widths share."""
    if keep is None or keep >= len(imp) or keep <= 0:
        return torch.argsort(imp, descending=True, stable=True)
    head = torch.argsort(imp[:keep], descending=True, stable=True)
    tail = torch.argsort(imp[keep:], descending=True, stable=True) + keep
    return torch.cat([head, tail])


def column_l1(m: nn.Module) -> Tensor:
    """Importance of each input channel of a conv or linear layer: the L1 norm of the weights
    that read it (used to sort channels, :meth:`Supernet.reorder_channels`)."""
    w = m.weight
    return w.abs().sum(dim=0) if w.dim() == 2 else w.abs().sum(dim=(0, 2, 3))


# ----------------------------------------------------------------------------- walking helpers
def collect_state(module: nn.Module, prefix: str, out: dict[str, Tensor],
                  method: str = "active_state") -> None:
    """Gather ``active_state()`` (or another ``method`` of the elastic leaves) of the active
    elastic modules below ``module`` under the names the static subnet uses. Modules may
    narrow their children with ``export_children()``."""
    fn = getattr(module, method, None)
    if fn is not None:
        for k, v in fn().items():
            out[prefix + k] = v
        return
    if hasattr(module, "active_state"):  # an elastic leaf without such state
        return
    children = getattr(module, "export_children", None)
    items = children() if children is not None else module.named_children()
    for name, child in items:
        collect_state(child, f"{prefix}{name}.", out, method)


def active_leaves(module: nn.Module) -> Iterable[nn.Module]:
    """The active modules below ``module`` that hold state (depth first)."""
    if hasattr(module, "active_modules"):
        for m in module.active_modules():
            yield m
            yield from active_leaves(m)
        return
    children = getattr(module, "export_children", None)
    items = children() if children is not None else module.named_children()
    for _, child in items:
        yield child
        yield from active_leaves(child)
