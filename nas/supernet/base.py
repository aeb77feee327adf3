"""The supernet base class, the family registry and :func:`build_supernet`.

A family (``resnet_like``, ``mobilenet_like``, ...) subclasses :class:`Supernet` and is
registered by name with :func:`register_family`. It provides four things:

- ``make_plan(space, config, build)``: the architecture of one config as plain ints
  (a frozen dataclass; no tensors), shared by everything below;
- ``_apply_plan(plan)``: set the active sizes of its elastic modules;
- ``build_static(plan, build)``: a fresh static subnet (plain PyTorch) for a plan;
- ``plan_costs(plan)``: analytic parameters, FLOPs and size of a plan.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from nas.errors import ConfigError, UsageError
from nas.searchspace import Config, Space
from nas.supernet.errors import InputShapeError, SupernetError
from nas.supernet.ops import (
    ElasticActQuant,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    active_leaves,
    collect_state,
)

log = logging.getLogger(__name__)


STEM_STRIDES = (1, 2)
# the stem's stride when ``stem_stride`` is not given: 2 from this many pixels up
AUTO_STEM_STRIDE_FROM = 64


def is_stem_stride(v: Any) -> bool:
    """Whether ``v`` is an allowed stem stride: ``None`` (automatic) or an int in
    :data:`STEM_STRIDES` (not a bool, not a float)."""
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v in STEM_STRIDES)


def resolve_stem_stride(stem_stride: int | None, input_size: tuple[int, int]) -> int:
    """The stride the stem has: ``stem_stride``, or by default 2 from
    :data:`AUTO_STEM_STRIDE_FROM` pixels up, else 1."""
    if stem_stride is not None:
        return stem_stride
    return 2 if min(input_size) >= AUTO_STEM_STRIDE_FROM else 1


@dataclass(frozen=True)
class BuildArgs:
    """What a supernet is built for besides its space: the data's shape and classes, and
    optionally the stem's stride (``None``: 2 from 64 pixels up, else 1; CNN families only)."""

    in_channels: int
    num_classes: int
    input_size: tuple[int, int]
    stem_stride: int | None = None

    @staticmethod
    def make(in_channels: Any, num_classes: Any, input_size: Any,
             stem_stride: Any = None) -> BuildArgs:
        """Validated build arguments (``input_size``: an int or ``(height, width)``;
        ``stem_stride``: ``None``, 1 or 2)."""
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UsageError(f"{name}: must be a positive int, got {v!r}")
        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        try:
            h, w = (int(s) for s in size)
            ok = all(isinstance(s, int) and not isinstance(s, bool) for s in size)
        except (TypeError, ValueError):
            ok, h, w = False, 0, 0
        if not ok or h < 1 or w < 1:
            raise UsageError(f"input_size: must be a positive int or (height, width), got "
                             f"{input_size!r}")
        if not is_stem_stride(stem_stride):
            raise UsageError(f"stem_stride: must be one of {list(STEM_STRIDES)} or null "
                             f"(automatic), got {stem_stride!r}")
        return BuildArgs(int(in_channels), int(num_classes), (h, w),
                         None if stem_stride is None else int(stem_stride))

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> BuildArgs:
        """Inverse of :meth:`to_dict` (``stem_stride`` absent: automatic)."""
        return BuildArgs.make(d["in_channels"], d["num_classes"], tuple(d["input_size"]),
                              d.get("stem_stride"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"in_channels": self.in_channels, "num_classes": self.num_classes,
                             "input_size": list(self.input_size)}
        if self.stem_stride is not None:  # absent = automatic (files of earlier versions)
            d["stem_stride"] = self.stem_stride
        return d

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`build_supernet` / :func:`build_subnet` for this build."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes,
                "input_size": self.input_size, "stem_stride": self.stem_stride}


@dataclass(frozen=True)
class Costs:
    """Cost of one architecture. ``flops`` follows fvcore's convention: one per multiply-add
    of convolutions, linear layers and matmuls, two per element of (eval) batch norm, five per
    element of (affine) layer norm, one per input element of average pooling; element-wise
    activations, softmax and means are not counted. ``size_bytes`` counts parameters at their
    storage width: fake-quantized conv and linear weights at the stage's bits plus one fp32
    scale per output channel, everything else fp32 (buffers excluded)."""

    params: int
    flops: int
    size_bytes: int


def down(size: int, stride: int) -> int:
    """Output size of a ``k x k`` conv with padding ``k // 2`` (odd k) and ``stride``."""
    return (size - 1) // stride + 1


def stride_for(hw: tuple[int, int]) -> int:
    """Stride of a resolution-halving layer at resolution ``hw``: 2, or 1 once a side is down
    to 1 pixel (tiny inputs never shrink below 1x1)."""
    return 2 if min(hw) >= 2 else 1


def values(space: Space, path: str, default: Any) -> tuple[Any, ...]:
    """The values of ``path`` in ``space``, or ``(default,)`` if the space lacks it."""
    return tuple(space.values(path)) if space.has(path) else (default,)


