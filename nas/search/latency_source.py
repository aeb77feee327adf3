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
                                num_classes=b.num_classes, warmup=SEARCH_WARMUP,
                                repeats=SEARCH_REPEATS)
    if path.exists():
        try:
            table = LatencyTable.load(path, space=net.space, expect=settings)
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
        in_channels=b.in_channels, num_classes=b.num_classes, warmup=SEARCH_WARMUP,
        repeats=SEARCH_REPEATS, out=path, resume=True, progress=progress)


def measure_models(models: list[Any], input_shape: tuple[int, ...], *, statistic: str,
                   batch: int, threads: int, device: str, table: Any = None
                   ) -> tuple[list[float], list[float]]:
    """Measured latency (ms, ``statistic``) of extracted models, interleaved, as
    ``(drift-corrected, raw)``.

    With a lookup ``table`` that has fitted overhead subnets, those subnets are measured
    again in the same interleaved rounds and the models' times are multiplied by the median
    of (their time when the table was built / their time now): real networks of the space
    as the drift reference, measured in the same context as the models. Without one, both
    lists are the raw times."""
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
    factor = float(np.median(np.asarray(then) / now))
    log.info("front latency: drift factor %.3f from %d reference subnets", factor, len(now))
    return [r * factor for r in raw], raw
