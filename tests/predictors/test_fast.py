"""Fast prediction paths give scikit-learn's predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from nas.predictors import fast
from nas.predictors.models import get_predictor


def _data(n: int = 300, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 5, size=(n, d)).astype(float)  # discrete: values sit on thresholds
    X[:, -1] = rng.normal(size=n)  # and one continuous feature
    y = X[:, 0] * X[:, 1] - X[:, 2] + np.sin(X[:, -1]) + 0.1 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("model", [
    GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0),
    GradientBoostingRegressor(n_estimators=30, max_depth=5, subsample=0.8, max_features=0.5,
                              random_state=0),
    RandomForestRegressor(n_estimators=20, random_state=0),  # deep trees: generic kernel
    ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0),
    DecisionTreeRegressor(max_depth=12, random_state=0),
], ids=["gbt3", "gbt5", "rf", "extra", "tree"])
@pytest.mark.parametrize("parallel", [False, True])
def test_forests_are_bit_identical(model, parallel: bool,  # noqa: ANN001
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "PARALLEL_MIN_ROWS", 0 if parallel else 10**9)
    X, y = _data()
    model.fit(X, y)
    f = fast.CompiledForest.from_sklearn(model)
    assert f is not None
    Xt, _ = _data(2000, seed=1)
    Xt = np.vstack([Xt, X])  # training rows too (exactly on split thresholds' sides)
    assert np.array_equal(f.predict(Xt), model.predict(Xt))
    with pytest.raises(ValueError, match="features"):
        f.predict(Xt[:, :3])


@pytest.mark.parametrize("parallel", [False, True])
def test_merged_forests_give_each_members_predictions(parallel: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "PARALLEL_MIN_ROWS", 0 if parallel else 10**9)
    X, y = _data()
    Xt = np.vstack([_data(1500, seed=4)[0], X])
    shallow = [GradientBoostingRegressor(n_estimators=30, max_depth=d, subsample=0.8,
                                         random_state=d).fit(X, y) for d in (3, 5)]
    deep = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    for models in (shallow, shallow + [deep]):  # perfect-tree and deep-tree kernels
        forests = [fast.CompiledForest.from_sklearn(m) for m in models]
        merged = fast.CompiledForest.merged(forests)
        out = merged.predict_groups(Xt)
        assert out.shape == (len(models), len(Xt))
        for row, m in zip(out, models):
            assert np.array_equal(row, m.predict(Xt))
        with pytest.raises(ValueError, match="predict_groups"):
            merged.predict(Xt)


def test_ensemble_runs_its_tree_members_as_one_forest() -> None:
    X, y = _data(120)
    p = get_predictor("ensemble", seed=0, members=["gbt", "mlp", "gbt"]).fit(X, y)
    [(forest, idx)] = p._merged()
    assert idx == [0, 2] and forest.n_groups == 2
    Xt, _ = _data(400, seed=5)
    alone = np.stack([m.predict(Xt) for m in p.members_])
    assert np.array_equal(p._all(Xt), alone)
    # a deep forest is not merged with the padded shallow ones (it would make them walk
    # row by row); two deep ones are
    p = get_predictor("ensemble", seed=0, members=["gbt", "rf", "gbt", "rf"]).fit(X, y)
    assert sorted(idx for _, idx in p._merged()) == [[0, 2], [1, 3]]
    alone = np.stack([m.predict(Xt) for m in p.members_])
    assert np.array_equal(p._all(Xt), alone)
    with pytest.raises(ValueError, match="no forests"):
        fast.CompiledForest.merged([])


def test_unsupported_models_fall_back() -> None:
    X, y = _data()
    assert fast.CompiledForest.from_sklearn(
        GradientBoostingRegressor(loss="huber", n_estimators=5).fit(X, y)) is None
    assert fast.CompiledForest.from_sklearn(SVR().fit(X, y)) is None
    assert fast.kernel_predict(SVR(kernel="poly").fit(X, y), X) is None
    assert fast.kernel_predict(RandomForestRegressor(n_estimators=2).fit(X, y), X) is None
    ard = GaussianProcessRegressor(RBF(length_scale=np.ones(X.shape[1])), optimizer=None).fit(X, y)
    assert fast.kernel_predict(ard, X) is None


@pytest.mark.parametrize("model", [
    SVR(C=3.0, epsilon=0.05, gamma="scale"),
    SVR(gamma=0.3),
    GaussianProcessRegressor(ConstantKernel(2.0) * Matern(3.0, nu=2.5) + WhiteKernel(0.1),
                             random_state=0),
    GaussianProcessRegressor(Matern(1.0, nu=1.5), normalize_y=True, alpha=1e-2),
    GaussianProcessRegressor(ConstantKernel() * Matern(1.0, nu=0.5), alpha=1e-2),
    GaussianProcessRegressor(ConstantKernel() * RBF(2.0) + WhiteKernel(), normalize_y=True),
], ids=["svr", "svr-gamma", "gp-m52", "gp-m32-norm", "gp-m12", "gp-rbf"])
def test_kernel_models_match(model) -> None:  # noqa: ANN001
    X, y = _data(150)
    model.fit(X, y)
    Xt, _ = _data(3000, seed=2)
    out = fast.kernel_predict(model, Xt, block=700)  # several blocks, a ragged last one
    assert out is not None
    assert np.allclose(out, model.predict(Xt), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["gbt", "rf", "svr", "gp", "ensemble"])
def test_predictors_use_the_fast_path_with_the_same_results(name: str) -> None:
    X, y = _data(120)
    params = {"n_estimators": 40} if name in ("gbt", "rf") else {}
    p = get_predictor(name, seed=0, **params).fit(X, y)
    Xt, _ = _data(500, seed=3)
    fast_pred = p.predict(Xt)
    try:
        fast.ENABLED = False
        slow_pred = p.predict(Xt)
    finally:
        fast.ENABLED = True
    assert np.allclose(fast_pred, slow_pred, rtol=1e-9, atol=1e-9)
    if name in ("gbt", "rf"):
        assert isinstance(p._fast(), fast.CompiledForest)
        assert np.array_equal(fast_pred, slow_pred)


@pytest.mark.parametrize("parallel", [False, True])
def test_nan_features_are_refused(parallel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # scikit-learn's forests route NaN by each node's missing_go_to_left; bins cannot, so a
    # compiled forest refuses NaN instead of silently sending it right at every split
    monkeypatch.setattr(fast, "PARALLEL_MIN_ROWS", 0 if parallel else 10**9)
    X, y = _data()
    shallow = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    deep = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
    Xt, _ = _data(5000, seed=2)  # several blocks of rows; the NaN in a late one
    Xt[4500, 1] = np.nan
    for model in (shallow, deep):
        f = fast.CompiledForest.from_sklearn(model)
        with pytest.raises(ValueError, match=r"NaN \(1 values; first at row 4500, feature 1\)"):
            f.predict(Xt)
        assert np.array_equal(f.predict(Xt[:4500]), model.predict(Xt[:4500]))
    merged = fast.CompiledForest.merged([fast.CompiledForest.from_sklearn(shallow)] * 2)
    with pytest.raises(ValueError, match="NaN"):
        merged.predict_groups(Xt)