def largest_bits(options: Iterable[int]) -> int:
    """The bit width a largest config takes: float (32) where allowed, else the widest (the
    one with the most parameters: float layers carry no activation-quantizer ranges, and the
    widest quantized layer stores the most bits)."""
    return max(options, key=bits_size_key)


def bits_size_key(bits: int) -> tuple[bool, int]:
    """How large a network bit width ``bits`` makes (:meth:`Supernet.size_key`): float
    (32 or more) above any quantized width, and wider above narrower."""
    return (bits >= 32, bits)


def n_stages(space: Space) -> int:
    """Number of stages: ``stages.0.width``, ``stages.1.width``, ... present in the space."""
    s = 0
    while space.has(f"stages.{s}.width"):
        s += 1
    return s


Layout = tuple[int, tuple[int, int], list[tuple[int, tuple[int, int]]]]


def stage_layout(space: Space, build: BuildArgs, downsamples: Callable[[int], bool]) -> Layout:
    """Stem stride and resolution, and per stage the first block's stride and the stage's
    resolution; fixed by the input size, the same for every config. The stem has stride
    ``build.stem_stride``, or by default 2 from 64 pixels up; stage ``s`` halves the
    resolution when ``downsamples(s)`` (never below 1 pixel)."""
    h, w = build.input_size
    stem_stride = resolve_stem_stride(build.stem_stride, build.input_size)
    hw = (down(h, stem_stride), down(w, stem_stride))
    stem_hw = hw
    out = []
    for s in range(n_stages(space)):
        stride = stride_for(hw) if downsamples(s) else 1
        hw = (down(hw[0], stride), down(hw[1], stride))
        out.append((stride, hw))
    return stem_stride, stem_hw, out


def require_dimensions(space: Space, family: str, paths: Iterable[str]) -> None:
    """Raise :class:`SupernetError` naming the first of ``paths`` the space lacks."""
    for p in paths:
        if not space.has(p):
            raise SupernetError(f"space {space.name!r} (family {family}) lacks dimension {p!r}")


def require_layout(space: Space, family: str, stages: int, *, top: Iterable[str] = (),
                   per_stage: Iterable[str] = (), per_block: Iterable[str] = (),
                   stage_dim: str = "width") -> None:
    """Raise :class:`SupernetError` for a dimension the family does not build from (a
    misspelt ``kernel_size`` would otherwise change config ids but not the network), a stage
    after a gap in the numbering (``stages.0``, ``stages.2``: the family builds the stages
    up to the gap), and, per stage with block dimensions, a block a depth can run that has
    none (it would silently take the family's fixed values) or a block no depth runs.
    ``top``: whole paths (``stem.width``); ``per_stage``: names under ``stages.S``;
    ``per_block``: names under ``stages.S.blocks.B``; ``stages``: the stages the family
    builds (numbered ``0 .. stages - 1``, each with a ``stage_dim``)."""
    top, per_stage, per_block = frozenset(top), frozenset(per_stage), frozenset(per_block)
    known = sorted(top) + [f"stages.S.{n}" for n in sorted(per_stage)] + [
        f"stages.S.blocks.B.{n}" for n in sorted(per_block)]
    blocks: dict[int, set[int]] = {}
    for path in space.paths:
        parts = path.split(".")
        ok = path in top
        if len(parts) >= 3 and parts[0] == "stages" and parts[1].isdigit():
            s = int(parts[1])
            if s >= stages:  # stages are numbered 0, 1, ...: a gap drops the later ones
                raise SupernetError(f"space {space.name!r} (family {family}) lacks dimension "
                                    f"'stages.{stages}.{stage_dim}' but has stage {s} "
                                    f"({path}); number the stages 0, 1, 2, ...")
            if len(parts) == 3:
                ok = parts[2] in per_stage
            elif len(parts) == 5 and parts[2] == "blocks" and parts[3].isdigit():
                ok = parts[4] in per_block
                if ok:
                    blocks.setdefault(s, set()).add(int(parts[3]))
        if not ok:
            raise SupernetError(f"space {space.name!r} (family {family}): dimension {path!r} "
                                f"is not one the family builds from (it would change config "
                                f"ids but not the network); known: {', '.join(known)}")
    for s, have in sorted(blocks.items()):
        depth = f"stages.{s}.depth"
        deepest = max(space.values(depth)) if space.has(depth) else 1
        missing = [b for b in range(deepest) if b not in have]
        if missing:
            raise SupernetError(
                f"space {space.name!r} (family {family}): {depth} allows {deepest} blocks "
                f"but stages.{s}.blocks.{missing[0]} has no dimensions (it would run with "
                f"the family's fixed values); give each of blocks 0..{deepest - 1} its "
                f"dimensions (YAML: repeat: {deepest})")
        extra = sorted(b for b in have if b >= deepest)
        if extra:
            raise SupernetError(
                f"space {space.name!r} (family {family}): stages.{s}.blocks.{extra[0]} has "
                f"dimensions but {depth} allows at most {deepest} blocks (0..{deepest - 1}), "
                f"so no network runs it")
        # a block that a shallower depth skips must exist only when it runs (a condition,
        # as YAML's `depth:` key on a repeated group gives): otherwise configs differing in
        # it alone are different ids of one network
        shallowest = min(space.values(depth)) if space.has(depth) else 1
        for b in sorted(have):
            pre = f"stages.{s}.blocks.{b}."
            free = [p for p in space.paths if p.startswith(pre) and not space.conditions(p)]
            if b >= shallowest and free:
                raise SupernetError(
                    f"space {space.name!r} (family {family}): {free[0]} exists at every depth, "
                    f"but a network with {depth} = {shallowest} does not run block {b}; make "
                    f"the block exist only when it runs (when {depth} > {b}; YAML: `depth: "
                    f"{depth}` on the repeated blocks group)")


