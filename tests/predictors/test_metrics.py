from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nas.errors import UsageError
from nas.predictors.metrics import all_metrics, kendall_tau, mape, rmse, spearman, within_pct


def test_rank_correlations_match_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = a + rng.normal(size=200)
    b[:10] = b[10]  # ties
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_known_values() -> None:
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(4 / 6)
    assert rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert mape([100, 200], [110, 100]) == pytest.approx(30.0)
    assert within_pct([100, 200, 50], [110, 221, 50]) == pytest.approx(2 / 3)
    assert within_pct([100], [120], pct=20) == 1.0
    # the boundary holds in any units, and tiny units get no absolute allowance
    assert within_pct([10, 3.3, 1e-3], [11, 3.63, 1.1e-3]) == 1.0
    assert within_pct([1e-13, 1e-13], [2e-13, 1.05e-13]) == 0.5


def test_constant_predictions_give_nan_correlation() -> None:
    assert np.isnan(kendall_tau([1, 2, 3], [5, 5, 5]))
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_bad_input() -> None:
    with pytest.raises(UsageError, match="differ in length"):
        rmse([1, 2], [1])
    with pytest.raises(UsageError, match="undefined"):
        mape([0, 1], [1, 1])
    with pytest.raises(UsageError):
        rmse([], [])
    m = all_metrics([0.0, 1.0, 2.0], [0.1, 1.0, 2.0])
    assert np.isnan(m["mape"]) and m["kendall_tau"] == pytest.approx(1.0)
