"""Latency lookup tables measured on the user's own device (OFA-style).

A :class:`LatencyTable` holds the measured latency of every distinct *unit* a space can
produce (the stem, each block, the head), keyed by a signature that fully determines the
unit's cost, plus a per-network overhead fitted on a few measured whole subnets. A config's
predicted latency is::

    intercept_ms + per_block_ms * n_blocks + sum over unit classes k of scale_k * sum_k

where ``sum_k`` is the sum of the config's units of class ``k``: ``glue`` (stem, head),
``float`` (blocks in float) and ``quant`` (blocks with fake-quantized weights and
activations, ``bits=`` below 32 in their signature). The overhead terms are fitted on whole
subnets measured on the device: isolated units miss what a network adds (Python dispatch
between modules, caches evicted by the neighbouring layers; quantized blocks recompute their
weights every call and suffer most).

Where the units come from. A latency family (registered by supernet family name with
:func:`register_latency_family`) lists the *positions* of a network (stem, stage ``s`` block
``b``, head): for each, the space dimensions that decide it (``deps``), the dimension that
decides whether it exists (``presence``, a stage depth) and how to pull the unit out of a
plan. Every combination of the deps' values is turned into a plan by the supernet family's
own ``make_plan``, so the signature is the block's plan as the family computes it (block
type, in/out channels, kernel, stride, groups, attention, bits, input and output resolution),
and the module measured is the one the family's ``build_static`` puts into a real subnet.

Prediction is vectorised: each position has a lookup array over the product of its deps'
value indices (one extra slot for an absent, conditional dimension), so ``predict_many``
is a few fancy-indexing operations over ``space.encode_many(configs)``.

JSON format (``format: nas.latency_table``, ``version: 2``; version 1 is read too, except
for ``vit_like``, whose blocks changed)::

    {"format", "version", "complete": bool, "space": space.to_dict(), "fingerprint",
     "family", "settings": {"device", "device_name", "threads", "batch", "input_size",
                            "in_channels", "num_classes", "torch", "warmup", "repeats",
                            "stem_stride"},
     "date", "statistic": "p10",
     "entries": {signature: {"min", "p10", "median", "mean", "max", "repeats"}},  # ms
     "positions": [{"name", "deps", "sizes", "presence", "present", "is_block",
                    "keys": [index into "keys" per combination; -1: not a valid combination]}],
     "keys": [signature, ...],
     "overhead": {"intercept_ms", "per_block_ms",
                  "scales": {"glue", "float", "quant", "mhsa"}, "class_scheme": 2,
                  "memory_bound_attention_positions": 512, "subnets": [...]},
                  # scales absent (all 1) in the oldest tables; class_scheme absent: 1
                  # (no mhsa class: attention blocks were float/quant)
     "reference": {"baseline": {"min", "p10", "median", "mean"},  # ms; absent: no drift
                   "chunks": [{...}, ...],                         # correction
                   "attention": {"baseline": {...}, "chunks": [...],  # absent: one
                                 "input_shape": [C, H, W]}}}          # reference

Drift correction: every chunk of units (and of whole subnets, when fitting the overhead) is
timed together with :func:`nas.predictors.profiling.reference_model`, and
its times are multiplied by ``baseline / reference time in that chunk``: all numbers are
expressed at one machine state, the median of the reference over the build. Tables with
memory-bound attention units (``mhsa`` over at least
:data:`MEMORY_BOUND_ATTENTION_POSITIONS` positions, e.g. stage 0 at 32x32; not at 8x8,
where attention is as cheap as its neighbours) also time
:func:`nas.predictors.profiling.attention_reference` in every chunk: those units are
corrected by it (their speed follows memory traffic, which the CNN reference does not
track), and a whole subnet by the blend of both factors weighted by the table's predicted
share of its attention units.

Measurements made later against a finished table (validation, a search's measured front)
are corrected by the table's own overhead subnets instead, timed again alongside: real
networks of the space whose build-time times the table stores, nearest in size to each
measured model (:func:`measure_with_references`). The reference CNN does not track this
machine's level between a build and a later measurement; networks of the model's own size do.

Loading a table built for other settings (device, threads, batch, input size, torch version)
logs a warning; a corrupt file or one for another space raises :class:`LatencyTableError`
naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import itertools
import json
import logging
import math
import os
import platform
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import ConfigError, NasError, UsageError
from nas.predictors.metrics import kendall_tau, mape, spearman, within_pct
from nas.predictors.profiling import (
    ATTENTION_REFERENCE_CHANNELS,
    DEFAULT_STATISTIC,
    STATISTICS,
    LatencyStats,
    attention_reference,
    check_statistic,
    drift_factors,
    measure_many,
    reference_model,
    resolve_device,
)
from nas.utils.checks import check_int
from nas.utils.files import atomic_write_text

log = logging.getLogger(__name__)

FORMAT = "nas.latency_table"
# 2: vit_like's ViT-ResNAS layout (heads of a fixed width, reductions with a parameter-free
# skip and a position embedding); version-1 tables of other families still load
VERSION = 2
_READABLE = (1, 2)
INVALID = -1
_ABSENT = object()
# reference subnets (the table's overhead subnets) nearest in measured time that set one
# measured model's drift factor (:func:`local_drift_factors`)
LOCAL_REFERENCES = 16
# settings whose difference makes a table's numbers unreliable (warned about on load)
COMPARED_SETTINGS = ("device", "device_name", "threads", "batch", "input_size", "in_channels",
                     "num_classes", "stem_stride", "torch")


class LatencyTableError(UsageError):
    """A latency table file that is corrupt, incomplete, or built for another space or other
    settings: a wrong input file (the CLI's exit status 2)."""


# ---------------------------------------------------------------------- families
@dataclass(frozen=True)
class Unit:
    """One measurable piece of a network: its signature, input shape and a builder."""

    key: str
    input_shape: tuple[int, ...]
    build: Callable[[], nn.Module]


@dataclass(frozen=True)
class Position:
    """A place in the network whose unit depends on the dimensions ``deps``.

    Attributes:
        name: e.g. ``stem``, ``stages.1.blocks.0``, ``head``.
        deps: dimension paths that decide the unit (those the space has).
        unit: the unit at this position in a plan, ``None`` where the plan lacks it.
        presence: a dimension (a stage depth) deciding whether the position exists; deps are
            enumerated with it at its largest value.
        is_block: counts towards ``n_blocks`` of the overhead model.
    """

    name: str
    deps: tuple[str, ...]
    unit: Callable[[Any], Unit | None]
    presence: str | None = None
    is_block: bool = True


class LatencyFamily(ABC):
    """How the networks of one supernet family split into units."""

    @abstractmethod
    def positions(self, space: Any, build: Any) -> list[Position]:
        """The positions of the space's networks (stem, blocks, head)."""


_FAMILIES: dict[str, LatencyFamily] = {}


def register_latency_family(name: str) -> Callable[[type[LatencyFamily]], type[LatencyFamily]]:
    """Class decorator: register a :class:`LatencyFamily` for supernet family ``name``."""

    def deco(cls: type[LatencyFamily]) -> type[LatencyFamily]:
        _FAMILIES[name] = cls()
        return cls

    return deco


def list_latency_families() -> list[str]:
    """Supernet families that lookup tables support."""
    return sorted(_FAMILIES)


def latency_family(name: str | None) -> LatencyFamily:
    """The latency family ``name``; the error lists the supported ones."""
    if name not in _FAMILIES:
        raise UsageError(f"latency tables do not support family {name!r}; supported: "
                         f"{', '.join(list_latency_families())} (for other spaces use a learned "
                         "latency predictor: nas predictor evaluate --target <latency column>)")
    return _FAMILIES[name]


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return "x".join(_fmt(x) for x in v)
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def plan_signature(kind: str, plan: Any, **extra: Any) -> str:
    """``kind(field=value,...)`` of a frozen plan dataclass plus ``extra`` fields."""
    parts = [f"{f.name}={_fmt(getattr(plan, f.name))}" for f in dataclasses.fields(plan)]
    parts += [f"{k}={_fmt(v)}" for k, v in extra.items()]
    return f"{kind}({','.join(parts)})"


class StagedFamily(LatencyFamily):
    """Families made of a stem, stages of blocks and a head (``resnet_like``,
    ``mobilenet_like``). Subclasses name their per-stage and per-block dimensions and how
    the head is built."""

    family = ""
    stage_dims: tuple[str, ...] = ("width", "attention", "bits")
    block_dims: tuple[str, ...] = ()

    def head_deps(self, space: Any, last: int) -> tuple[str, ...]:
        return (f"stages.{last}.width",)

    def head_unit(self, plan: Any, build: Any, model_of: Callable[[Any], nn.Module]) -> Unit:
        raise NotImplementedError

    def _cls(self) -> Any:
        from nas.supernet import family_class

        return family_class(self.family)

    def positions(self, space: Any, build: Any) -> list[Position]:
        from nas.supernet.base import n_stages

        cls = self._cls()

        def model_of(plan: Any) -> nn.Module:
            return cls.build_static(plan, build)

        def stem(plan: Any) -> Unit:
            h, w = build.input_size
            key = (f"stem(in_ch={build.in_channels},width={plan.stem_width},"
                   f"stride={plan.stem_stride},in_hw={h}x{w},hw={_fmt(plan.stem_hw)})")

            def make() -> nn.Module:
                m = model_of(dataclasses.replace(plan, stages=()))
                return nn.Sequential(m.input_check, m.stem)

            return Unit(key, (build.in_channels, h, w), make)

        out = [Position("stem", ("stem.width",), stem, is_block=False)]
        ns = n_stages(space)
        for s in range(ns):
            depth = f"stages.{s}.depth"
            nmax = max(space.values(depth))
            for b in range(nmax):
                deps = []
                if b == 0:
                    deps.append("stem.width" if s == 0 else f"stages.{s - 1}.width")
                deps += [f"stages.{s}.{d}" for d in self.stage_dims]
                deps += [f"stages.{s}.blocks.{b}.{d}" for d in self.block_dims]
                deps = [d for d in deps if space.has(d)]

                def block(plan: Any, s: int = s, b: int = b) -> Unit | None:
                    if s >= len(plan.stages) or b >= len(plan.stages[s]):
                        return None
                    bp = plan.stages[s][b]
                    key = plan_signature(type(bp).__name__, bp)

                    def make() -> nn.Module:
                        m = model_of(self._one_block_plan(plan, bp))
                        return m.stages[0].blocks[0]

                    return Unit(key, self._block_input(bp), make)

                out.append(Position(f"stages.{s}.blocks.{b}", tuple(deps), block,
                                    presence=depth))
        head_deps = tuple(d for d in self.head_deps(space, ns - 1) if space.has(d))
        out.append(Position("head", head_deps,
                            lambda plan: self.head_unit(plan, build, model_of), is_block=False))
        return out

    def _one_block_plan(self, plan: Any, bp: Any) -> Any:
        raise NotImplementedError

    def _block_input(self, bp: Any) -> tuple[int, ...]:
        return (bp.in_ch, *bp.in_hw)


@register_latency_family("resnet_like")
class ResNetLatency(StagedFamily):
    """``resnet_like``: stem, :class:`~nas.supernet.blocks.ResBlock` blocks, pooled linear
    head."""

    family = "resnet_like"
    block_dims = ("kernel", "cardinality")

    def _one_block_plan(self, plan: Any, bp: Any) -> Any:
        return dataclasses.replace(plan, stem_width=bp.in_ch, stages=((bp,),),
                                   out_width=bp.width, out_hw=bp.hw)

    def head_unit(self, plan: Any, build: Any, model_of: Callable[[Any], nn.Module]) -> Unit:
        key = (f"head(width={plan.out_width},hw={_fmt(plan.out_hw)},"
               f"classes={build.num_classes})")

        def make() -> nn.Module:
            return model_of(dataclasses.replace(plan, stages=())).head

        return Unit(key, (plan.out_width, *plan.out_hw), make)


@register_latency_family("mobilenet_like")
class MobileNetLatency(StagedFamily):
    """``mobilenet_like``: stem, :class:`~nas.supernet.blocks.MBConv` blocks, 1x1 neck conv
    plus pooled linear head (measured together as the head)."""

    family = "mobilenet_like"
    block_dims = ("expand", "kernel")

    def head_deps(self, space: Any, last: int) -> tuple[str, ...]:
        return (f"stages.{last}.width", "head.width")

    def _one_block_plan(self, plan: Any, bp: Any) -> Any:
        return dataclasses.replace(plan, stem_width=bp.in_ch, stages=((bp,),),
                                   last_width=bp.out_ch, out_hw=bp.hw)

    def head_unit(self, plan: Any, build: Any, model_of: Callable[[Any], nn.Module]) -> Unit:
        key = (f"head(in_ch={plan.last_width},width={plan.head_width},hw={_fmt(plan.out_hw)},"
               f"classes={build.num_classes})")

        def make() -> nn.Module:
            m = model_of(plan if not plan.stages else dataclasses.replace(plan, stages=()))
            return nn.Sequential(m.neck, m.head)

        return Unit(key, (plan.last_width, *plan.out_hw), make)


@register_latency_family("vit_like")
class VitLatency(LatencyFamily):
    """``vit_like``: the patch embedding, per stage its residual spatial reduction (stages
    after the first) and its transformer blocks, the token head. Units take ``(tokens,
    dim)`` inputs, except the patch embedding (the image)."""

    def positions(self, space: Any, build: Any) -> list[Position]:
        from nas.supernet import family_class
        from nas.supernet.vit import vit_stages

        cls = family_class("vit_like")

        def alone(plan: Any, stage: tuple[Any, ...]) -> Any:
            """``plan`` reduced to one stage (or none): a small model holding the unit."""
            return dataclasses.replace(plan, stages=(stage,) if stage else ())

        def stem(plan: Any) -> Unit:
            h, w = build.input_size
            key = (f"patch_embed(in_ch={build.in_channels},patch={plan.patch},"
                   f"grid={_fmt(plan.grid)},dim={plan.stem_dim},in_hw={h}x{w})")

            def make() -> nn.Module:
                m = cls.build_static(alone(plan, ()), build)
                return nn.Sequential(m.input_check, m.stem)

            return Unit(key, (build.in_channels, h, w), make)

        out = [Position("stem", ("stages.0.embed_dim",), stem, is_block=False)]
        ns = vit_stages(space)
        stage_dims = ("embed_dim", "heads", "mlp_ratio", "attention", "bits")
        for s in range(ns):
            if s > 0:
                deps = tuple(d for d in (f"stages.{s - 1}.embed_dim", f"stages.{s}.embed_dim",
                                         f"stages.{s}.bits") if space.has(d))

                def reduce(plan: Any, s: int = s) -> Unit:
                    rp = plan.stages[s][0]

                    def make() -> nn.Module:
                        return cls.build_static(alone(plan, (rp,)), build).stages[0].blocks[0]

                    return Unit(plan_signature("reduce", rp),
                                (rp.in_hw[0] * rp.in_hw[1], rp.in_dim), make)

                out.append(Position(f"stages.{s}.reduce", deps, reduce))
            deps = tuple(d for d in (f"stages.{s}.{n}" for n in stage_dims) if space.has(d))
            first = 1 if s > 0 else 0
            for b in range(max(space.values(f"stages.{s}.depth"))):

                def block(plan: Any, s: int = s, i: int = first + b) -> Unit | None:
                    if s >= len(plan.stages) or i >= len(plan.stages[s]):
                        return None
                    bp = plan.stages[s][i]

                    def make() -> nn.Module:
                        return cls.build_static(alone(plan, (bp,)), build).stages[0].blocks[0]

                    return Unit(plan_signature("transformer", bp), (bp.hw[0] * bp.hw[1], bp.dim),
                                make)

                out.append(Position(f"stages.{s}.blocks.{b}", deps, block,
                                    presence=f"stages.{s}.depth"))

        def head(plan: Any) -> Unit:
            n = plan.out_hw[0] * plan.out_hw[1]
            key = f"token_head(dim={plan.out_dim},tokens={n},classes={build.num_classes})"

            def make() -> nn.Module:
                return cls.build_static(alone(plan, ()), build).head

            return Unit(key, (n, plan.out_dim), make)

        out.append(Position("head", (f"stages.{ns - 1}.embed_dim",), head, is_block=False))
        return out


# ---------------------------------------------------------------------- enumeration
@dataclass
class _PositionMap:
    name: str
    deps: tuple[str, ...]
    sizes: tuple[int, ...]          # per dep: number of values (+1 when it can be absent)
    presence: str | None
    present: tuple[bool, ...]       # per value index of ``presence``
    is_block: bool
    keys: np.ndarray                # key index per combination (INVALID: never valid)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "deps": list(self.deps), "sizes": list(self.sizes),
                "presence": self.presence, "present": list(self.present),
                "is_block": self.is_block, "keys": self.keys.tolist()}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> _PositionMap:
        keys = np.asarray(d["keys"], dtype=np.int64)
        sizes = tuple(int(x) for x in d["sizes"])
        if keys.shape != (int(np.prod(sizes)),):
            raise ValueError(f"position {d['name']!r}: {keys.size} keys for sizes {sizes}")
        return _PositionMap(str(d["name"]), tuple(str(x) for x in d["deps"]), sizes,
                            d["presence"], tuple(bool(x) for x in d["present"]),
                            bool(d["is_block"]), keys)


