"""Training options: one dataclass with sensible defaults, loadable from YAML (unknown keys
rejected), overridable from the command line."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.errors import SpaceDefinitionError, UsageError
from nas.supernet.base import is_stem_stride
from nas.utils.device import resolve_device


class OptionError(UsageError):
    """A training option that is unknown or not allowed.

    Attributes:
        option: the option's name (``"seed"``).
        reason: what is wrong and what is allowed, without the name.
        unknown: the option does not exist.
        where: where it was given (``"flags"``, ``"options"``, a file), as the message's prefix.
    """

    def __init__(self, option: Any, reason: str, *, unknown: bool = False,
                 where: str = "") -> None:
        self.option, self.reason, self.unknown, self.where = option, reason, unknown, where
        text = f"unknown option {option!r}; {reason}" if unknown else f"{option}: {reason}"
        super().__init__(f"{where}: {text}" if where else text)

    def at(self, where: str) -> OptionError:
        """The same error said as given at ``where``."""
        return OptionError(self.option, self.reason, unknown=self.unknown, where=where)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

# a number in scientific notation without a dot (1e-3), which YAML 1.1 leaves a string
_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _as_float(v: Any) -> Any:
    """An int, or a number in scientific notation that YAML 1.1 left a string, as a float;
    anything else as it is (validation names it)."""
    if (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, str) and _SCIENTIFIC.match(v)):
        return float(v)
    return v


DEFAULT_LR = {"sgd": 0.2, "adamw": 1e-3}


def _check_space_name(space: str) -> None:
    """An options file's ``space``: a registered name or an existing file (said with the
    file's line, before any data is read)."""
    from nas.searchspace import list_spaces

    if space not in list_spaces() and not Path(space).is_file():
        raise OptionError("space", f"{space!r} is neither a registered space ("
                         f"{', '.join(list_spaces())}) nor a space file")
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-5, "adamw": 0.05}

_CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "schedule": ("cosine", "step", "constant"),
    "ema_schedule": ("cosine", "constant"),
    "progressive_grads": ("sum", "mean"),
}


