"""``nas search`` end to end: supernet → latency table → search → Pareto front → export.

Phases, each resumable inside the output directory:

1. **supernet** — ``--supernet CKPT`` is loaded (it must hold the same space); otherwise a
   quick supernet is trained on the data into ``OUT/supernet/`` (a normal training run:
   killed, it resumes).
2. **latency** — a lookup table of this device's block latencies, ``OUT/latency.json``
   (only when ``latency`` is a target or constrained).
3. **search** — the searcher proposes configs; each real evaluation measures accuracy on the
   validation split (BN recalibrated) and reads latency from the table and FLOPs, params and
   size from the analytic counter (``workers`` > 1 or a ``ray_address``: the accuracies of
   each proposed batch on Ray workers, :mod:`nas.search.distributed`). Every evaluation is
   appended to ``OUT/history.csv`` at once; re-running the same command skips what is there.
4. **front** — the Pareto front of accuracy against the targets, extracted to
   ``OUT/pareto/<id>.pt`` (``weights_only`` loadable) with its config JSON, latency measured
   for real on the extracted model, ``pareto.csv``, ``pareto.json``, ``pareto.png`` and
   ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas import __version__
from nas.errors import NasError, UsageError
from nas.search.base import Objective, hypervolume, make_searcher, pareto_mask, run_search, to_min
from nas.search.constraints import Limit
from nas.searchspace import Config, Space, load_space
from nas.utils.checks import check_int
from nas.utils.files import (
    DirectoryLock,
    atomic_write_bytes,
    atomic_write_text,
    file_digest,
    strict_json,
)

log = logging.getLogger(__name__)

TARGETS = ("latency", "flops", "params", "size")


class SearchError(NasError):
    """A search that cannot proceed (infeasible constraint, mismatched output directory)."""


@dataclass
class SearchOptions:
    """Options of ``nas search`` (defaults: the two-command quick start)."""

    space: str = "resnet_like"
    targets: list[str] = field(default_factory=lambda: ["latency"])
    constraints: list[str] = field(default_factory=list)
    supernet: str | None = None
    data: str = "digits"
    data_root: str | None = None
    strategy: str = "linas"
    # the searcher's own options (make_searcher's keyword arguments: nas search --option)
    searcher_options: dict[str, Any] = field(default_factory=dict)
    budget: int = 60
    seed: int = 0
    device: str = "cpu"
    train_epochs: int | None = None
    train_strategy: str = "sandwich"
    # the stem stride of the supernet the search trains (None: automatic; see TrainOptions)
    stem_stride: int | None = None
    bn_batches: int = 4
    latency_batch: int = 1
    latency_threads: int = 1
    max_export: int = 12
    # a complete table built by `nas profile` to use instead of measuring one (not part of
    # the search's identity: a resume ranks earlier evaluations by the table it now uses)
    latency_table: str | None = None
    threads: int | None = None
    # evaluations on Ray workers (nas.search.distributed): 1 and no address: in this process
    workers: int = 1
    ray_address: str | None = None

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the ``nas search`` flag (or, for options without
        one, the option) and what is allowed. Called before anything is written."""
        if not self.targets:
            raise UsageError("--target: give at least one of " + ", ".join(TARGETS))
        for t in self.targets:
            if t not in TARGETS:
                raise UsageError(f"--target {t!r} is not allowed; allowed: {', '.join(TARGETS)}")
        if len(set(self.targets)) != len(self.targets):
            raise UsageError(f"--target: repeated targets {self.targets}")
        if self.latency_table is not None and "latency" not in self.targets and not any(
                Limit.parse(c).metric == "latency" for c in self.constraints):
            raise UsageError("--latency-table: this search uses no latency (no latency "
                             "--target or --constraint); drop it")
        check_int("--budget", self.budget, 1)  # one evaluation: a front of one, still valid
        check_int("--seed", self.seed, 0)
        if self.train_epochs is not None:
            check_int("--train-epochs", self.train_epochs, 1)
            if self.supernet:
                raise UsageError("--train-epochs: sets the supernet this search trains; a "
                                 "--supernet checkpoint is used as it is (drop one of them)")
        if self.threads is not None:
            check_int("--threads", self.threads, 1)
        if self.stem_stride is not None:
            from nas.supernet.base import is_stem_stride

            if not is_stem_stride(self.stem_stride):
                raise UsageError(f"--stem-stride: must be 1 or 2, got {self.stem_stride!r}")
            if self.supernet:
                raise UsageError("--stem-stride: sets the supernet this search trains; a "
                                 "--supernet checkpoint keeps its own stride (drop one of them)")
        for name, lo in (("bn_batches", 0), ("latency_batch", 1), ("latency_threads", 1),
                         ("max_export", 1)):
            check_int(name, getattr(self, name), lo)
        check_int("--workers", self.workers, 1)
        if self.ray_address is not None and (not isinstance(self.ray_address, str)
                                             or not self.ray_address.strip()):
            raise UsageError(f"--ray-address: a Ray cluster address ('auto' or host:port), "
                             f"got {self.ray_address!r}")
        if self.distributed:
            from nas.search.distributed import import_ray

            import_ray("--workers" if self.ray_address is None else "--ray-address")
        for c in self.constraints:
            Limit.parse(c)
        from nas.search.base import list_searchers
        from nas.training.strategies import list_strategies
        from nas.utils.device import resolve_device

        if self.strategy not in list_searchers():
            raise UsageError(f"--strategy {self.strategy!r} is not a searcher; known: "
                             f"{', '.join(list_searchers())}")
        if not isinstance(self.searcher_options, dict):
            raise UsageError(f"searcher_options: must be a mapping of option: value, got "
                             f"{self.searcher_options!r}")
        for key, value in self.searcher_options.items():
            if key in ("seed", "known"):
                raise UsageError(f"--option {key}: set by the search itself"
                                 + (" (from --seed)" if key == "seed" else
                                    " (the cost model of the targets)"))
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise UsageError(f"--option {key}: must be plain data (recorded in "
                                 f"search.json), got {value!r}") from None
        if self.train_strategy not in list_strategies():
            raise UsageError(f"train_strategy: {self.train_strategy!r} is not a training "
                             f"strategy; known: {', '.join(list_strategies())}")
        resolve_device(self.device, field="--device")

    @property
    def distributed(self) -> bool:
        """Whether evaluations run on Ray workers."""
        return self.workers > 1 or self.ray_address is not None

    def identity(self) -> dict[str, Any]:
        """What must match for an output directory to be resumed."""
        d = asdict(self)
        # a larger budget extends; workers compute what this process would
        for k in ("device", "threads", "max_export", "budget", "workers", "ray_address",
                  "latency_table"):
            d.pop(k)
        if self.stem_stride is None:  # (added later: directories from before still match)
            d.pop("stem_stride")
        if not self.searcher_options:  # (likewise)
            d.pop("searcher_options")
        if self.device != "cpu":  # another device: other latencies, another search (kept
            d["device"] = self.device  # out for cpu so existing directories still match)
        # limits by meaning, not spelling: latency<=3ms is latency<=3
        d["constraints"] = [str(Limit.parse(c)) for c in self.constraints]
        return d