def _dim_slots(space: Any, path: str) -> list[Any]:
    vals: list[Any] = list(space.values(path))
    if space.conditions(path):
        vals.append(_ABSENT)
    return vals


def enumerate_units(space: Any, build: Any) -> tuple[list[_PositionMap], dict[str, Unit]]:
    """Every position's lookup map and every distinct unit the space can produce.

    Each combination of a position's deps is turned into a plan by the family's
    ``make_plan``, the other dimensions at their largest values -- or, where that plan is
    rejected because of them (another block of the stage with a cardinality that does not
    divide a narrower width, say), at the largest values the space's constraints allow
    alongside the combination. Combinations the family rejects map to ``INVALID``.
    """
    from nas.supernet import family_class

    fam = latency_family(space.family)
    cls = family_class(space.family)
    # the largest subnet (every block present, whatever order the space lists values in)
    with torch.device("meta"):
        base = dict(cls(space, build).largest_config().flat())

    def plan_for(fixed: Mapping[str, Any]) -> Any:
        """The family's plan with ``fixed`` (``_ABSENT``: dimension left out), or ``None``."""
        given = {d: v for d, v in fixed.items() if v is not _ABSENT}
        for attempt in range(2):
            if attempt == 0:
                flat = {**base, **given}
            else:
                try:
                    completed = space.complete(given)
                except ConfigError:
                    return None
                if completed is None:
                    return None
                flat = dict(completed.flat())
            for d, v in fixed.items():
                if v is _ABSENT:
                    flat.pop(d, None)
            try:
                return cls.make_plan(space, flat, build)
            except (ConfigError, KeyError):
                continue
        return None

    units: dict[str, Unit] = {}
    order: dict[str, int] = {}
    maps = []
    for pos in fam.positions(space, build):
        slots = [_dim_slots(space, d) for d in pos.deps]
        sizes = tuple(len(s) for s in slots)
        keys = np.full(int(np.prod(sizes)) if sizes else 1, INVALID, dtype=np.int64)
        for i, combo in enumerate(itertools.product(*slots)):
            plan = plan_for(dict(zip(pos.deps, combo)))
            unit = None if plan is None else pos.unit(plan)
            if unit is None:
                continue
            if unit.key not in order:
                order[unit.key] = len(order)
                units[unit.key] = unit
            keys[i] = order[unit.key]
        present: tuple[bool, ...] = ()
        if pos.presence is not None:
            flags = []
            for v in space.values(pos.presence):
                plan = plan_for({pos.presence: v})
                flags.append(plan is not None and pos.unit(plan) is not None)
            present = tuple(flags)
        maps.append(_PositionMap(pos.name, pos.deps, sizes, pos.presence, present,
                                 pos.is_block, keys))
    return maps, units