def require_divides(space: Space, family: str, divisor: str, dividend: str) -> None:
    """Raise :class:`SupernetError` when some valid config has a ``divisor`` value that
    does not divide its ``dividend`` value (groups of a grouped conv, attention heads): the
    space must exclude such pairs, as a ``divides`` constraint does."""
    if not (space.has(divisor) and space.has(dividend)):
        return
    from nas.searchspace import Divides

    if any(isinstance(c, Divides) and (c.divisor, c.dividend) == (divisor, dividend)
           for c in space.constraints):
        return  # excluded by the constraint itself (no solver call per pair)
    for g in space.values(divisor):
        for c in space.values(dividend):
            if c % g == 0:
                continue
            try:
                allowed = space.complete({divisor: g, dividend: c}) is not None
            except ConfigError:
                allowed = False
            if allowed:
                raise SupernetError(
                    f"space {space.name!r} (family {family}): {divisor}={g} does not divide "
                    f"{dividend}={c}, and no constraint excludes that pair; add "
                    f"Divides({divisor!r}, {dividend!r}) (YAML: {{type: divides, divisor: "
                    f"{divisor}, dividend: {dividend}}})")


STAGE_VALUE_RULES: tuple[tuple[str, int, int | None, str], ...] = (
    ("depth", 1, None, "every stage runs at least one block"),
    # (above 32 would be float too: one network under two config ids)
    ("bits", 2, 32, "2..31 bits, or 32 for float"),
)


def require_stage_values(space: Space, family: str, stages: int | None = None,
                         rules: Iterable[tuple[str, int, int | None, str]] = STAGE_VALUE_RULES
                         ) -> None:
    """Raise :class:`SupernetError` for stage values no network can have: per ``rules``
    ``(name, lowest, highest or None, what is allowed)`` an int outside them in
    ``stages.S.name`` of the first ``stages`` stages (default :func:`n_stages`). By default a
    depth below 1 (a stage that runs no block would still change the width and resolution
    the next one is built for) and a bit width below 2 (one bit leaves a symmetric quantiser
    no levels) or above 32 (float, as 32 is)."""
    for s in range(n_stages(space) if stages is None else stages):
        for name, lo, hi, what in rules:
            path = f"stages.{s}.{name}"
            if not space.has(path):
                continue
            bad = [v for v in space.values(path)
                   if isinstance(v, bool) or not isinstance(v, int) or v < lo
                   or (hi is not None and v > hi)]
            if bad:
                raise SupernetError(f"space {space.name!r} (family {family}): {path} allows "
                                    f"{bad[0]!r}; {what}")


def require_positive_ints(space: Space, family: str, names: Iterable[str]) -> None:
    """Raise :class:`SupernetError` where a dimension named one of ``names`` (the last part of
    its path: ``width`` covers ``stem.width`` and ``stages.2.width``) allows a value that is
    not a positive int: channel counts, kernel sizes, groups and expand ratios build layers."""
    wanted = frozenset(names)
    for path in space.paths:
        if path.rsplit(".", 1)[-1] not in wanted:
            continue
        bad = [v for v in space.values(path)
               if isinstance(v, bool) or not isinstance(v, int) or v < 1]
        if bad:
            raise SupernetError(f"space {space.name!r} (family {family}): {path} allows "
                                f"{bad[0]!r}; its values must be positive integers")


def require_odd_kernels(space: Space, family: str) -> None:
    """Raise :class:`SupernetError` where a ``kernel`` dimension allows an even size (a
    'same'-padded conv needs an odd kernel; elastic kernels are centre crops)."""
    for path in space.paths:
        if path.rsplit(".", 1)[-1] == "kernel":
            bad = [v for v in space.values(path) if isinstance(v, int) and v % 2 == 0]
            if bad:
                raise SupernetError(f"space {space.name!r} (family {family}): {path} allows "
                                    f"{bad[0]!r}; kernel sizes must be odd (1, 3, 5, 7, ...)")


_FAMILIES: dict[str, type[Supernet]] = {}


def register_family(name: str) -> Callable[[type[Supernet]], type[Supernet]]:
    """Class decorator: register a :class:`Supernet` subclass for spaces of ``family: name``."""

    def deco(cls: type[Supernet]) -> type[Supernet]:
        cls.family = name
        _FAMILIES[name] = cls
        return cls

    return deco