@dataclass
class Candidate:
    config: Config
    accuracy: float
    latency: float
    flops: int
    params: int
    size: int


HISTORY_FIELDS = ["id", "accuracy", "accuracy_source", "latency_ms", "latency_source",
                  "flops", "params", "size_bytes", "feasible", "seconds", "config"]


_FLOAT_FIELDS = ("accuracy", "latency_ms", "flops", "params", "size_bytes")


def _history_row(line: bytes, space: Space) -> dict[str, Any]:
    """One data line of ``history.csv`` as a row with its ``_config``; ``ValueError`` (with
    the reason) for anything that is not a whole, readable row."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    fields = next(csv.reader([text]), [])
    if len(fields) != len(HISTORY_FIELDS):
        raise ValueError(f"{len(fields)} fields, expected {len(HISTORY_FIELDS)}")
    row = dict(zip(HISTORY_FIELDS, fields))
    for k in _FLOAT_FIELDS:
        if k == "accuracy" and row[k] == "" and row["accuracy_source"] == "infeasible":
            continue  # outside the cost limits: never measured
        try:
            v = float(row[k])
        except ValueError:
            raise ValueError(f"{k}: {row[k]!r} is not a number") from None
        if not math.isfinite(v) and not (k == "latency_ms" and row["latency_source"] == "none"):
            raise ValueError(f"{k}: {row[k]!r} is not a finite number")  # (nan: no table)
        if k == "accuracy" and not 0 <= v <= 100:
            raise ValueError(f"accuracy: {row[k]!r} is not a percentage (0..100)")
    try:
        cfg = space.config(json.loads(row["config"]))
    except json.JSONDecodeError as e:
        raise ValueError(f"config: not JSON ({e})") from None
    except NasError as e:
        raise ValueError(f"config: {e}") from None
    if row["id"] != cfg.id:  # (edited by hand: which of the two was evaluated?)
        raise ValueError(f"id: {row['id']!r} is not its config's id ({cfg.id})")
    return {**row, "_config": cfg}


def _read_history(path: Path, space: Space) -> list[dict[str, Any]]:
    """The rows of ``history.csv`` (an absent or empty file: none).

    A kill during an append can leave the last line torn: an unreadable last line is dropped
    with a warning and the file rewritten (atomically) without it, so that later appends
    start on a line of their own. Anything else unreadable (the header, a line before the
    last) raises :class:`SearchError` naming the file and line: evaluations are never
    silently dropped or repeated.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file ends with a newline, as it should
    header_line = ",".join(HISTORY_FIELDS)
    head = lines[0].rstrip(b"\r").decode("utf-8", "replace") if lines else ""
    if len(lines) <= 1 and header_line.startswith(head) and head != header_line:
        # empty, or killed while writing the header: nothing was evaluated yet
        log.warning("%s: incomplete header (the search was interrupted); rewriting it", path)
        atomic_write_text(path, header_line + "\r\n")
        return []
    if next(csv.reader([head]), []) != HISTORY_FIELDS:
        shown = head if len(head) <= 80 else head[:77] + "..."
        raise SearchError(f"{path}:1: not a search history header (got {shown!r}, expected "
                          f"{header_line!r}); repair the file or choose another --out")
    rows = []
    keep = [lines[0]]
    rewrite = not data.endswith(b"\n")
    last = max(i for i, line in enumerate(lines, 1) if line.strip())
    for i, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            rows.append(_history_row(line.rstrip(b"\r"), space))
        except ValueError as e:
            if i < last:
                raise SearchError(f"{path}:{i}: not a search history row ({e}); repair or "
                                  "remove that line, or choose another --out") from None
            log.warning("%s:%d: dropping the torn last row, left by an interrupted append "
                        "(%s); that evaluation does not count", path, i, e)
            rewrite = True
            continue
        keep.append(line)
    if rewrite:
        atomic_write_bytes(path, b"\n".join(keep) + b"\n")
    return rows


# options that only steer the search phase: the supernet and latency table of an output
# directory do not depend on them, only its history.csv does
_SEARCH_PHASE = ("targets", "constraints", "strategy", "searcher_options", "bn_batches")


def _only_search_phase_differs(old: dict[str, Any], ident: dict[str, Any]) -> bool:
    if {k: v for k, v in old.items() if k != "options"} != {
            k: v for k, v in ident.items() if k != "options"}:
        return False
    a, b = old["options"], ident["options"]
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in _SEARCH_PHASE)


def _comparable(ident: dict[str, Any]) -> dict[str, Any]:
    """A search manifest's identity as compared on resume: the space by name and fingerprint
    only (not how ``--space`` was spelled: ``./s.yaml``, ``s.yaml`` or an identical copy
    elsewhere), the supernet by its resolved path (``./runs/x`` is ``runs/x``)."""
    opts = dict(ident.get("options") or {})
    opts.pop("space", None)
    if isinstance(opts.get("supernet"), str):
        opts["supernet"] = str(Path(opts["supernet"]).resolve())
    return {**ident, "options": opts}


