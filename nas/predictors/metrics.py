"""Prediction-quality metrics: rank correlations, RMSE, MAPE and the ±10% hit rate.

>>> round(kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]), 4)
0.6667
>>> within_pct([100, 200], [105, 250])
0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from nas.errors import UsageError

ArrayLike = "Sequence[float] | np.ndarray"


def _pair(y_true: Sequence[float] | np.ndarray,
          y_pred: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise UsageError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size == 0:
        raise UsageError("metrics need at least one value")
    return t, p


def kendall_tau(y_true: Sequence[float] | np.ndarray,
                y_pred: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b (ties handled as scipy does); ``nan`` when either side is constant."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.kendalltau(t, p).statistic)


def spearman(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation; ``nan`` when either side is constant."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.spearmanr(t, p).statistic)


def rmse(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mape(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error, in percent (``|pred - true| / |true|``).

    Raises:
        UsageError: a true value is zero (the percentage is undefined).
    """
    t, p = _pair(y_true, y_pred)
    if np.any(t == 0):
        raise UsageError("MAPE is undefined when a true value is 0")
    return float(np.mean(np.abs(p - t) / np.abs(t)) * 100.0)


def within_pct(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray,
               pct: float = 10.0) -> float:
    """Fraction of predictions within ``±pct`` percent of the true value (``|err| <= pct%``)."""
    t, p = _pair(y_true, y_pred)
    # a relative rounding allowance, so 11 against 10 counts at 10% whatever the units
    return float(np.mean(np.abs(p - t) <= np.abs(t) * (pct / 100.0) * (1 + 1e-9)))


def all_metrics(y_true: Sequence[float] | np.ndarray,
                y_pred: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Every metric by name: ``kendall_tau``, ``spearman``, ``rmse``, ``mape`` (percent, ``nan``
    if a true value is 0) and ``within_10pct`` (fraction)."""
    t, p = _pair(y_true, y_pred)
    return {
        "kendall_tau": kendall_tau(t, p),
        "spearman": spearman(t, p),
        "rmse": rmse(t, p),
        "mape": mape(t, p) if np.all(t != 0) else float("nan"),
        "within_10pct": within_pct(t, p, 10.0),
    }
