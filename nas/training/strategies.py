"""Supernet training strategies, registered by name.

Each strategy turns one batch into gradients on the shared weights (``step``); the trainer
owns the optimizer step. Strategies:

- ``uniform`` — single-path one-shot (SPOS): one uniformly sampled subnet per step, labels.
- ``sandwich`` — the sandwich rule with in-place distillation (Yu & Huang's slimmable
  networks, BigNAS): the largest subnet learns from the labels; the smallest and
  ``num_random`` random subnets learn from the largest's detached soft predictions (BigNAS
  samples 2 random subnets; the default 1 trades that for a quarter less work per step).
- ``multiarch`` — ViT-ResNAS multi-architectural sampling: the batch is split into
  ``groups`` parts, each part trains a different random subnet, and one backward pass and one
  optimizer step cover them all.
- ``poa`` — POA ("pre-training once for all") tri-branch self-distillation: an EMA teacher,
  the intact (largest) student and an elastic student sampled each step; both students
  distil from the teacher, the elastic one also from the intact student, the intact one also
  learns from labels (``label_weight``); the teacher is the EMA of the student weights (see
  :class:`POA` for the details and the deviations from the paper).
- ``progressive`` — OFA progressive shrinking: phases that train the full network, then open
  kernel sizes, then depths, then widths and every other choice; after the first phase the
  sampled subnets distil from the frozen full network.

Quantization bits are dimensions like any other, so every strategy samples them
(quantization-aware training).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nas.errors import UsageError
from nas.searchspace import Config, Space
from nas.supernet import Supernet
from nas.training.options import TrainOptions
from nas.training.schedule import warmed

_STRATEGIES: dict[str, type[Strategy]] = {}

log = logging.getLogger(__name__)


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    _STRATEGIES[cls.name] = cls
    return cls


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def make_strategy(name: str, supernet: Supernet, opts: TrainOptions,
                  rng: np.random.Generator) -> Strategy:
    if name not in _STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; known: {', '.join(list_strategies())}")
    return _STRATEGIES[name](supernet, opts, rng)


def kd_loss(student: Tensor, teacher: Tensor, temperature: float,
            teacher_temperature: float | None = None) -> Tensor:
    """KL divergence from the teacher's softened predictions, scaled by ``T**2``; a
    ``teacher_temperature`` below ``temperature`` sharpens the teacher's side (DINO)."""
    t = temperature
    tt = t if teacher_temperature is None else teacher_temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.softmax(teacher / tt, dim=1),
                    reduction="batchmean") * (t * t)


class Strategy:
    """Base class: ``step(x, y)`` runs forward and backward, returns losses by branch."""

    name: ClassVar[str] = ""

    def __init__(self, supernet: Supernet, opts: TrainOptions, rng: np.random.Generator):
        self.reset_optimizer = False  # read (and cleared) by the trainer before a step
        self.supernet = supernet
        self.space: Space = supernet.space
        self.opts = opts
        self.rng = rng
        # the largest and the smallest: the supernet's own (by the size of each value), not
        # the space's last and first values, which are those only where a space lists its
        # choices cheapest first (the convention; widths, cardinality and attention are easy
        # to list the other way)
        self._max = supernet.largest_config()
        self._min = supernet.smallest_config()

    @property
    def largest(self) -> Config:
        """The largest subnet (the one the trainer reports as ``val_acc_max``)."""
        return self._max

    @property
    def smallest(self) -> Config:
        return self._min

    def ce(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.opts.label_smoothing)

    def forward(self, cfg: Config, x: Tensor) -> Tensor:
        with self.supernet.activate(cfg):
            return self.supernet(x)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (0-based)."""

    def on_step_start(self, step: int, steps_per_epoch: int) -> None:
        """Called before each training step (``step``: optimizer steps done so far in the
        run). Setting ``reset_optimizer`` here (or in :meth:`on_epoch_start`) makes the
        trainer drop the optimizer's state before the step."""

    def lr_factor(self, step: int, steps_per_epoch: int) -> float | None:
        """The strategy's own learning-rate multiplier (of ``lr``) for ``step``; ``None``
        (the default): the run's ``schedule``."""
        return None

    def after_step(self) -> None:
        """Called after the optimizer step."""

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register_strategy
class Uniform(Strategy):
    name = "uniform"

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        loss = self.ce(self.forward(self.space.sample(self.rng), x), y)
        loss.backward()
        return {"loss": loss.item()}