def _prepare_out(out: Path, opts: SearchOptions, space: Space) -> None:
    manifest = out / "search.json"
    ident: dict[str, Any] = {"space": space.name, "space_fingerprint": space.fingerprint,
                             "options": opts.identity()}
    if opts.supernet:  # its contents, not only its path: a replaced file is another search
        ident["supernet_sha256"] = file_digest(opts.supernet)
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if not isinstance(old, dict) or not isinstance(old.get("options"), dict):
            raise SearchError(f"{manifest}: corrupt; remove it or choose another --out")
        was, now = _comparable(old), _comparable(ident)
        if "supernet_sha256" not in was:  # (a directory from before it was recorded)
            now.pop("supernet_sha256", None)
        moved = (was.get("supernet_sha256") is not None
                 and was.get("supernet_sha256") == now.get("supernet_sha256")
                 and was["options"].get("supernet") != now["options"].get("supernet"))
        if moved:  # the same file at a new place (its contents say which supernet it is)
            was["options"]["supernet"] = now["options"]["supernet"]
        if was != now:
            diff = [f"{k} ({was['options'].get(k)!r} there, {now['options'][k]!r} now)"
                    for k in now["options"] if was["options"].get(k) != now["options"][k]]
            if not diff and was.get("supernet_sha256") != now.get("supernet_sha256"):
                diff = ["the --supernet file's contents (it changed since the search began)"]
            what = ", ".join(diff) if diff else "space definition"
            if (_only_search_phase_differs(was, now)
                    and not (out / "history.csv").exists()):
                # stopped before its first evaluation (an infeasible --constraint, a kill
                # while the supernet trained): what is there does not depend on these
                log.info("%s: no evaluation yet; taking the new %s", out, what)
                atomic_write_text(manifest, json.dumps(ident, indent=2) + "\n")
                return
            # (trained to the end: the search had begun; and for this search's training too)
            trained = out / "supernet" / "supernet.pt"
            reuse = (f" (a new --out can reuse its trained supernet: --supernet {trained})"
                     if trained.exists() and not opts.supernet and was["options"].get(
                         "supernet") is None and _only_search_phase_differs(was, now)
                     and (out / "history.csv").exists() else "")
            raise UsageError(f"{out} holds a different search (differs in: {what}); "
                             f"choose another --out or repeat its options to resume{reuse}")
        if moved:
            log.info("%s: the --supernet file moved to %s; the same contents", out,
                     opts.supernet)
            atomic_write_text(manifest, json.dumps(ident, indent=2) + "\n")
        return
    _check_out_holds_no_other_files(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, json.dumps(ident, indent=2) + "\n")


# what a search writes at the top of its output directory (temporaries of these, left by a
# killed write, are removed when it starts again)
# (latency.json's own go when its build takes the table's lock: nas.predictors.latency)
_OUT_FILES = ("search.json", "history.csv", "pareto.json", "pareto.csv", "pareto.png",
              "summary.json")


def _check_out_holds_no_other_files(out: Path) -> None:
    """An output directory without a manifest must be empty, but for what a search killed
    while it started leaves there (its lock, a temporary of its manifest)."""
    if (out / "search.json").exists() or not out.is_dir():
        return
    ours = re.compile(r"^\.lock$|^\.search\.json\.[A-Za-z0-9_]+\.tmp$")
    if any(not ours.match(p.name) for p in out.iterdir()):
        raise UsageError(f"{out} is not empty and holds no search; choose another --out")


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files of writes a killed search left (its lock is held: none is in flight):
    beside the run's own files, and anywhere in ``pareto/``, which holds only the front."""
    from nas.utils.files import remove_stale_temporaries

    n = remove_stale_temporaries(out, _OUT_FILES)
    front = out / "pareto"
    if front.is_dir():
        for p in front.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                p.unlink()
                n += 1
    if n:
        log.info("%s: removed %d temporary file(s) left by an interrupted search", out, n)


def _train_options(opts: SearchOptions, space: Space) -> Any:
    """The options of the search's own supernet training (built before anything is written:
    a bad value fails while the output directory is still untouched)."""
    from nas.training import TrainOptions

    changes: dict[str, Any] = {"space": space.name, "data": opts.data,
                               "data_root": opts.data_root, "strategy": opts.train_strategy,
                               "seed": opts.seed, "device": opts.device,
                               "threads": opts.threads, "stem_stride": opts.stem_stride}
    if opts.train_epochs is not None:  # 0 is an error (validate), not "the default"
        changes["epochs"] = opts.train_epochs
    return TrainOptions().replace(**changes)


def _supernet(opts: SearchOptions, space: Space, out: Path, progress: bool, say: Callable
              ) -> Any:
    """Train the search's own supernet in ``out/supernet`` (resuming a killed run)."""
    from nas.supernet import load_supernet
    from nas.training import train
    from nas.training.trainer import TrainingInterrupted

    run = out / "supernet"
    done = run / "supernet.pt"
    topts = _train_options(opts, space)
    try:
        if (run / "checkpoint.pt").exists():
            from nas.training import load_checkpoint

            state = load_checkpoint(run / "checkpoint.pt")
            if state["epoch"] >= topts.epochs and done.exists():
                say(f"supernet: trained already ({done})")
                return load_supernet(done, space=space, device=opts.device)
            say(f"supernet: resuming training in {run}")
            return train(topts, run, resume=True, progress=progress).supernet
        say(f"supernet: training {topts.epochs} epochs of {topts.strategy} on {opts.data} "
            f"into {run}")
        return train(topts, run, progress=progress, space=space).supernet
    except TrainingInterrupted as e:  # said as the search, which resumes it, would say it
        stop = KeyboardInterrupt(f"interrupted ({e.signal}) while training the supernet; "
                                 f"{run} is checkpointed: the same `nas search` command "
                                 "again continues" + (" with the search" if e.finished
                                                       else " it"))
        stop.signal = e.signal  # type: ignore[attr-defined]
        raise stop from None


