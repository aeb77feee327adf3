"""The training loop: run directory, resumable checkpoints, metrics log and progress.

A run directory holds::

    options.yaml        the resolved options
    space.yaml          the space definition
    metrics.jsonl       one line per epoch: losses by branch, images/s, lr, val accuracy of the
                        largest and smallest subnets (after BN recalibration)
    checkpoint.pt       everything to resume (weights, optimizer, scheduler, epoch and step,
                        RNG states, strategy state, space, options); atomic, weights_only
    supernet.pt         the supernet alone (nas.supernet format) for extract/eval/search

``checkpoint.pt`` is written at the end of every epoch and, mid-epoch, whenever
``checkpoint_minutes`` have passed; a killed run loses at most the work since then.
Resuming replays the interrupted epoch's shuffle and skips the batches already done, so a
resumed run in deterministic mode reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data import TensorLoader, load_dataset, split, subset
from nas.data.datasets import DataNotFoundError
from nas.errors import NasError, UsageError
from nas.searchspace import Space, load_space
from nas.searchspace.io import dump_yaml
from nas.supernet import Supernet, build_supernet, save_supernet, zero_init_last
from nas.supernet.base import check_stem_stride
from nas.supernet.checkpoint import load_problem, version_change
from nas.training.evaluate import evaluate_config
from nas.training.options import TrainOptions
from nas.training.schedule import warmed
from nas.training.strategies import make_strategy
from nas.utils.checks import check_int
from nas.utils.files import (
    DirectoryLock,
    atomic_torch_save,
    atomic_write_text,
    remove_stale_temporaries,
    torch_load_weights,
)
from nas.utils.memory import steady_allocator
from nas.utils.progress import training_progress

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "nas.train"
# 2: unsigned activation quantizers after ReLUs; 3: vit_like's fixed head width and
# parameter-free reduction skip (nas.supernet.checkpoint.version_change); an earlier version
# still resumes where that changes nothing
CHECKPOINT_VERSION = 3


class TrainingError(NasError):
    """A run directory or training checkpoint that cannot be used."""


class TrainingDivergedError(TrainingError):
    """The loss became NaN or infinite: the run cannot continue as configured."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM (``timeout``, ``kill``, a batch scheduler, ``docker stop``)
    during training: the run checkpointed after the step it was in and stopped; ``nas train
    --resume`` continues it. ``signal`` is the signal's name."""

    def __init__(self, run: Path, signal: str = "SIGINT", finished: bool = False) -> None:
        super().__init__(
            f"interrupted ({signal}) as its last epoch ended; {run} is complete" if finished
            else f"interrupted ({signal}); {run} is checkpointed: `nas train --resume {run}` "
                 "continues it")
        self.run = run
        self.signal = signal
        self.finished = finished


class _StopRequest:
    """Inside the ``with`` block, the first Ctrl-C (SIGINT) or SIGTERM sets :attr:`requested`
    (the training loop checkpoints after the step it is in and stops); a second one
    interrupts at once. Only in the main thread (signal handlers cannot be installed
    elsewhere). :attr:`signal` names the signal that asked."""

    def __init__(self, run: Path | None = None) -> None:
        self.requested = False
        self.signal = "SIGINT"
        self.run = run  # (said in the message of a second signal)
        self._old: dict[int, Any] = {}

    def _restore(self) -> None:
        import signal

        for signum, old in self._old.items():
            # (None: a handler not set from Python; the interpreter's default stands in)
            signal.signal(signum, old if old is not None else (
                signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL))
        self._old = {}

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        if self.requested:
            self._restore()
            name = signal.Signals(signum).name
            stop = KeyboardInterrupt(
                f"interrupted again ({name}): stopped at once, without a checkpoint of the "
                "steps since the last one")
            stop.signal = name  # type: ignore[attr-defined]
            stop.run = self.run  # type: ignore[attr-defined]
            raise stop
        self.requested = True
        self.signal = signal.Signals(signum).name
        log.warning("%s: stopping after this step (writing a checkpoint); %s again stops at "
                    "once and loses the work since the last checkpoint",
                    self.signal, "Ctrl-C" if signum == signal.SIGINT else "the same signal")

    def __enter__(self) -> _StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                # not where the signal is ignored (SIGINT in a background job of a script,
                # nohup): it stays ignored
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()


