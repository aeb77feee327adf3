from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.errors import UsageError
from nas.predictors.metrics import kendall_tau, rmse
from nas.predictors.models import (
    PredictorFileError,
    RidgePredictor,
    get_predictor,
    list_predictors,
    load_predictor,
    save_predictor,
)

FAST = {"auto": {"candidates": ["ridge", "gbt"], "folds": 3},
        "gbt": {"n_estimators": 200}, "mlp": {"epochs": 200},
        "ensemble": {"members": ["gbt", "mlp"], "weights": [2, 1]}}


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 5))
    y = 10 + np.sin(X[:, 0]) * 2 + X[:, 1] ** 2 + 0.5 * X[:, 2] + 0.05 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("name", list_predictors())
def test_beats_mean_baseline(name: str) -> None:
    X, y = _data(300, 0)
    Xt, yt = _data(400, 1)
    p = get_predictor(name, seed=0, **FAST.get(name, {})).fit(X, y)
    pred = p.predict(Xt)
    assert pred.shape == (400,)
    baseline = rmse(yt, np.full_like(yt, y.mean()))
    if isinstance(p, RidgePredictor):  # linear: a nonlinear target is only partly learnable
        assert rmse(yt, pred) < 0.9 * baseline
        assert kendall_tau(yt, pred) > 0.3
    else:
        assert rmse(yt, pred) < 0.5 * baseline
        assert kendall_tau(yt, pred) > 0.6


@pytest.mark.parametrize("name", list_predictors())
def test_save_load_identical(name: str, tmp_path: Path) -> None:
    X, y = _data(120, 2)
    Xt, _ = _data(50, 3)
    p = get_predictor(name, seed=3, **FAST.get(name, {})).fit(X, y)
    path = tmp_path / f"{name}.npz"
    save_predictor(p, path, extra={"space": "toy"})
    q, extra = load_predictor(path)
    assert extra == {"space": "toy"}
    assert q.name == name
    np.testing.assert_array_equal(p.predict(Xt), q.predict(Xt))
    if p.supports_std:
        m1, s1 = p.predict_with_std(Xt)
        m2, s2 = q.predict_with_std(Xt)
        np.testing.assert_array_equal(s1, s2)
        assert s1.shape == (50,) and np.all(s1 >= 0) and np.any(s1 > 0)


def test_uncertainty_models_and_errors(tmp_path: Path) -> None:
    X, y = _data(60, 4)
    with pytest.raises(UsageError, match="does not report uncertainty"):
        get_predictor("ridge").fit(X, y).predict_with_std(X)
    with pytest.raises(UsageError, match="unknown predictor 'nope'; known: auto"):
        get_predictor("nope")
    # a model's settings are checked: a typo is not ignored (and saved with the model)
    with pytest.raises(UsageError, match=r"predictor 'rf': unknown option 'n_trees' \(known: "
                       r"max_features, min_samples_leaf, n_estimators\)"):
        get_predictor("rf", n_trees=5)
    with pytest.raises(UsageError, match="option n_estimators: must be an integer >= 1"):
        get_predictor("gbt", n_estimators=2.5)
    with pytest.raises(UsageError, match="option subsample: must be a number in"):
        get_predictor("gbt", subsample=1.5)
    with pytest.raises(UsageError, match="'nope' is not a predictor to combine; known: gbt"):
        get_predictor("ensemble", members=["gbt", "nope"])
    with pytest.raises(UsageError, match="unknown option 'alpha' \\(known: none\\)"):
        get_predictor("ridge", alpha=1.0)
    assert get_predictor("rf", n_estimators=np.int64(5)).params == {"n_estimators": 5}
    # every setting has one default and one range, and each default is an allowed value
    from nas.predictors.models import PREDICTORS

    for name, cls in PREDICTORS.items():
        assert set(cls.defaults) == set(cls.option_ranges), name
        given = {k: v for k, v in cls.defaults.items() if v is not None}
        assert get_predictor(name, **given).params == given
    # the settings reach the model: a forest of 3 trees has 3 trees
    assert len(get_predictor("rf", n_estimators=3).fit(X, y).model_.estimators_) == 3
    # a file saved before settings were checked, with one the model never had: it loads,
    # with a warning, as it predicted then (the setting was ignored then too)
    import json

    old = tmp_path / "old.npz"
    save_predictor(get_predictor("rf", n_estimators=20).fit(X, y), old)
    with np.load(old, allow_pickle=False) as f:
        header = json.loads(f["header"].tobytes().decode())
    header["config"]["n_trees"] = 5
    _edited(old, tmp_path / "old2.npz",
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    p, _ = load_predictor(tmp_path / "old2.npz")
    assert p.params == {"n_estimators": 20}
    np.testing.assert_array_equal(p.predict(X), load_predictor(old)[0].predict(X))
    with pytest.raises(UsageError, match="fitted on 5 features"):
        get_predictor("ridge").fit(X, y).predict(X[:, :3])
    with pytest.raises(UsageError, match="NaN"):
        get_predictor("ridge").fit(X, np.where(np.arange(60) == 3, np.nan, y))
    # targets whose spread overflows float64: refused, not a NaN-predicting model
    with pytest.raises(UsageError, match="overflow 64-bit floats"):
        get_predictor("ridge", target_transform="none").fit(X, y * 1e300)
    assert np.isfinite(get_predictor("ridge").fit(X, y * 1e300).predict(X)).all()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(PredictorFileError, match="bad.npz"):
        load_predictor(bad)
    with pytest.raises(PredictorFileError, match="no such"):
        load_predictor(tmp_path / "missing.npz")
    # a real predictor file cut short, or with a damaged member: one clear error each
    good = tmp_path / "good.npz"
    save_predictor(get_predictor("ridge").fit(X, y), good)
    raw = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PredictorFileError, match=r"cut.npz: .*corrupt or truncated"):
        load_predictor(tmp_path / "cut.npz")
    damaged = bytearray(raw)
    mid = len(raw) // 2
    damaged[mid: mid + 64] = bytes(64)  # inside a compressed member
    (tmp_path / "damaged.npz").write_bytes(bytes(damaged))
    with pytest.raises(PredictorFileError, match=r"damaged.npz: .*corrupt or truncated"):
        load_predictor(tmp_path / "damaged.npz")
    import pickle

    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(PredictorFileError, match="pickled data is never loaded"):
        load_predictor(tmp_path / "pickled.npz")


