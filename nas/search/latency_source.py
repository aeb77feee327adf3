"""The latency table a search uses: loaded from the output directory when it is there and
complete, otherwise built (or its partial build resumed) on this device."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
                   batch: int, threads: int, device: str,
                   reference: dict[str, Any] | None = None
                   ) -> tuple[list[float], list[float]]:
    """Measured latency (ms, ``statistic``) of extracted models, interleaved: drift-corrected
    to a table's ``reference`` baseline when given (the reference model is timed with
    them), and uncorrected."""
    from nas.predictors.profiling import drift_factors, measure_many, reference_model

    ref = reference_model(input_shape[0]) if reference else None
    stats = measure_many(models + ([ref] if ref is not None else []), input_shape,
                         device=device, threads=threads, batch=batch)
    raw = [s.get(statistic) for s in stats[:len(models)]]
    if ref is None:
        return raw, raw
    assert reference is not None
    f = drift_factors(stats[-1], reference["baseline"])
    return [s.scaled(f).get(statistic) for s in stats[:len(models)]], raw