# ---------------------------------------------------------------------- settings
def device_name(device: torch.device | str) -> str:
    """A human-readable name of the device (CPU model or GPU name)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return str(torch.cuda.get_device_name(dev))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class TableSettings:
    """What a table was measured for; tables for other settings predict other numbers."""

    device: str
    device_name: str
    threads: int
    batch: int
    input_size: tuple[int, int]
    in_channels: int
    num_classes: int
    torch: str
    warmup: int
    repeats: int
    stem_stride: int | None = None  # the networks' stem stride (None: the family's default)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> TableSettings:
        t = TableSettings(str(d["device"]), str(d["device_name"]), int(d["threads"]),
                          int(d["batch"]), (int(d["input_size"][0]), int(d["input_size"][1])),
                          int(d["in_channels"]), int(d["num_classes"]), str(d["torch"]),
                          int(d["warmup"]), int(d["repeats"]),
                          _stored_stem_stride(d.get("stem_stride")))
        for name, v, lo in (("threads", t.threads, 1), ("batch", t.batch, 1),
                            ("input_size", min(t.input_size), 1),
                            ("in_channels", t.in_channels, 1),
                            ("num_classes", t.num_classes, 1), ("warmup", t.warmup, 0),
                            ("repeats", t.repeats, 1)):
            if v < lo:
                raise ValueError(f"settings.{name}: must be at least {lo}, got {v}")
        return t

    def differences(self, other: TableSettings) -> list[str]:
        """``name: this vs other`` for each compared setting that differs (the stem stride
        as built: unset and the stride it resolves to are the same networks)."""
        a, b = self.to_dict(), other.to_dict()
        from nas.supernet.base import resolve_stem_stride

        same_stem = (resolve_stem_stride(self.stem_stride, self.input_size)
                     == resolve_stem_stride(other.stem_stride, other.input_size))
        return [f"{k}: {a[k]} vs {b[k]}" for k in COMPARED_SETTINGS
                if a[k] != b[k] and not (k == "stem_stride" and same_stem)]


def _stored_stem_stride(v: Any) -> int | None:
    """A table file's ``stem_stride``: null/absent or 1 or 2 (``ValueError`` otherwise, which
    :meth:`LatencyTable.load` reports as a corrupt table)."""
    from nas.supernet.base import STEM_STRIDES, is_stem_stride

    if not is_stem_stride(v):
        raise ValueError(f"settings.stem_stride: must be one of {list(STEM_STRIDES)} or null, "
                         f"got {v!r}")
    return v


def current_settings(*, device: str = "cpu", threads: int = 1, batch: int = 1,
                     input_size: int | tuple[int, int] = 32, in_channels: int = 3,
                     num_classes: int = 10, warmup: int = 5, repeats: int = 20,
                     stem_stride: int | None = None) -> TableSettings:
    """The settings of a measurement made here and now."""
    dev = resolve_device(device)
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    return TableSettings(str(dev), device_name(dev), int(threads), int(batch),
                         (int(size[0]), int(size[1])), int(in_channels), int(num_classes),
                         str(torch.__version__), int(warmup), int(repeats),
                         None if stem_stride is None else int(stem_stride))


# ---------------------------------------------------------------------- the table
UNIT_CLASSES = ("glue", "float", "quant", "mhsa")
# attention over at least this many positions is memory-bound: its score matrix (>= 1 MiB
# per head in float32) leaves a core's private cache
MEMORY_BOUND_ATTENTION_POSITIONS = 512


# how units are classed: 1 = glue/float/quant (tables of nas <= 0.1), 2 = also ``mhsa``
CLASS_SCHEME = 2


def _signature_hw(signature: str) -> tuple[int, int] | None:
    """A unit's output resolution from its signature's ``hw=HxW`` field."""
    hw = re.search(r"\bhw=(\d+)x(\d+)", signature)
    return (int(hw.group(1)), int(hw.group(2))) if hw else None


def attention_positions(signature: str) -> int | None:
    """Positions a memory-bound attention unit attends over (``None``: not one; see
    :func:`unit_class`): a CNN block's ``mhsa`` over its feature map, or a ``vit_like``
    transformer block's global attention over its tokens (window attention attends over one
    window's tokens at a time)."""
    hw = _signature_hw(signature)
    if signature.startswith("transformer("):
        window = re.search(r"\bwindow=(\d+)", signature)
        if hw is None or window is None:
            return None
        w = int(window.group(1))
        n = hw[0] * hw[1] if w <= 0 else min(w, hw[0]) * min(w, hw[1])
    elif re.search(r"\battention=mhsa\b", signature):
        n = hw[0] * hw[1] if hw else MEMORY_BOUND_ATTENTION_POSITIONS
    else:
        return None
    return n if n >= MEMORY_BOUND_ATTENTION_POSITIONS else None


def unit_class(signature: str, is_block: bool, scheme: int = CLASS_SCHEME) -> int:
    """Index in :data:`UNIT_CLASSES` of a unit: ``glue`` unless a block; a block is ``mhsa``
    when it has multi-head self-attention over at least
    :data:`MEMORY_BOUND_ATTENTION_POSITIONS` positions (quantized or not: that attention
    dominates it, and its speed follows memory traffic), else ``quant`` when its signature
    has ``bits=B`` with ``B < 32``, else ``float``. ``scheme=1`` classes as tables built
    before the ``mhsa`` class did (their fitted scales assume it)."""
    if not is_block:
        return 0
    if scheme >= 2 and attention_positions(signature) is not None:
        return 3
    m = re.search(r"\bbits=(\d+)", signature)
    return 2 if m and int(m.group(1)) < 32 else 1


