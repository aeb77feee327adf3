"""A learned latency predictor for spaces where a lookup table does not apply (cells, or
measurements given only as a table, e.g. NAS-Bench-201 latencies on a Xeon Gold 6226).

Latency is close to additive in the operations a network runs, so the model is layer-wise:
the features are the *counts* of each operation (each value of a group of categorical
dimensions that share one value set, e.g. the 6 edges of a NAS-Bench-201 cell with their 5
ops), and the regression is ridge on the raw target (no rank transform: an additive model
must predict milliseconds, not ranks). With 100 training rows it fits 6 numbers (5 op costs
and an intercept), which is why it generalises better than one-hot encodings with 30.

>>> from nas.searchspace import get_space
>>> sp = get_space("nb201")
>>> X, names = op_count_features(sp, [sp.parse_arch(
...     "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|")])
>>> dict(zip(names, X[0].tolist()))["count:nor_conv_3x3"]
2.0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.errors import UsageError
from nas.predictors.models import RidgePredictor, register_predictor

log = logging.getLogger(__name__)


def op_count_features(space: Any, configs: Sequence[Any] | np.ndarray
                      ) -> tuple[np.ndarray, list[str]]:
    """Per value, how many dimensions of the same value set take it (absent: none).

    Args:
        configs: configs of ``space`` or their encoding matrix.

    Raises:
        UsageError: no two dimensions of the space share a value set (nothing to count).
    """
    enc = configs if isinstance(configs, np.ndarray) else space.encode_many(list(configs))
    enc = np.asarray(enc, dtype=np.int64)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for d, path in enumerate(space.paths):
        groups.setdefault(tuple(space.values(path)), []).append(d)
    cols, names = [], []
    for values, dims in groups.items():
        if len(dims) < 2:
            continue
        sub = enc[:, dims]
        for i, v in enumerate(values):
            cols.append((sub == i).sum(axis=1).astype(np.float64))
            names.append(f"count:{v}" if len(groups) == 1 else
                         f"count[{space.paths[dims[0]]}..]:{v}")
    if not cols:
        raise UsageError(f"space {space.name!r} has no dimensions sharing a value set; "
                         "op-count features need repeated layers or edges")
    return np.stack(cols, axis=1), names


@register_predictor
class LayerwiseLatencyPredictor(RidgePredictor):
    """Ridge on the raw target (``target_transform="none"`` by default): with op-count
    features, an additive per-operation latency model."""

    name = "layerwise"

    def __init__(self, *, seed: int = 0, target_transform: str = "none", **params: Any) -> None:
        super().__init__(seed=seed, target_transform=target_transform, **params)


def evaluate_latency_table(table: str | os.PathLike[str], space: Any, target: str, *,
                           n_train: int = 100, n_test: int = 1000, seeds: int = 5,
                           features: str = "op_counts") -> dict[str, float]:
    """Mean metrics over ``seeds`` random splits of the layer-wise latency predictor on a
    table of measurements (see :func:`nas.predictors.evaluate.evaluate_features`).

    Args:
        features: ``op_counts`` (the layer-wise model) or ``encoding`` (one-hot, for
            comparison).
    """
    from nas.predictors.evaluate import METRICS, evaluate_features
    from nas.predictors.features import Featurizer
    from nas.predictors.table import load_measurements

    configs, y = load_measurements(table, space, target)
    if features == "op_counts":
        X, _ = op_count_features(space, configs)
    elif features == "encoding":
        X = Featurizer(space, kinds=["encoding"]).transform(configs)
    else:
        raise UsageError(f"features: {features!r}; known: op_counts, encoding")
    per_seed = evaluate_features(X, y, n_train=n_train, n_test=n_test, seeds=seeds,
                                 model="layerwise", groups=configs)
    return {f"{m}_mean": float(np.mean([s[m] for s in per_seed])) for m in METRICS}