@dataclass
class TrainOptions:
    """Everything a training run needs besides the space. Defaults train ``resnet_like`` on
    ``digits`` with ``sandwich`` in about two minutes on two cores (see
    benchmarks/RESULTS.md)."""

    space: str = "resnet_like"
    data: str = "digits"
    data_root: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    # the CNN families' stem stride: 1 or 2 (null: 2 from 64 pixels up, else 1); 2 halves
    # every layer's resolution, e.g. 28x28 Fashion-MNIST runs its first stage at 14x14
    stem_stride: int | None = None
    strategy: str = "sandwich"
    epochs: int = 12
    batch_size: int = 64
    # None: chosen by the space's family when training starts (:meth:`resolved`): SGD with
    # lr 0.2 for the CNN families, AdamW with lr 1e-3 for vit_like (transformers diverge under
    # the CNN recipe); lr and weight_decay left None follow the optimizer (see resolved)
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None  # None: 5e-5 for sgd, 0.05 for adamw (DeiT's)
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    kd_temperature: float = 1.0
    # BigNAS / timm ``zero_init_last``: start every residual block's last batch-norm scale at
    # zero, so each block begins as the identity and a deep and a shallow subnet start alike
    zero_init_last: bool = True
    # sandwich: random subnets per step besides the largest and the smallest (BigNAS: 2;
    # 1 here: 3 subnets per step instead of 4, for short CPU runs)
    num_random: int = 1
    # multiarch: subnets (groups of the batch) per step; whether each dimension takes its
    # values in turn across the groups, shuffled per dimension (ViT-ResNAS's channel drop;
    # false: each group's config drawn at random); epochs over which the smaller values of
    # the dimensions that size a network open, largest first (ViT-ResNAS: 15 of 300; 0: all
    # from the start)
    groups: int = 4
    multiarch_balanced: bool = True
    multiarch_warmup: float = 0.0
    # poa: EMA momentum of the teacher, its warm-up (momentum min(ema_momentum,
    # (1 + t) / (ema_warmup + t)) after t updates; 0: constant), the teacher's softmax
    # temperature (below kd_temperature: sharper targets), weight of the labels for the
    # intact student, weight of the elastic student's distillation from the intact student,
    # every how many steps the elastic student is the smallest subnet (0: always random)
    ema_momentum: float = 0.99
    ema_warmup: int = 10
    # poa: "cosine" raises the EMA momentum from ema_momentum to 1 over the run (POA's, after
    # DINO/iBOT), "constant" keeps it
    ema_schedule: str = "cosine"
    teacher_temperature: float = 0.5
    label_weight: float = 1.0
    intact_kd_weight: float = 1.0
    min_every: int = 2
    # progressive: fraction of epochs for each phase (full, +kernel, +depth, +width/rest;
    # every phase with a nonzero share gets at least one epoch) and the subnets sampled per
    # step in phases 1-3 (OFA: 1 for elastic kernel, 2 for depth, 4 for width)
    phases: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25, 0.25])
    progressive_subnets: list[int] = field(default_factory=lambda: [1, 2, 4])
    # progressive: OFA's per-stretch learning-rate restarts, each stretch with a fresh
    # optimizer, at these multiples of lr (full; kernel; depth two largest, all; width and the
    # rest two largest, all). OFA's own, for a 180-epoch full network and 120-epoch phases on
    # ImageNet: [1, 0.37, 0.031, 0.092, 0.031, 0.092] (2.6, 0.96, 0.08, 0.24, 0.08, 0.24); on
    # short runs full-rate restarts train the subnets far better (benchmarks/RESULTS.md).
    # null: one schedule over the run
    progressive_lr: list[float] | None = field(default_factory=lambda: [1.0] * 6)
    # progressive: share of the depth and of the width phase that samples only the two
    # largest values of the newly opened dimensions (OFA: 25 of 145 epochs; 0: all at once)
    progressive_gradual: float = 25 / 145
    # progressive: the k subnets of a step add their gradients ("sum": OFA's, a backward pass
    # per subnet before one step) or average them ("mean": runs from before 2026-11-23)
    progressive_grads: str = "sum"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    deterministic: bool = False
    checkpoint_minutes: float = 5.0
    eval_every: int = 1
    bn_batches: int = 4
    train_subset: int | None = None
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the option and what is allowed."""
        for name in ("space", "data", "strategy", "device"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise OptionError(name, f"must be a non-empty string, got {v!r}")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise OptionError("data_root", f"must be a directory path or null, got "
                             f"{self.data_root!r}")
        for name in ("download", "deterministic", "zero_init_last", "multiarch_balanced"):
            v = getattr(self, name)
            if not isinstance(v, bool):
                raise OptionError(name, f"must be true or false, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) \
                or not 0 <= self.seed < 2**32:
            raise OptionError("seed", f"must be an integer in 0..2**32-1, got {self.seed!r}")
        for name, allowed in _CHOICES.items():
            v = getattr(self, name)
            if v not in allowed and not (name == "optimizer" and v is None):
                raise OptionError(name, f"{v!r} is not allowed; allowed: {', '.join(allowed)}")
        positive_ints = ("epochs", "batch_size", "groups", "eval_every")
        for name in positive_ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise OptionError(name, f"must be a positive integer, got {v!r}")
        for name in ("num_random", "bn_batches", "ema_warmup", "min_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise OptionError(name, f"must be an integer >= 0, got {v!r}")
        for name in ("lr", "kd_temperature", "teacher_temperature", "checkpoint_minutes"):
            v = getattr(self, name)
            if name == "lr" and v is None:
                continue
            if not _finite(v) or v <= 0:
                raise OptionError(name, f"must be a finite number > 0, got {v!r}")
        for name in ("momentum", "warmup_epochs", "label_smoothing",
                     "grad_clip", "label_weight", "intact_kd_weight", "val_fraction",
                     "ema_momentum", "multiarch_warmup"):
            v = getattr(self, name)
            if not _finite(v) or v < 0:
                raise OptionError(name, f"must be a finite number >= 0, got {v!r}")
        if self.momentum >= 1:
            raise OptionError("momentum", f"must be in [0, 1), got {self.momentum!r}")
        from nas.training.strategies import list_strategies

        if self.strategy not in list_strategies():
            raise OptionError("strategy", f"{self.strategy!r} is not allowed; allowed: "
                             f"{', '.join(list_strategies())}")
        if self.weight_decay is not None and (not _finite(self.weight_decay)
                                              or self.weight_decay < 0):
            raise OptionError("weight_decay", f"must be a finite number >= 0 (or null: by "
                             f"optimizer), got {self.weight_decay!r}")
        if self.batch_size < 2:
            raise OptionError("batch_size", f"must be at least 2 (batch norm needs two images "
                             f"per batch in training), got {self.batch_size}")
        if self.strategy == "multiarch" and self.groups > self.batch_size // 2:
            raise OptionError("groups", f"multiarch splits each batch of {self.batch_size} into "
                             f"groups of at least 2 images (batch norm), so at most "
                             f"{self.batch_size // 2}, got {self.groups}")
        if not 0 < self.val_fraction < 1:
            raise OptionError("val_fraction", f"must be in (0, 1), got {self.val_fraction!r}")
        if not 0 <= self.ema_momentum < 1:
            raise OptionError("ema_momentum", f"must be in [0, 1), got {self.ema_momentum!r}")
        if self.label_smoothing >= 1:
            raise OptionError("label_smoothing", f"must be < 1, got {self.label_smoothing!r}")
        if (not isinstance(self.phases, list) or len(self.phases) != 4
                or any(not _finite(p) or p < 0 for p in self.phases)
                or sum(self.phases) <= 0):
            raise OptionError("phases", f"must be 4 non-negative numbers (full, kernel, depth, "
                             f"width), got {self.phases!r}")
        if self.phases[0] <= 0:
            raise OptionError("phases", f"the first (the full network, the teacher of the later "
                             f"phases) must be > 0, got {self.phases!r}")
        if (not isinstance(self.progressive_subnets, list) or len(self.progressive_subnets) != 3
                or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                       for k in self.progressive_subnets)):
            raise OptionError("progressive_subnets", f"must be 3 integers >= 1 (subnets per step "
                             f"in the kernel, depth and width phases), got "
                             f"{self.progressive_subnets!r}")
        if self.progressive_lr is not None and (
                not isinstance(self.progressive_lr, list) or len(self.progressive_lr) != 6
                or any(not _finite(v) or v <= 0 for v in self.progressive_lr)):
            raise OptionError("progressive_lr", f"must be 6 numbers > 0 (multiples of lr for the "
                             f"full, kernel, depth-two-largest, depth, width-two-largest and "
                             f"width stretches) or null, got {self.progressive_lr!r}")
        if not _finite(self.progressive_gradual) or not 0 <= self.progressive_gradual < 1:
            raise OptionError("progressive_gradual", f"must be a number in [0, 1), got "
                             f"{self.progressive_gradual!r}")
        if not is_stem_stride(self.stem_stride):
            raise OptionError("stem_stride", f"must be 1, 2 or null (automatic), got "
                             f"{self.stem_stride!r}")
        for name in ("train_subset", "max_steps_per_epoch", "threads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise OptionError(name, f"must be a positive integer or null, got {v!r}")
        try:
            resolve_device(self.device)
        except UsageError as e:
            raise OptionError("device", str(e).removeprefix("device: ")) from None

    def resolved(self, family: str | None) -> TrainOptions:
        """These options with the family-dependent defaults filled in: ``optimizer`` (AdamW
        for ``vit_like``, SGD otherwise), then ``lr`` and ``weight_decay`` by optimizer (SGD:
        0.2 and 5e-5; AdamW: 1e-3 and 0.05)."""
        opt = self.optimizer or ("adamw" if family == "vit_like" else "sgd")
        lr = self.lr if self.lr is not None else DEFAULT_LR[opt]
        wd = self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[opt]
        if (opt, lr, wd) == (self.optimizer, self.lr, self.weight_decay):
            return self
        return dataclasses.replace(self, optimizer=opt, lr=lr, weight_decay=wd)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "options") -> TrainOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known, key=str)  # keys of a file may be of any type
        if unknown:
            raise OptionError(unknown[0], f"known options: {', '.join(sorted(known))}",
                              unknown=True, where=where)
        types = {f.name: f.type for f in fields(cls)}
        clean = {}
        for k, v in d.items():
            # floats where floats are meant, and plain lists (a YAML file's carry line
            # numbers): options.yaml and checkpoints hold plain data
            if isinstance(v, list):
                v = [_as_float(e) for e in v] if "list[float]" in str(types[k]) else list(v)
            elif "float" in str(types[k]):
                v = _as_float(v)
            clean[k] = v
        try:
            return cls(**clean)
        except OptionError as e:
            raise e.at(where) from None
        except UsageError as e:
            raise UsageError(f"{where}: {e}" if where else str(e)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None
                  ) -> TrainOptions:
        """Options from a YAML file, then ``overrides`` (e.g. command-line flags) on top."""
        from nas.searchspace.io import read_document, to_plain

        if Path(path).is_dir():
            raise UsageError(f"{path}: is a directory, not an options file")
        try:  # YAML (safe loader; duplicate keys are errors) or JSON, by suffix
            doc, _ = read_document(path)
        except SpaceDefinitionError as e:
            raise UsageError(str(e)) from None
        doc = {} if doc is None else doc
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: must be a mapping of option: value")
        lines = getattr(doc, "lines", {})
        given = to_plain(dict(doc))
        try:
            cls.from_dict(given, where="")  # the file alone: errors point into it
            if "space" in given and "space" not in (overrides or {}):
                _check_space_name(given["space"])
        except OptionError as e:  # said at the option's line of the file
            line = lines.get(e.option) if isinstance(e.option, str) else None
            raise e.at(f"{path}{f':{line}' if line else ''}") from None
        except UsageError as e:
            raise UsageError(f"{path}: {e}") from None
        return cls.from_dict({**given, **(overrides or {})}, where="options")

    def replace(self, **changes: Any) -> TrainOptions:
        return self.from_dict({**self.to_dict(), **changes})