def _edited(src: Path, dst: Path, **changes: np.ndarray) -> Path:
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    np.savez(dst, **arrays)
    return dst


def test_tampered_predictor_files_are_refused_at_load(tmp_path: Path) -> None:
    import json

    X, y = _data(60, 4)
    good = tmp_path / "good.npz"
    save_predictor(get_predictor("ridge").fit(X, y), good)
    # training targets that do not match the rows
    with pytest.raises(PredictorFileError, match=r"ylen.npz: corrupt predictor \(training data"):
        load_predictor(_edited(good, tmp_path / "ylen.npz", y_train=y[:10]))
    # stored weights of another width: caught at load, not at the first prediction
    with pytest.raises(PredictorFileError, match=r"state.npz: stored weights .* 'ridge'"):
        load_predictor(_edited(good, tmp_path / "state.npz", **{"state.coef": np.ones(3)}))
    # a settings value the model cannot take
    with np.load(good, allow_pickle=False) as f:
        header = json.loads(f["header"].tobytes().decode())
    header["config"]["seed"] = "abc"
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with pytest.raises(PredictorFileError, match=r"cfg.npz: corrupt predictor settings"):
        load_predictor(_edited(good, tmp_path / "cfg.npz", header=blob))


def test_a_saved_layerwise_predictor_loads_in_a_new_process(tmp_path: Path) -> None:
    """``layerwise`` registers from another module of the package: loading must find it
    in a process that has not imported that module yet."""
    import subprocess
    import sys

    X, y = _data(60, 4)
    path = tmp_path / "lw.npz"
    p = get_predictor("layerwise").fit(X, y)
    assert p.target_transform == "none"
    save_predictor(p, path)
    code = ("import sys, numpy as np; from nas.predictors.models import load_predictor; "
            "q, _ = load_predictor(sys.argv[1]); print(q.name, q.target_transform, "
            "repr(float(q.predict(np.load(sys.argv[2]))[0])))")
    np.save(tmp_path / "x.npy", X[:1])
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    name, transform, value = out.stdout.split()
    assert (name, transform) == ("layerwise", "none")
    assert float(value) == p.predict(X[:1])[0]


def test_auto_reports_uncertainty_when_its_choice_does(tmp_path: Path) -> None:
    X, y = _data(80, 6)
    gp = get_predictor("auto", candidates=["gp"], folds=3).fit(X, y)
    mean, std = gp.predict_with_std(X[:5])
    assert std.shape == (5,) and np.all(std >= 0)
    np.testing.assert_allclose(mean, gp.predict(X[:5]), rtol=1e-9)  # (fast path vs sklearn)
    save_predictor(gp, tmp_path / "a.npz")
    assert load_predictor(tmp_path / "a.npz")[0].supports_std
    ridge = get_predictor("auto", candidates=["ridge"], folds=3).fit(X, y)
    assert not ridge.supports_std
    with pytest.raises(UsageError, match=r"'auto' \(it chose 'ridge'\) does not report"):
        ridge.predict_with_std(X[:5])