def _check_feasible(lim: Limit, values: np.ndarray, space: Space, *, descent: bool) -> None:
    """:class:`SearchError` when no probed config meets the cost limit ``lim``; for a latency
    limit only a warning: the probes' descents over the table end in local minima, and a
    search may still find a faster config."""
    if lim.holds(values).any():
        return
    best = values.min() if lim.op.startswith("<") else values.max()
    unit = {"latency": " ms", "size": " bytes"}.get(lim.metric, "")
    how = (", 2,000 samples and the fastest found by descents over the latency table"
           if descent else " and 2,000 samples")
    seen = (f"the best {lim.metric} seen, over the smallest and largest configs{how}, is "
            f"{best:.4g}{unit}")
    if descent and lim.metric == "latency":
        log.warning("--constraint %s: no probed config of %s satisfies it (%s); searching "
                    "anyway, for a faster one", lim, space.name, seen)
        return
    raise SearchError(f"--constraint {lim} is infeasible: no config of {space.name} "
                      f"satisfies it ({seen})")


def _check_analytic_limits(limits: list[Limit], space: Space, cost: Callable[[Config], Any],
                           seed: int, extremes: Callable[[], Sequence[Config]]) -> None:
    """FLOPs, parameter and size limits no config can meet, reported before the supernet is
    trained or a latency table built (they need neither). ``extremes()``: the smallest and
    the largest subnet (by what each value makes, whatever order the space lists them in)."""
    analytic = [lim for lim in limits if lim.metric in ("flops", "params", "size")]
    if not analytic:
        return
    probe = list(extremes()) + space.sample_many(2000, seed)
    cs = [cost(c) for c in probe]
    values = {"flops": np.array([c.flops for c in cs], float),
              "params": np.array([c.params for c in cs], float),
              "size": np.array([c.size_bytes for c in cs], float)}
    for lim in analytic:
        _check_feasible(lim, values[lim.metric], space, descent=False)


