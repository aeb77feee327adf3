"""Latency measurement that holds up on a noisy, shared machine.

:func:`measure_latency` times one model, :func:`measure_many` several models *interleaved*
(round-robin, one call of each per round), so that a burst of load from another process hits
every model alike instead of whichever happened to run at that moment.

Every measurement pins the torch intra-op thread count for its duration (and restores it),
runs under :func:`torch.inference_mode` with the model in eval mode, warms up first, and on a
GPU synchronises before and after each timed call.

Which statistic to use. On a shared CPU the distribution of one model's call times has a long
right tail (other processes take the core); the median of one model moved by a third between
repetitions here, its minimum by a few percent. The low end of the distribution is the latency
of the model itself, the rest is the neighbours. Lookup tables and their validation therefore
target the **10th percentile** (``p10``, :data:`DEFAULT_STATISTIC`) by default: nearly as
repeatable as the minimum, but not a single lucky call. ``median`` and ``min`` are reported
too.

The allocator. With glibc's defaults, a tensor of more than 128 KB (an attention map, a
feature map at 32x32) is ``mmap``-ed and handed back to the OS when freed, so every call
pays page faults for it — how many depends on the allocator's history, which made the same
model measure up to 2x apart between two runs here (whole-subnet minima: 16% relative spread
between consecutive runs; 2.8% with the allocator below). Measurements therefore first put
the process's allocator in a *steady state* (:func:`steady_allocator`: glibc keeps freed
memory and reuses it, as a long-running inference server's heap does after its first
requests). That is process-wide and stays on; set ``NAS_STEADY_ALLOCATOR=0`` to measure
with the allocator as it is.

Drift. A shared machine also changes speed over minutes (other tenants' memory traffic,
frequency): here, the same 50 subnets measured 0.76x and 0.97x of their predictions in two
chunks a minute apart. :func:`reference_model` is a fixed small CNN that lookup tables time
alongside every chunk of units or subnets; dividing by its time in that chunk and
multiplying by its time when the table was built (:func:`drift_factors`) expresses every
measurement at the table's machine state. Raw times are kept too.

One reference does not track everything: self-attention over all positions of a 32x32 map
streams multi-megabyte score matrices through memory, and its speed follows the machine's
memory traffic, not its arithmetic. Timed side by side every ~6 s for two minutes here, a
stage-0 ``mhsa`` block's ratio to the CNN reference varied with a coefficient of variation of
8.5% (12.7x-16.6x), its ratio to :func:`attention_reference` (the same attention alone) by
1.3%. Tables therefore time both and correct attention units by the second.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from nas.errors import UsageError
from nas.utils.checks import check_int
from nas.utils.device import resolve_device  # noqa: F401 - re-exported (was defined here)
from nas.utils.memory import steady_allocator

log = logging.getLogger(__name__)

STATISTICS: tuple[str, ...] = ("min", "p10", "median", "mean")
DEFAULT_STATISTIC = "p10"


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of the timed calls of one model, in milliseconds per call (one batch)."""

    min: float
    p10: float
    median: float
    mean: float
    max: float
    repeats: int

    def get(self, statistic: str) -> float:
        """The value of ``statistic`` (one of :data:`STATISTICS`)."""
        check_statistic(statistic)
        return float(getattr(self, statistic))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def scaled(self, factors: dict[str, float]) -> LatencyStats:
        """These statistics multiplied per statistic (``max`` with the median's factor)."""
        return LatencyStats(min=self.min * factors.get("min", 1.0),
                            p10=self.p10 * factors.get("p10", 1.0),
                            median=self.median * factors.get("median", 1.0),
                            mean=self.mean * factors.get("mean", 1.0),
                            max=self.max * factors.get("median", 1.0), repeats=self.repeats)

    @staticmethod
    def from_times(times_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        """Statistics of a sequence of call times in milliseconds."""
        t = np.asarray(times_ms, dtype=np.float64)
        if t.size == 0:
            raise UsageError("no timed calls to summarise")
        return LatencyStats(min=float(t.min()), p10=float(np.percentile(t, 10)),
                            median=float(np.median(t)), mean=float(t.mean()),
                            max=float(t.max()), repeats=int(t.size))


def reference_model(in_channels: int, *, width: int = 32, seed: int = 0) -> nn.Module:
    """A fixed small CNN (two 3x3 convs of ``width`` channels, ReLU, global pooling and a
    linear layer) timed next to every chunk of measured models to track the machine's
    drift; its weights are seeded, so it is the same network in every process."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net.eval()


ATTENTION_REFERENCE_CHANNELS = 32  # channels of attention_reference's input


class _AttentionReference(nn.Module):
    def __init__(self, channels: int, gen: torch.Generator) -> None:
        super().__init__()
        self.heads = max(1, channels // 16)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        with torch.no_grad():
            for p in self.qkv.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        attn = torch.softmax(torch.matmul(q.transpose(-2, -1), k), dim=-1)
        return torch.matmul(v, attn.transpose(-2, -1)).reshape(b, c, h, w)


def attention_reference(channels: int = ATTENTION_REFERENCE_CHANNELS, *, seed: int = 0
                        ) -> nn.Module:
    """A fixed self-attention layer (1x1 q/k/v projection, softmax attention over all
    positions; input ``(channels, H, W)``) timed next to every chunk to track the drift of
    memory-bound attention units (see the module docstring); seeded like
    :func:`reference_model`."""
    return _AttentionReference(channels, torch.Generator().manual_seed(seed)).eval()


def drift_factors(reference_now: LatencyStats, baseline: dict[str, float]
                  ) -> dict[str, float]:
    """Per statistic: ``baseline / reference_now``, the factor that expresses a time measured
    now at the baseline's machine state (1 where the baseline lacks the statistic)."""
    out = {}
    for s in STATISTICS:
        now = float(getattr(reference_now, s))
        base = baseline.get(s)
        out[s] = float(base) / now if base and now > 0 else 1.0
    return out


def check_statistic(statistic: str) -> str:
    """``statistic`` if it is known, else a :class:`UsageError` listing the known ones."""
    if statistic not in STATISTICS:
        raise UsageError(f"unknown latency statistic {statistic!r}; known: "
                         f"{', '.join(STATISTICS)}")
    return statistic


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``None``: unchanged), then
    restore the previous count."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"threads: must be a positive int, got {threads!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_counts(warmup: int, repeats: int, batch: int) -> None:
    for name, v, lo in (("warmup", warmup, 0), ("repeats", repeats, 1), ("batch", batch, 1)):
        check_int(name, v, lo)


def _timer(dev: torch.device) -> Callable[[Callable[[], object]], float]:
    """A function timing one call in milliseconds; on CUDA, synchronised on both sides."""
    if dev.type == "cuda":
        def timed(fn: Callable[[], object]) -> float:
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter_ns()
            fn()
            torch.cuda.synchronize(dev)
            return (time.perf_counter_ns() - t0) / 1e6
    else:
        def timed(fn: Callable[[], object]) -> float:
            t0 = time.perf_counter_ns()
            fn()
            return (time.perf_counter_ns() - t0) / 1e6
    return timed


def measure_many(models: Sequence[nn.Module],
                 input_shapes: Sequence[Sequence[int]] | Sequence[int], *,
                 device: torch.device | str = "cpu", threads: int | None = 1, batch: int = 1,
                 warmup: int = 5, repeats: int = 30, seed: int = 0,
                 on_round: Callable[[], None] | None = None) -> list[LatencyStats]:
    """Time several models interleaved: each round calls every model once, in a fresh random
    order, so that load from other processes spreads over all of them.

    Args:
        models: the models (moved to ``device`` and put in eval mode for the measurement;
            their train/eval mode is restored afterwards).
        input_shapes: one ``(C, H, W)``-like shape per model (without the batch dimension),
            or one shape for all.
        device: ``cpu`` or ``cuda[:N]``.
        threads: torch intra-op threads while measuring (restored afterwards); ``None``
            leaves the setting alone.
        batch: batch size of the random input.
        warmup: untimed rounds first.
        repeats: timed rounds.
        seed: seeds the random inputs and the order within rounds.
        on_round: called after each round, warm-up ones included (``warmup + repeats``
            calls: a progress bar's advance).

    Returns:
        One :class:`LatencyStats` per model, in milliseconds per call.
    """
    _check_counts(warmup, repeats, batch)
    tick = on_round or (lambda: None)
    dev = resolve_device(device)
    if not models:
        return []
    shapes: list[tuple[int, ...]]
    try:
        if len(input_shapes) and isinstance(input_shapes[0], (int, np.integer)):
            shapes = [tuple(int(s) for s in input_shapes)] * len(models)  # type: ignore[arg-type]
        else:
            shapes = [tuple(int(s) for s in sh) for sh in input_shapes]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        shapes = []
    if not shapes or any(not sh or min(sh) < 1 for sh in shapes):
        raise UsageError(f"input_shape: a sequence of positive ints per input without the "
                         f"batch dimension, e.g. (3, 32, 32), got {input_shapes!r}")
    if len(shapes) != len(models):
        raise UsageError(f"{len(models)} models but {len(shapes)} input shapes")
    steady_allocator()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    modes = [m.training for m in models]
    # where each model was (the first parameter's or buffer's device, and its float dtype):
    # put back afterwards; the input follows the model's dtype (a bf16 model gets bf16)
    firsts = [next(itertools.chain(m.parameters(), m.buffers()), None) for m in models]
    homes = [(t.device, t.dtype) if t is not None else None for t in firsts]
    timed = _timer(dev)
    times = np.zeros((len(models), repeats))
    try:
        with pinned_threads(threads), torch.inference_mode():
            prepared = []
            for m, sh, home in zip(models, shapes, homes):
                m.eval()
                m.to(dev)
                dtype = home[1] if home is not None and home[1].is_floating_point \
                    else torch.float32
                x = torch.randn((batch, *sh), generator=gen).to(dev, dtype)
                prepared.append((m, x))
            calls = [(lambda m=m, x=x: m(x)) for m, x in prepared]
            for _ in range(warmup):
                for fn in calls:
                    fn()
                tick()
            for r in range(repeats):
                for i in rng.permutation(len(calls)):
                    times[i, r] = timed(calls[i])
                tick()
    finally:
        for m, mode, home in zip(models, modes, homes):
            m.train(mode)
            if home is not None and home[0] != dev:
                m.to(home[0])
    return [LatencyStats.from_times(t) for t in times]


def measure_latency(model: nn.Module, input_shape: Sequence[int], *,
                    device: torch.device | str = "cpu", threads: int | None = 1, batch: int = 1,
                    warmup: int = 5, repeats: int = 30, seed: int = 0) -> LatencyStats:
    """Latency of one call of ``model`` on a ``(batch, *input_shape)`` input.

    See :func:`measure_many` for the arguments. Which statistic to trust is discussed in the
    module docstring (lookup tables target ``p10``).

    >>> from torch import nn
    >>> s = measure_latency(nn.Conv2d(3, 8, 3), (3, 16, 16), repeats=5, warmup=1)
    >>> 0 < s.min <= s.p10 <= s.median <= s.max
    True
    """
    if isinstance(input_shape, (int, np.integer)) or not isinstance(input_shape,
                                                                   (Sequence, np.ndarray)):
        raise UsageError(f"input_shape: a sequence of positive ints without the batch "
                         f"dimension, e.g. (3, 32, 32), got {input_shape!r}")
    return measure_many([model], [tuple(input_shape)], device=device, threads=threads,
                        batch=batch, warmup=warmup, repeats=repeats, seed=seed)[0]
