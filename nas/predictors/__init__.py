"""Accuracy and latency predictors learned from (config, value) pairs.

- :mod:`~nas.predictors.metrics`: Kendall's tau, Spearman, RMSE, MAPE, hit rate within ±10%.
- :mod:`~nas.predictors.models`: registered models (``ridge``, ``svr``, ``rf``, ``gbt``,
  ``gp``, ``mlp``, ``ensemble``, ``auto``) behind ``fit``/``predict``/``predict_with_std``,
  saved as JSON + arrays (no pickle).
- :mod:`~nas.predictors.features`: features from the encoding, op counts, family graph and
  cost features, zero-cost proxies (:mod:`~nas.predictors.zerocost`).
- :mod:`~nas.predictors.table`: CSV tables of measurements; :mod:`~nas.predictors.evaluate`:
  fit/evaluate over seeds; :mod:`~nas.predictors.pipeline`: featurizer + model for configs.

Submodules are imported where used (torch and scikit-learn load lazily).
"""
