"""How well can *any* architecture-based model predict NAS-Bench-201's CPU latency?

Two kinds of bound for a predictor of ``latency_gold_6226_ms`` trained on 100 rows:

* **in-sample**: least-squares models fitted on *all* 15,625 rows (every test row is in the
  fit), the best possible function of op counts (each count group's own mean), the spread
  of latency among architectures with the same op counts, and the autocorrelation of the
  residuals in table (measurement) order;
* **held out**: models fitted on 14,625 rows and scored on the 1,000 others (5 random
  draws): each count group's mean over the training rows, and gradient-boosted trees on
  op counts alone and on op counts plus the per-edge one-hot encoding (which would find any
  effect of *where* an op sits in the cell), and on op counts plus the same architectures'
  latencies on the table's two other devices (what transfer from other hardware could add).

    python benchmarks/nb201_latency_ceiling.py [--csv ../shared/data/nb201/nb201.csv]
"""

from __future__ import annotations

import argparse
import csv
import re

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import HistGradientBoostingRegressor

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def within(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) / y < 0.1))


def report(name: str, F: np.ndarray, y: np.ndarray) -> np.ndarray:
    theta, *_ = np.linalg.lstsq(F, y, rcond=None)
    r = (F @ theta - y) / y
    print(f"{name:45s} within ±10%: {np.mean(np.abs(r) < 0.1):.4f}   relative residual std "
          f"{r.std():.4f}")
    return r


def group_means(keys: np.ndarray, y: np.ndarray, fit: np.ndarray | None = None
                ) -> np.ndarray:
    """Each row's count-group mean of ``y``, over the rows in ``fit`` (default: all)."""
    fit = np.arange(len(y)) if fit is None else fit
    sums = np.bincount(keys[fit], weights=y[fit], minlength=keys.max() + 1)
    cnt = np.bincount(keys[fit], minlength=keys.max() + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / cnt)[keys]


def rolling_mean(v: np.ndarray, w: int, centred: bool = False) -> np.ndarray:
    """Mean over windows of ``w`` rows: trailing windows, complete ones only (``centred``:
    windows centred on each row, shrunk at the ends)."""
    c = np.concatenate([[0.0], np.cumsum(v)])
    if not centred:
        return (c[w:] - c[:-w]) / w
    lo = np.clip(np.arange(len(v)) - w // 2, 0, len(v))
    hi = np.clip(np.arange(len(v)) + w // 2 + 1, 0, len(v))
    return (c[hi] - c[lo]) / (hi - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default="../shared/data/nb201/nb201.csv")
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    E = np.array([[OPS.index(m) for m in re.findall(r"\|([a-z_0-9x]+)~\d", r["arch"])]
                  for r in rows])
    y = np.array([float(r["latency_gold_6226_ms"]) for r in rows])
    n = len(E)
    counts = np.stack([(E == k).sum(1) for k in range(len(OPS))], axis=1)
    _, keys = np.unique(counts, axis=0, return_inverse=True)
    keys = keys.ravel()
    best = group_means(keys, y)
    print(f"{n} rows, {keys.max() + 1} op-count groups; spread among same-op-count "
          f"architectures (relative std): {np.std((y - best) / best):.4f}")
    print("\nin-sample (fitted on all rows):")
    rng = np.random.default_rng(0)
    taus = [kendalltau(best[i], y[i])[0]
            for i in (rng.choice(n, 1000, replace=False) for _ in range(5))]
    print(f"{'best function of op counts (group means)':45s} within ±10%: "
          f"{within(best, y):.4f}   Kendall tau on 1000 random rows (5 draws): "
          f"{np.mean(taus):.3f}")
    onehot = np.zeros((n, 6 * len(OPS)))
    for e in range(6):
        onehot[np.arange(n), e * len(OPS) + E[:, e]] = 1.0
    ones = np.ones((n, 1))
    report("op counts, linear", np.hstack([ones, counts]), y)
    report("per-edge one-hot, linear", np.hstack([ones, onehot]), y)
    pairs = [onehot[:, i] * onehot[:, j] for i in range(30) for j in range(i + 1, 30)
             if i // 5 != j // 5]
    r = report("one-hot + all edge pairs, linear", np.column_stack([ones, onehot, *pairs]), y)
    lag1 = np.corrcoef(r[:-1], r[1:])[0, 1]
    roll = rolling_mean(r, 1000)
    print(f"residuals in table order: lag-1 autocorrelation {lag1:.3f}; "
          f"rolling mean over 1000 rows from {roll.min():+.4f} to {roll.max():+.4f}")
    # What the table-order drift explains: the group means times a centred rolling mean of
    # their own residuals over 301 neighbouring rows (an oracle of measurement order, not a
    # predictor: no new architecture has a row index).
    drift = rolling_mean((y - best) / best, 301, centred=True)
    print(f"{'group means x measurement-order drift':45s} within ±10%: "
          f"{within(best * (1 + drift), y):.4f}")

    print("\nheld out (fitted on 14,625 rows, scored on the 1,000 others; mean of 5 draws):")
    # HELP-style transfer: the same architectures' latencies measured on the two other
    # devices, as features beside the op counts
    others = np.log([[float(r["latency_raspi4_ms"]), float(r["latency_pixel3_ms"])]
                     for r in rows])
    for j, dev in enumerate(("raspi4", "pixel3")):
        print(f"the {dev} latencies rank the gold_6226 ones at Kendall tau "
              f"{kendalltau(others[:, j], y)[0]:.3f}")
    feats = {"op counts": counts.astype(float),
             "op counts + per-edge one-hot": np.hstack([counts, onehot]),
             "op counts + raspi4 and pixel3 latencies": np.hstack([counts, others])}
    scores: dict[str, list[tuple[float, float]]] = {}
    for draw in range(5):
        perm = np.random.default_rng(draw).permutation(n)
        te, tr = perm[:1000], perm[1000:]
        gm = group_means(keys, y, tr)[te]
        # a count group with no training row (e.g. the six single-op cells): linear fallback
        A = np.hstack([np.ones((n, 1)), counts])
        theta, *_ = np.linalg.lstsq(A[tr], y[tr], rcond=None)
        gm = np.where(np.isnan(gm), A[te] @ theta, gm)
        preds = {"count-group means of the training rows": gm}
        for name, X in feats.items():
            m = HistGradientBoostingRegressor(max_iter=600, learning_rate=0.05,
                                              random_state=0).fit(X[tr], y[tr])
            preds[f"boosted trees on {name}"] = m.predict(X[te])
        for name, p in preds.items():
            scores.setdefault(name, []).append((within(p, y[te]), kendalltau(p, y[te])[0]))
    for name, s in scores.items():
        w, t = np.mean(s, axis=0)
        print(f"{name:45s} within ±10%: {w:.4f}   Kendall tau: {t:.3f}")


if __name__ == "__main__":
    main()