@dataclass
class TrainResult:
    run_dir: Path
    supernet: Supernet
    epochs_done: int
    history: list[dict[str, Any]]
    already_complete: bool = False  # a resumed run that had finished before this call


# what a checkpoint written before an option existed trained with
_OPTIONS_BEFORE_THEY_EXISTED: dict[str, Any] = {
    "progressive_lr": None, "progressive_gradual": 0.0, "ema_schedule": "constant",
    "multiarch_balanced": False, "multiarch_warmup": 0.0, "progressive_grads": "mean"}


def _lr_lambda(opts: TrainOptions, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, opts.epochs * steps_per_epoch)
    warm = int(opts.warmup_epochs * steps_per_epoch)
    if warm > total // 2:  # a warm-up as long as the run would leave no decay at all
        # (the default one-epoch warm-up of a one-epoch run is no mistake worth a warning)
        say = log.info if opts.warmup_epochs == TrainOptions.warmup_epochs else log.warning
        say("warmup_epochs %g is more than half of the %d epochs; warming up over "
                    "half of the run instead", opts.warmup_epochs, opts.epochs)
        warm = total // 2

    def f(step: int) -> float:
        return warmed(opts.schedule, step, total, warm)

    return f


def _check_new_epochs(epochs: Any, strategy: str, done: int, where: Path) -> None:
    """A resumed run's new ``epochs``: an integer >= 1, at least the epochs it has done, and
    not for ``progressive`` (its phases are planned over the run's epochs)."""
    check_int("epochs", epochs, 1)
    if strategy == "progressive":
        raise UsageError(f"epochs: {where} is a progressive run, whose phases are planned over "
                         "its epochs; they cannot change on resume (start a new run)")
    if epochs < done:
        raise UsageError(f"epochs: {where} has already trained {done} epochs; give at least "
                         f"{done}, got {epochs}")


def _optimizer(opts: TrainOptions, net: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of resolved ``opts`` (see :meth:`TrainOptions.resolved`); no weight decay
    on biases, normalisation parameters, quantizer ranges and the token position embeddings
    of ``vit_like`` (DeiT's and ViT-ResNAS's ``no_weight_decay``)."""
    if opts.optimizer is None or opts.lr is None or opts.weight_decay is None:
        raise UsageError("optimizer/lr/weight_decay: unresolved; call "
                         "TrainOptions.resolved(family) first")
    from nas.supernet.ops import ElasticPosEmbed

    tokens = {id(m.pos) for m in net.modules() if isinstance(m, ElasticPosEmbed)}
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim <= 1 or name.endswith(".clip") or id(p) in tokens
        (no_decay if exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": opts.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if opts.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=opts.lr, momentum=opts.momentum,
                               nesterov=opts.momentum > 0)
    return torch.optim.AdamW(groups, lr=opts.lr)


def _np_state(rng: np.random.Generator) -> dict[str, Any]:
    return json.loads(json.dumps(rng.bit_generator.state))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint (``weights_only``); clear errors for corrupt files."""
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p}: no such checkpoint")
    try:
        payload = torch_load_weights(p)
    except (OSError, ValueError) as e:
        what = ("not a safe training checkpoint" if "which is refused" in str(e)
                else "corrupt or truncated training checkpoint")
        raise TrainingError(f"{p}: {what} ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{p}: not a training checkpoint (expected format "
                            f"{CHECKPOINT_FORMAT!r})")
    version = payload.get("version")
    readable = tuple(range(1, CHECKPOINT_VERSION + 1))
    if version not in readable:
        raise TrainingError(f"{p}: checkpoint version {version!r} not supported (supported: "
                            f"{', '.join(map(str, readable))})")
    change = _version_change(p, payload) if version != CHECKPOINT_VERSION else None
    if change is not None:
        raise TrainingError(f"{p}: checkpoint version {version} not supported for "
                            f"{change[0]} (written by an earlier nas: {change[1]}); start a "
                            "new run: another output directory, or delete this one")
    return payload


