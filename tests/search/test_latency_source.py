"""Front measurements corrected for the machine's drift by reference subnets of their size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import nas.predictors.latency as lat
from nas.predictors.profiling import LatencyStats
from nas.search.latency_source import measure_models


def _stats(ms: float) -> LatencyStats:
    return LatencyStats(min=ms, p10=ms, median=ms, mean=ms, max=ms, repeats=1)


def test_drift_factor_comes_from_references_of_the_models_size(monkeypatch) -> None:
    # 40 reference subnets measured at the build: 1..40 ms. Now the small ones (< 10 ms) run
    # 2x faster and the rest 1.25x faster; two models: a 1.5 ms one and a 30 ms one.
    then = np.arange(1.0, 41.0)
    now = np.where(then < 10, then / 2.0, then / 1.25)
    subs = [{"config": {"i": i}, "measured_ms": float(t)} for i, t in enumerate(then)]
    settings = SimpleNamespace(in_channels=1, input_size=(8, 8), device="cpu", threads=1,
                               batch=1)
    table = SimpleNamespace(overhead=SimpleNamespace(subnets=subs), statistic="p10",
                            settings=settings, space=SimpleNamespace(config=lambda c: c))
    models = ["small", "large"]
    raw_times = {"small": 1.5 / 2.0, "large": 30.0 / 1.25}
    monkeypatch.setattr(lat, "build_subnets", lambda space, cfgs, settings: list(range(len(cfgs))))
    seen = {}

    def fake_measure_many(ms, shapes, **kw):
        seen["shapes"] = shapes
        return [_stats(raw_times[m]) if isinstance(m, str) else _stats(float(now[m]))
                for m in ms]

    monkeypatch.setattr(lat, "measure_many", fake_measure_many)
    corrected, raw = measure_models(models, (1, 8, 8), statistic="p10", batch=1, threads=1,
                                    device="cpu", table=table)
    assert raw == [raw_times["small"], raw_times["large"]]
    assert lat.LOCAL_REFERENCES < 40
    # each model is put back at the build's machine state by references of its own size (a
    # single median over all 40 would have used 1.25 for both)
    assert corrected == pytest.approx([1.5, 30.0])
    assert seen["shapes"] == [(1, 8, 8)] * 42  # the models and the references, interleaved
    # another statistic than the table's is not corrected
    corrected, raw = measure_models(models, (1, 8, 8), statistic="min", batch=1, threads=1,
                                    device="cpu", table=table)
    assert corrected == raw


def test_local_drift_factors() -> None:
    then = [1.0, 2.0, 4.0, 8.0]
    now = [0.5, 1.0, 4.0, 8.0]  # the two small references ran 2x faster
    f = lat.local_drift_factors(then, now, [0.4, 9.0], k=2)
    assert f.tolist() == [2.0, 1.0]
    assert lat.local_drift_factors(then, now, [3.0], k=10).tolist() == [1.5]  # all four
    with pytest.raises(lat.UsageError, match="local_drift_factors"):
        lat.local_drift_factors([1.0], [1.0, 2.0], [1.0])
