"""Predictor models behind one small interface, registered by name.

Every model standardises its inputs, optionally maps the target through a monotone transform
(``"normal"``: rank-based normal scores, robust to the long tail of broken architectures;
predictions are mapped back by interpolating the training targets), and offers
``fit(X, y)``, ``predict(X)`` and, where ``supports_std``, ``predict_with_std(X)``.

Persistence (:func:`save_predictor` / :func:`load_predictor`) writes one ``.npz`` file read
with ``allow_pickle=False``: a JSON header plus plain arrays, never pickled objects.

- ``mlp`` stores its torch weights as arrays and loads them into a freshly built module.
- ``ridge`` stores its coefficients.
- scikit-learn models whose fitted state is not plain arrays (``svr``, ``rf``, ``gbt``,
  ``gp``) store their hyper-parameters and *training data* and are rebuilt on load by
  refitting with the same seed. That is deterministic, so predictions are identical as long
  as the scikit-learn version matches (it is recorded; a different version logs a warning).
- ``ensemble`` stores its members the same way.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(50, 3)); y = X @ [1.0, 2.0, 0.0]
>>> m = get_predictor("ridge", target_transform="none").fit(X, y)
>>> float(np.abs(m.predict(X) - y).max()) < 0.1
True
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from nas.errors import NasError, UsageError
from nas.utils.checks import check_number
from nas.utils.files import NPZ_LOAD_ERRORS, atomic_write_bytes, npz_load_error

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
TARGET_TRANSFORMS = ("none", "normal")


class PredictorFileError(UsageError):
    """A saved predictor that cannot be read (corrupt, wrong format or version) or was
    fitted for another space: a wrong input file (the CLI's exit status 2)."""


class NotFittedError(NasError):
    """A predictor used before ``fit``."""


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def _as_2d(X: Any, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        # one feature per row, unless it is one row of a many-feature predictor
        X = X[None, :] if n_features is not None and n_features > 1 and \
            X.shape[0] == n_features else X[:, None]
    if X.ndim != 2:
        raise UsageError(f"features must be a 2-D array, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise UsageError(f"the predictor was fitted on {n_features} features, got {X.shape[1]}")
    if not np.all(np.isfinite(X)):
        raise UsageError("features contain NaN or infinite values")
    return X


class Predictor(ABC):
    """Base class: standardisation, target transform, persistence; subclasses fit a model.

    Args:
        seed: seeds every random choice of the model.
        target_transform: ``"none"`` or ``"normal"`` (see the module docstring).
    """

    name: ClassVar[str] = ""
    supports_std: ClassVar[bool] = False
    # the model's own settings and their defaults (the names a predictor accepts), as the
    # searchers' ``defaults``; read them with :meth:`_opt`
    defaults: ClassVar[dict[str, Any]] = {}
    # each setting's allowed values: name -> (kind, low, high), both ends inclusive; kind is
    # "int", "float", "names" (a list of predictor names) or "numbers" (a list of numbers)
    option_ranges: ClassVar[dict[str, tuple[str, float, float]]] = {}

    def __init__(self, *, seed: int = 0, target_transform: str = "normal",
                 **params: Any) -> None:
        if target_transform not in TARGET_TRANSFORMS:
            raise UsageError(f"unknown target_transform {target_transform!r}; known: "
                             f"{', '.join(TARGET_TRANSFORMS)}")
        for key, value in params.items():
            self._check_option(key, value)
        self.seed = int(seed)
        self.target_transform = target_transform
        # (numpy scalars as Python numbers: the settings are saved as JSON)
        self.params = {k: v.item() if isinstance(v, np.generic) else v
                       for k, v in params.items()}
        self._fitted = False

    def _check_option(self, key: str, value: Any) -> None:
        """A clear error for an unknown setting (a typo would otherwise be ignored and saved
        with the model) or a value of the wrong type or out of range."""
        where = f"predictor {self.name!r}: option {key}"
        if key not in self.defaults:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UsageError(f"predictor {self.name!r}: unknown option {key!r} (known: {known})")
        kind, lo, hi = self.option_ranges[key]
        if kind in ("int", "float"):
            check_number(where, value, kind, lo, hi)
        if kind in ("names", "numbers"):
            items = list(value) if isinstance(value, (list, tuple)) else None
            if not items:
                raise UsageError(f"{where}: must be a non-empty list, got {value!r}")
            if kind == "names":
                _load_builtins()
            for v in items:
                if kind == "names" and (not isinstance(v, str) or v not in PREDICTORS
                                        or v in ("auto", "ensemble")):
                    raise UsageError(f"{where}: {v!r} is not a predictor to combine; known: "
                                     + ", ".join(n for n in list_predictors()
                                                 if n not in ("auto", "ensemble")))
                if kind == "numbers":
                    check_number(f"{where} (every item)", v, "float", lo, hi)

    def _opt(self, key: str) -> Any:
        """The setting ``key``: the value given, else its default."""
        return self.params.get(key, self.defaults[key])

    # ------------------------------------------------------------------ data plumbing
    def _fit_transform(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.x_mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.x_scale_ = np.where(std > 1e-12, std, 1.0)
        self.y_sorted_ = np.sort(y)
        if self.target_transform == "normal":
            z = self._normal_scores(y)
        else:
            z = y.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            self.z_mean_ = float(z.mean())
            self.z_scale_ = float(z.std()) or 1.0
        if not (np.isfinite(self.z_mean_) and np.isfinite(self.z_scale_)):
            raise UsageError(
                f"targets: values up to {np.max(np.abs(y)):.3g} overflow 64-bit floats when "
                "standardised; rescale them (e.g. to other units) or use the 'normal' "
                "target transform")
        return (X - self.x_mean_) / self.x_scale_, (z - self.z_mean_) / self.z_scale_

    @staticmethod
    def _normal_scores(y: np.ndarray) -> np.ndarray:
        r = stats.rankdata(y, method="average")
        return special.ndtri((r - 0.5) / len(y))

    def _x(self, X: Any) -> np.ndarray:
        if not self._fitted:
            raise NotFittedError(f"predictor {self.name!r} is not fitted; call fit(X, y) first")
        X = _as_2d(X, self.x_mean_.shape[0])
        Z = np.subtract(X, self.x_mean_)  # one new array, not two: 10^5 rows at a time
        Z /= self.x_scale_
        return Z

    def _y_back(self, z: np.ndarray, extrapolate: bool = False) -> np.ndarray:
        z = z * self.z_scale_ + self.z_mean_
        if self.target_transform == "none":
            return z
        n = len(self.y_sorted_)
        grid = special.ndtri((np.arange(1, n + 1) - 0.5) / n)
        y = np.interp(z, grid, self.y_sorted_)
        if extrapolate and n >= 2:  # beyond the training targets: their average slope
            slope = (self.y_sorted_[-1] - self.y_sorted_[0]) / (grid[-1] - grid[0])
            y = np.where(z > grid[-1], self.y_sorted_[-1] + (z - grid[-1]) * slope, y)
            y = np.where(z < grid[0], self.y_sorted_[0] + (z - grid[0]) * slope, y)
        return y

    def _std_back(self, z: np.ndarray, s: np.ndarray) -> np.ndarray:
        if self.target_transform == "none":
            return s * self.z_scale_
        # extrapolated, not clamped: a prediction beyond every training target (the ones an
        # acquisition function wants) must not come back with zero uncertainty
        hi = self._y_back(z + s, extrapolate=True)
        lo = self._y_back(z - s, extrapolate=True)
        return np.abs(hi - lo) / 2.0

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any) -> Predictor:
        """Fit on features ``X`` (n, d) and targets ``y`` (n,); returns ``self``."""
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64).ravel()
        if y.shape[0] != X.shape[0]:
            raise UsageError(f"X has {X.shape[0]} rows but y has {y.shape[0]} values")
        if X.shape[0] < 2:
            raise UsageError(f"a predictor needs at least 2 training rows, got {X.shape[0]}")
        if not np.all(np.isfinite(y)):
            raise UsageError("targets contain NaN or infinite values")
        self.X_train_ = X.copy()
        self.y_train_ = y.copy()
        Xs, z = self._fit_transform(X, y)
        self._fit(Xs, z)
        self._fitted = True
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape ``(n,)``."""
        return self._y_back(self._predict(self._x(X)))

    def predict_with_std(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Predicted targets and their standard deviations (models with ``supports_std``)."""
        if not self.supports_std:
            chosen = f" (it chose {self.params['chosen']!r})" if "chosen" in self.params else ""
            raise UsageError(f"predictor {self.name!r}{chosen} does not report uncertainty; use "
                             "one of " + ", ".join(n for n, c in PREDICTORS.items()
                                                  if c.supports_std is True))
        z, s = self._predict_std(self._x(X))
        return self._y_back(z), self._std_back(z, s)

    @abstractmethod
    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        """Fit on standardised features and transformed, standardised targets."""

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Predict transformed, standardised targets from standardised features."""

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        """Arrays beyond the training data needed to rebuild the model without refitting
        (empty: rebuilt by refitting)."""
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> bool:
        """Restore from :meth:`_state` arrays; ``False``: refit instead."""
        return False

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        return {"seed": self.seed, "target_transform": self.target_transform, **self.params}


PREDICTORS: dict[str, type[Predictor]] = {}


def register_predictor(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: register a predictor under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    PREDICTORS[cls.name] = cls
    return cls


# modules of this package that register further predictors (imported on first lookup)
_BUILTIN_MODULES = ("nas.predictors.latency_model",)


def _load_builtins() -> None:
    import importlib

    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def list_predictors() -> list[str]:
    """Registered predictor names (``auto`` included)."""
    _load_builtins()
    return sorted(PREDICTORS)


def get_predictor(name: str, **kwargs: Any) -> Predictor:
    """A new, unfitted predictor by registered name."""
    if name not in PREDICTORS:
        _load_builtins()
    try:
        cls = PREDICTORS[name]
    except KeyError:
        raise UsageError(f"unknown predictor {name!r}; known: {', '.join(list_predictors())}"
                         ) from None
    return cls(**kwargs)


# ---------------------------------------------------------------------- models
@register_predictor
class RidgePredictor(Predictor):
    """Ridge regression, its penalty chosen by efficient leave-one-out CV."""

    name = "ridge"

    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        from sklearn.linear_model import RidgeCV

        m = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, z)
        self.coef_ = np.asarray(m.coef_, dtype=np.float64)
        self.intercept_ = float(m.intercept_)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_ + self.intercept_

    def _state(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": np.array([self.intercept_])}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> bool:
        self.coef_ = arrays["coef"]
        self.intercept_ = float(arrays["intercept"][0])
        return True


class _SklearnPredictor(Predictor):
    """A scikit-learn regressor made by :meth:`_make`; rebuilt on load by refitting.

    Predictions go through :mod:`nas.predictors.fast` where it knows the fitted model (tree
    ensembles: bit-identical; RBF-SVR and GP means: equal up to rounding), else through
    scikit-learn."""

    def _make(self) -> Any:
        raise NotImplementedError

    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        self.model_ = self._make().fit(X, z)
        self.fast_: Any = None
        self._fast_ready = False

    def _fast(self) -> Any:
        """How the fitted model predicts fast: a compiled forest, ``"kernel"``, or ``None``
        (scikit-learn)."""
        from nas.predictors import fast

        if not fast.ENABLED:
            return None
        if not getattr(self, "_fast_ready", False):
            self.fast_ = fast.CompiledForest.from_sklearn(self.model_)
            if self.fast_ is None and fast.kernel_supported(self.model_):
                self.fast_ = "kernel"
            self._fast_ready = True
        return self.fast_

    def _predict(self, X: np.ndarray) -> np.ndarray:
        from nas.predictors.fast import kernel_predict

        f = self._fast()
        if f == "kernel":
            return np.asarray(kernel_predict(self.model_, X), dtype=np.float64)
        if f is not None:
            return f.predict(X)
        return np.asarray(self.model_.predict(X), dtype=np.float64)


@register_predictor
class SVRPredictor(_SklearnPredictor):
    """Support-vector regression with an RBF kernel."""

    name = "svr"
    defaults = {"C": 3.0, "epsilon": 0.05}
    option_ranges = {"C": ("float", 1e-12, math.inf), "epsilon": ("float", 0.0, math.inf)}

    def _make(self) -> Any:
        from sklearn.svm import SVR

        return SVR(C=self._opt("C"), epsilon=self._opt("epsilon"), gamma="scale")


@register_predictor
class RandomForestPredictor(_SklearnPredictor):
    """Random forest; the spread of its trees is the reported uncertainty."""

    name = "rf"
    defaults = {"n_estimators": 200, "max_features": 0.3, "min_samples_leaf": 1}
    option_ranges = {"n_estimators": ("int", 1, math.inf), "max_features": ("float", 1e-12, 1.0),
                     "min_samples_leaf": ("int", 1, math.inf)}
    supports_std = True

    def _make(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self._opt("n_estimators"), max_features=self._opt("max_features"),
            min_samples_leaf=self._opt("min_samples_leaf"), random_state=self.seed, n_jobs=1)

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_tree = np.stack([t.predict(X) for t in self.model_.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)


@register_predictor
class GBTPredictor(_SklearnPredictor):
    """Gradient-boosted regression trees (scikit-learn): depth-5 trees (feature interactions
    matter for cells), small learning rate, row and feature subsampling."""

    name = "gbt"
    defaults = {"n_estimators": 1000, "learning_rate": 0.02, "max_depth": 5, "subsample": 0.8,
                "max_features": 0.3, "min_samples_leaf": 1}
    option_ranges = {"n_estimators": ("int", 1, math.inf),
                     "learning_rate": ("float", 1e-12, math.inf),
                     "max_depth": ("int", 1, math.inf), "subsample": ("float", 1e-12, 1.0),
                     "max_features": ("float", 1e-12, 1.0),
                     "min_samples_leaf": ("int", 1, math.inf)}

    def _make(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(
            random_state=self.seed, **{k: self._opt(k) for k in self.defaults})


@register_predictor
class GPPredictor(_SklearnPredictor):
    """Gaussian process (Matern-5/2 with ARD-free length scale plus white noise); reports
    the predictive standard deviation of a new measurement: the posterior's uncertainty
    about the function plus the fitted white noise (how far a measured value may fall from
    the prediction; the noise part does not shrink with more data)."""

    name = "gp"
    defaults = {"restarts": 1}
    option_ranges = {"restarts": ("int", 0, math.inf)}
    supports_std = True

    def _make(self) -> Any:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = (ConstantKernel(1.0, (1e-3, 1e4)) * Matern(length_scale=5.0,
                                                            length_scale_bounds=(1e-1, 1e3),
                                                            nu=2.5)
                  + WhiteKernel(0.1, (1e-4, 1.0)))
        return GaussianProcessRegressor(kernel=kernel, normalize_y=False,
                                        n_restarts_optimizer=self._opt("restarts"),
                                        random_state=self.seed)

    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            super()._fit(X, z)
        for w in caught:
            log.debug("gp: %s", w.message)

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.model_.predict(X, return_std=True)
        return np.asarray(mean), np.asarray(std)


@register_predictor
class MLPPredictor(Predictor):
    """A small torch MLP (two hidden ReLU layers), full-batch Adam with weight decay."""

    name = "mlp"
    defaults = {"hidden": 128, "lr": 3e-3, "weight_decay": 1e-2, "epochs": 300}
    option_ranges = {"hidden": ("int", 1, math.inf), "lr": ("float", 1e-12, math.inf),
                     "weight_decay": ("float", 0.0, math.inf), "epochs": ("int", 1, math.inf)}

    def _build(self, d: int) -> Any:
        from torch import nn

        h = int(self._opt("hidden"))
        return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, 1))

    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        import torch

        from nas.predictors.profiling import pinned_threads

        gen = torch.Generator().manual_seed(self.seed)
        net = self._build(X.shape[1])
        with pinned_threads(1):  # a small MLP is slower with more threads
            with torch.no_grad():
                for p in net.parameters():
                    bound = 1.0 / np.sqrt(p.shape[-1])
                    p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
            opt = torch.optim.AdamW(net.parameters(), lr=self._opt("lr"),
                                    weight_decay=self._opt("weight_decay"))
            Xt = torch.from_numpy(X).float()
            zt = torch.from_numpy(z).float()[:, None]
            for _ in range(int(self._opt("epochs"))):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(net(Xt), zt)
                loss.backward()
                opt.step()
        self.net_ = net.eval()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.net_(torch.from_numpy(X).float()).numpy()[:, 0].astype(np.float64)

    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> bool:
        import torch

        net = self._build(self.x_mean_.shape[0])
        sd = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
              if k.startswith("net.")}
        net.load_state_dict(sd, strict=True)
        self.net_ = net.eval()
        return True


@register_predictor
class EnsemblePredictor(Predictor):
    """Weighted average of member predictors fitted on the same (transformed) targets:
    by default two gradient-boosted tree models and one MLP, weights 1, 1, 1 (trees and a
    smooth model make different errors). Uncertainty is the weighted spread of the members.
    """

    name = "ensemble"
    defaults = {"members": ["gbt", "gbt", "mlp"], "weights": None}  # None: equal weights
    option_ranges = {"members": ("names", 0, 0), "weights": ("numbers", 0.0, math.inf)}
    supports_std = True

    def _members(self) -> list[Predictor]:
        names = self._opt("members")
        return [get_predictor(n, seed=self.seed + i, target_transform="none")
                for i, n in enumerate(names)]

    def _weights(self) -> np.ndarray:
        n = len(self._opt("members"))
        w = np.asarray(self._opt("weights") or [1.0] * n, dtype=np.float64)
        if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
            raise UsageError(f"ensemble weights must be {n} non-negative numbers, got {w}")
        return w / w.sum()

    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        self._weights()
        self.members_ = [m.fit(X, z) for m in self._members()]
        self._merged_ready = False

    def _merged(self) -> list[tuple[Any, list[int]]]:
        """The compiled tree members (the same standardisation: all fitted on the same
        features) merged into forests that run in one kernel call each, with their
        positions: members of the same kernel kind and, for padded perfect trees, the same
        depth (merging a shallow forest with a deeper one would pad it to that depth)."""
        from nas.predictors import fast

        if not fast.ENABLED:
            return []
        if not getattr(self, "_merged_ready", False):
            self.merged_: list[tuple[Any, list[int]]] = []
            idx = [i for i, m in enumerate(self.members_)
                   if isinstance(m, _SklearnPredictor)
                   and isinstance(m._fast(), fast.CompiledForest)]
            if idx:
                first = self.members_[idx[0]]
                idx = [i for i in idx
                       if np.array_equal(self.members_[i].x_mean_, first.x_mean_)
                       and np.array_equal(self.members_[i].x_scale_, first.x_scale_)]
            groups: dict[tuple[str, int], list[int]] = {}
            for i in idx:
                f = self.members_[i]._fast()
                groups.setdefault((f.kind, f.depth if f.kind == "perfect" else 0), []).append(i)
            for members in groups.values():
                if len(members) >= 2:
                    forest = fast.CompiledForest.merged([self.members_[i]._fast()
                                                         for i in members])
                    self.merged_.append((forest, members))
            self._merged_ready = True
        return self.merged_

    def _all(self, X: np.ndarray) -> np.ndarray:
        rows: list[np.ndarray | None] = [None] * len(self.members_)
        for forest, idx in self._merged():  # one binning and one kernel call per forest
            Xm = self.members_[idx[0]]._x(X)
            for i, z in zip(idx, forest.predict_groups(Xm)):
                rows[i] = self.members_[i]._y_back(z)
        for i, m in enumerate(self.members_):
            if rows[i] is None:
                rows[i] = m.predict(X)
        return np.stack(rows)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._weights() @ self._all(X)

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self._all(X)
        w = self._weights()
        mean = w @ a
        return mean, np.sqrt(w @ (a - mean) ** 2)

    def _state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, m in enumerate(self.members_):
            out.update({f"m{i}.{k}": v for k, v in m._state().items()})
        return out

    def _load_state(self, arrays: dict[str, np.ndarray]) -> bool:
        # members were fitted on standardised data: rebuild them exactly as in fit
        return False


@register_predictor
class AutoPredictor(Predictor):
    """Picks among ``candidates`` by k-fold cross-validated Kendall's tau on the training
    data, then refits the winner on all of it."""

    name = "auto"
    defaults = {"candidates": ["ridge", "svr", "rf", "gbt", "gp", "mlp"], "folds": 5}
    option_ranges = {"candidates": ("names", 0, 0), "folds": ("int", 2, math.inf)}

    def _fit(self, X: np.ndarray, z: np.ndarray) -> None:
        from nas.predictors.metrics import kendall_tau

        cands = list(self._opt("candidates"))
        folds = int(self._opt("folds"))
        n = X.shape[0]
        folds = max(2, min(folds, n // 2)) if n >= 4 else 0
        scores: dict[str, float] = {}
        if folds:
            rng = np.random.default_rng(self.seed)
            fold_of = rng.permutation(n) % folds
            for name in cands:
                taus = []
                for f in range(folds):
                    tr, te = fold_of != f, fold_of == f
                    m = get_predictor(name, seed=self.seed, target_transform="none")
                    p = m.fit(X[tr], z[tr]).predict(X[te])
                    t = kendall_tau(z[te], p)
                    taus.append(t if np.isfinite(t) else 0.0)
                scores[name] = float(np.mean(taus))
            best = max(cands, key=lambda c: scores[c])
        else:
            best = cands[0]
        log.info("auto predictor: cross-validated tau %s -> %s",
                 ", ".join(f"{k}={v:.3f}" for k, v in scores.items()), best)
        self.params["chosen"] = best
        self.cv_scores_ = scores
        self.inner_ = get_predictor(best, seed=self.seed, target_transform="none").fit(X, z)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.inner_.predict(X)

    @property  # type: ignore[override]
    def supports_std(self) -> bool:  # as the chosen model does
        inner = getattr(self, "inner_", None)
        return bool(inner is not None and inner.supports_std)

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner_.predict_with_std(X)

    def _state(self) -> dict[str, np.ndarray]:
        return {f"inner.{k}": v for k, v in self.inner_._state().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> bool:
        inner = get_predictor(self.params["chosen"], seed=self.seed, target_transform="none")
        return _restore(inner, self._x_train_std(), self._z_train_std(),
                        {k[6:]: v for k, v in arrays.items() if k.startswith("inner.")},
                        self, "inner_")

    def _x_train_std(self) -> np.ndarray:
        return (self.X_train_ - self.x_mean_) / self.x_scale_

    def _z_train_std(self) -> np.ndarray:
        z = (self._normal_scores(self.y_train_) if self.target_transform == "normal"
             else self.y_train_)
        return (z - self.z_mean_) / self.z_scale_


def _restore(inner: Predictor, X: np.ndarray, z: np.ndarray, arrays: dict[str, np.ndarray],
             owner: Predictor, attr: str) -> bool:
    """Restore a nested predictor fitted on (X, z): from arrays if it can, else refit."""
    inner.X_train_, inner.y_train_ = X.copy(), z.copy()
    inner._fit_transform(X, z)
    if not inner._load_state(arrays):
        inner._fit(*inner._fit_transform(X, z))
    inner._fitted = True
    setattr(owner, attr, inner)
    return True


# ---------------------------------------------------------------------- persistence
def save_predictor(pred: Predictor, path: str | os.PathLike[str],
                   extra: dict[str, Any] | None = None) -> None:
    """Write a fitted predictor to ``path`` (``.npz``: JSON header + arrays, no pickle).

    Args:
        extra: JSON-able metadata stored alongside (e.g. the space and feature kinds).
    """
    if not pred._fitted:
        raise NotFittedError(f"predictor {pred.name!r} is not fitted; nothing to save")
    header = {"format": "nas-predictor", "version": FORMAT_VERSION, "name": pred.name,
              "config": pred.config(), "sklearn": _sklearn_version(), "extra": extra or {}}
    arrays = {"X_train": pred.X_train_, "y_train": pred.y_train_}
    arrays.update({f"state.{k}": np.asarray(v) for k, v in pred._state().items()})
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_predictor(path: str | os.PathLike[str]) -> tuple[Predictor, dict[str, Any]]:
    """Read a predictor written by :func:`save_predictor`; returns it and its ``extra``.

    Raises:
        PredictorFileError: the file is missing, corrupt or not a predictor file.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise PredictorFileError(f"{path}: no such predictor file") from None
    except NPZ_LOAD_ERRORS as e:
        raise PredictorFileError(f"{path}: not a readable predictor file "
                                 f"({npz_load_error(e)})") from None
    if "header" not in arrays:
        raise PredictorFileError(f"{path}: not a predictor file (an .npz archive without a "
                                 "'header'; `nas predictor fit` writes predictor files)")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
        if header.get("format") != "nas-predictor":
            raise ValueError("format is not 'nas-predictor'")
        if header.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {header.get('version')!r}, this nas reads "
                             f"{FORMAT_VERSION}")
        name = header["name"]
        if not isinstance(header["config"], dict):
            raise TypeError(f"config must be an object, got {type(header['config']).__name__}")
        config = dict(header["config"])
        extra = header.get("extra") or {}
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be an object, got {type(extra).__name__}")
        X = arrays.pop("X_train")
        y = arrays.pop("y_train")
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
        raise PredictorFileError(f"{path}: corrupt predictor header ({e})") from None
    if name not in PREDICTORS:
        _load_builtins()  # a predictor registered by another module of the package
    if name not in PREDICTORS:
        raise PredictorFileError(f"{path}: unknown predictor {name!r}; known: "
                                 f"{', '.join(list_predictors())}")
    if header.get("sklearn") != _sklearn_version():
        log.warning("%s: saved with scikit-learn %s, running %s: refitted models may predict "
                    "slightly differently", path, header.get("sklearn"), _sklearn_version())
    if (X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] < 2
            or not np.issubdtype(X.dtype, np.number) or not np.issubdtype(y.dtype, np.number)
            or not np.all(np.isfinite(X)) or not np.all(np.isfinite(y))):
        raise PredictorFileError(
            f"{path}: corrupt predictor (training data: X {X.dtype} {X.shape}, y {y.dtype} "
            f"{y.shape}; expected finite numbers, X of (rows, features), y one per row)")
    chosen = config.pop("chosen", None)
    cls = PREDICTORS[name]
    unknown = sorted(k for k in config
                     if k not in ("seed", "target_transform") and k not in cls.defaults)
    if unknown:  # saved before settings were checked: they were ignored then, and are now
        log.warning("%s: ignoring setting%s %s that predictor %r does not have (saved by an "
                    "earlier version, which ignored them too)", path,
                    "s" if len(unknown) > 1 else "", ", ".join(map(repr, unknown)), name)
        for k in unknown:
            del config[k]
    try:
        pred = get_predictor(name, **config)
    except (TypeError, ValueError) as e:  # UsageError included
        raise PredictorFileError(f"{path}: corrupt predictor settings ({e})") from None
    if chosen is not None:
        pred.params["chosen"] = chosen
    state = {k[6:]: v for k, v in arrays.items() if k.startswith("state.")}
    pred.X_train_, pred.y_train_ = X, y
    try:
        Xs, z = pred._fit_transform(_as_2d(X), np.asarray(y, dtype=np.float64))
        restored = pred._load_state(state)
        if not restored:
            pred._fit(Xs, z)
        # weights that do not match the features fail here, not at the first prediction
        probe = np.asarray(pred._predict(Xs[:2]))
        if probe.shape != (2,) or not np.all(np.isfinite(probe)):
            raise ValueError(f"it predicts {probe.shape} values for 2 of its own training "
                             "rows")
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
        raise PredictorFileError(f"{path}: stored weights or settings do not fit predictor "
                                 f"{name!r} ({type(e).__name__}: {e})") from None
    pred._fitted = True
    return pred, dict(extra)