def run_search_job(opts: SearchOptions, out: str | os.PathLike[str], *, progress: bool = True,
                   say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a whole search; returns the summary written to ``summary.json``.
    The output directory is locked while the search runs (``.lock``): a second search of
    it is refused instead of appending the same evaluations to its history twice."""
    locks: list[DirectoryLock] = []
    try:
        return _run_search_job(opts, out, progress=progress, say=say, locks=locks)
    finally:
        for lock in locks:
            lock.release()


def _run_search_job(opts: SearchOptions, out: str | os.PathLike[str], *, progress: bool,
                    say: Callable[[str], None], locks: list[DirectoryLock]) -> dict[str, Any]:
    from nas.data import TensorLoader, load_dataset
    from nas.training import (
        calibration_batches,
        check_data_fits,
        evaluate_config,
        held_out_split,
        recalibrate_bn,
    )

    # every option is checked before the output directory is created: a bad value leaves
    # nothing behind that a corrected re-run would find mismatched
    opts.validate()
    limits = [Limit.parse(c) for c in opts.constraints]
    space = load_space(opts.space)
    if not opts.supernet:
        from nas.supernet import family_class
        from nas.supernet.base import check_stem_stride

        family_class(space.family)  # a space without a supernet: say so before any work
        _train_options(opts, space)
        check_stem_stride(space.family, opts.stem_stride)
    if "latency" in opts.targets:
        from nas.predictors.latency import latency_family

        latency_family(space.family)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    out = Path(out)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    # inputs that can be checked before the output directory is created: a bad dataset, a bad
    # supernet file or a dataset that does not fit it leaves nothing behind
    data = load_dataset(opts.data, root=opts.data_root)
    net = None
    if opts.supernet:
        from nas.supernet import CheckpointError, load_supernet

        t = time.perf_counter()
        try:
            net = load_supernet(opts.supernet, space=space, device=opts.device)
        except CheckpointError as e:  # the wrong kind of input file: a usage error
            hint = ""
            if "format 'nas.train'" in str(e):
                hint = (f"; that is a training checkpoint: give the run's supernet.pt "
                        f"({Path(opts.supernet).with_name('supernet.pt')})")
            raise UsageError(f"--supernet: {e}{hint}") from None
        timings["supernet_s"] = time.perf_counter() - t
        check_data_fits(net, data, opts.data)
        _check_analytic_limits(limits, space, net.costs, opts.seed,
                               lambda: (net.smallest_config(), net.largest_config()))
    else:
        from nas.supernet.base import analytic_costs, size_extremes

        build = dict(in_channels=data.in_channels, num_classes=data.num_classes,
                     input_size=data.input_size, stem_stride=opts.stem_stride)

        def cost(cfg: Config) -> Any:
            return analytic_costs(space, cfg, **build)
        _check_analytic_limits(limits, space, cost, opts.seed,
                               lambda: size_extremes(space, **build))
        del data  # training loads its own copy; do not hold two while it runs
    if opts.ray_address is not None:  # a wrong address or token: said before any work
        from nas.search.distributed import check_cluster

        check_cluster(opts.ray_address)
    _check_out_holds_no_other_files(out)  # (before the lock file is made there)
    out.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(out, doing="searched")
    lock.acquire()  # before anything is written: a refused second search changes nothing
    locks.append(lock)
    _prepare_out(out, opts, space)
    _remove_stale_temporaries(out)
    say(f"output directory: {out}")

    # 1. supernet
    if net is not None:
        say(f"supernet: {opts.supernet}")
    else:
        t = time.perf_counter()
        net = _supernet(opts, space, out, progress, say)
        timings["supernet_s"] = time.perf_counter() - t
        data = load_dataset(opts.data, root=opts.data_root)
        check_data_fits(net, data, opts.data)
    net.eval()
    # the validation images the supernet's training held out (its checkpoint says which)
    parts, split_seed = held_out_split(net, data, default_seed=opts.seed)
    val = TensorLoader(*parts.val, 256, device=opts.device)

    # 2. latency table
    t = time.perf_counter()
    need_latency = "latency" in opts.targets or any(lim.metric == "latency" for lim in limits)
    latency = None
    if need_latency:
        from nas.search.latency_source import latency_table_for

        latency = latency_table_for(net, out / "latency.json", batch=opts.latency_batch,
                                    threads=opts.latency_threads, device=opts.device,
                                    progress=progress, say=say, given=opts.latency_table)
    timings["latency_table_s"] = time.perf_counter() - t

    def costs(configs: list[Config], only: str | None = None) -> dict[str, np.ndarray]:
        """Latency from the table, FLOPs/params/size from the analytic counter; ``only``
        computes just one of them (the search's inner loop asks for thousands)."""
        d: dict[str, np.ndarray] = {}
        if only in (None, "latency"):
            d["latency"] = (latency.predict_many(configs) if latency is not None
                            else np.full(len(configs), np.nan))
        if only != "latency":
            c = [net.costs(cfg) for cfg in configs]
            d["flops"] = np.array([x.flops for x in c], float)
            d["params"] = np.array([x.params for x in c], float)
            d["size"] = np.array([x.size_bytes for x in c], float)
        return d

    # feasibility of the cheap limits, and infeasible limits caught before any evaluation
    cheap = [lim for lim in limits if lim.metric != "accuracy"]
    acc_limits = [lim for lim in limits if lim.metric == "accuracy"]
    probe = list(dict.fromkeys([net.smallest_config(), net.largest_config()])) + \
        space.sample_many(2000, opts.seed)
    if latency is not None:  # the fast corner random samples never reach (README)
        from nas.predictors.latency import _extreme_path

        lat = latency.predict_many(probe)
        # descents from the 8 fastest probes (one descent ends in a local minimum)
        for i in dict.fromkeys(np.argsort(lat)[:8].tolist()):
            probe += _extreme_path(latency, probe[i], 1.0)
    pc = costs(probe)
    # what an infeasible config is told as its cost: dominated by every feasible one
    penalty = {tg: 10.0 * float(np.nanmax(pc[tg])) + 1.0 for tg in opts.targets}
    for lim in cheap:
        _check_feasible(lim, pc[lim.metric], space, descent=latency is not None)

    def inside_cheap(c: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Which of ``n`` configs of the costs ``c`` meet the cheap limits."""
        ok = np.ones(n, dtype=bool)
        for lim in cheap:
            ok &= lim.holds(c[lim.metric])
        return ok

    def feasible(configs: list[Config]) -> np.ndarray:
        """The cheap limits (everything but accuracy), before any evaluation."""
        if not cheap:
            return np.ones(len(configs), dtype=bool)
        return inside_cheap(costs(configs), len(configs))

    def feasible_after(configs: list[Config], accuracy: np.ndarray) -> np.ndarray:
        """Every limit, accuracy limits on the measured accuracy included."""
        ok = feasible(configs)
        for lim in acc_limits:
            ok &= lim.holds(np.asarray(accuracy, dtype=float))
        return ok

    def violation(c: dict[str, np.ndarray], i: int, acc: float | None = None) -> float:
        """How far config ``i`` of the costs ``c`` lies outside the limits (relative, summed
        over them; with ``acc``, the accuracy limits count too)."""
        v = sum(float(lim.violation(c[lim.metric][i:i + 1])[0]) for lim in cheap)
        if acc is not None:
            v += sum(float(lim.violation(np.array([acc]))[0]) for lim in acc_limits)
        return v

    def told(values: np.ndarray, off: float) -> np.ndarray:
        """What the searcher is told: a config inside every limit (``off`` 0, see
        :func:`violation`) as it is; one outside as dominated by every feasible one
        (accuracy below 0, each cost far above any config's), so that no searcher keeps
        proposing its corner, and graded by how far it lies outside (``off``,
        :meth:`Limit.violation`): of two such configs the nearer dominates, which leads
        domination-based searchers (NSGA-II, ...) towards the feasible region instead of
        leaving them a plateau. history.csv keeps the real figures."""
        if off == 0:
            return values
        return outside_limits_values([penalty[tg] for tg in opts.targets], off)

    # 3. search
    objectives = [Objective("accuracy", "max")] + [Objective(tg, "min") for tg in opts.targets]
    hist_path = out / "history.csv"
    rows = _read_history(hist_path, space)
    known: dict[Config, np.ndarray] = {}
    known_costs = costs([r["_config"] for r in rows]) if rows else {}
    moved: list[float] = []  # rows whose latency the current table predicts otherwise
    # rows proposed outside the cost limits that the current costs put inside them (a
    # changed latency table): not known, so that the searcher may propose them again and
    # they are evaluated
    inside_now = (inside_cheap(known_costs, len(rows)) if rows  # (the costs just computed)
                  else np.ones(0, dtype=bool))
    evaluated = {r["_config"] for r in rows if r.get("accuracy_source") != "infeasible"}
    reopened: set[Config] = set()
    best_known = float("nan")  # the best measured accuracy inside every limit, now
    for i, r in enumerate(rows):
        cfg = r["_config"]
        measured = r.get("accuracy_source") != "infeasible"
        if not measured and (inside_now[i] or cfg in evaluated):
            if cfg not in evaluated:  # (one evaluated since is known by its own row)
                reopened.add(cfg)
            continue
        got = {tg: float(r[{"latency": "latency_ms", "size": "size_bytes"}.get(tg, tg)])
               for tg in opts.targets}
        if latency is not None and "latency" in got:
            # the current table's latency (at history.csv's precision), not the stored one:
            # a table rebuilt under an existing history must not mix two tables on one front
            now = float(f"{known_costs['latency'][i]:.6g}")
            if not abs(now - got["latency"]) <= 1e-6 * max(abs(now), 1e-12):
                moved.append(got["latency"] / now if now > 0 else math.inf)
            got["latency"] = now
        vals = np.array([float(r["accuracy"] or 0.0)] + [got[tg] for tg in opts.targets])
        # (off 0: inside every limit, the measured accuracy's included; the costs of all
        # rows at once, not a costs() call per row)
        off = violation(known_costs, i, vals[0] if measured else None)
        known[cfg] = told(vals, off)
        if measured and off == 0 and not best_known >= vals[0]:
            best_known = float(vals[0])
    if moved:
        far = max(moved, key=lambda f: abs(math.log(f)) if 0 < f < math.inf else math.inf)
        say(f"search: {hist_path.name} holds latencies of another latency table for "
            f"{len(moved)} of its {len(rows)} rows (up to {far:.3g}x the current "
            f"{out / 'latency.json'}'s); the search uses the current table's for them "
            f"({hist_path.name} keeps what each evaluation was told)")
    if reopened:
        say(f"search: {len(reopened)} proposals {hist_path.name} holds as outside the cost "
            f"limits lie inside them by the current costs; they may be proposed and "
            f"evaluated again")
    if known:
        n_in = len(evaluated)  # distinct configs
        n_out = len(known) - len(evaluated)
        say(f"search: resuming with {n_in} evaluations"
            + (f" (and {n_out} proposals outside the cost limits)" if n_out else "")
            + f" from {hist_path}")
    new_file = not hist_path.exists() or hist_path.stat().st_size == 0
    hist = open(hist_path, "a", newline="", encoding="utf-8")
    writer = csv.DictWriter(hist, fieldnames=HISTORY_FIELDS)
    if new_file:
        writer.writeheader()
        hist.flush()
    # the same calibration batches for every config, so a subnet's statistics (and accuracy)
    # do not depend on when or where it was evaluated -- and the export reproduces them
    # exactly: the first bn_batches of one shuffle seeded by the split's seed, drawn once
    # (those `nas eval --bn-batches N` and `nas extract` use: they report the same accuracy)
    calib = calibration_batches(parts.train, opts.bn_batches, split_seed, opts.device)
    pool = None

    def start_pool() -> Any:
        from nas.search.distributed import RayEvaluatorPool

        say(f"search: evaluations on {opts.workers} Ray worker(s) at "
            f"{opts.ray_address or 'a local runtime'}")
        return RayEvaluatorPool(net, parts.val, calib, bn_batches=opts.bn_batches,
                                workers=opts.workers, threads=opts.threads or 1,
                                device=opts.device, address=opts.ray_address)

    tick: list[Callable[[int], None]] = [lambda n: None]  # the progress bar's advance

    def evaluate(configs: list[Config]) -> np.ndarray:
        out_vals = []
        c = costs(configs)
        ok = feasible(configs)
        # on workers: all submitted at once, each row written as soon as it (and every one
        # before it) is in, so a stopped search loses only the unfinished evaluations
        remote = pool.evaluate_iter([cfg for cfg, f in zip(configs, ok) if f]) \
            if pool is not None else iter(())
        for i, cfg in enumerate(configs):
            ts = time.perf_counter()
            if not ok[i]:
                acc = 0.0  # outside the hard limits: not evaluated, never on the front
            elif pool is not None:
                acc, secs = next(remote)
                ts = time.perf_counter() - secs  # the worker's own time for it
            else:
                acc = evaluate_config(net, cfg, val, calib, opts.bn_batches)["top1"]
            # at the precision history.csv keeps: a resumed search reads back exactly what
            # this one holds (a front of mixed precisions kept a dominated config)
            acc = float(f"{acc:.4f}")
            lat = float(f"{c['latency'][i]:.6g}")
            off = violation(c, i, acc if ok[i] else None)
            ok_all = off == 0  # inside every limit, the measured accuracy's included
            if ok_all and not best["acc"] >= acc:
                best["acc"] = acc
            if ok[i]:
                best["measured"] += 1
            row = {"id": cfg.id, "accuracy": f"{acc:.4f}" if ok[i] else "",
                   "accuracy_source": "measured" if ok[i] else "infeasible",
                   "latency_ms": f"{lat:.6g}",
                   "latency_source": "table" if latency is not None else "none",
                   "flops": int(c["flops"][i]), "params": int(c["params"][i]),
                   "size_bytes": int(c["size"][i]), "feasible": int(ok_all),
                   "seconds": f"{time.perf_counter() - ts:.3f}", "config": cfg.to_json()}
            writer.writerow(row)
            hist.flush()
            if ok[i]:
                tick[0](1)  # progress per measured config, not per proposed batch
            vals = np.array([acc] + [lat if tg == "latency" else c[tg][i]
                                     for tg in opts.targets])
            out_vals.append(told(vals, off))
        return np.array(out_vals, dtype=float)

    search_opts: dict[str, Any] = {}
    if opts.strategy == "linas":
        def known_cost(cs: list[Config], tg: str) -> np.ndarray:
            v = costs(cs, only=tg)[tg]
            for lim in cheap:  # a limit on the same metric: its far side is dominated,
                if lim.metric == tg:  # graded by how far (see told)
                    v = np.where(lim.holds(v), v, penalty[tg] * (1.0 + lim.violation(v)))
            return v

        search_opts["known"] = {tg: (lambda cs, tg=tg: known_cost(cs, tg))
                                for tg in opts.targets}
    searcher = make_searcher(opts.strategy, space, objectives, seed=opts.seed,
                             **opts.searcher_options, **search_opts)
    t = time.perf_counter()
    from nas.utils.progress import task_progress

    # the best measured accuracy of a config inside every limit, and how many were measured
    # (configs outside the cost limits are told to the searcher but neither measured nor
    # counted against --budget)
    # (distinct configs: a history that holds one twice, written by two searches of one
    # directory before it was locked, counts it once)
    best: dict[str, Any] = {"acc": best_known, "measured": len(evaluated)}
    if best["measured"] > opts.budget:
        say(f"search: {best['measured']} evaluations are already done, more than --budget "
            f"{opts.budget}; all of them are used")

    def outside_cost_limits(cs: list[Config]) -> np.ndarray:
        return ~feasible(cs)

    with task_progress("search: evaluations", opts.budget, enabled=progress) as advance:
        advance(min(best["measured"], opts.budget))
        tick[0] = advance
        try:
            if opts.distributed and best["measured"] < opts.budget:
                pool = start_pool()
            result = run_search(searcher, evaluate, opts.budget, known=known,
                                free=outside_cost_limits if cheap else None)
        finally:
            hist.close()
            if pool is not None:
                pool.close()
    timings["search_s"] = time.perf_counter() - t
    skipped = len(result.configs) - best["measured"]
    say(f"search: {best['measured']} evaluations"
        + (f" (and {skipped} proposals outside the cost limits, not evaluated)" if skipped
           else "")
        + (f", best accuracy{' within the limits' if limits else ''} {best['acc']:.2f}%"
           if best["acc"] == best["acc"] else ", none within the limits"))

    # 4. front, export, measured latency
    t = time.perf_counter()
    def calibrate(cfg: Config) -> None:
        if opts.bn_batches > 0:
            recalibrate_bn(net, cfg, calib, opts.bn_batches)

    pos = {c: i for i, c in enumerate(result.configs)}

    def feasible_result(cs: list[Config]) -> np.ndarray:
        return feasible_after(cs, np.array([result.values[pos[c], 0] for c in cs]))

    if best["measured"] == 0 and skipped:
        raise SearchError(
            f"all {skipped} configs searcher {opts.strategy!r} proposed lie outside the cost "
            f"limits ({', '.join(opts.constraints)}), so none was evaluated (a search stops "
            f"after 200 rounds of proposals in a row bring nothing new inside the limits, "
            f"or after max(1000, 20 x --budget) proposals outside them); loosen the limits"
            + (", or use --strategy linas, which searches the cost model itself"
               if opts.strategy != "linas" else ""))
    probe = next(iter(val))[0][:32]  # a few validation images to check the extractions on
    front = _export_front(net, result, opts, out, latency, costs, feasible_result, say,
                          calibrate, probe, progress=progress)
    timings["export_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    F = to_min(result.values, objectives)
    okf = feasible_result(result.configs)
    # the reference point from the feasible evaluations only (infeasible ones are told as
    # dominated placeholders, not real figures)
    ref = (F[okf].max(axis=0) if okf.any() else F.max(axis=0)) + 1e-9
    on_front = pareto_mask(F[okf]) if okf.any() else np.zeros(0, dtype=bool)
    hv = hypervolume(F[okf][on_front], ref) if okf.any() else 0.0
    summary = {"options": asdict(opts), "seed": opts.seed, "out": str(out),
               "objectives": [str(o) for o in objectives], "evaluations": best["measured"],
               "proposals_outside_cost_limits": skipped,
               "front_size": int(on_front.sum()),
               "front_exported": len(front), "hypervolume": hv, "hypervolume_reference":
               ref.tolist(), "timings": timings,
               "versions": {"nas": __version__, "torch": torch.__version__,
                            "python": platform.python_version(),
                            "numpy": np.__version__}}
    atomic_write_text(out / "summary.json", strict_json(summary, indent=2) + "\n")
    return {**summary, "front": front}


def outside_limits_values(penalties: list[float], off: float) -> np.ndarray:
    """The values a searcher is told for a config outside the limits, ``off`` (relative,
    :meth:`Limit.violation`) beyond them: accuracy ``-off`` (below every real one) and each
    cost its penalty (above every real one) times ``1 + off``. Dominated by every config
    inside the limits, and of two outside, the nearer dominates."""
    off = max(float(off), 1e-9)
    return np.array([-off] + [p * (1.0 + off) for p in penalties])


def _export_front(net: Any, result: Any, opts: SearchOptions, out: Path, latency: Any,
                  costs: Callable, feasible: Callable, say: Callable,
                  calibrate: Callable[[Config], None],
                  probe: torch.Tensor | None = None, *, progress: bool = False
                  ) -> list[dict[str, Any]]:
    """Extract, save and time the front. Each subnet's batch-norm statistics are
    recalibrated exactly as when it was evaluated (``calibrate``) before extraction: the
    supernet's running statistics belong to whichever config was calibrated last, so an
    extraction without it would carry another subnet's statistics. Each extracted model's
    output on ``probe`` is compared with the supernet's (``extraction_max_abs_diff``). A
    front that is the same as the last run's, with its files in place, is kept as it is
    (a re-run of a finished search neither re-extracts nor re-times it)."""
    from nas.supernet import save_subnet

    objectives = result.objectives
    okf = feasible(result.configs)
    idx = np.flatnonzero(okf)
    if not len(idx):
        raise SearchError(f"no evaluated config satisfies the constraints "
                          f"({', '.join(opts.constraints)}); loosen them or raise --budget")
    F = to_min(result.values[idx], objectives)
    front_idx = idx[pareto_mask(F)]
    # sort by the first target, keep at most max_export spread along it
    front_idx = front_idx[np.argsort(result.values[front_idx, 1], kind="stable")]
    n_front = len(front_idx)
    if n_front > opts.max_export:
        keep = np.unique(np.round(np.linspace(0, n_front - 1, opts.max_export)))
        front_idx = front_idx[keep.astype(int)]
    pdir = out / "pareto"
    pdir.mkdir(exist_ok=True)
    configs = [result.configs[i] for i in front_idx]
    c = costs(configs)

    def same(old: Any, new: float) -> bool:  # NaN: a latency not asked for
        return (old != old and new != new) or old == new

    previous = _previous_front(out)
    if previous is not None and [r["id"] for r in previous] == [cfg.id for cfg in configs] \
            and all((pdir / f"{cfg.id}.{ext}").exists() for cfg in configs
                    for ext in ("pt", "json")) \
            and all(r.get("accuracy") == float(result.values[i, 0])
                    and same(r.get("latency_predicted_ms"), float(c["latency"][k]))
                    for k, (r, i) in enumerate(zip(previous, front_idx))):
        say(f"front: the same {len(configs)} subnets as the last run; kept as they are "
            f"({out / 'pareto.json'})")
        # the table and the plot again: the evaluations behind the plot may have grown, and
        # a kill after pareto.json may have left them stale or missing
        _write_front_table_and_plot(previous, result, opts, out, okf)
        _remove_earlier_front(pdir, configs)  # (a kill may have left them)
        return previous
    if n_front > len(configs):
        say(f"front: {n_front} subnets; extracting and timing {len(configs)} of them, spread "
            f"along {opts.targets[0]} (--max-export N for more)")
    b = net.build
    measured = np.full(len(configs), np.nan)
    measured_raw = np.full(len(configs), np.nan)
    diffs = np.full(len(configs), np.nan)
    models = []
    for k, cfg in enumerate(configs):
        calibrate(cfg)
        model = net.extract(cfg).eval()
        if probe is not None:
            with torch.no_grad(), net.activate(cfg):
                was = net.training
                net.eval()
                x = probe.to(next(model.parameters()).device)
                diffs[k] = float((model(x) - net(x)).abs().max())
                net.train(was)
        save_subnet(model, cfg, pdir / f"{cfg.id}.pt", **b.kwargs)
        atomic_write_text(pdir / f"{cfg.id}.json", json.dumps(
            {"space": cfg.space.name, "id": cfg.id, "config": cfg.to_dict()}, indent=2) + "\n")
        models.append(model)
    if latency is not None:
        from nas.search.latency_source import measure_models

        say(f"front: measuring the latency of {len(models)} extracted subnets")
        corrected, raw = measure_models(
            models, (b.in_channels, *b.input_size), statistic=latency.statistic,
            batch=opts.latency_batch, threads=opts.latency_threads, device=opts.device,
            table=latency, progress=progress)
        measured, measured_raw = np.array(corrected), np.array(raw)
    rows = []
    for k, (i, cfg) in enumerate(zip(front_idx, configs)):
        rows.append({"id": cfg.id, "accuracy": float(result.values[i, 0]),
                     "latency_predicted_ms": float(c["latency"][k]),
                     "latency_measured_ms": float(measured[k]),
                     "latency_measured_raw_ms": float(measured_raw[k]),
                     "flops": int(c["flops"][k]), "params": int(c["params"][k]),
                     "size_bytes": int(c["size"][k]), "file": f"pareto/{cfg.id}.pt",
                     "extraction_max_abs_diff": float(diffs[k]),
                     "config": cfg.to_dict()})
    if probe is not None:
        say(f"front: {len(configs)} subnets extracted; largest |difference| between their "
            f"outputs and the supernet's on {len(probe)} validation images: "
            f"{np.nanmax(diffs):.2g}")
    atomic_write_text(out / "pareto.json", strict_json(rows, indent=2) + "\n")
    _write_front_table_and_plot(rows, result, opts, out, okf)
    _remove_earlier_front(pdir, configs)  # (only now: until here pareto.json lists them)
    return rows


def _remove_earlier_front(pdir: Path, configs: list[Config]) -> None:
    """Delete the subnet files of an earlier front (a resumed, longer search) from
    ``pareto/``, once ``pareto.json`` lists the new one."""
    keep = {f"{cfg.id}.{ext}" for cfg in configs for ext in ("pt", "json")}
    for stale in pdir.iterdir():
        if stale.suffix in (".pt", ".json") and stale.name not in keep:
            stale.unlink()


def _write_front_table_and_plot(rows: list[dict[str, Any]], result: Any, opts: SearchOptions,
                                out: Path, okf: np.ndarray) -> None:
    """``pareto.csv`` (the rows of ``pareto.json``) and ``pareto.png``."""
    fields = [k for k in rows[0] if k != "config"] + ["config"]
    lines = [",".join(fields)]
    for r in rows:
        vals = [json.dumps(r[k]) if k == "config" else str(r[k]) for k in fields]
        lines.append(",".join(f'"{v.replace(chr(34), chr(34) * 2)}"' if "," in v or '"' in v
                              else v for v in vals))
    atomic_write_text(out / "pareto.csv", "\n".join(lines) + "\n")
    _plot(result, rows, opts, out, okf)


def _previous_front(out: Path) -> list[dict[str, Any]] | None:
    """The rows of the last run's ``pareto.json`` (``None``: none, or unreadable)."""
    try:
        rows = json.loads((out / "pareto.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "id" in r for r in rows):
        return None
    for r in rows:  # strict JSON holds an unmeasured figure as null: NaN, as when computed
        for k in _FRONT_FLOATS:
            if r.get(k, 0) is None:
                r[k] = float("nan")
    return rows


# pareto.json's figures that may be unmeasured (NaN in memory, null in the file)
_FRONT_FLOATS = ("latency_predicted_ms", "latency_measured_ms", "latency_measured_raw_ms",
                 "extraction_max_abs_diff")


def _plot(result: Any, rows: list[dict[str, Any]], opts: SearchOptions, out: Path,
          feasible: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = opts.targets[0]
    key = {"latency": "latency_predicted_ms", "size": "size_bytes"}.get(target, target)
    label = {"latency": "latency (ms, table)", "flops": "FLOPs", "params": "parameters",
             "size": "size (bytes)"}[target]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter(result.values[feasible, 1], result.values[feasible, 0], s=12, alpha=0.25,
               color="gray", label=f"{int(feasible.sum())} feasible evaluations (of "
               f"{len(result.configs)})")
    xs = [r[key] for r in rows]
    ys = [r["accuracy"] for r in rows]
    ax.plot(xs, ys, "o-", color="tab:red", label=f"Pareto front ({len(rows)})")
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(r["id"][:6], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel(label)
    ax.set_ylabel("validation accuracy (%)")
    space_name = result.configs[0].space.name if result.configs else opts.space
    ax.set_title(f"{space_name} on {opts.data}: accuracy vs {target}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = out / ".pareto.png.tmp"
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, out / "pareto.png")
