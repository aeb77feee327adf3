"""The latency table a search uses: loaded from the output directory when it is there and
complete, otherwise built (or its partial build resumed) on this device."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Per-unit repeats for the table a search builds for itself: enough for a stable p10 of
# sub-millisecond blocks, few enough that `nas search` stays quick. `nas profile` measures
# with its own (larger) defaults.
SEARCH_WARMUP = 2
SEARCH_REPEATS = 7
# reference subnets (the table's overhead subnets) that set one front model's drift factor
LOCAL_REFERENCES = 16


# settings a search's table must share with the search (others -- CPU model name, torch
# version -- are warned about by LatencyTable.load)
STRUCTURAL_SETTINGS = ("device", "threads", "batch", "input_size", "in_channels", "num_classes",
                       "stem_stride")


def latency_table_for(net: Any, path: Path, *, batch: int, threads: int, device: str,
                      progress: bool, say: Callable[[str], None]) -> Any:
    from nas.predictors.latency import (
        LatencyTable,
        LatencyTableError,
        build_latency_table,
        current_settings,
    )

    b = net.build
    settings = current_settings(device=device, threads=threads, batch=batch,
                                input_size=tuple(b.input_size), in_channels=b.in_channels,
                                num_classes=b.num_classes, stem_stride=b.stem_stride,
                                warmup=SEARCH_WARMUP, repeats=SEARCH_REPEATS)
    if path.exists():
        try:
            table = LatencyTable.load(path, space=net.space, expect=settings)
            wrong = [d for d in table.settings.differences(settings)
                     if d.split(":")[0] in STRUCTURAL_SETTINGS]
            if wrong:  # it would predict other networks, or time them elsewhere
                raise LatencyTableError(
                    f"latency table {path} was built for other settings ({'; '.join(wrong)}); "
                    "remove it (this search rebuilds it) or choose another --out")
            say(f"latency: table {path} ({table.n_units} blocks)")
            return table
        except LatencyTableError as e:
            if "incomplete" not in str(e) and "partial" not in str(e):
                raise
            say(f"latency: resuming the table build in {path}")
    else:
        say(f"latency: measuring this device's block latencies into {path}")
    return build_latency_table(
        net.space, input_size=tuple(b.input_size), batch=batch, threads=threads, device=device,
        in_channels=b.in_channels, num_classes=b.num_classes, stem_stride=b.stem_stride,
        warmup=SEARCH_WARMUP,
        repeats=SEARCH_REPEATS, out=path, resume=True, progress=progress)


def measure_models(models: list[Any], input_shape: tuple[int, ...], *, statistic: str,
                   batch: int, threads: int, device: str, table: Any = None
                   ) -> tuple[list[float], list[float]]:
    """Measured latency (ms, ``statistic``) of extracted models, interleaved, as
    ``(drift-corrected, raw)``.

    With a lookup ``table`` that has fitted overhead subnets, those subnets are measured
    again in the same interleaved rounds and each model's time is multiplied by the median
    of (their time when the table was built / their time now) over the ``LOCAL_REFERENCES``
    subnets closest to it in measured time: real networks of the space, of the model's
    size, as the drift reference, measured in the same context as the models (small and
    large networks do not drift alike: in one measured front the 1 ms subnets had sped up
    1.75× since the build, the median reference 1.51×). Without a table, both lists are the
    raw times."""
    from nas.predictors.latency import build_subnets
    from nas.predictors.profiling import measure_many

    subs = list(getattr(getattr(table, "overhead", None), "subnets", None) or [])
    ref_models: list[Any] = []
    then: list[float] = []
    if subs:
        space = table.space
        cfgs = [space.config(r["config"]) for r in subs]
        ref_models = build_subnets(space, cfgs, table.settings)
        then = [float(r["measured_ms"]) for r in subs]
    stats = measure_many(models + ref_models, input_shape, device=device, threads=threads,
                         batch=batch)
    raw = [s.get(statistic) for s in stats[:len(models)]]
    if not ref_models or statistic != table.statistic:
        return raw, raw
    now = np.array([s.get(statistic) for s in stats[len(models):]])
    ratio = np.asarray(then) / now
    k = min(LOCAL_REFERENCES, len(now))
    factors = []
    for r in raw:  # the k references nearest in (log) measured time
        near = np.argsort(np.abs(np.log(now) - np.log(r)), kind="stable")[:k]
        factors.append(float(np.median(ratio[near])))
    log.info("front latency: drift factors %.3f-%.3f (all %d reference subnets: %.3f)",
             min(factors), max(factors), len(now), float(np.median(ratio)))
    return [r * f for r, f in zip(raw, factors)], raw
