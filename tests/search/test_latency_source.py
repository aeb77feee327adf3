"""Front measurements corrected for the machine's drift by reference subnets of their size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import nas.predictors.latency as lat
import nas.predictors.profiling as prof
from nas.search.latency_source import LOCAL_REFERENCES, measure_models


class _Stat:
    def __init__(self, ms: float) -> None:
        self.ms = ms

    def get(self, statistic: str) -> float:
        return self.ms


def test_drift_factor_comes_from_references_of_the_models_size(monkeypatch) -> None:
    # 40 reference subnets measured at the build: 1..40 ms. Now the small ones (< 10 ms) run
    # 2x faster and the rest 1.25x faster; two models: a 1.5 ms one and a 30 ms one.
    then = np.arange(1.0, 41.0)
    now = np.where(then < 10, then / 2.0, then / 1.25)
    subs = [{"config": {"i": i}, "measured_ms": float(t)} for i, t in enumerate(then)]
    table = SimpleNamespace(overhead=SimpleNamespace(subnets=subs), statistic="p10",
                            settings=None, space=SimpleNamespace(config=lambda c: c))
    models = ["small", "large"]
    raw_times = {"small": 1.5 / 2.0, "large": 30.0 / 1.25}
    monkeypatch.setattr(lat, "build_subnets", lambda space, cfgs, settings: list(range(len(cfgs))))

    def fake_measure_many(ms, shape, **kw):
        return [_Stat(raw_times[m]) if isinstance(m, str) else _Stat(float(now[m])) for m in ms]

    monkeypatch.setattr(prof, "measure_many", fake_measure_many)
    corrected, raw = measure_models(models, (1, 8, 8), statistic="p10", batch=1, threads=1,
                                    device="cpu", table=table)
    assert raw == [raw_times["small"], raw_times["large"]]
    assert LOCAL_REFERENCES < 40
    # each model is put back at the build's machine state by references of its own size (a
    # single median over all 40 would have used 1.25 for both)
    assert corrected == pytest.approx([1.5, 30.0])
