"""A featurizer and a model together: fit on configs, predict configs or encodings.

Prediction from encodings is vectorised and evaluates each distinct encoding once (search
proposes many repeats; a finite space such as ``nb201`` has only 15,625 distinct cells), then
scatters the results back.

>>> from nas.searchspace import get_space
>>> space = get_space("nb201")
>>> cfgs = space.sample_many(40, 0)
>>> y = [sum(c[p] == "nor_conv_3x3" for p in space.paths) for c in cfgs]
>>> p = ConfigPredictor.create(space, "ridge").fit(cfgs, y)
>>> p.predict_configs(cfgs[:2]).shape
(2,)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from nas.errors import UsageError
from nas.predictors.features import Featurizer
from nas.predictors.models import (
    Predictor,
    PredictorFileError,
    get_predictor,
    load_predictor,
    save_predictor,
)
from nas.predictors.zerocost import PROXY_VERSION, ProxySettings, proxies_changed_since


def _distinct(space: Any, enc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an encoding matrix and the inverse index. Uses an exact mixed-radix
    integer code per row when the space is small enough for one to fit in 63 bits; otherwise
    every row is kept (large spaces rarely repeat, and sorting wide rows costs more)."""
    radix = [len(space.values(p)) + 1 for p in space.paths]
    if enc.shape[0] == 0 or float(np.sum(np.log2(radix))) >= 62:
        return enc, np.arange(enc.shape[0])
    place = np.ones(len(radix), dtype=np.int64)  # exact integer place values (a float
    for i in range(1, len(radix)):              # cumprod is inexact above 2**53)
        place[i] = place[i - 1] * radix[i - 1]
    code = (enc.astype(np.int64) + 1) @ place
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return enc[first], inverse.ravel()