def _version_change(p: Path, payload: dict[str, Any]) -> tuple[str, str] | None:
    """Why an earlier version's run computed otherwise than this version does
    (:func:`nas.supernet.checkpoint.version_change`)."""
    try:
        space = Space.from_dict(payload["space"], stored=True)
    except (NasError, KeyError, TypeError, AttributeError) as e:
        raise TrainingError(f"{p}: corrupt training checkpoint ({e})") from None
    return version_change(space, payload["version"])


# the files a run directory holds (written atomically: a kill can leave their temporaries)
RUN_FILES = ("checkpoint.pt", "supernet.pt", "options.yaml", "space.yaml", "metrics.jsonl")

# what a resumed run may change: runtime settings, its length, and where its data is read
# from (the same data: the checkpoint's digests of the training split check it)
RESUME_OVERRIDES = ("threads", "device", "epochs", "data", "data_root", "download")


def _absolute_data_paths(opts: TrainOptions) -> TrainOptions:
    """``opts`` with a data file or folder and ``data_root`` made absolute, so that the run
    can resume, and its supernet be evaluated, from another working directory."""
    from nas.data import list_datasets

    changes: dict[str, Any] = {}
    if opts.data not in list_datasets() and Path(opts.data).exists():
        changes["data"] = str(Path(opts.data).resolve())
    if opts.data_root is not None:
        changes["data_root"] = str(Path(opts.data_root).expanduser().resolve())
    return opts.replace(**changes) if changes else opts


def _data_fingerprint(x: torch.Tensor, y: torch.Tensor) -> dict[str, str]:
    """Digests of the training split (after any subset), kept in the checkpoint:
    ``labels`` (with the images' shape; exact) and ``pixels`` (the standardised float bits,
    which another numpy or Pillow may round differently)."""
    import hashlib

    def digest(*parts: Any) -> str:
        h = hashlib.sha256()
        for p in parts:
            h.update(p if isinstance(p, bytes) else memoryview(np.ascontiguousarray(p)))
        return h.hexdigest()[:16]

    return {"labels": digest(repr(tuple(x.shape)).encode(), y.numpy()),
            "pixels": digest(x.numpy())}


def _configure_torch(opts: TrainOptions) -> None:
    # glibc keeps freed memory: every step allocates the same activation and gradient sizes,
    # which it would otherwise page-fault afresh (nas.utils.memory; NAS_STEADY_ALLOCATOR=0
    # turns it off)
    steady_allocator()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.deterministic:
        torch.use_deterministic_algorithms(True)


def train(opts: TrainOptions, run_dir: str | os.PathLike[str], *, resume: bool = False,
          progress: bool = True, space: Space | None = None,
          stop_after_steps: int | None = None,
          announce: Callable[[Path], None] | None = None,
          resume_overrides: Mapping[str, Any] | None = None) -> TrainResult:
    """Train a supernet per ``opts`` into ``run_dir``; with ``resume``, continue the run there.

    ``announce(run_dir)`` is called once the inputs are checked (options, space, data,
    strategy) and the run directory exists, before the first step. ``stop_after_steps``
    stops (as if killed) after that many optimizer steps in this call, right after any
    checkpoint due at that point — for tests of resumption. ``resume_overrides`` changes
    runtime options of a resumed run (``threads``, ``device``) and may change its
    ``epochs`` (to train a finished run further, or stop an unfinished one sooner): the
    learning-rate schedule (and ``poa``'s cosine EMA) is then re-planned over the new total,
    continuing from the step reached at the rate a run of that many epochs has there (a
    finished cosine run restarts at part of its peak rate). ``progressive`` runs cannot
    change their epochs (their phases are planned over them); nothing else may change.
    A non-finite loss stops the run with :class:`TrainingDivergedError` (the last
    checkpoint is kept).
    """
    run = Path(run_dir)
    ckpt_path = run / "checkpoint.pt"
    state: dict[str, Any] | None = None
    lock = DirectoryLock(run, doing="trained")
    if resume:
        state = load_checkpoint(ckpt_path)
        lock.acquire()  # before touching anything of a run that may still be training
    try:
        return _train(opts, run, state, lock, progress=progress, space=space,
                      stop_after_steps=stop_after_steps, announce=announce,
                      resume_overrides=resume_overrides)
    finally:
        lock.release()