def list_families() -> list[str]:
    """Names of the registered supernet families."""
    _load_builtins()
    return sorted(_FAMILIES)


def family_class(name: str | None) -> type[Supernet]:
    """The supernet class of family ``name``; the error lists the known families."""
    _load_builtins()
    if name is None:
        raise UsageError(f"the space names no family, so no supernet can be built for it "
                         f"(set its family: {', '.join(sorted(_FAMILIES))})")
    if name not in _FAMILIES:
        raise UsageError(f"no supernet family {name!r}; known families: "
                         f"{', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def _load_builtins() -> None:
    import nas.supernet.mobilenet  # noqa: F401
    import nas.supernet.resnet  # noqa: F401
    import nas.supernet.vit  # noqa: F401


def family_plan(cls: type[Supernet], space: Space, cfg: Config, build: BuildArgs) -> Any:
    """``cls.make_plan`` with a space that lacks a dimension the family reads (a file whose
    ``family`` was changed, a custom space that made ``stem.width`` conditional) reported as
    one :class:`SupernetError` naming space, family and dimension, not a ``KeyError``."""
    try:
        return cls.make_plan(space, cfg, build)
    except KeyError as e:
        what = e.args[0] if e.args else e
        raise SupernetError(f"space {space.name!r} does not fit family {cls.family!r}: the "
                            f"family reads {what}") from None


def check_build(cls: type[Supernet], build: BuildArgs) -> None:
    """Raise :class:`UsageError` if ``build`` sets what ``cls``'s family does not have."""
    if build.stem_stride is not None and not cls.has_stem:
        raise UsageError(f"stem_stride: family {cls.family!r} has no convolutional stem "
                         "(leave stem_stride unset)")


def check_stem_stride(family: str | None, stem_stride: int | None) -> None:
    """:func:`check_build` by family name, for options checked before anything is built
    (``stem_stride`` already validated)."""
    if stem_stride is not None:
        check_build(family_class(family), BuildArgs.make(1, 1, 1, stem_stride))


def zero_init_last(model: nn.Module) -> int:
    """Zero the scale of the batch norm that ends every residual branch of ``model`` (a
    supernet or an extracted subnet; BigNAS's initialisation, timm's ``zero_init_last``): each
    residual block starts as the identity (a ReLU after the sum aside), so subnets of every
    depth start alike. Returns how many norms were zeroed (0 where there are none, e.g.
    ``vit_like``)."""
    n = 0
    for m in model.modules():
        # (a method, not a property: TorchScript compiles a block's properties)
        norm = m.residual_last_norm() if hasattr(m, "residual_last_norm") else None
        if norm is not None:
            nn.init.zeros_(norm.weight)
            n += 1
    return n


def build_supernet(space: Space, *, in_channels: int, num_classes: int,
                   input_size: int | tuple[int, int], stem_stride: int | None = None,
                   device: torch.device | str | None = None) -> Supernet:
    """Build the supernet of ``space`` (looked up by ``space.family``) for inputs of
    ``in_channels x input_size`` and ``num_classes`` outputs, on ``device``. ``stem_stride``
    (CNN families): 1 or 2; by default 2 from 64 pixels up, else 1."""
    cls = family_class(space.family)
    build = BuildArgs.make(in_channels, num_classes, input_size, stem_stride)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return cls(space, build)


def build_subnet(space: Space, config: Config | Mapping[str, Any], *, in_channels: int,
                 num_classes: int, input_size: int | tuple[int, int],
                 stem_stride: int | None = None,
                 device: torch.device | str | None = None) -> nn.Module:
    """A freshly initialised static subnet of ``config`` (the structure :meth:`Supernet.extract`
    returns), e.g. to load saved subnet weights into."""
    cls = family_class(space.family)
    build = BuildArgs.make(in_channels, num_classes, input_size, stem_stride)
    check_build(cls, build)
    cfg = space.config(config)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return cls.build_static(family_plan(cls, space, cfg, build), build)


def size_extremes(space: Space, *, in_channels: int, num_classes: int,
                  input_size: int | tuple[int, int],
                  stem_stride: int | None = None) -> tuple[Config, Config]:
    """The smallest and the largest subnet of ``space``
    (:meth:`Supernet.smallest_config`, :meth:`Supernet.largest_config`), without
    allocating weights (the supernet is built on the ``meta`` device)."""
    cls = family_class(space.family)
    build = BuildArgs.make(in_channels, num_classes, input_size, stem_stride)
    with torch.device("meta"):
        net = cls(space, build)
    return net.smallest_config(), net.largest_config()


def analytic_costs(space: Space, config: Config | Mapping[str, Any], *, in_channels: int,
                   num_classes: int, input_size: int | tuple[int, int],
                   stem_stride: int | None = None) -> Costs:
    """Parameters, FLOPs and size of ``config`` without building any module (fast)."""
    cls = family_class(space.family)
    build = BuildArgs.make(in_channels, num_classes, input_size, stem_stride)
    check_build(cls, build)
    return cls.plan_costs(family_plan(cls, space, space.config(config), build), build)


class Supernet(nn.Module):
    """A weight-sharing network holding every architecture of a space.

    Use ``with supernet.activate(config): y = supernet(x)``; ``extract(config)`` returns the
    subnet as a plain PyTorch model with copied weights.
    """

    family: ClassVar[str] = ""
    # whether the family has a convolutional stem whose stride ``BuildArgs.stem_stride`` sets
    has_stem: ClassVar[bool] = True

    def __init__(self, space: Space, build: BuildArgs) -> None:
        super().__init__()
        if space.family != self.family:
            raise SupernetError(f"space {space.name!r} has family {space.family!r}; "
                                f"{type(self).__name__} builds {self.family!r}")
        check_build(type(self), build)
        self.space = space
        self.build = build
        self._active: Config | None = None
        self._plan: Any = None
        self._many: tuple[tuple[Config, ...], tuple[Any, ...]] | None = None
        self._sharing = False  # inside shared_weights / a grouped forward
        # plans by config (a plan depends only on the config: space and build are fixed) and
        # the plan the elastic modules are set to now: activating the config already in
        # place costs a dictionary lookup instead of ~0.6 ms of module updates
        self._plans: dict[Config, Any] = {}
        self._applied: Any = None

    # ------------------------------------------------------------------ family interface
    @classmethod
    def check_space(cls, space: Space) -> None:
        """Raise :class:`SupernetError` for a space the family cannot build as it says
        (missing or unknown dimensions, values no network can have, ...); run when a
        supernet is built, and on its own before long work that builds one later (a
        latency table's measurements)."""

    @classmethod
    def make_plan(cls, space: Space, config: Config, build: BuildArgs) -> Any:
        raise NotImplementedError

    @classmethod
    def build_static(cls, plan: Any, build: BuildArgs) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def plan_costs(cls, plan: Any, build: BuildArgs) -> Costs:
        raise NotImplementedError

    def _apply_plan(self, plan: Any) -> None:
        raise NotImplementedError

    def _forward(self, x: Tensor) -> Tensor:
        """The active subnet on a checked input: ``stem``, each of ``stages``, ``head`` (the
        default layout; a family with more parts overrides it)."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def reorder_channels(self, keep: Config | Mapping[str, Any] | None = None) -> None:
        """Sort channels by importance so that narrow subnets keep the most important ones,
        without changing the function of the full-width network. With ``keep`` (a config),
        each group of channels that ``keep`` uses only in part keeps that part as its first
        channels, each part sorted on its own (OFA's second sort of a width phase: the
        channels of the widths trained so far stay theirs, and a narrower width gets the
        most important of them; :func:`~nas.supernet.ops.importance_order`)."""
        raise NotImplementedError

    def _kept_counts(self, keep: Config | Mapping[str, Any] | None,
                     read: Callable[[], list[int]]) -> list[int | None] | None:
        """``read()`` (the active channel counts of the family's channel groups) with
        ``keep`` active; ``None`` without ``keep``."""
        if keep is None:
            return None
        # the largest first: modules of blocks that ``keep`` does not run read full counts
        # (a full sort there) instead of whatever an earlier subnet left in them
        self._use_plan(self._plan_of(self.largest_config()))
        with self.activate(keep):
            return list(read())

    def size_key(self, path: str, value: Any) -> Any:
        """How large a network ``value`` of dimension ``path`` makes, as a sortable key
        (larger is larger), or ``None`` where the dimension's values do not order the
        network's size (they are then left to the space's value order). Families key
        their width, depth, kernel, cardinality, attention and bits dimensions by value,
        so that a space listing its choices in any order (``[64, 32, 16]``, cardinality
        ``[1, 2, 4]``) has the same largest and smallest subnets."""
        return None

    def size_order(self, path: str) -> list[Any]:
        """The values of ``path`` from the one making the largest network to the one making
        the smallest (:meth:`size_key`; the space's order reversed where it has none)."""
        vals = list(self.space.values(path))
        keys = [self.size_key(path, v) for v in vals]
        if any(k is None for k in keys):
            return vals[::-1]
        order = sorted(range(len(vals)), key=lambda i: (keys[i], i), reverse=True)
        return [vals[i] for i in order]

    def _extreme_config(self, largest: bool) -> Config:
        """The config with each dimension that :meth:`size_key` orders at its largest
        (``largest``) or smallest value the constraints allow, taken greedily: the
        dimensions that exist in every config (the depths among them) first, then those of
        the blocks, each in declaration order at the most extreme value that still leaves a
        valid config with the values taken so far (as ``space.max()`` adjusts in declaration
        order); the dimensions it does not order as near the space's matching end as the
        constraints allow. Greedy: where constraints couple dimensions (a width and the
        cardinalities that must divide it), a later dimension's extreme may need an earlier
        one off its own, and the result need not be the very largest or smallest network
        (the README's ``mini_resnet``: width 24 with 1 group, 7,434 parameters, is taken as
        the smallest, while width 32 with 16 groups has 3,674)."""
        space = self.space
        prefer = "max" if largest else "min"
        ordered = [p for p in space.paths
                   if all(self.size_key(p, v) is not None for v in space.values(p))]
        ordered.sort(key=lambda p: bool(space.conditions(p)))  # stable: declaration order
        pins: dict[str, Any] = {}
        cfg = space.complete(pins, prefer=prefer)
        if cfg is None:  # load_space refuses such spaces; a hand-built one may get here
            raise SupernetError(f"space {space.name!r} admits no config")
        for p in ordered:
            if p not in cfg:  # absent at the values taken so far
                continue
            order = self.size_order(p)
            for v in order if largest else order[::-1]:
                got = space.complete({**pins, p: v}, prefer=prefer)
                if got is not None:
                    pins[p], cfg = v, got
                    break
        return cfg

    def largest_config(self) -> Config:
        """The config with the most parameters at float precision (the one all weights
        except choice-specific extras belong to): every dimension :meth:`size_key` orders
        at its largest value, whatever order the space lists the values in."""
        return self._extreme_config(largest=True)

    def smallest_config(self) -> Config:
        """The config with every dimension :meth:`size_key` orders at its smallest value
        (the smallest subnet the training strategies train)."""
        return self._extreme_config(largest=False)

    # ------------------------------------------------------------------ activation
    @property
    def active_config(self) -> Config | None:
        """The config now active (``None`` outside :meth:`activate`)."""
        return self._active

    def plan(self, config: Config | Mapping[str, Any]) -> Any:
        """The plan of a config of this supernet's space (validated)."""
        return self._plan_of(self.space.config(config))

    def _plan_of(self, cfg: Config) -> Any:
        plan = self._plans.get(cfg)
        if plan is None:
            if len(self._plans) >= 4096:  # bounded: searches visit many configs
                self._plans.clear()
            plan = self._plans[cfg] = family_plan(type(self), self.space, cfg, self.build)
        return plan

    def _use_plan(self, plan: Any) -> None:
        """Set the elastic modules to ``plan`` unless they already are."""
        if plan is not self._applied:
            self._applied = None  # a failure half-way leaves no stale marker
            self._apply_plan(plan)
            self._applied = plan

    @contextlib.contextmanager
    def activate(self, config: Config | Mapping[str, Any]) -> Iterator[Config]:
        """Validate ``config`` (before any tensor is touched), make it the active architecture
        for the ``with`` body, then restore the previous one."""
        cfg = self.space.config(config)
        plan = self._plan_of(cfg)
        prev = (self._active, self._plan)
        self._set(cfg, plan)
        try:
            yield cfg
        finally:
            if prev[0] is None:
                self._active, self._plan = None, None
            else:
                self._set(*prev)

    @contextlib.contextmanager
    def activate_many(self, configs: Iterable[Config | Mapping[str, Any]]
                      ) -> Iterator[tuple[Config, ...]]:
        """Multi-architecture batches (ViT-ResNAS): inside the ``with`` body, ``self(x)``
        splits the batch into ``K = len(configs)`` contiguous groups (``x.tensor_split(K)``:
        equal sizes when ``K`` divides the batch) and computes group ``k`` exactly as
        ``with self.activate(configs[k]): self(group_k)`` would, in train mode too (batch
        norm uses each group's own batch statistics and updates the running statistics group
        after group, as K separate passes in that order would). Returns the K groups' outputs
        concatenated in batch order. All configs are validated before any tensor is touched.

        Execution: the groups run one after the other inside one autograd graph, so one
        backward pass and one optimizer step cover K subnets. Before the groups run, every
        elastic conv derives the K groups' weights in one go
        (:meth:`~nas.supernet.ops.ElasticConv2d.share_weights`): one gather reads each
        group's part of the shared weight (channels, block diagonal, kernel taps), and its
        backward adds all K gradients into one buffer. Autograd's slices would allocate and
        zero a gradient the size of the whole shared weight per group and per slicing step
        and then add the K of them up; on a CPU that zero-filling was the largest single cost
        of a backward pass (see ``benchmarks/RESULTS.md``). What else a step saves is the
        per-step work over the shared weights (gradient clipping, the optimizer update), done
        once instead of K times.
        Channel-stacked execution (the K groups side by side in the channel dimension, one
        grouped convolution, batch norm and ReLU per layer for all of them, zero-padded to the
        widest group) was implemented and measured slower: kernels, cardinality and attention
        are sampled per block and stage, so the convolutions split into buckets, and the
        padding, gathering and per-group statistics cost more than the calls saved (forward
        154-160 ms against 134-135 ms for the groups one after the other).
        """
        cfgs = tuple(self.space.config(c) for c in configs)
        if not cfgs:
            raise SupernetError("activate_many: no configs given")
        plans = tuple(self._plan_of(c) for c in cfgs)
        prev = (self._active, self._plan, self._many)
        self._active, self._plan, self._many = None, None, (cfgs, plans)
        try:
            yield cfgs
        finally:
            self._many = prev[2]
            if prev[0] is None:
                self._active, self._plan = None, None
            else:
                self._set(prev[0], prev[1])

    def _forward_many(self, x: Tensor) -> Tensor:
        assert self._many is not None
        _, plans = self._many
        k = len(plans)
        if x.shape[0] < k:
            raise InputShapeError(f"input: a batch of {x.shape[0]} cannot be split into "
                                  f"{k} groups (one per active config)")
        parts = x.tensor_split(k)
        outs = []
        try:
            # every conv derives the K groups' weights at once, so that their gradients meet
            # in one buffer per shared weight
            with self._share(plans if k > 1 else ()):
                for plan, part in zip(plans, parts):
                    self._use_plan(plan)
                    outs.append(self._forward(part))
        finally:
            if self._plan is not None:
                self._use_plan(self._plan)
        return torch.cat(outs)

    @contextlib.contextmanager
    def shared_weights(self, configs: Iterable[Config | Mapping[str, Any]]) -> Iterator[None]:
        """For a training step that runs several subnets and then **one** backward pass over
        their summed losses (``sandwich``, ``poa``, ``progressive``; ``activate_many`` does
        this by itself): inside the ``with`` body, forward passes at any of ``configs`` use
        elastic-conv weights derived for all of them at once
        (:meth:`~nas.supernet.ops.ElasticConv2d.share_weights`), so their gradients meet in
        one buffer per shared weight instead of one zero-filled whole-weight gradient per
        subnet, added up. The derived weights hold the graph of all ``configs`` until that
        one backward pass: a backward pass per subnet inside the body would free it after
        the first (autograd then raises). No optimizer step inside the body (the derived
        weights would be stale). Without autograd, and inside another ``shared_weights``, it
        does nothing."""
        cfgs = [self.space.config(c) for c in configs]
        with self._share(tuple(self._plan_of(c) for c in cfgs)):
            yield

    @contextlib.contextmanager
    def _share(self, plans: tuple[Any, ...]) -> Iterator[None]:
        if not plans or not torch.is_grad_enabled() or self._sharing:
            yield
            return
        settings: dict[ElasticConv2d | ElasticLinear, list[tuple[int, ...]]] = {}
        self._sharing = True
        try:
            for plan in plans:
                self._use_plan(plan)
                for m in self._active_shared():
                    settings.setdefault(m, []).append(m.share_key())
            if self._plan is not None:
                self._use_plan(self._plan)
            for m, sts in settings.items():
                m.share_weights(sts)
            yield
        finally:
            self._sharing = False
            for m in settings:  # (clearing one that was never set is harmless)
                m.share_weights(None)

    def _active_shared(self) -> Iterator[ElasticConv2d | ElasticLinear]:
        """The elastic convs and linears (the modules with shared weights to derive) the
        applied plan runs."""
        for _, child in self.named_children():
            for m in (child, *active_leaves(child)):
                if isinstance(m, (ElasticConv2d, ElasticLinear)):
                    yield m

    def _set(self, cfg: Config, plan: Any) -> None:
        self._use_plan(plan)
        self._active, self._plan = cfg, plan

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`InputShapeError` unless ``x`` is ``(batch, C, H, W)`` as built."""
        b = self.build
        if (not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != b.in_channels
                or (x.shape[2], x.shape[3]) != b.input_size):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputShapeError(
                f"input: expected a (batch, {b.in_channels}, {b.input_size[0]}, "
                f"{b.input_size[1]}) tensor (built with in_channels={b.in_channels}, "
                f"input_size={b.input_size[0]}x{b.input_size[1]}), got {got}")

    def forward(self, x: Tensor) -> Tensor:
        if self._many is not None and self._active is None:
            self.check_input(x)
            return self._forward_many(x)
        if self._active is None:
            raise SupernetError("no config is active; run the supernet inside "
                                "`with supernet.activate(config):`")
        self.check_input(x)
        return self._forward(x)

    # ------------------------------------------------------------------ extraction
    def subnet_state_dict(self) -> dict[str, Tensor]:
        """The tensors of the active subnet, named as in its static model (not copies)."""
        self._require_active()
        out: dict[str, Tensor] = {}
        for name, child in self.named_children():
            collect_state(child, f"{name}.", out)
        return out

    def extract(self, config: Config | Mapping[str, Any] | None = None) -> nn.Module:
        """The subnet of ``config`` (default: the active one) as a plain PyTorch model with
        copied weights, on the supernet's device, in the supernet's train/eval mode."""
        if config is None:
            self._require_active()
            config = self._active
        with self.activate(config) as cfg:
            with torch.device("meta"):  # no init work: every tensor is loaded next
                static = self.build_static(self._plan, self.build)
            static = static.to_empty(device=self._device())
            static.load_state_dict(self.subnet_state_dict(), strict=True)
            # the quantizers' non-persistent flags (to_empty left them uninitialised memory)
            flags: dict[str, Tensor] = {}
            for name, child in self.named_children():
                collect_state(child, f"{name}.", flags, "active_flags")
            for name, buf in static.named_buffers():
                if name.rsplit(".", 1)[-1] == "initialized":
                    buf.copy_(flags.get(name, torch.tensor(True)))
        static.train(self.training)
        log.debug("extracted %s", cfg.id)
        return static

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _require_active(self) -> None:
        if self._active is None:
            raise SupernetError("no config is active; pass a config or use "
                                "`with supernet.activate(config):`")

    def active_modules(self) -> list[nn.Module]:
        """Modules the active config runs (depth first; elastic layers and their parents)."""
        self._require_active()
        out: list[nn.Module] = []
        for _, child in self.named_children():
            out.append(child)
            out.extend(active_leaves(child))
        return out

    # ------------------------------------------------------------------ costs
    def costs(self, config: Config | Mapping[str, Any]) -> Costs:
        """Analytic parameters, FLOPs and size of ``config`` (no module built)."""
        return self.plan_costs(self.plan(config), self.build)

    def param_split(self) -> dict[str, int]:
        """The supernet's parameters as the largest subnet's plus choice-specific extras.

        Returns ``total``, ``largest_subnet`` and one entry per extra kind
        (``kernel_transforms``, ``attention_variants``, ``act_quant_ranges``,
        ``cropped_kernel_taps``); the parts add up to ``total`` (checked).
        ``cropped_kernel_taps`` are the taps of the largest kernels that the largest subnet
        does not run because its feature maps are too small for them (see
        :func:`~nas.supernet.static.conv_window`); smaller kernels may still read some of
        them through their kernel transforms.
        """
        total = sum(p.numel() for p in self.parameters())
        largest = self.costs(self.largest_config()).params
        transforms = sum(p.numel() for n, p in self.named_parameters() if "kernel_transform" in n)
        quant = sum(p.numel() for n, p in self.named_parameters() if n.endswith(".clip"))
        with self.activate(self.largest_config()):
            used = {id(m) for m in self.active_modules()}
            # a largest config below 32 bits (a space without float) counts its own ranges
            quant -= sum(1 for m in self.active_modules()
                         if isinstance(m, ElasticActQuant) and m._idx >= 0)
            cropped = sum(m.weight.numel() - m.derived_weight().numel()
                          for m in self.active_modules() if isinstance(m, ElasticConv2d))
        attn = 0
        for m in self.modules():
            if hasattr(m, "variants") and isinstance(m.variants, nn.ModuleDict):
                for v in m.variants.values():
                    if id(v) not in used:
                        attn += sum(p.numel() for p in v.parameters())
        split = {"total": total, "largest_subnet": largest, "kernel_transforms": transforms,
                 "attention_variants": attn, "act_quant_ranges": quant,
                 "cropped_kernel_taps": cropped}
        if largest + transforms + attn + quant + cropped != total:
            raise SupernetError(f"parameter split does not add up: {split}")
        return split

    # ------------------------------------------------------------------ batch norm
    @torch.no_grad()
    def recalibrate_bn(self, config: Config | Mapping[str, Any], batches: Iterable[Any],
                       max_batches: int | None = None) -> int:
        """Recompute the running statistics of the batch norms ``config`` uses as the exact
        average over ``batches`` (tensors or ``(inputs, ...)`` tuples). Other configs' slices
        beyond this config's widths are untouched. Returns the number of batches used: 0,
        without reading any, when the config has no batch norm (``vit_like`` normalises
        with layer norm, which keeps no statistics)."""
        if max_batches is not None and (isinstance(max_batches, bool)
                                        or not isinstance(max_batches, int) or max_batches < 1):
            raise SupernetError(f"recalibrate_bn: max_batches must be an int >= 1 (or None), "
                                f"got {max_batches!r}")
        modes = [(m, m.training) for m in self.modules()]
        n = 0
        with self.activate(config):
            bns = [m for m in self.active_modules() if isinstance(m, ElasticBatchNorm2d)]
            if not bns:
                return 0
            saved = [(m.running_mean[: m._c].clone(), m.running_var[: m._c].clone(),
                      m.num_batches_tracked.clone()) for m in bns]
            for m in bns:
                m.begin_recalibration()
            # only the batch norms in train mode: everything else runs as at inference (a
            # quantiser whose range was never trained must not set it from these batches)
            self.eval()
            for m in bns:
                m.train()
            try:
                it = batches if max_batches is None else itertools.islice(batches, max_batches)
                for batch in it:
                    x = batch[0] if isinstance(batch, (tuple, list)) else batch
                    self(x.to(self._device()))
                    n += 1
            finally:
                for m in bns:
                    m.end_recalibration()
                if n == 0 or sys.exc_info()[0] is not None:
                    for m, (rm, rv, nb) in zip(bns, saved):  # leave them as they were
                        m.running_mean[: rm.numel()].copy_(rm)
                        m.running_var[: rv.numel()].copy_(rv)
                        m.num_batches_tracked.copy_(nb)
                for m, mode in modes:
                    m.training = mode
        if n == 0:
            raise SupernetError("recalibrate_bn: no batches given")
        return n