@dataclass
class Overhead:
    """What whole networks add to the sum of their isolated units:
    ``intercept_ms + per_block_ms * n_blocks + sum_k scales[k] * unit_sum_k`` minus the plain
    unit sum (see the module docstring; fitted by :func:`fit_overhead`)."""

    intercept_ms: float = 0.0
    per_block_ms: float = 0.0
    subnets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    scales: dict[str, float] = dataclasses.field(
        default_factory=lambda: {k: 1.0 for k in UNIT_CLASSES})
    class_scheme: int = CLASS_SCHEME  # how the scales' classes were assigned

    def scale_vector(self) -> np.ndarray:
        return np.array([float(self.scales.get(k, 1.0)) for k in UNIT_CLASSES])

    def describe(self) -> str:
        """``"0.230 ms + 0.0333 ms per block"`` (a negative slope with a minus sign)."""
        pb = self.per_block_ms
        return (f"{self.intercept_ms:.3f} ms {'-' if pb < 0 else '+'} {abs(pb):.4f} ms "
                "per block")

    def to_dict(self) -> dict[str, Any]:
        return {"intercept_ms": self.intercept_ms, "per_block_ms": self.per_block_ms,
                "scales": {k: float(v) for k, v in self.scales.items()},
                "class_scheme": self.class_scheme,
                "memory_bound_attention_positions": MEMORY_BOUND_ATTENTION_POSITIONS,
                "subnets": self.subnets}