def _check_run_space(run: Path, space: Space, ckpt_path: Path) -> None:
    """A resumed checkpoint must be of its run's space (``space.yaml``): one copied in from
    another run would otherwise continue there as its own space. An unreadable or missing
    ``space.yaml`` is rewritten from the checkpoint, which holds the definition too."""
    from nas.searchspace.io import read_document, to_plain

    path = run / "space.yaml"
    try:
        doc, _ = read_document(path)
        there = Space.from_dict(to_plain(doc), stored=True)
    except (OSError, NasError) as e:
        log.warning("%s: %s; rewriting it from %s", path,
                    "missing" if not path.exists() else f"unreadable ({e})", ckpt_path.name)
        space.save(path)
        return
    if there.fingerprint != space.fingerprint:
        what = (f"another definition of space {there.name!r}" if there.name == space.name
                else f"space {there.name!r}")
        raise UsageError(f"{ckpt_path}: a checkpoint of space {space.name!r}, but the run's "
                         f"{path.name} defines {what} (fingerprints {space.fingerprint[:12]} vs "
                         f"{there.fingerprint[:12]}); the checkpoint belongs to another run")


def _train(opts: TrainOptions, run: Path, state: dict[str, Any] | None, lock: DirectoryLock, *,
           progress: bool, space: Space | None, stop_after_steps: int | None,
           announce: Callable[[Path], None] | None,
           resume_overrides: Mapping[str, Any] | None) -> TrainResult:
    ckpt_path = run / "checkpoint.pt"
    options_changed = False  # options.yaml is behind the run's options (written at a checkpoint)
    replanned_from: int | None = None  # the epochs a resumed run had, when they change
    moved: dict[str, Any] = {}  # data or data_root a resumed run reads from a new place
    if state is not None:
        if remove_stale_temporaries(run, RUN_FILES):
            log.info("%s: removed temporary files left by the interrupted run", run)
        changes = dict(resume_overrides or {})
        bad = sorted(set(changes) - set(RESUME_OVERRIDES))
        if bad:
            raise UsageError(f"resume_overrides: {bad[0]!r} cannot change on resume (only "
                             f"{', '.join(RESUME_OVERRIDES)})")
        # options added after a run started resume as that run trained (not the new defaults)
        saved = {**_OPTIONS_BEFORE_THEY_EXISTED, **state["options"]}
        if changes.get("epochs", saved["epochs"]) == saved["epochs"]:
            changes.pop("epochs", None)
        else:
            replanned_from = int(saved["epochs"])
            _check_new_epochs(changes["epochs"], saved["strategy"], int(state["epoch"]),
                              ckpt_path)
        moved = {k: changes[k] for k in ("data", "data_root")
                 if k in changes and changes[k] != saved.get(k)}
        if moved and not isinstance(state.get("data_fingerprint"), dict):
            raise UsageError(f"{ckpt_path}: this run predates the digests that tell its "
                             "training data apart, so its data cannot be moved on resume; "
                             "restore the data at its old place")
        opts = TrainOptions.from_dict({**saved, **changes}, where=str(ckpt_path))
        if moved:  # the same data at a new place (the digests below check it is the same)
            opts = _absolute_data_paths(opts)
        space = Space.from_dict(state["space"], stored=True)
        _check_run_space(run, space, ckpt_path)
    elif ckpt_path.exists():
        raise UsageError(f"{run}: already holds a run; resume it (--resume {run}) or choose "
                         "another --out")
    space = space or load_space(opts.space)
    opts = opts.resolved(space.family)  # family defaults (optimizer, lr), saved resolved
    if state is None:  # a run resumes (and eval/extract find its data) from anywhere
        opts = _absolute_data_paths(opts)
    check_stem_stride(space.family, opts.stem_stride)  # before any data is read or downloaded
    _configure_torch(opts)
    device = torch.device(opts.device)
    torch.manual_seed(opts.seed)
    try:
        data = load_dataset(opts.data, root=opts.data_root, download=opts.download)
    except DataNotFoundError as e:
        if state is None:
            raise
        raise DataNotFoundError(f"{e}; if the run's data moved, `nas train --resume {run} "
                                "--data-root DIR` (or --data FILE) reads it from its new "
                                "place") from None
    parts = split(data, opts.val_fraction, seed=opts.seed)
    if len(parts.val[1]) == 0:
        raise UsageError(f"val_fraction: {opts.val_fraction:g} of {data.name}'s "
                         f"{len(data.y_train)} training images leaves no validation images; "
                         "raise it or use more data")
    x_train, y_train = parts.train
    if opts.train_subset:
        x_train, y_train = subset(x_train, y_train, opts.train_subset, seed=opts.seed)
    fingerprint = _data_fingerprint(x_train, y_train)
    old_print = state.get("data_fingerprint") if state is not None else None
    if isinstance(old_print, dict):
        if old_print.get("labels") != fingerprint["labels"]:
            raise TrainingError(f"{run}: its training data changed since the run started "
                                f"(--data {opts.data}: {data.describe()}; other images or "
                                "labels); resuming would train on other data. Restore the "
                                "data or start a new run")
        if old_print.get("pixels") != fingerprint["pixels"] and moved:
            raise TrainingError(f"{run}: the data at its new place ({', '.join(moved)}) has "
                                "the run's labels but other images; resuming would train on "
                                "other data. Point it at the run's own data")
        if old_print.get("pixels") != fingerprint["pixels"]:
            log.warning("%s: the training images' values differ from when the run started "
                        "(changed files, or another numpy/Pillow rounding them otherwise); "
                        "resuming anyway", run)
    net = build_supernet(space, in_channels=data.in_channels, num_classes=data.num_classes,
                         input_size=data.input_size, stem_stride=opts.stem_stride,
                         device=device)
    if opts.zero_init_last:
        zero_init_last(net)  # (a resumed run then loads its trained weights over it)
    gen = torch.Generator().manual_seed(opts.seed)
    loader = TensorLoader(x_train, y_train, opts.batch_size, shuffle=True, drop_last=True,
                          device=device, generator=gen)
    if len(loader) == 0:
        raise UsageError(f"batch_size {opts.batch_size} is larger than the training set "
                         f"({len(x_train)} images)")
    steps_per_epoch = min(len(loader), opts.max_steps_per_epoch or len(loader))
    rng = np.random.default_rng(opts.seed)
    strategy = make_strategy(opts.strategy, net, opts, rng)
    optimizer = _optimizer(opts, net)
    run_schedule = _lr_lambda(opts, steps_per_epoch)

    def lr_factor(step: int) -> float:
        # a strategy may schedule the learning rate itself (progressive: OFA's restarts)
        own = strategy.lr_factor(step, steps_per_epoch)
        return run_schedule(step) if own is None else own
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    val_loader = TensorLoader(*parts.val, 256, device=device)

    def calib_loader(epoch: int) -> TensorLoader:
        # seeded per evaluation, so a resumed run recalibrates exactly like an uninterrupted one
        g = torch.Generator().manual_seed(opts.seed * 100_003 + epoch)
        # whole batches only: a 1-image batch cannot give batch-norm statistics
        return TensorLoader(x_train, y_train, opts.batch_size, shuffle=True, generator=g,
                            device=device, drop_last=len(x_train) >= opts.batch_size)
    epoch, step_in_epoch, global_step = 0, 0, 0
    epoch_gen_state = gen.get_state()
    history: list[dict[str, Any]] = []
    partial: dict[str, Any] = {"sums": {}, "done": 0, "images": 0}  # of an interrupted epoch
    if state is not None:
        try:
            net.load_state_dict(state["model"])
        except RuntimeError as e:  # (size mismatches: data of other classes or resolution)
            raise TrainingError(f"{ckpt_path}: its weights do not fit the supernet built for "
                                f"{data.describe()} ({load_problem(e)}); was the data "
                                "changed?") from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        strategy.load_state_dict(state["strategy"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["step"]
        epoch_gen_state = state["epoch_gen_state"]
        history = list(state.get("history", []))
        partial = dict(state.get("partial") or partial)
        if moved:  # (options.yaml says so with the next checkpoint, which carries it too)
            options_changed = True
            log.info("%s: its data is now read from %s", run,
                     ", ".join(f"{k}={getattr(opts, k)}" for k in moved))
        if replanned_from is not None:
            # the rate of the re-planned schedule at the step reached, from the next step on
            f = lr_factor(global_step)
            for g, base in zip(optimizer.param_groups, scheduler.base_lrs):
                g["lr"] = base * f
            scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
            options_changed = True  # (written with the next checkpoint, as for moved data)
            log.info("%s: %d epochs instead of %d; the learning-rate schedule is re-planned "
                     "over them (rate factor %.4g at step %d)", run, opts.epochs,
                     replanned_from, f, global_step)
        try:  # behind the checkpoint (a kill between the two writes): caught up below
            options_changed |= ((run / "options.yaml").read_text(encoding="utf-8")
                                != dump_yaml(opts.to_dict()))
        except OSError:
            options_changed = True
        # the metrics log holds exactly the checkpoint's epochs (a kill between an epoch's
        # row and its checkpoint would otherwise leave that row twice)
        atomic_write_text(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        if epoch < opts.epochs:
            log.info("resuming %s at epoch %d step %d", run, epoch + 1, step_in_epoch)
    else:
        run.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        if ckpt_path.exists():  # another process started a run here meanwhile
            raise UsageError(f"{run}: already holds a run; resume it (--resume {run}) or "
                             "choose another --out")
        if remove_stale_temporaries(run, RUN_FILES):  # killed writing its first checkpoint
            log.info("%s: removed temporary files left by an earlier, killed run", run)
        atomic_write_text(run / "options.yaml", dump_yaml(opts.to_dict()))
        space.save(run / "space.yaml")
        atomic_write_text(run / "metrics.jsonl", "")
        log.info("training %s on %s with %s into %s", space.name, parts.describe(),
                 opts.strategy, run)
    if announce is not None:
        announce(run)

    def checkpoint(next_epoch: int, next_step: int,
                   sums: dict[str, float] | None = None, done: int = 0, images: int = 0) -> None:
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "options": opts.to_dict(), "space": space.to_dict(),
            "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "strategy": strategy.state_dict(),
            "rng": _np_state(rng), "torch_rng": torch.get_rng_state(),
            "epoch": next_epoch, "step_in_epoch": next_step, "step": global_step,
            "epoch_gen_state": epoch_gen_state, "history": history,
            "data_fingerprint": fingerprint,
            "partial": {"sums": dict(sums or {}), "done": done, "images": images},
        }, ckpt_path)
        nonlocal options_changed
        if options_changed:  # only now: a kill before this checkpoint resumes as before
            atomic_write_text(run / "options.yaml", dump_yaml(opts.to_dict()))
            options_changed = False

    last_ckpt = time.monotonic()
    steps_this_call = 0
    def supernet_meta(epochs: int, row: dict[str, Any]) -> dict[str, Any]:
        # seed and val_fraction: search, eval and extract hold out the same validation images
        return {"epochs": epochs, "strategy": opts.strategy, "data": opts.data,
                "data_root": opts.data_root, "seed": opts.seed, "val_fraction": opts.val_fraction,
                "val_acc_max": row.get("val_acc_max"), "val_acc_min": row.get("val_acc_min")}

    if epoch >= opts.epochs:
        log.debug("%s is already complete (%d epochs); nothing to do", run, epoch)
        if options_changed:  # (--epochs lowered to those done: the checkpoint says so now)
            checkpoint(epoch, 0)
        save_supernet(net, run / "supernet.pt",  # as it was at the end (in case a kill
                      meta=supernet_meta(epoch, history[-1] if history else {}))  # lost it)
        return TrainResult(run, net, epoch, history, already_complete=True)
    with training_progress(enabled=progress, total_epochs=opts.epochs,
                           steps_per_epoch=steps_per_epoch) as bar, _StopRequest(run) as stop:
        while epoch < opts.epochs:
            net.train()
            strategy.on_epoch_start(epoch)
            gen.set_state(epoch_gen_state)
            sums: dict[str, float] = dict(partial["sums"])
            done, images = int(partial["done"]), int(partial["images"])
            partial = {"sums": {}, "done": 0, "images": 0}
            t0, images_at_start = time.perf_counter(), images
            lr_used = optimizer.param_groups[0]["lr"]
            bar.start_epoch(epoch, step_in_epoch)
            for i, (x, y) in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                if i < step_in_epoch:
                    continue  # already done before the interruption
                strategy.on_step_start(global_step, steps_per_epoch)
                if getattr(strategy, "reset_optimizer", False):
                    # a new phase starts afresh (progressive: OFA runs each phase as its own
                    # training run; channel sorting permuted the weights under the momentum)
                    optimizer.state.clear()
                    strategy.reset_optimizer = False
                optimizer.zero_grad(set_to_none=True)
                losses = strategy.step(x, y)
                bad = next((k for k, v in losses.items() if not math.isfinite(v)), None)
                if bad is not None:
                    raise TrainingDivergedError(
                        f"training diverged: loss {bad!r} is {losses[bad]} at epoch "
                        f"{epoch + 1}, step {i + 1}; lower the learning rate (lr "
                        f"{opts.lr:g}) or raise warmup_epochs, and start a new run"
                        + (f" (the last checkpoint, {ckpt_path}, is from before)"
                           if ckpt_path.exists() else ""))
                if opts.grad_clip:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), opts.grad_clip)
                optimizer.step()
                lr_used = optimizer.param_groups[0]["lr"]  # (the row's: the step's own rate)
                scheduler.step()
                strategy.after_step()
                global_step += 1
                steps_this_call += 1
                done += 1
                images += len(x)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                step_in_epoch = i + 1
                rate = (images - images_at_start) / max(1e-9, time.perf_counter() - t0)
                bar.advance(losses.get("loss", float("nan")), rate)
                if time.monotonic() - last_ckpt > opts.checkpoint_minutes * 60 \
                        and step_in_epoch < steps_per_epoch:
                    checkpoint(epoch, step_in_epoch, sums, done, images)
                    last_ckpt = time.monotonic()
                if stop.requested and step_in_epoch < steps_per_epoch:
                    checkpoint(epoch, step_in_epoch, sums, done, images)
                    raise TrainingInterrupted(run, stop.signal)
                if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                    if step_in_epoch < steps_per_epoch:
                        checkpoint(epoch, step_in_epoch, sums, done, images)
                        return TrainResult(run, net, epoch, history)
            row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step,
                                   "lr": lr_used,  # of the epoch's last step
                                   "images_per_s": (images - images_at_start)
                                   / max(1e-9, time.perf_counter() - t0)}
            row.update({k: v / max(1, done) for k, v in sums.items()})
            if "phase" in row:  # progressive: the phase (of the epoch's last step), an int
                row["phase"] = int(getattr(strategy, "phase", round(row["phase"])))
            if (epoch + 1) % opts.eval_every == 0 or epoch + 1 == opts.epochs:
                for name, cfg in (("max", strategy.largest), ("min", strategy.smallest)):
                    r = evaluate_config(net, cfg, val_loader, calib_loader(epoch),
                                        opts.bn_batches)
                    row[f"val_acc_{name}"] = r["top1"]
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            bar.end_epoch(row)
            # (the progress bar's line says it already; the log line has every figure)
            log.log(logging.DEBUG if progress else logging.INFO, "epoch %d/%d %s",
                    epoch + 1, opts.epochs, ", ".join(
                f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "step")))
            epoch += 1
            step_in_epoch = 0
            epoch_gen_state = gen.get_state()
            # the supernet before the checkpoint: a kill between the two redoes the epoch
            save_supernet(net, run / "supernet.pt", meta=supernet_meta(epoch, row))
            checkpoint(epoch, 0)
            last_ckpt = time.monotonic()
            if stop.requested:  # (in the last epoch too: a search would go on after it)
                raise TrainingInterrupted(run, stop.signal, finished=epoch >= opts.epochs)
            if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                return TrainResult(run, net, epoch, history)
    return TrainResult(run, net, epoch, history)
