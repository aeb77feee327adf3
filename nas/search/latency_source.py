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


# settings a search's table must share with the search (others -- CPU model name, torch
# version -- are warned about by LatencyTable.load)
STRUCTURAL_SETTINGS = ("device", "threads", "batch", "input_size", "in_channels", "num_classes",
                       "stem_stride")


def _structural_differences(table: Any, settings: Any) -> list[str]:
    """The settings ``table`` differs in from ``settings`` that make it predict other
    networks or time them elsewhere (:data:`STRUCTURAL_SETTINGS`)."""
    return [d for d in table.settings.differences(settings)
            if d.split(":")[0] in STRUCTURAL_SETTINGS]


def latency_table_for(net: Any, path: Path, *, batch: int, threads: int, device: str,
                      progress: bool, say: Callable[[str], None],
                      given: str | Path | None = None) -> Any:
    """The search's table at ``path``: loaded when it is there and complete, else built (or
    its build resumed). ``given`` (``--latency-table``): a complete table built by ``nas
    profile`` for this space and these settings, copied to ``path`` (replacing a different
    table there) instead of measuring one."""
    from nas.predictors.latency import (
        LatencyTable,
        LatencyTableError,
        build_latency_table,
        current_settings,
    )
    from nas.utils.files import DirectoryLock, atomic_write_bytes

    b = net.build
    settings = current_settings(device=device, threads=threads, batch=batch,
                                input_size=tuple(b.input_size), in_channels=b.in_channels,
                                num_classes=b.num_classes, stem_stride=b.stem_stride,
                                warmup=SEARCH_WARMUP, repeats=SEARCH_REPEATS)
    if given is not None:
        table = LatencyTable.load(given, space=net.space, require_complete=False)
        if table.n_measured < table.n_units:
            raise LatencyTableError(f"--latency-table {given}: incomplete ({table.n_measured} "
                                    f"of {table.n_units} blocks measured); finish it with the "
                                    "same `nas profile` command")
        wrong = _structural_differences(table, settings)
        if wrong:
            raise LatencyTableError(
                f"--latency-table {given} was built for other settings ({'; '.join(wrong)}); "
                f"this search times batch {batch} on {threads} thread(s) on {device}: build "
                f"its table with `nas profile --space ... --input-size {b.input_size[0]} "
                f"--in-channels {b.in_channels} --num-classes {b.num_classes} --batch "
                f"{batch} --threads {threads}` for the supernet's data")
        table.warn_if_differs(settings)  # what remains: another CPU, torch version, ...
        data = Path(given).read_bytes()
        if not path.exists() or path.read_bytes() != data:
            with DirectoryLock.for_file(path, doing="built"):  # (as a build of it would)
                atomic_write_bytes(path, data)
            say(f"latency: table {given} ({table.n_units} blocks; copied to {path})")
        else:
            say(f"latency: table {given} ({table.n_units} blocks; the same as {path})")
        return LatencyTable.load(path, space=net.space)
    if path.exists():
        try:
            table = LatencyTable.load(path, space=net.space)
            wrong = _structural_differences(table, settings)
            if wrong:  # it would predict other networks, or time them elsewhere
                raise LatencyTableError(
                    f"latency table {path} was built for other settings ({'; '.join(wrong)}); "
                    "remove it (this search rebuilds it) or choose another --out")
            table.warn_if_differs(settings)
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
                   batch: int, threads: int, device: str, table: Any = None,
                   progress: bool = False) -> tuple[list[float], list[float]]:
    """Measured latency (ms, ``statistic``) of extracted models, interleaved, as
    ``(drift-corrected, raw)``.

    With a lookup ``table`` that has fitted overhead subnets, those subnets are measured
    again in the same interleaved rounds and each model is put back at the build's machine
    state by the ones of its own size
    (:func:`nas.predictors.latency.measure_with_references`). Without a table, or for
    another statistic than the table's, both lists are the raw times. ``progress``: a bar
    over the measuring rounds."""
    from nas.predictors.latency import measure_with_references
    from nas.predictors.profiling import measure_many
    from nas.utils.progress import task_progress

    refs = len(table.overhead.subnets) if table is not None else 0
    what = f"{len(models)} subnets" + (f" + {refs} reference subnets" if refs else "")
    warmup, repeats = 5, 30
    with task_progress(f"front latency: {what}, rounds", warmup + repeats,
                       enabled=progress) as advance:
        if not refs:
            raw = [s.get(statistic) for s in measure_many(
                models, input_shape, device=device, threads=threads, batch=batch,
                warmup=warmup, repeats=repeats, on_round=advance)]
            return raw, raw
        fixed, unfixed = measure_with_references(table, models, input_shape, device=device,
                                                 threads=threads, batch=batch, warmup=warmup,
                                                 repeats=repeats, on_round=advance)
    raw = [s.get(statistic) for s in unfixed]
    if statistic != table.statistic:
        return raw, raw
    return [s.get(statistic) for s in fixed], raw