class LatencyTable:
    """Measured unit latencies of one space on one device, and fast prediction.

    Build with :func:`build_latency_table`, load with :meth:`load`.
    """

    def __init__(self, space: Any, settings: TableSettings, maps: list[_PositionMap],
                 keys: list[str], entries: dict[str, dict[str, float]], *,
                 statistic: str = DEFAULT_STATISTIC, overhead: Overhead | None = None,
                 date: str | None = None, complete: bool = False,
                 path: str | os.PathLike[str] | None = None,
                 reference: dict[str, Any] | None = None) -> None:
        self.space = space
        self.reference = reference  # {"baseline": {stat: ms}, "chunks": [{stat: ms}, ...]}
        self.settings = settings
        self.maps = maps
        self.keys = keys
        self.entries = entries
        self.statistic = check_statistic(statistic)
        self.overhead = overhead or Overhead()
        self.date = date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.complete = complete
        self.path = Path(path) if path is not None else None
        self._cols = {p: i for i, p in enumerate(space.paths)}
        self._luts: dict[str, list[np.ndarray]] = {}
        self._class_lut: list[np.ndarray] | None = None

    # ------------------------------------------------------------------ info
    @property
    def n_units(self) -> int:
        """Number of distinct units (signatures) the space can produce."""
        return len(self.keys)

    @property
    def n_measured(self) -> int:
        return sum(1 for k in self.keys if k in self.entries)

    def _where(self) -> str:
        return f"latency table {self.path}" if self.path else "latency table"

    # ------------------------------------------------------------------ prediction
    def _lut(self, statistic: str) -> list[np.ndarray]:
        if statistic not in self._luts:
            check_statistic(statistic)
            missing = [k for k in self.keys if k not in self.entries]
            if missing:
                raise LatencyTableError(
                    f"{self._where()} is incomplete: {self.n_measured} of {self.n_units} units "
                    f"measured (first missing: {missing[0]}); resume building it")
            vals = np.array([self.entries[k][statistic] for k in self.keys] + [np.nan])
            self._luts[statistic] = [vals[np.where(m.keys >= 0, m.keys, len(self.keys))]
                                     for m in self.maps]
        return self._luts[statistic]

    def _class_luts(self) -> list[np.ndarray]:
        """Per position, the unit class (:func:`unit_class`) of each combination."""
        if self._class_lut is None:
            # a block's class per key (one look at each signature), then per position
            scheme = self.overhead.class_scheme
            block_cls = np.array([unit_class(k, True, scheme) for k in self.keys] + [0])
            self._class_lut = [np.where(m.keys >= 0, block_cls[m.keys], 0) if m.is_block
                               else np.zeros(len(m.keys), dtype=np.int64) for m in self.maps]
        return self._class_lut

    def unit_sums(self, configs: Sequence[Any] | np.ndarray, statistic: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Per config: the sum of its units' latencies (ms) and its number of blocks.

        ``configs``: configs of the table's space, or their encoding matrix
        (``space.encode_many``)."""
        by_class, blocks = self.class_sums(configs, statistic)
        return by_class.sum(axis=1), blocks

    def attention_shares(self, configs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Per config: the fraction of its unit time in ``mhsa`` units (0 where none), the
        weight of the attention reference when its measurement is drift-corrected."""
        by_class, _ = self.class_sums(configs)
        total = by_class.sum(axis=1)
        return np.where(total > 0, by_class[:, UNIT_CLASSES.index("mhsa")] / total, 0.0)

    def class_sums(self, configs: Sequence[Any] | np.ndarray, statistic: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Per config: the sums of its units' latencies (ms) by class (columns in the order
        of :data:`UNIT_CLASSES`) and its number of blocks."""
        stat = statistic or self.statistic
        luts = self._lut(stat)
        classes = self._class_luts()
        enc = self._encoding(configs)
        n = enc.shape[0]
        total = np.zeros((n, len(UNIT_CLASSES)))
        blocks = np.zeros(n, dtype=np.int64)
        for m, lut, cls in zip(self.maps, luts, classes):
            flat = np.zeros(n, dtype=np.int64)
            for d, size in zip(m.deps, m.sizes):
                col = enc[:, self._cols[d]]
                flat = flat * size + np.where(col < 0, size - 1, col)
            val = lut[flat]
            if m.presence is not None:
                pres = np.asarray(m.present, dtype=bool)[enc[:, self._cols[m.presence]]]
                val = np.where(pres, val, 0.0)
                if m.is_block:
                    blocks += pres
            elif m.is_block:
                blocks += 1
            c = cls[flat]
            for k in range(len(UNIT_CLASSES)):
                total[:, k] += np.where(c == k, val, 0.0)
        bad = np.flatnonzero(~np.isfinite(total.sum(axis=1)))
        if bad.size:
            raise LatencyTableError(
                f"{self._where()}: config #{int(bad[0])} uses a unit the table has no entry "
                f"for (not a valid config of space {self.space.name!r}?)")
        return total, blocks

    def predict_many(self, configs: Sequence[Any] | np.ndarray,
                     statistic: str | None = None) -> np.ndarray:
        """Predicted latency (ms) of many configs (or an encoding matrix), vectorised."""
        by_class, blocks = self.class_sums(configs, statistic)
        oh = self.overhead
        return by_class @ oh.scale_vector() + oh.intercept_ms + oh.per_block_ms * blocks

    def predict(self, config: Any, statistic: str | None = None) -> float:
        """Predicted latency (ms) of one config."""
        return float(self.predict_many([config], statistic)[0])

    def _encoding(self, configs: Sequence[Any] | np.ndarray) -> np.ndarray:
        if isinstance(configs, np.ndarray):
            enc = configs
            if enc.ndim != 2 or enc.shape[1] != len(self.space.paths):
                raise UsageError(f"encoding matrix must have shape (n, {len(self.space.paths)}) "
                                 f"for space {self.space.name!r}, got {enc.shape}")
        else:
            for c in configs:
                sp = getattr(c, "space", None)
                if sp is not None and sp is not self.space and sp != self.space:
                    raise ConfigError(f"config of space {sp.name!r} given to the "
                                      f"{self._where()} of space {self.space.name!r}")
            enc = self.space.encode_many(list(configs))
        return enc.astype(np.int64, copy=False)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "complete": self.complete,
                "space": self.space.to_dict(), "fingerprint": self.space.fingerprint,
                "family": self.space.family, "settings": self.settings.to_dict(),
                "date": self.date, "statistic": self.statistic,
                "entries": {k: self.entries[k] for k in self.keys if k in self.entries},
                "positions": [m.to_dict() for m in self.maps], "keys": list(self.keys),
                "overhead": self.overhead.to_dict(),
                **({"reference": self.reference} if self.reference else {})}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        self.path = Path(path)

    @staticmethod
    def load(path: str | os.PathLike[str], *, space: Any = None,
             expect: TableSettings | None = None, require_complete: bool = True
             ) -> LatencyTable:
        """Read a table.

        Args:
            space: when given, the table must be for this space (else an error).
            expect: settings of the intended use; differences are logged as a warning.
            require_complete: a partially built table raises an error.

        Raises:
            LatencyTableError: unreadable, corrupt, another format, another space, or
                incomplete.
        """
        from nas.searchspace import Space

        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LatencyTableError(f"latency table {p}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LatencyTableError(f"latency table {p}: not readable JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise LatencyTableError(f"latency table {p}: not a latency table (format "
                                    f"{doc.get('format') if isinstance(doc, dict) else None!r},"
                                    f" expected {FORMAT!r})")
        if doc.get("version") not in _READABLE:
            raise LatencyTableError(f"latency table {p}: version {doc.get('version')!r} is not "
                                    f"supported (supported: {', '.join(map(str, _READABLE))})")
        try:
            tspace = Space.from_dict(doc["space"], stored=True)
            settings = TableSettings.from_dict(doc["settings"])
            maps = [_PositionMap.from_dict(m) for m in doc["positions"]]
            keys = [str(k) for k in doc["keys"]]
            entries = {str(k): {s: float(v[s]) for s in ("min", "p10", "median", "mean", "max")}
                       for k, v in doc["entries"].items()}
            oh = doc.get("overhead")
            oh = {} if oh is None else oh
            if not isinstance(oh, Mapping):
                raise TypeError(f"overhead: expected an object, got {type(oh).__name__}")
            scales = {k: float(v) for k, v in (oh.get("scales") or {}).items()}
            if any(k not in UNIT_CLASSES for k in scales):
                raise ValueError(f"overhead scales: unknown unit class in {sorted(scales)}")
            # tables written before the mhsa class (no class_scheme) keep their classing
            scheme = int(oh.get("class_scheme", 1))
            if (scheme >= 2 and int(oh.get("memory_bound_attention_positions",
                                           MEMORY_BOUND_ATTENTION_POSITIONS))
                    != MEMORY_BOUND_ATTENTION_POSITIONS):
                log.warning("latency table %s: its overhead was fitted with another attention "
                            "class threshold; rebuild it for exact predictions", p)
            overhead = Overhead(float(oh.get("intercept_ms", 0.0)),
                                float(oh.get("per_block_ms", 0.0)), list(oh.get("subnets", [])),
                                {k: scales.get(k, 1.0) for k in UNIT_CLASSES},
                                min(scheme, CLASS_SCHEME))
            statistic = str(doc.get("statistic", DEFAULT_STATISTIC))
            complete = bool(doc.get("complete", False))
            reference = doc.get("reference")
            if reference is not None:
                def _ref(d: Any) -> dict[str, Any]:
                    if not isinstance(d, Mapping):
                        raise TypeError(f"reference: expected an object, got {type(d).__name__}")
                    return {"baseline": {str(k): float(v) for k, v in d["baseline"].items()},
                            "chunks": [{str(k): float(v) for k, v in c.items()}
                                       for c in d.get("chunks", [])]}

                att = reference.get("attention") if isinstance(reference, Mapping) else None
                reference = _ref(reference)
                if att is not None:
                    reference["attention"] = _ref(att)
                    if "input_shape" in att:
                        reference["attention"]["input_shape"] = [int(v) for v in
                                                                 att["input_shape"]]
            date = str(doc.get("date", ""))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, NasError) as e:
            raise LatencyTableError(f"latency table {p}: corrupt ({type(e).__name__}: {e})"
                                    ) from None
        if doc["version"] == 1 and tspace.family == "vit_like":
            raise LatencyTableError(
                f"latency table {p}: version 1 times vit_like's earlier blocks (heads splitting "
                "one q/k/v width, reductions with a learned 1x1 skip); build it again (`nas "
                "profile --fresh`)")
        if statistic not in ("min", "p10", "median", "mean"):
            raise LatencyTableError(f"latency table {p}: corrupt (unknown statistic "
                                    f"{statistic!r})")
        # measured times are positive numbers; a hand-edited or damaged file would otherwise
        # predict negative or NaN latencies (or fail later with a misleading message)
        for k, v in entries.items():
            for s_, x in v.items():
                if not (math.isfinite(x) and x > 0):
                    raise LatencyTableError(f"latency table {p}: corrupt (entry {k!r}: {s_} "
                                            f"must be a positive number of ms, got {x!r})")
        for k, x in overhead.scales.items():
            if not (math.isfinite(x) and x > 0):
                raise LatencyTableError(f"latency table {p}: corrupt (overhead scale {k!r} "
                                        f"must be a positive number, got {x!r})")
        for name, x in (("intercept_ms", overhead.intercept_ms),
                        ("per_block_ms", overhead.per_block_ms)):
            if not math.isfinite(x):
                raise LatencyTableError(f"latency table {p}: corrupt (overhead {name} must be "
                                        f"a finite number, got {x!r})")
        if doc.get("fingerprint") != tspace.fingerprint:
            raise LatencyTableError(f"latency table {p}: corrupt (its space does not match its "
                                    "fingerprint)")
        if space is not None and space.fingerprint != tspace.fingerprint:
            raise LatencyTableError(f"latency table {p} was built for space {tspace.name!r}, "
                                    f"not for space {space.name!r} (other dimensions or values)")
        for m in maps:
            for d in (*m.deps, *([m.presence] if m.presence else [])):
                if not tspace.has(d):
                    raise LatencyTableError(f"latency table {p}: corrupt (position {m.name!r} "
                                            f"uses {d!r}, not a dimension of its space)")
            if any(k >= len(keys) or k < -1 for k in m.keys.tolist()):
                raise LatencyTableError(f"latency table {p}: corrupt (position {m.name!r} "
                                        "refers to a key that does not exist)")
        bad = [k for k in entries if k not in set(keys)]
        if bad:
            raise LatencyTableError(f"latency table {p}: corrupt (entry {bad[0]!r} is not a "
                                    "known key)")
        table = LatencyTable(space if space is not None else tspace, settings, maps, keys,
                             entries, statistic=statistic, overhead=overhead, date=date,
                             complete=complete, path=p, reference=reference)
        if require_complete and not complete:
            raise LatencyTableError(f"latency table {p} is incomplete ({table.n_measured} of "
                                    f"{table.n_units} units measured); resume building it")
        if expect is not None:
            table.warn_if_differs(expect)
        return table

    def warn_if_differs(self, expect: TableSettings) -> None:
        """Log a warning naming the settings this table was built with that differ from
        ``expect`` (those of the intended use)."""
        diff = self.settings.differences(expect)
        if diff:
            log.warning("latency table %s was built for other settings (%s); its "
                        "predictions may not hold here", self.path, "; ".join(diff))


# ---------------------------------------------------------------------- building
def _build_args(space: Any, settings: TableSettings) -> Any:
    from nas.supernet import BuildArgs
    from nas.supernet.base import check_stem_stride

    check_stem_stride(space.family, settings.stem_stride)  # a family without a stem refuses it
    return BuildArgs.make(settings.in_channels, settings.num_classes, settings.input_size,
                          settings.stem_stride)


def build_subnets(space: Any, configs: Sequence[Any], settings: TableSettings
                  ) -> list[nn.Module]:
    """Fresh static subnets of ``configs`` for measuring."""
    from nas.supernet import build_subnet

    return [build_subnet(space, c, in_channels=settings.in_channels,
                         num_classes=settings.num_classes, input_size=settings.input_size,
                         stem_stride=settings.stem_stride)
            for c in configs]


def measure_configs(space: Any, configs: Sequence[Any], settings: TableSettings, *,
                    warmup: int | None = None, repeats: int | None = None, chunk: int = 50,
                    seed: int = 0, progress: Callable[[int], None] | None = None,
                    reference: dict[str, Any] | None = None,
                    attention_shares: Sequence[float] | None = None,
                    raw: list[LatencyStats] | None = None) -> list[LatencyStats]:
    """Measure whole subnets of ``configs`` interleaved (in chunks of ``chunk``).

    With a table's ``reference`` (``{"baseline": {stat: ms}}``), each chunk also times the
    reference model and the results are drift-corrected to the baseline (see the module
    docstring); when the reference has an ``attention`` part and ``attention_shares`` (per
    config, :meth:`LatencyTable.attention_shares`) are given, the attention reference is
    timed too and each config's factor blends both by its share. The uncorrected stats are
    appended to ``raw`` when given."""
    out: list[LatencyStats] = []
    shape = (settings.in_channels, *settings.input_size)
    ref = reference_model(settings.in_channels) if reference else None
    att = (attention_reference() if reference and reference.get("attention")
           and attention_shares is not None else None)
    att_shape = tuple(reference["attention"].get("input_shape")
                      or (ATTENTION_REFERENCE_CHANNELS, *settings.input_size)) if att else ()
    if att is not None and len(attention_shares) != len(configs):  # type: ignore[arg-type]
        raise UsageError(f"{len(configs)} configs but {len(attention_shares)} "  # type: ignore
                         "attention shares")
    for i in range(0, len(configs), chunk):
        part = list(configs[i:i + chunk])
        models = build_subnets(space, part, settings)
        shapes = [shape] * len(models)
        if ref is not None:
            models.append(ref)
            shapes.append(shape)
        if att is not None:
            models.append(att)
            shapes.append(att_shape)
        stats = measure_many(models, shapes, device=settings.device, threads=settings.threads,
                             batch=settings.batch,
                             warmup=settings.warmup if warmup is None else warmup,
                             repeats=settings.repeats if repeats is None else repeats,
                             seed=seed + i)
        if ref is not None:
            assert reference is not None
            f_att = (drift_factors(stats.pop(), reference["attention"]["baseline"])
                     if att is not None else None)
            f = drift_factors(stats.pop(), reference["baseline"])
            if raw is not None:
                raw += stats
            if f_att is None:
                stats = [st.scaled(f) for st in stats]
            else:
                assert attention_shares is not None
                stats = [st.scaled(_blend(f, f_att, float(attention_shares[i + j])))
                         for j, st in enumerate(stats)]
        elif raw is not None:
            raw += stats
        out += stats
        if progress:
            progress(len(part))
    return out


def local_drift_factors(then: Sequence[float], now: Sequence[float], times: Sequence[float],
                        k: int = LOCAL_REFERENCES) -> np.ndarray:
    """Per time in ``times`` (a model measured now): the median of ``then / now`` over the
    ``k`` reference subnets nearest to it in (log) measured time ``now``, where ``then`` is
    their time when the table was built. Multiplying puts the model at the build's machine
    state, judged by real networks of its own size (small and large networks do not drift
    alike: in one measured front the 1 ms subnets had sped up 1.75x since the build, the
    median reference 1.51x)."""
    then_a = np.asarray(then, dtype=np.float64)
    now_a = np.asarray(now, dtype=np.float64)
    if then_a.shape != now_a.shape or then_a.size == 0:
        raise UsageError(f"local_drift_factors: needs as many build-time as current reference "
                         f"times (at least one), got {then_a.size} and {now_a.size}")
    ratio = then_a / now_a
    log_now = np.log(now_a)
    k = min(k, now_a.size)
    out = np.empty(len(times))
    for i, t in enumerate(times):
        near = np.argsort(np.abs(log_now - np.log(t)), kind="stable")[:k]
        out[i] = float(np.median(ratio[near]))
    return out


def measure_with_references(table: LatencyTable, models: Sequence[nn.Module],
                            input_shape: Sequence[int], *,
                            device: str | None = None, threads: int | None = None,
                            batch: int | None = None, warmup: int = 5, repeats: int = 30,
                            seed: int = 0, on_round: Callable[[], None] | None = None
                            ) -> tuple[list[LatencyStats], list[LatencyStats]]:
    """Time ``models`` (all on inputs of ``input_shape``, without the batch dimension)
    interleaved with the table's overhead subnets (its *reference subnets*) and return
    ``(corrected, raw)`` statistics per model.

    Each model's statistics are multiplied by :func:`local_drift_factors`, computed on the
    table's statistic from the reference subnets' time at the build (``overhead.subnets``)
    and now: the measurement is expressed at the machine state the table's numbers hold
    for. Device, threads and batch default to the table's settings; ``on_round``: see
    :func:`~nas.predictors.profiling.measure_many`.

    Raises:
        UsageError: the table has no overhead subnets (a table from before they were
            stored, or an incomplete build).
    """
    subs = list(table.overhead.subnets)
    if not subs:
        raise UsageError(f"{table._where()} has no reference subnets (overhead subnets) to "
                         "correct measurements by; rebuild it")
    space, st = table.space, table.settings
    refs = build_subnets(space, [space.config(r["config"]) for r in subs], st)
    then = [float(r["measured_ms"]) for r in subs]
    ref_shape = (st.in_channels, *st.input_size)
    stats = measure_many(list(models) + refs,
                         [tuple(input_shape)] * len(models) + [ref_shape] * len(refs),
                         device=st.device if device is None else device,
                         threads=st.threads if threads is None else threads,
                         batch=st.batch if batch is None else batch, warmup=warmup,
                         repeats=repeats, seed=seed, on_round=on_round)
    raw, now = stats[:len(models)], [s.get(table.statistic) for s in stats[len(models):]]
    factors = local_drift_factors(then, now, [s.get(table.statistic) for s in raw])
    if len(factors):
        log.info("drift factors by %d reference subnets: %.3f-%.3f (median over all of them "
                 "%.3f)", len(now), factors.min(), factors.max(),
                 float(np.median(np.asarray(then) / np.asarray(now))))
    corrected = [s.scaled({k: float(f) for k in STATISTICS}) for s, f in zip(raw, factors)]
    return corrected, raw


def _blend(f: dict[str, float], g: dict[str, float], share: float) -> dict[str, float]:
    """Drift factors of a network whose time is ``share`` attention units (factor ``g``) and
    the rest other units (factor ``f``)."""
    return {s: (1.0 - share) * f[s] + share * g.get(s, 1.0) for s in f}


def fit_overhead(table: LatencyTable, configs: Sequence[Any], measured: Sequence[float],
                 *, prior: float = 0.05) -> Overhead:
    """Fit the overhead terms on whole subnets measured on the device.

    Minimises the squared *relative* error of ``intercept + per_block * n_blocks +
    sum_k scale_k * unit_sum_k`` against ``measured``, with a ridge prior of weight
    ``prior`` pulling the model towards the plain unit sum (scales 1, no intercept, no
    per-block term), so that few subnets, or a unit class they do not contain, cannot
    produce wild terms.
    """
    by_class, blocks = table.class_sums(configs)
    m = np.asarray(measured, dtype=np.float64)
    if m.size == 0:
        return Overhead()
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise UsageError("fit_overhead: measured latencies must be positive numbers")
    ref = float(np.median(m))
    nb = float(max(np.median(blocks), 1))
    # unknowns: intercept, per_block, scales...; rows divided by the measured value
    A = np.column_stack([np.ones_like(m), blocks.astype(np.float64), by_class]) / m[:, None]
    b = np.ones_like(m)
    k = by_class.shape[1]
    lam = np.sqrt(prior * len(m))
    P = np.zeros((2 + k, 2 + k))
    P[0, 0] = lam / ref
    P[1, 1] = lam * nb / ref
    P[2:, 2:] = lam * np.eye(k)
    q = np.concatenate([[0.0, 0.0], lam * np.ones(k)])
    theta, *_ = np.linalg.lstsq(np.vstack([A, P]), np.concatenate([b, q]), rcond=None)
    sums = by_class.sum(axis=1)
    rows = [{"config": cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg),
             "measured_ms": float(x), "unit_sum_ms": float(s_), "n_blocks": int(nb_)}
            for cfg, x, s_, nb_ in zip(configs, m, sums, blocks)]
    return Overhead(float(theta[0]), float(theta[1]), rows,
                    {c: float(v) for c, v in zip(UNIT_CLASSES, theta[2:])},
                    table.overhead.class_scheme)


def _extreme_path(table: LatencyTable, start: Any, sign: float, max_steps: int = 200
                  ) -> list[Any]:
    """Steepest descent of ``sign * unit sum`` over single-dimension changes
    (``space.neighbours``) from ``start``: the configs visited, ending at a local extreme."""
    space = table.space
    path = [start]
    cur, cur_v = start, sign * float(table.unit_sums([start])[0][0])
    for _ in range(max_steps):
        nbs = space.neighbours(cur)
        if not nbs:
            break
        vals = sign * table.unit_sums(nbs)[0]
        i = int(np.argmin(vals))
        if vals[i] >= cur_v:
            break
        cur, cur_v = nbs[i], float(vals[i])
        path.append(cur)
    return path


def overhead_configs(table: LatencyTable, k: int, rng: np.random.Generator) -> list[Any]:
    """``k`` subnets to fit the overhead on (and, later, to correct front measurements for the
    machine's drift), spread over the whole range of predicted latency a search can reach:
    the smallest and the largest subnet, then configs at evenly spaced *log* unit sums between
    the fastest and the slowest config found — by steepest descent from the extremes of 100·k
    random configs, since a latency-minimising search ends up in the fast corner that random
    sampling never visits (on ``resnet_like`` at 8×8 the fastest random config of 50,000 was
    1.4× slower than the fronts' fastest subnets)."""
    space, st = table.space, table.settings
    from nas.supernet.base import size_extremes

    fixed = list(dict.fromkeys(size_extremes(
        space, in_channels=st.in_channels, num_classes=st.num_classes,
        input_size=st.input_size, stem_stride=st.stem_stride)))[:k]
    pool = list(dict.fromkeys(space.sample_many(100 * max(k, 1), rng)))
    room = k - len(fixed)
    if room <= 0 or not pool:
        return fixed
    sums = table.unit_sums(pool)[0]
    cands = list(dict.fromkeys(
        pool + _extreme_path(table, pool[int(np.argmin(sums))], 1.0)
        + _extreme_path(table, pool[int(np.argmax(sums))], -1.0)))
    cands = [c for c in cands if c not in fixed]
    if not cands:
        return fixed
    logs = np.log(np.maximum(table.unit_sums(cands)[0], 1e-9))
    targets = np.linspace(logs.min(), logs.max(), room)
    chosen: list[int] = []
    free = np.ones(len(cands), dtype=bool)
    for t in targets:  # the nearest unused candidate to each target
        dist = np.where(free, np.abs(logs - t), np.inf)
        j = int(np.argmin(dist))
        if not np.isfinite(dist[j]):
            break
        free[j] = False
        chosen.append(j)
    chosen.sort(key=lambda j: logs[j])
    return fixed + [cands[j] for j in chosen]


def build_latency_table(space: Any, *, input_size: int | tuple[int, int] = 32, batch: int = 1,
                        threads: int = 1, device: str = "cpu", in_channels: int = 3,
                        num_classes: int = 10, stem_stride: int | None = None,
                        warmup: int = 3, repeats: int = 15,
                        statistic: str = DEFAULT_STATISTIC, overhead_subnets: int = 48,
                        out: str | os.PathLike[str] | None = None, resume: bool = True,
                        chunk: int = 16, seed: int = 0, progress: bool = True,
                        save_every_s: float = 10.0) -> LatencyTable:
    """Measure every distinct unit of ``space`` on this device and fit the overhead.

    Args:
        input_size, batch, in_channels, num_classes, stem_stride: what the networks are
            built and timed for (``stem_stride``: see :class:`nas.supernet.BuildArgs`).
        threads, device: where and how they run (threads pinned, restored afterwards).
        warmup, repeats: per unit; units are timed interleaved in groups of ``chunk``.
        statistic: the statistic predictions target (see :mod:`nas.predictors.profiling`).
        overhead_subnets: whole subnets measured to fit the overhead (the smallest and
            largest config, the rest spread over the range of predicted latency; see
            :func:`overhead_configs`).
        out: where the table is written (partial results atomically every ``save_every_s``
            seconds, so an interrupted build can resume).
        resume: continue from a partial table at ``out`` built for the same space and
            settings (a complete one for the same statistic and number of overhead subnets
            is returned as it is; for another statistic or number, its units are kept and
            the overhead is measured and fitted again); one for another space or settings
            is an error.
        seed: seeds inputs and the overhead subnets.
        progress: show a progress bar.

    Raises:
        UsageError: a family without latency support, or bad settings.
        LatencyTableError: ``out`` holds a table this build cannot resume.
    """
    from nas.utils.progress import task_progress

    check_statistic(statistic)
    if isinstance(overhead_subnets, bool) or not isinstance(overhead_subnets, int) \
            or overhead_subnets < 2:
        raise UsageError(f"overhead_subnets: must be an int >= 2 (whole subnets measured to "
                         f"fit the overhead), got {overhead_subnets!r}")
    settings = current_settings(device=device, threads=threads, batch=batch,
                                input_size=input_size, in_channels=in_channels,
                                num_classes=num_classes, warmup=warmup, repeats=repeats,
                                stem_stride=stem_stride)
    build = _build_args(space, settings)
    from nas.supernet import family_class

    latency_family(space.family)  # (an unsupported family is said first)
    family_class(space.family).check_space(space)  # before the measurements, not after
    t0 = time.perf_counter()
    maps, units = enumerate_units(space, build)
    keys = list(units)
    log.info("space %s: %d distinct units over %d positions (enumerated in %.1f s)",
             space.name, len(keys), len(maps), time.perf_counter() - t0)
    with _table_lock(out):  # (one build of a file at a time; its stale temporaries go)
        entries: dict[str, dict[str, float]] = {}
        reference: dict[str, Any] | None = None
        if out is not None and resume and Path(out).exists():
            old = LatencyTable.load(out, space=space, require_complete=False)
            diff = old.settings.differences(settings)
            usable = (old.complete and old.statistic == statistic
                      and set(keys) <= set(old.entries)
                      and len(old.overhead.subnets) == overhead_subnets)
            method = (old.settings.warmup, old.settings.repeats) != (warmup, repeats)
            if method and usable and not diff:
                # a complete table: how many calls each unit was timed with no longer matters
                log.warning("%s is complete and was measured with warmup=%d, repeats=%d (asked: "
                            "%d, %d); using it as it is (a fresh build: --fresh)", out,
                            old.settings.warmup, old.settings.repeats, warmup, repeats)
                return old
            if method:
                diff = [*diff, f"warmup/repeats {old.settings.warmup}/{old.settings.repeats} "
                               f"here, asked {warmup}/{repeats}"]
            if diff:
                raise LatencyTableError(
                    f"latency table {out} was built with other settings "
                    f"({'; '.join(diff)}); start over with "
                    "`nas profile --fresh`, remove it, or choose another output file")
            if usable:
                log.info("%s is already complete (%d units, overhead fitted on %d subnets); "
                         "using it as it is (a fresh build: nas profile --fresh)", out, len(keys),
                         overhead_subnets)
                return old
            entries = {k: v for k, v in old.entries.items() if k in units}
            reference = old.reference if entries else None
            log.info("resuming %s: %d of %d units already measured", out, len(entries), len(keys))
        table = LatencyTable(space, settings, maps, keys, entries, statistic=statistic,
                             reference=reference)
        ref_model = reference_model(in_channels)
        ref_shape = (in_channels, *settings.input_size)
        attn_keys = {k for k in keys if unit_class(k, True) == UNIT_CLASSES.index("mhsa")}
        # a second reference for attention units (a resumed table built without one keeps one),
        # attending over as many positions as the largest of them
        use_att = bool(attn_keys) and (reference is None or "attention" in reference)
        if not attn_keys and reference is not None:
            reference.pop("attention", None)
        att_model = attention_reference() if use_att else None
        att_hw = max((_signature_hw(k) or settings.input_size for k in attn_keys),
                      key=lambda hw: hw[0] * hw[1], default=settings.input_size)
        att_shape = (ATTENTION_REFERENCE_CHANNELS, *att_hw)
        todo = [k for k in keys if k not in entries]
        last_save = time.perf_counter()
        with task_progress(f"measuring {space.name} units", len(todo), enabled=progress) as adv, \
                _kept_on_interrupt(table, out, lambda: len(entries), len(keys)):
            for i in range(0, len(todo), chunk):
                part = todo[i:i + chunk]
                models = [units[k].build() for k in part] + [ref_model]
                shapes = [units[k].input_shape for k in part] + [ref_shape]
                if att_model is not None:
                    models.append(att_model)
                    shapes.append(att_shape)
                stats = measure_many(models, shapes, device=settings.device, threads=threads,
                                     batch=batch, warmup=warmup, repeats=repeats, seed=seed + i)
                att_now = stats.pop() if att_model is not None else None
                ref_now = stats.pop()
                if table.reference is None:  # provisional baseline: the first chunk's
                    table.reference = {"baseline": {s_: ref_now.get(s_) for s_ in STATISTICS},
                                       "chunks": []}
                    if att_now is not None:
                        table.reference["attention"] = {
                            "baseline": {s_: att_now.get(s_) for s_ in STATISTICS}, "chunks": [],
                            "input_shape": list(att_shape)}
                table.reference["chunks"].append({s_: ref_now.get(s_) for s_ in STATISTICS})
                f = drift_factors(ref_now, table.reference["baseline"])
                f_att = f
                if att_now is not None:
                    att_ref = table.reference["attention"]
                    att_ref["chunks"].append({s_: att_now.get(s_) for s_ in STATISTICS})
                    f_att = drift_factors(att_now, att_ref["baseline"])
                for k, st in zip(part, stats):
                    entries[k] = st.scaled(f_att if k in attn_keys else f).to_dict()
                adv(len(part))
                if out is not None and time.perf_counter() - last_save > save_every_s:
                    table.save(out)
                    last_save = time.perf_counter()
        if table.reference is not None and table.reference["chunks"]:
            # final baselines: each reference's median over the whole build
            att_ref = table.reference.get("attention")
            for ref_, which in ((table.reference, lambda k: not (att_ref and k in attn_keys)),
                                (att_ref, lambda k: k in attn_keys)):
                if not ref_ or not ref_["chunks"]:
                    continue
                chunks = ref_["chunks"]
                target = {s_: float(np.median([c[s_] for c in chunks])) for s_ in STATISTICS}
                old_base = ref_["baseline"]
                for k, e in entries.items():
                    if not which(k):
                        continue
                    for s_ in STATISTICS:
                        e[s_] = e[s_] * target[s_] / old_base[s_]
                    e["max"] = e["max"] * target["median"] / old_base["median"]
                ref_["baseline"] = target
            table._luts.clear()
        if out is not None:
            table.save(out)
        rng = np.random.default_rng(seed)
        configs = overhead_configs(table, overhead_subnets, rng)
        with task_progress("measuring subnets for the overhead", len(configs),
                           enabled=progress) as adv, \
                _kept_on_interrupt(table, out, lambda: len(entries), len(keys)):
            measured = measure_configs(space, configs, settings, seed=seed, progress=adv,
                                       repeats=max(repeats, 20), reference=table.reference,
                                       attention_shares=table.attention_shares(configs))
        table.overhead = fit_overhead(table, configs, [m.get(statistic) for m in measured])
        table.complete = True
        log.info("overhead: %s; built in %.1f s", table.overhead.describe(),
                 time.perf_counter() - t0)
        if out is not None:
            table.save(out)
        return table


@contextlib.contextmanager
def _table_lock(out: Any) -> Iterator[None]:
    """Hold the lock of the table file ``out`` (``.NAME.lock`` beside it) while it is built:
    a second build of the same file is refused instead of timing on the same cores and
    overwriting it; the temporaries a killed build left beside it are removed."""
    if out is None:
        yield
        return
    from nas.utils.files import DirectoryLock, remove_stale_temporaries

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with DirectoryLock.for_file(path, doing="built"):
        if remove_stale_temporaries(path.parent, [path.name]):
            log.info("%s: removed temporary files left by an interrupted build", path)
        yield


@contextlib.contextmanager
def _kept_on_interrupt(table: LatencyTable, out: Any, measured: Callable[[], int],
                       total: int) -> Iterator[None]:
    """Ctrl-C or SIGTERM while units are measured: save what is measured (atomically) and
    say so, so that the same command resumes from there (not from the last periodic save)."""
    try:
        yield
    except KeyboardInterrupt as e:
        if out is None:
            raise
        table.save(out)
        raise BuildInterrupted(getattr(e, "signal", "SIGINT"), measured(), total, out) from None


class BuildInterrupted(KeyboardInterrupt):
    """A latency-table build stopped by Ctrl-C or SIGTERM, with what it measured saved."""

    def __init__(self, signal: str, measured: int, total: int, out: Any,
                 resume: str = "the same command resumes the build") -> None:
        self.signal, self.measured, self.total, self.out = signal, measured, total, out
        super().__init__(f"interrupted ({signal}); {measured} of {total} units measured are "
                         f"kept in {out}: {resume}")


@dataclass
class ValidationResult:
    """Measured against predicted latency of random subnets, for every statistic (the
    table's own, ``statistic``, is the headline)."""

    measured: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    statistic: str
    raw: dict[str, np.ndarray] | None = None  # before drift correction (when corrected)
    # how the measurements were drift-corrected: "reference subnets" (the table's overhead
    # subnets, measured alongside), "reference model" (the build's fixed CNN / attention
    # layer) or "none"
    correction: str = "none"

    @property
    def measured_ms(self) -> np.ndarray:
        return self.measured[self.statistic]

    @property
    def predicted_ms(self) -> np.ndarray:
        return self.predicted[self.statistic]

    def metrics(self, statistic: str | None = None) -> dict[str, float]:
        """Hit rate within ±10%, Kendall's tau, Spearman and MAPE for one statistic."""
        s = statistic or self.statistic
        t, p = self.measured[s], self.predicted[s]
        return {"within_10pct": within_pct(t, p, 10.0), "kendall_tau": kendall_tau(t, p),
                "spearman": spearman(t, p), "mape": mape(t, p)}

    def summary(self) -> dict[str, Any]:
        """The headline metrics, the medians, and the metrics of every other statistic."""
        out: dict[str, Any] = {"n": int(self.measured_ms.size), "statistic": self.statistic,
                               **self.metrics(),
                               "measured_ms_median": float(np.median(self.measured_ms)),
                               "predicted_ms_median": float(np.median(self.predicted_ms))}
        out["by_statistic"] = {s: self.metrics(s) for s in self.measured}
        out["drift_correction"] = self.correction
        if self.raw is not None:
            t, p = self.raw[self.statistic], self.predicted_ms
            out["uncorrected"] = {"within_10pct": within_pct(t, p, 10.0),
                                  "kendall_tau": kendall_tau(t, p), "mape": mape(t, p)}
            # how much the correction scaled the measurements (median): far from 1, the
            # machine is in another state than at the build -- or the table was built on
            # another machine, or edited: the corrected figures cannot tell those apart
            out["drift_factor"] = float(np.median(self.measured_ms / t))
        return out


def validate_table(table: LatencyTable, n: int, *, seed: int = 12345, repeats: int | None = None,
                   progress: bool = True, references: bool = True, chunk: int = 100
                   ) -> ValidationResult:
    """Measure ``n`` random subnets (a seed stream other than the build's) interleaved and
    compare with the table's predictions, for every statistic.

    The measurements are drift-corrected to the machine state the table holds for. With
    ``references`` (the default) and a table that stores its overhead subnets, those are
    timed again in every chunk of ``chunk`` subnets and each subnet is corrected by the ones
    of its own size (:func:`measure_with_references`, as ``nas search`` measures its front;
    on ``resnet_like`` at 32x32, chunks of 100 validated better than chunks of 50 -- 97-99%
    against 78-96% within +-10% -- and in half the time, the references being timed once);
    otherwise by the reference model(s) timed with every chunk, as during the build. The
    uncorrected measurements are kept in ``raw``."""
    from nas.utils.progress import task_progress

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise UsageError(f"validate: needs at least 2 subnets, got {n!r}")
    check_int("chunk", chunk, 1)
    configs = table.space.sample_many(n, np.random.default_rng(seed))
    reps = repeats if repeats is not None else max(table.settings.repeats, 20)
    raw: list[LatencyStats] = []
    measured: list[LatencyStats] = []
    correction = "reference model" if table.reference else "none"
    with task_progress("validating on random subnets", n, enabled=progress) as adv:
        if references and table.overhead.subnets:
            correction = "reference subnets"
            for i in range(0, n, chunk):
                part = configs[i:i + chunk]
                fixed, unfixed = measure_with_references(
                    table, build_subnets(table.space, part, table.settings),
                    (table.settings.in_channels, *table.settings.input_size),
                    warmup=table.settings.warmup, repeats=reps, seed=seed + i)
                measured += fixed
                raw += unfixed
                adv(len(part))
        else:
            measured = measure_configs(table.space, configs, table.settings, seed=seed,
                                       progress=adv, repeats=reps, reference=table.reference,
                                       attention_shares=table.attention_shares(configs),
                                       raw=raw)
    stats = ("min", "p10", "median", "mean")
    return ValidationResult({s: np.array([m.get(s) for m in measured]) for s in stats},
                            {s: table.predict_many(configs, s) for s in stats},
                            table.statistic,
                            {s: np.array([m.get(s) for m in raw]) for s in stats}
                            if correction != "none" else None, correction)