@dataclass
class ConfigPredictor:
    """A :class:`Featurizer` plus a :class:`Predictor`."""

    featurizer: Featurizer
    model: Predictor

    @classmethod
    def create(cls, space: Any, model: str = "gbt", *, kinds: Sequence[str] | None = None,
               seed: int = 0, **model_kwargs: Any) -> ConfigPredictor:
        """A new, unfitted predictor for configs of ``space``."""
        return cls(Featurizer(space, kinds=kinds), get_predictor(model, seed=seed,
                                                                  **model_kwargs))

    def fit(self, configs: Sequence[Any], y: Sequence[float] | np.ndarray) -> ConfigPredictor:
        """Fit on configs and their measured values."""
        self.model.fit(self.featurizer.transform(configs), np.asarray(y, dtype=np.float64))
        return self

    def predict_configs(self, configs: Sequence[Any]) -> np.ndarray:
        """Predictions for configs."""
        if self.featurizer.fast:
            return self.predict_encodings(self.featurizer.space.encode_many(list(configs)))
        return self.model.predict(self.featurizer.transform(configs))

    def predict_encodings(self, enc: np.ndarray, *, std: bool = False) -> Any:
        """Predictions (and standard deviations with ``std=True``) for rows of
        ``space.encode_many``; only for featurizers without zero-cost proxies."""
        if not self.featurizer.fast:
            raise UsageError("zero-cost proxy features need the configs' networks; use "
                             "predict_configs")
        enc = np.asarray(enc, dtype=np.float64)
        uniq, inverse = _distinct(self.featurizer.space, enc)
        X, _ = self.featurizer.from_encoding(uniq)
        if std:
            mean, s = self.model.predict_with_std(X)
            return mean[inverse], s[inverse]
        return self.model.predict(X)[inverse]

    def save(self, path: str | os.PathLike[str],
             extra: dict[str, Any] | None = None) -> None:
        """Save the model with the space, feature kinds, zero-cost proxies and proxy settings
        (batch, resolution, classes, seed) it expects (see
        :func:`nas.predictors.models.save_predictor`); ``extra``: more JSON-able metadata
        (e.g. the target's name), returned by :meth:`load_with_info`."""
        fz = self.featurizer
        save_predictor(self.model, path, extra={
            **(extra or {}), "space": fz.space.name, "space_fingerprint": fz.space.fingerprint,
            "kinds": list(fz.kinds), "proxies": list(fz.proxies),
            "proxy_settings": asdict(fz.proxy_settings), "proxy_version": PROXY_VERSION})

    @classmethod
    def load(cls, path: str | os.PathLike[str], space: Any,
             cache_dir: str | os.PathLike[str] | None = None) -> ConfigPredictor:
        """Load a predictor saved by :meth:`save` for configs of ``space``, with the feature
        kinds, proxies and proxy settings it was fitted with (files saved without proxy
        settings get the defaults, :class:`~nas.predictors.zerocost.ProxySettings`).

        Raises:
            UsageError: the file was saved for another space, or its proxy settings are not
                understood.
        """
        return cls.load_with_info(path, space, cache_dir)[0]

    @classmethod
    def load_with_info(cls, path: str | os.PathLike[str], space: Any,
                       cache_dir: str | os.PathLike[str] | None = None
                       ) -> tuple[ConfigPredictor, dict[str, Any]]:
        """:meth:`load`, plus the metadata saved with the predictor."""
        model, extra = load_predictor(path)
        if extra.get("space_fingerprint") not in (None, space.fingerprint):
            fitted = extra.get("space")
            what = (f"another definition of space {space.name!r} (its dimensions, values or "
                    f"constraints differ)" if fitted == space.name else f"space {fitted!r}")
            raise UsageError(f"{path}: the predictor was fitted for {what}, not for "
                             f"the space {space.name!r} given")
        saved_version = extra.get("proxy_version", 2)  # (not saved before version 3)
        kinds, proxies = extra.get("kinds"), extra.get("proxies")
        for field, v, ok in (
                ("proxy_version", saved_version,
                 isinstance(saved_version, int) and not isinstance(saved_version, bool)),
                ("kinds", kinds, kinds is None or _str_list(kinds)),
                ("proxies", proxies, proxies is None or _str_list(proxies))):
            if not ok:
                what = "an integer" if field == "proxy_version" else "a list of names"
                raise PredictorFileError(f"{path}: corrupt predictor header (extra.{field} "
                                         f"must be {what}, got {v!r})")
        if "zc" in (kinds or ()) and proxies_changed_since(saved_version, space.family):
            raise UsageError(
                f"{path}: predictor was fitted on zero-cost proxies of definition "
                f"{saved_version}; this version computes them by definition {PROXY_VERSION}, "
                f"whose values differ for family {space.family!r}: fit it again")
        try:
            fz = Featurizer(space, kinds=kinds, proxies=tuple(proxies or ("synflow",)),
                            proxy_settings=_proxy_settings(path, extra.get("proxy_settings")),
                            cache_dir=cache_dir)
        except UsageError as e:  # an unknown kind or proxy: the file's, not the caller's
            if isinstance(e, PredictorFileError) or str(e).startswith(f"{path}:"):
                raise
            raise PredictorFileError(f"{path}: corrupt predictor header ({e})") from None
        n_feat = len(fz.names())
        if model.X_train_.shape[1] != n_feat:
            raise PredictorFileError(
                f"{path}: corrupt predictor (fitted on {model.X_train_.shape[1]} features, but "
                f"its feature kinds {list(fz.kinds)} give {n_feat} for space {space.name!r})")
        return cls(fz, model), extra


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _proxy_settings(path: str | os.PathLike[str], saved: Any) -> ProxySettings:
    """The :class:`ProxySettings` saved with a predictor (defaults when none were saved)."""
    if saved is None:
        return ProxySettings()
    known = {f.name for f in fields(ProxySettings)}
    if not isinstance(saved, dict) or set(saved) - known or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in saved.values()):
        raise UsageError(f"{path}: proxy_settings not understood: {saved!r} (expected "
                         f"integer fields among {', '.join(sorted(known))})")
    return ProxySettings(**saved)
