"""The layer-wise learned latency predictor (op-count features, ridge on the raw target)."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import UsageError
from nas.predictors.latency_model import evaluate_latency_table, op_count_features
from nas.predictors.models import get_predictor
from nas.searchspace import get_space


def test_op_counts_of_nb201_cells() -> None:
    sp = get_space("nb201")
    cfgs = sp.sample_many(50, 0)
    X, names = op_count_features(sp, cfgs)
    assert X.shape == (50, 5) and names[3] == "count:nor_conv_3x3"
    assert np.all(X.sum(axis=1) == 6)  # every edge has exactly one op
    np.testing.assert_array_equal(X, op_count_features(sp, sp.encode_many(cfgs))[0])


def test_layerwise_recovers_an_additive_latency_model() -> None:
    sp = get_space("nb201")
    cfgs = sp.sample_many(200, 1)
    X, _ = op_count_features(sp, cfgs)
    cost = np.array([0.0, 0.05, 0.4, 1.2, 0.3])
    y = 2.0 + X @ cost
    pred = get_predictor("layerwise").fit(X[:100], y[:100])
    np.testing.assert_allclose(pred.predict(X[100:]), y[100:], rtol=1e-2)


def test_op_counts_need_repeated_dimensions() -> None:
    with pytest.raises(UsageError, match="sharing a value set"):
        from nas.searchspace import Space
        from nas.searchspace.dims import Choice

        op_count_features(Space("one", [Choice("a", (1, 2))]), np.zeros((1, 1)))


def test_nb201_latency_slice(nb201_slice) -> None:  # noqa: ANN001
    r = evaluate_latency_table(nb201_slice, get_space("nb201"), "latency_gold_6226_ms",
                               n_train=100, n_test=150, seeds=2)
    assert r["kendall_tau_mean"] > 0.5 and 0 <= r["within_10pct_mean"] <= 1