def test_same_seed_same_predictions() -> None:
    X, y = _data(100, 5)
    for name in ("rf", "gbt", "mlp"):
        a = get_predictor(name, seed=7, **FAST.get(name, {})).fit(X, y).predict(X)
        b = get_predictor(name, seed=7, **FAST.get(name, {})).fit(X, y).predict(X)
        np.testing.assert_array_equal(a, b)


def test_config_predictor_dedupes_and_round_trips(tmp_path: Path) -> None:
    from nas.predictors.pipeline import ConfigPredictor
    from nas.searchspace import get_space

    space = get_space("nb201")
    cfgs = space.sample_many(80, 0)
    y = np.array([sum(c[p] == "nor_conv_3x3" for p in space.paths) for c in cfgs], float)
    p = ConfigPredictor.create(space, "rf", seed=1).fit(cfgs, y)
    enc = space.encode_many(cfgs + cfgs[:10])
    pred = p.predict_encodings(enc)
    np.testing.assert_array_equal(pred[80:], pred[:10])
    X = p.featurizer.transform(cfgs)
    np.testing.assert_allclose(pred[:80], p.model.predict(X))
    mean, std = p.predict_encodings(enc, std=True)
    np.testing.assert_allclose(mean, pred)
    p.save(tmp_path / "p.npz")
    q = ConfigPredictor.load(tmp_path / "p.npz", space)
    np.testing.assert_array_equal(q.predict_configs(cfgs), p.predict_configs(cfgs))
    with pytest.raises(UsageError, match="fitted for space 'nb201', not for the space "
                                         "'resnet_like'"):
        ConfigPredictor.load(tmp_path / "p.npz", get_space("resnet_like"))
    # the same name, another definition (one value fewer)
    from nas.searchspace import Space

    d = space.to_dict()
    d["dims"][0]["values"] = d["dims"][0]["values"][:-1]
    with pytest.raises(UsageError, match="fitted for another definition of space 'nb201'"):
        ConfigPredictor.load(tmp_path / "p.npz", Space.from_dict(d))


def test_config_predictor_round_trips_proxy_settings(tmp_path: Path) -> None:
    from nas.predictors.features import Featurizer
    from nas.predictors.pipeline import ConfigPredictor
    from nas.predictors.zerocost import ProxySettings
    from nas.searchspace import get_space

    space = get_space("nb201")
    cfgs = space.sample_many(10, 0)
    settings = ProxySettings(batch=2, resolution=8, seed=7)
    fz = Featurizer(space, kinds=["zc"], proxies=["synflow"], proxy_settings=settings)
    p = ConfigPredictor(fz, get_predictor("ridge", target_transform="none"))
    p.fit(cfgs[:7], np.arange(7.0))
    p.save(tmp_path / "zc.npz")
    q = ConfigPredictor.load(tmp_path / "zc.npz", space)
    assert q.featurizer.proxy_settings == settings
    np.testing.assert_array_equal(q.predict_configs(cfgs[7:]), p.predict_configs(cfgs[7:]))
    # a file saved without proxy settings (older versions) loads with the defaults
    model, extra = load_predictor(tmp_path / "zc.npz")
    del extra["proxy_settings"]
    save_predictor(model, tmp_path / "old.npz", extra=extra)
    assert ConfigPredictor.load(tmp_path / "old.npz", space).featurizer.proxy_settings == \
        ProxySettings()
    extra["proxy_settings"] = {"batch": 2, "colour": 3}
    save_predictor(model, tmp_path / "bad.npz", extra=extra)
    with pytest.raises(UsageError, match="proxy_settings not understood"):
        ConfigPredictor.load(tmp_path / "bad.npz", space)


def test_std_beyond_the_training_targets_is_not_zero() -> None:
    """With the default rank-normal target transform, a prediction beyond every training
    target kept its mean clamped (documented) but lost its uncertainty (std 0): an
    acquisition function saw the most promising candidates as certain."""
    from nas.predictors.models import get_predictor

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (40, 2))
    y = X @ np.array([1.0, 1.0]) + 10
    m = get_predictor("ensemble", seed=0, members=["mlp", "ridge"]).fit(X, y)
    _, std = m.predict_with_std(np.array([[2.0, 2.0], [6.0, 6.0]]))
    assert np.all(std > 0.05)
