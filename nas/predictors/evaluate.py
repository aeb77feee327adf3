"""Fit-and-evaluate a predictor on a table of measurements over several random splits."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import UsageError
from nas.predictors.features import Featurizer
from nas.predictors.metrics import all_metrics
from nas.predictors.models import get_predictor
from nas.predictors.table import TableError, load_measurements, select_rows
from nas.predictors.zerocost import ProxySettings

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("kendall_tau", "spearman", "rmse", "mape", "within_10pct")


@dataclass
class EvaluationResult:
    """Per-seed metrics and their means and standard deviations."""

    model: str
    target: str
    n_train: int
    n_test: int
    features: tuple[str, ...]
    per_seed: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-able dict: settings, ``<metric>_mean`` / ``<metric>_std`` and per-seed values."""
        out: dict[str, Any] = {
            "model": self.model, "target": self.target, "n_train": self.n_train,
            "n_test": self.n_test, "seeds": len(self.per_seed), "features": list(self.features),
        }
        for m in METRICS:
            vals = np.array([s[m] for s in self.per_seed], dtype=np.float64)
            out[f"{m}_mean"] = float(np.mean(vals)) if len(vals) else float("nan")
            out[f"{m}_std"] = float(np.std(vals)) if len(vals) else float("nan")
        out["per_seed"] = self.per_seed
        return out


def evaluate_features(X: np.ndarray, y: np.ndarray, *, n_train: int, n_test: int,
                      seeds: int | Sequence[int], model: str = "auto",
                      model_kwargs: dict[str, Any] | None = None,
                      progress: Callable[[], None] | None = None,
                      groups: Sequence[Any] | None = None,
                      ) -> list[dict[str, float]]:
    """Per-seed metrics of ``model`` fitted on ``n_train`` random rows of (X, y) and
    evaluated on ``n_test`` other rows (see :func:`nas.predictors.table.select_rows`).

    Args:
        groups: a key per row (its config): rows with the same key (repeated measurements
            of one config) are all on the same side of every split, and ``n_train`` /
            ``n_test`` count distinct keys. ``None``: every row is independent.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = []
    for sd in seed_list:
        tr, te = select_rows(len(y), n_train, n_test, sd, groups)
        pred = get_predictor(model, seed=sd, **(model_kwargs or {})).fit(X[tr], y[tr])
        metrics = all_metrics(y[te], pred.predict(X[te]))
        metrics["seed"] = sd
        chosen = pred.params.get("chosen")
        if chosen:
            metrics["chosen"] = chosen
        out.append(metrics)
        log.debug("seed %d: %s", sd, metrics)
        if progress:
            progress()
    return out


def evaluate_table(table: str | os.PathLike[str], space: Any, target: str, *, n_train: int,
                   n_test: int = 1000, seeds: int = 5, model: str = "auto",
                   model_kwargs: dict[str, Any] | None = None,
                   features: Sequence[str] | None = None, proxies: Sequence[str] = ("synflow",),
                   cache_dir: str | os.PathLike[str] | None = None,
                   proxy_settings: ProxySettings | None = None,
                   on_features: Callable[[int, int], None] | None = None,
                   on_seed: Callable[[], None] | None = None) -> EvaluationResult:
    """Fit on ``n_train`` random rows of a table and report metrics on ``n_test`` others,
    for seeds ``0..seeds-1``.

    The split is by config (see :func:`nas.predictors.table.select_rows`): a config the
    table holds several rows of (repeated measurements) has all its rows in the training set
    or all in the test set, never both, and ``n_train`` / ``n_test`` count distinct configs.
    A table of distinct configs splits exactly as row by row.

    Only the rows some seed uses get features (zero-cost proxies are computed, or read from
    ``cache_dir``, for those rows only).

    Args:
        on_features: progress while zero-cost features are computed: ``(done, total)``.
        on_seed: called after each seed.
    """
    fz = Featurizer(space, kinds=features, proxies=proxies, cache_dir=cache_dir,
                    proxy_settings=proxy_settings or ProxySettings())
    get_predictor(model, **(model_kwargs or {}))  # bad names/options fail before any work
    configs, y = load_measurements(table, space, target)
    # validate the split before any expensive feature work
    try:
        used = np.unique(np.concatenate([
            np.concatenate(select_rows(len(y), n_train, n_test, sd, configs))
            for sd in range(seeds)]))
    except TableError as e:  # a split the table cannot give: a usage error, naming the file
        raise UsageError(f"{os.fspath(table)}: {e}") from None
    X = np.zeros((len(y), len(fz.names())))
    prog = (lambda done: on_features(done, len(used))) if on_features else None
    X[used] = fz.transform([configs[i] for i in used], progress=prog)
    per_seed = evaluate_features(X, y, n_train=n_train, n_test=n_test, seeds=seeds,
                                 model=model, model_kwargs=model_kwargs, progress=on_seed,
                                 groups=configs)
    return EvaluationResult(model, target, n_train, n_test, tuple(fz.kinds), per_seed)