@register_strategy
class Sandwich(Strategy):
    name = "sandwich"

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        others = [self._min] + self.space.sample_many(self.opts.num_random, self.rng)
        # one backward pass over the summed losses, with the subnets' conv weights derived
        # at once: their gradients meet in one buffer per shared weight (7-9% faster steps
        # on digits than a backward pass per subnet; the graphs of all of them are held)
        with self.supernet.shared_weights([self._max, *others]):
            logits = self.forward(self._max, x)
            loss_max = self.ce(logits, y)
            soft = logits.detach()
            losses = [kd_loss(self.forward(cfg, x), soft, self.opts.kd_temperature)
                      for cfg in others]
            total = loss_max + sum(losses)
        total.backward()
        kd = [loss.item() for loss in losses]
        return {"loss": loss_max.item(), "loss_max": loss_max.item(), "loss_min": kd[0],
                "loss_kd": sum(kd) / len(kd)}


@register_strategy
class MultiArch(Strategy):
    """ViT-ResNAS's multi-architectural sampling: the batch split into ``groups`` groups,
    each through its own subnet, in one forward and backward pass. As ViT-ResNAS's channel
    drop does per layer, each dimension takes its values in turn across the groups (every
    value as often as the others, up to one; ``groups`` distinct values, drawn at random,
    where a dimension has more) in an order shuffled per dimension
    (``multiarch_balanced``; constraints then repaired), and over the first
    ``multiarch_warmup`` epochs the values of the dimensions that size the network open one
    by one, largest first: ``1 + floor(epoch * (n - 1) / warmup)`` of their ``n`` values in
    epoch ``epoch``."""

    name = "multiarch"

    def __init__(self, supernet: Supernet, opts: TrainOptions, rng: np.random.Generator):
        super().__init__(supernet, opts, rng)
        self.epoch = 0
        sized = {p for p in self.space.paths
                 if all(supernet.size_key(p, v) is not None for v in self.space.values(p))}
        # per dimension: its value indices, largest network first; whether warm-up opens it
        self._order = [([self.space.values(p).index(v) for v in supernet.size_order(p)],
                        p in sized) for p in self.space.paths]

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def open_values(self) -> list[list[int]]:
        """Per dimension (``space.paths``), the value indices open in this epoch."""
        w = self.opts.multiarch_warmup
        out = []
        for order, sized in self._order:
            n = len(order)
            if w > 0 and sized:
                order = order[:min(n, 1 + math.floor(self.epoch * (n - 1) / w))]
            out.append(order)
        return out

    def group_configs(self, k: int) -> list[Config]:
        """The ``k`` subnets of a step."""
        if not self.opts.multiarch_balanced and self.opts.multiarch_warmup <= 0:
            return self.space.sample_many(k, self.rng)
        cols = []
        for vals in self.open_values():
            if self.opts.multiarch_balanced:
                # as ViT-ResNAS's channel drop cycles the values over the groups: every value
                # k // n times, the k % n groups left to distinct values drawn at random (k
                # distinct values when there are more than k), in a shuffled order
                v = np.asarray(vals)
                rest = self.rng.choice(v, k % len(v), replace=False)
                cols.append(self.rng.permutation(np.concatenate([np.tile(v, k // len(v)),
                                                                 rest])))
            else:
                cols.append(self.rng.choice(np.asarray(vals), k))
        return self.space.repair_many(np.stack(cols, axis=1).astype(np.float64))

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        k = min(self.opts.groups, len(x))
        configs = self.group_configs(k)
        # one grouped pass: group i of the batch (x.tensor_split(k)) through subnet i, with
        # the shared weights sliced once for all k subnets (Supernet.activate_many)
        with self.supernet.activate_many(configs):
            logits = self.supernet(x)
        groups = list(zip(logits.tensor_split(k), y.tensor_split(k)))
        parts = [self.ce(out, target) for out, target in groups]
        sizes = [len(target) for _, target in groups]
        total = sum(part * (n / len(x)) for part, n in zip(parts, sizes))
        total.backward()  # one backward pass for all K subnets
        # the branches of a step are its K subnets: the total (weighted by group size), and
        # the best and the worst of the K (their spread: how unevenly the sampled subnets
        # are trained); one device sync
        each = torch.stack([part.detach() for part in parts]).tolist()
        return {"loss": sum(e * n / len(x) for e, n in zip(each, sizes)),
                "loss_group_best": min(each),
                "loss_group_worst": max(each)}


class _Teacher:
    """A frozen copy of the supernet used as a distillation teacher. With ``batch_stats`` it
    normalises with each batch's own statistics (train-mode batch norm) instead of its running
    statistics."""

    def __init__(self, supernet: Supernet, batch_stats: bool = False) -> None:
        self.net = copy.deepcopy(supernet).train(batch_stats)
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def logits(self, cfg: Config, x: Tensor) -> Tensor:
        with self.net.activate(cfg):
            return self.net(x)


@register_strategy
class POA(Strategy):
    """POA tri-branch self-distillation (Zhang et al., "POA: Pre-training Once for Models of
    All Sizes", ECCV 2024), adapted to supervised supernet training.

    Each step the teacher (the EMA of the student weights, at the largest config) predicts the
    batch; the intact student (the largest subnet) learns from the labels (``label_weight``)
    and by distillation from the teacher; the elastic student (a subnet of the intact student,
    sharing its weights) distils from the teacher and from the intact student's detached
    predictions (POA's two distillation targets for the elastic branch; weight
    ``intact_kd_weight``). After the optimizer step the teacher moves towards the student.

    As in the DINO-style self-distillation POA builds on, the teacher normalises with batch
    statistics (train-mode batch norm) and its targets are sharpened (``teacher_temperature``
    below the students' ``kd_temperature``). Both matter here: the teacher's running
    statistics would be an EMA of the supernet's, which every elastic step overwrites in the
    shared channels with a narrower (and quantized) subnet's statistics, and a teacher in eval
    mode on them kept the elastic subnets at chance accuracy.

    Deviations from the paper, for short supervised runs (each measured on digits, see
    benchmarks/RESULTS.md):

    - The teacher's EMA momentum follows the paper's cosine from ``ema_momentum`` to 1 over
      the run (``ema_schedule``; 0.99 here, 0.996 in the paper's long runs) but warms up:
      it is capped by ``(1 + t) / (ema_warmup + t)`` after ``t`` updates (``ema_warmup`` 0:
      no cap). With a constant 0.99 over a 12-epoch digits run (240 steps) the teacher
      stayed near random for most of training.
    - Every ``min_every``-th step the elastic student is the smallest subnet instead of a
      random one (the sandwich rule's lower bound; 0: always random). The paper samples the
      elastic student at random only; without it the smallest subnet lagged (73 % against
      93 % on digits in one comparison).
    - Labels for the intact student and distillation of the logits stand in for the paper's
      self-supervised DINO/iBOT heads and multi-crop views, so the teacher and the students
      see the same view of each image.
    """

    name = "poa"

    def __init__(self, supernet: Supernet, opts: TrainOptions, rng: np.random.Generator):
        super().__init__(supernet, opts, rng)
        self.teacher = _Teacher(supernet, batch_stats=True)
        self.updates = 0  # EMA updates done (for the momentum schedules and min_every)
        self.total_steps = 0  # of the run (told by the trainer; 0: unknown, no cosine)

    def on_step_start(self, step: int, steps_per_epoch: int) -> None:
        self.total_steps = self.opts.epochs * steps_per_epoch

    def momentum(self) -> float:
        """The teacher's EMA momentum for the next update: ``ema_momentum``, raised to 1 over
        the run along a cosine (``ema_schedule: cosine``, as in POA and the DINO/iBOT
        teachers it builds on), capped by the warm-up."""
        m, w, t = self.opts.ema_momentum, self.opts.ema_warmup, self.updates
        if self.opts.ema_schedule == "cosine" and self.total_steps:
            m = 1 - (1 - m) * (1 + math.cos(math.pi * min(1.0, t / self.total_steps))) / 2
        return min(m, (1 + t) / (w + t)) if w else m

    def elastic_config(self) -> Config:
        k = self.opts.min_every
        if k and self.updates % k == 0:
            return self._min
        return self.space.sample(self.rng)

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        t = self.opts.kd_temperature
        tt = self.opts.teacher_temperature
        target = self.teacher.logits(self._max, x)
        cfg = self.elastic_config()
        # one backward pass, both students' conv weights derived at once (see Sandwich)
        with self.supernet.shared_weights([self._max, cfg]):
            intact = self.forward(self._max, x)
            loss_i = (self.opts.label_weight * self.ce(intact, y)
                      + kd_loss(intact, target, t, tt))
            elastic = self.forward(cfg, x)
            loss_e = kd_loss(elastic, target, t, tt)
            if self.opts.intact_kd_weight:
                loss_e = loss_e + self.opts.intact_kd_weight * kd_loss(elastic, intact.detach(),
                                                                       t)
        (loss_i + loss_e).backward()
        return {"loss": loss_i.item() + loss_e.item(), "loss_intact": loss_i.item(),
                "loss_elastic": loss_e.item()}

    @torch.no_grad()
    def after_step(self) -> None:
        m = self.momentum()
        self.updates += 1
        student = dict(self.supernet.named_parameters())
        for name, p in self.teacher.net.named_parameters():
            p.mul_(m).add_(student[name].detach(), alpha=1 - m)
        # buffers follow too (the teacher predicts with batch statistics; the running ones
        # are kept only so that the teacher is a complete supernet)
        student_buffers = dict(self.supernet.named_buffers())
        for name, b in self.teacher.net.named_buffers():
            src = student_buffers[name]
            if b.dtype.is_floating_point:
                b.mul_(m).add_(src, alpha=1 - m)
            else:
                b.copy_(src)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.net.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher.net.load_state_dict(state["teacher"])
        self.updates = int(state.get("updates", 0))


# dimension roles for progressive shrinking, by the last part of a dimension's path
KERNEL_DIMS = frozenset({"kernel"})
DEPTH_DIMS = frozenset({"depth"})


def open_dims(space: Space, phase: int) -> frozenset[str]:
    """Paths sampled in progressive-shrinking ``phase`` (others stay at their maximum):
    0 none, 1 kernels, 2 kernels and depths, 3 everything; a dimension with one value is
    never a choice, so no phase opens it (a phase that would open only such dimensions
    opens nothing new and gives its epochs away: :func:`effective_phases`)."""
    if phase <= 0:
        return frozenset()
    roles = KERNEL_DIMS | (DEPTH_DIMS if phase >= 2 else frozenset())
    return frozenset(p for p in space.paths if len(space.values(p)) > 1
                     and (phase >= 3 or p.rsplit(".", 1)[-1] in roles))


def sample_open(space: Space, base: Config, open_paths: frozenset[str],
                rng: np.random.Generator,
                top_two: Mapping[str, Sequence[Any]] | None = None) -> Config:
    """A valid config with the ``open_paths`` drawn at random and every other dimension as in
    ``base`` (constraints permitting), through the space's encoding and repair. Paths in
    ``top_two`` (a subset of ``open_paths``, each mapped to its two largest values:
    :meth:`Supernet.size_order`) draw from those two only, as OFA opens depth and width in
    two steps."""
    if not open_paths:
        return base
    top_two = top_two or {}
    vec = space.encode(base)
    rand = space.encode(space.sample(rng))
    _, hi = space.bounds()
    for i, path in enumerate(space.paths):
        if path in top_two:
            vec[i] = space.values(path).index(top_two[path][rng.integers(len(top_two[path]))])
        elif path in open_paths:
            vec[i] = rand[i] if rand[i] >= 0 else rng.integers(0, int(hi[i]) + 1)
        elif vec[i] < 0:
            vec[i] = hi[i]
    return space.repair(vec)


def effective_phases(space: Space, phases: list[float]) -> list[float]:
    """``phases`` with the share of a phase that opens no new dimension in ``space`` (the
    kernel phase of a space without kernel sizes, say ``vit_like``) moved to the next phase
    that does (to the previous one when none follows): no epochs re-train what the phase
    before already trained."""
    out = [float(w) for w in phases]
    empty = [p for p in range(1, 4) if open_dims(space, p) == open_dims(space, p - 1)]
    for p in empty:
        if out[p] == 0:
            continue
        # the next phase the user kept (a share > 0), else the previous one (phase 0, the
        # full network, always has a share): a phase switched off stays off
        later = [q for q in range(p + 1, 4) if q not in empty and phases[q] > 0]
        earlier = [q for q in range(p - 1, -1, -1) if q == 0 or (q not in empty
                                                                 and phases[q] > 0)]
        target = later[0] if later else earlier[0]
        out[target] += out[p]
        out[p] = 0.0
    if empty:
        log.info("progressive: phase(s) %s open no new dimension of space %r; their epochs go "
                 "to the neighbouring phases (shares now %s)", empty, space.name, out)
    return out


def phase_ends(phases: list[float], epochs: int) -> list[int]:
    """End epoch (exclusive) of each progressive phase: the shares of ``phases`` rounded, with
    at least one epoch for every phase of nonzero share (a UsageError when ``epochs`` cannot
    hold them) and none for a zero share."""
    w = np.asarray(phases, dtype=float)
    need = int((w > 0).sum())
    if epochs < need:
        raise UsageError(f"progressive: {epochs} epoch(s) cannot hold its {need} phases of "
                         f"nonzero share (phases {list(phases)}); give at least {need} epochs")
    ideal = np.round(np.cumsum(w / w.sum()) * epochs).astype(int)
    ends: list[int] = []
    prev = 0
    for p in range(len(w)):
        later = int((w[p + 1:] > 0).sum())
        if w[p] > 0:
            end = min(max(int(ideal[p]), prev + 1), epochs - later)
        else:
            end = prev
        ends.append(end)
        prev = end
    return ends


@dataclass(frozen=True)
class Segment:
    """A stretch of progressive shrinking trained as one OFA run: optimizer steps
    ``[start, end)`` of ``phase``, with only the two largest values of the phase's newly
    opened dimensions (``top_two``) or all of them, its own learning-rate restart (``lr``, a
    multiplier of the run's ``lr``) and warm-up steps."""

    start: int
    end: int
    phase: int
    top_two: bool
    lr: float
    warm: int


# OFA (Cai et al. 2020, Fig. 3; the released train_ofa_net.py): a phase that opens a
# dimension fully warms up over 5 of its 120 epochs; the first, two-largest-values part of the
# depth and width phases (25 epochs) does not warm up
OFA_WARMUP_SHARE = 5 / 120


@register_strategy
class Progressive(Strategy):
    """OFA progressive shrinking (Cai et al., "Once-for-All", ICLR 2020): phase 0 trains the
    full network; phase 1 opens the kernel sizes, phase 2 also depth, phase 3 everything else
    (width, attention, bits, cardinality), each previously opened choice staying open.
    As in OFA, depth and width open in two steps: the first ``progressive_gradual`` of the
    depth and of the last phase's steps (OFA: 25 of 145 epochs) sample only the two largest
    values of each newly opened dimension (OFA: depth {3, 4}, then {2, 3, 4}; expand {4, 6},
    then {3, 4, 6}; :meth:`newly_opened`: since the last phase that ran, kernel sizes
    excepted). From phase 1 on, every step trains ``progressive_subnets[phase - 1]``
    sampled subnets (OFA: 1, 2, 4), each on the labels plus knowledge distillation from the
    frozen full network of the end of phase 0 (batch-statistics batch norm, as OFA runs its
    teacher in train mode: its running statistics are whatever the last BN recalibration
    left). Entering the width phase, the channels are sorted by importance
    (``Supernet.reorder_channels``, the full network's function unchanged), and, as OFA does
    at its next expand stage, sorted again when the phase opens every value: within the
    channels the two largest widths trained, so that set stays theirs and the narrower
    widths get its most important channels (``reorder_channels(keep=...)``).

    OFA trains each of its six stretches (full; kernel; depth top two, all; width top two,
    all) as a run of its own: a fresh optimizer and the schedule restarted at the stretch's
    own learning rate, with a warm-up of 5 of 120 epochs where a dimension opens fully (the
    full network's warm-up is ``warmup_epochs``). So does this strategy, at
    ``progressive_lr`` times ``lr``. OFA's rates (2.6, 0.96, 0.08, 0.24, 0.08, 0.24 at batch
    2048: ``[1, 0.37, 0.031, 0.092, 0.031, 0.092]``) fine-tune a full network trained for 180
    epochs; after the few epochs of a short run they leave the subnets undertrained (digits,
    12 epochs: random subnets 62 % against 89 % with full-rate restarts, the default; see
    benchmarks/RESULTS.md). ``progressive_lr: null`` runs one schedule over the whole run
    instead (and resets the optimizer only where the channels are sorted). A phase that opens
    nothing new in the space (the kernel phase of ``vit_like``) gives its epochs to the next
    phase (:func:`effective_phases`). Phases are whole epochs (``phases``: their shares); OFA's
    epoch counts (180 + 120 + 25 + 120 + 25 + 120) are ``phases: [180, 120, 145, 145]``."""

    name = "progressive"

    def __init__(self, supernet: Supernet, opts: TrainOptions, rng: np.random.Generator):
        super().__init__(supernet, opts, rng)
        shares = effective_phases(self.space, opts.phases)
        try:
            self.phase_ends = phase_ends(shares, opts.epochs)
        except UsageError as e:
            if shares == [float(w) for w in opts.phases]:
                raise
            raise UsageError(f"{e}; these are the shares after moving those of phases that "
                             f"open nothing new in space {self.space.name!r} (given: "
                             f"{list(opts.phases)})") from None
        self.phase = 0
        self.top_two = False
        self.teacher: _Teacher | None = None
        self.channels_sorted = False
        self.channels_resorted = False  # the width phase's second sort (see on_step_start)
        self._segments: tuple[int, list[Segment]] = (0, [])
        self._two_largest: dict[int, dict[str, tuple[Any, ...]]] = {}

    def newly_opened(self, phase: int) -> frozenset[str]:
        """The dimensions ``phase`` opens that no phase before it trained (phases with no
        epochs open nothing), less the kernel sizes: these start from their two largest
        values. OFA opens kernel sizes all at once."""
        ran = [q for q in range(phase) if self.phase_ends[q] > (self.phase_ends[q - 1]
                                                                if q else 0)]
        before = open_dims(self.space, ran[-1]) if ran else frozenset()
        return frozenset(p for p in open_dims(self.space, phase) - before
                         if p.rsplit(".", 1)[-1] not in KERNEL_DIMS)

    def phase_of(self, epoch: int) -> int:
        for p, end in enumerate(self.phase_ends):
            if epoch < end:
                return p
        return 3

    def segments(self, steps_per_epoch: int) -> list[Segment]:
        """The run's stretches in optimizer steps (see the class docstring)."""
        if self._segments[0] == steps_per_epoch:
            return self._segments[1]
        lrs = self.opts.progressive_lr or [1.0] * 6
        out: list[Segment] = []
        start = 0
        for p, end_epoch in enumerate(self.phase_ends):
            end = end_epoch * steps_per_epoch
            n = end - start
            if n <= 0:
                continue
            if p == 0:
                warm = int(self.opts.warmup_epochs * steps_per_epoch)
                if warm > n // 2:  # as the trainer does for the whole run
                    log.warning("warmup_epochs %g is more than half of the progressive "
                                "kernel phase (%d steps); warming up over %d steps instead",
                                self.opts.warmup_epochs, n, n // 2)
                    warm = n // 2
                out.append(Segment(start, end, 0, False, lrs[0], warm))
            elif p == 1:
                out.append(Segment(start, end, 1, False, lrs[1], round(OFA_WARMUP_SHARE * n)))
            else:
                i = 2 if p == 2 else 4
                g = self.opts.progressive_gradual  # at least one step each, when on
                first = min(max(round(g * n), 1), n - 1) if g and n >= 2 else 0
                if first:
                    out.append(Segment(start, start + first, p, True, lrs[i], 0))
                out.append(Segment(start + first, end, p, False, lrs[i + 1],
                                   round(OFA_WARMUP_SHARE * (n - first))))
            start = end
        self._segments = (steps_per_epoch, out)
        return out

    def segment_at(self, step: int, steps_per_epoch: int) -> Segment:
        segs = self.segments(steps_per_epoch)
        return next((s for s in segs if step < s.end), segs[-1])

    def lr_factor(self, step: int, steps_per_epoch: int) -> float | None:
        if self.opts.progressive_lr is None:
            return None
        seg = self.segment_at(step, steps_per_epoch)
        return seg.lr * warmed(self.opts.schedule, step - seg.start, seg.end - seg.start,
                               seg.warm)

    def on_epoch_start(self, epoch: int) -> None:
        self.phase = self.phase_of(epoch)
        if self.phase > 0 and self.teacher is None:
            # the trained full network, frozen
            self.teacher = _Teacher(self.supernet, batch_stats=True)
        if self.phase == 3 and not self.channels_sorted:
            self.supernet.reorder_channels()
            self.channels_sorted = True
            self.reset_optimizer = True

    def on_step_start(self, step: int, steps_per_epoch: int) -> None:
        seg = self.segment_at(step, steps_per_epoch)
        self.top_two = seg.top_two
        if step == seg.start and step > 0 and self.opts.progressive_lr is not None:
            self.reset_optimizer = True  # each stretch is a fresh OFA run
        if (seg.phase == 3 and not seg.top_two and self.channels_sorted
                and not self.channels_resorted and step >= seg.start
                and any(o.phase == 3 and o.top_two and o.end <= seg.start
                        for o in self.segments(steps_per_epoch))):
            # OFA sorts again when the width phase opens every value (re_organize_middle_
            # weights at the next expand stage): the channels the two largest widths trained
            # stay theirs, and among them the narrower widths get the most important
            self.supernet.reorder_channels(keep=self.second_largest())
            self.channels_resorted = True
            self.reset_optimizer = True

    def two_largest(self, phase: int) -> dict[str, tuple[Any, ...]]:
        """The two largest values (:meth:`Supernet.size_order`) of each dimension ``phase``
        opens in two steps (:meth:`newly_opened`)."""
        if phase not in self._two_largest:
            self._two_largest[phase] = {p: tuple(self.supernet.size_order(p)[:2])
                                        for p in self.newly_opened(phase)}
        return self._two_largest[phase]

    def second_largest(self) -> Config:
        """The largest config with every dimension the width phase opened in two steps at
        its second-largest value (the narrower of the two its first stretch trained)."""
        vec = self.space.encode(self._max)
        for i, path in enumerate(self.space.paths):
            two = self.two_largest(3).get(path)
            if two and vec[i] >= 0:
                vec[i] = self.space.values(path).index(two[-1])
        return self.space.repair(vec)

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        if self.phase == 0 or self.teacher is None:
            loss = self.ce(self.forward(self._max, x), y)
            loss.backward()
            return {"loss": loss.item(), "phase": 0.0}
        target = self.teacher.logits(self._max, x)
        k = self.opts.progressive_subnets[self.phase - 1]
        opened = open_dims(self.space, self.phase)
        top_two = self.two_largest(self.phase) if self.top_two else None
        cfgs = [sample_open(self.space, self._max, opened, self.rng, top_two)
                for _ in range(k)]
        # OFA accumulates the subnets' gradients, summed (a backward pass per subnet, then
        # one step): one backward pass over the sum, the subnets' conv weights derived at
        # once (see Sandwich); the mean is what is logged
        with self.supernet.shared_weights(cfgs):
            losses, parts = [], []
            for cfg in cfgs:
                logits = self.forward(cfg, x)
                ce = self.ce(logits, y)
                kd = kd_loss(logits, target, self.opts.kd_temperature)
                losses.append(ce + kd)
                parts.append(torch.stack([ce.detach(), kd.detach()]))
            total = sum(losses)
        (total if self.opts.progressive_grads == "sum" else total / k).backward()
        mean = total.detach() / k
        # the branches of a step: the labels' and the full network's (distillation) terms
        ce_mean, kd_mean = (torch.stack(parts).mean(0)).tolist()  # one device sync
        return {"loss": mean.item(), "loss_label": ce_mean, "loss_kd": kd_mean,
                "phase": float(self.phase)}

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": None if self.teacher is None else self.teacher.net.state_dict(),
                "channels_sorted": self.channels_sorted,
                "channels_resorted": self.channels_resorted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.channels_sorted = bool(state.get("channels_sorted", False))
        # (a checkpoint from before the second sort existed: not done; resumed inside the
        # stretch that opens every width, it is done at the first step -- it keeps what the
        # full network and the two largest widths compute)
        self.channels_resorted = bool(state.get("channels_resorted", False))
        if state.get("teacher") is not None:
            self.teacher = _Teacher(self.supernet, batch_stats=True)
            self.teacher.net.load_state_dict(state["teacher"])
