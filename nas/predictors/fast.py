"""Fast prediction for fitted scikit-learn models: search asks for 10^5 predictions at a time.

scikit-learn predicts a tree ensemble tree by tree, each tree over all rows, so the whole
feature matrix streams through memory once per tree (1000 times for our ``gbt``); its kernel
methods build the full test-by-train distance matrix with ``cdist``. Here:

- :class:`CompiledForest` copies the fitted trees into flat arrays and evaluates them with
  numba kernels over blocks of rows, in parallel. A row is first reduced to its *bin* per
  feature (how many of the forest's split thresholds on that feature lie below its value;
  our features are discrete, a dozen bins at most, so a block of rows fits in L1 as bytes),
  and a split test ``x <= threshold_j`` becomes ``bin <= j``, exactly. Within a block one
  tree at a time visits every row, eight traversals in flight without branches. Trees of
  depth <= :data:`PERFECT_DEPTH` are padded into perfect binary trees (a shallow leaf
  becomes a node that always goes left, with the leaf's value below it); deeper ones keep
  their nodes, leaves looping onto themselves. The arithmetic is scikit-learn's (float32
  features against float64 thresholds; leaf values accumulated in the same order), so
  predictions are bit-identical.
- :func:`kernel_predict` evaluates RBF-SVR and Matérn/RBF Gaussian-process means with
  squared distances from one matrix product per block of rows (BLAS), identical to
  scikit-learn's up to floating-point rounding (relative 1e-9).

Anything not recognised (another loss, kernel or model) returns ``None`` and the caller falls
back to scikit-learn.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ENABLED = True  # set to False to predict through scikit-learn only
PERFECT_DEPTH = 8  # pad trees up to this depth into perfect trees (2^8 leaves each)
_BLOCK = 512  # rows per parallel work item (perfect trees)
_BLOCK_DEEP = 2048  # rows per work item for deep trees (less tree traffic per row)

try:  # numba ships with pymoo's AGE-MOEA dependency; without it, scikit-learn predicts
    import numba

    _njit = {True: numba.njit(cache=True, nogil=True, fastmath=False, parallel=True),
             False: numba.njit(cache=True, nogil=True, fastmath=False, parallel=False)}
except Exception:  # pragma: no cover - numba missing or broken
    numba = None


def _perfect_kernel() -> Any:
    def run(B: np.ndarray, feat: np.ndarray, cut: np.ndarray, leaf: np.ndarray,
            depth: int, init: np.ndarray, block: int) -> np.ndarray:
        n = B.shape[0]
        n_trees = feat.shape[0]
        out = np.empty(n)
        first_leaf = 2**depth - 1
        lanes = 8
        n_blocks = (n + block - 1) // block
        for b in numba.prange(n_blocks):
            lo = b * block
            hi = min(n, lo + block)
            acc = init[lo:hi].copy()
            a = np.zeros(lanes, np.int64)
            for t in range(n_trees):  # one small tree at a time over a block of rows
                ft = feat[t]
                ct = cut[t]
                lf = leaf[t]
                i = lo
                while i < hi:  # eight independent traversals in flight
                    m = min(lanes, hi - i)
                    for k in range(m):
                        a[k] = 0
                    for _ in range(depth):
                        for k in range(m):
                            node = a[k]
                            a[k] = 2 * node + 1 + np.int64(B[i + k, ft[node]] > ct[node])
                    for k in range(m):
                        acc[i + k - lo] += lf[a[k] - first_leaf]
                    i += m
            out[lo:hi] = acc
        return out

    return run


def _generic_kernel() -> Any:
    def run(B: np.ndarray, feat: np.ndarray, cut: np.ndarray, child: np.ndarray,
            value: np.ndarray, roots: np.ndarray, depths: np.ndarray,
            init: np.ndarray, block: int) -> np.ndarray:
        n = B.shape[0]
        n_trees = roots.shape[0]
        out = np.empty(n)
        lanes = 8
        n_blocks = (n + block - 1) // block
        for b in numba.prange(n_blocks):
            lo = b * block
            hi = min(n, lo + block)
            acc = init[lo:hi].copy()
            a = np.zeros(lanes, np.int64)
            for t in range(n_trees):  # one tree at a time over a block of rows
                root = roots[t]
                depth = depths[t]
                i = lo
                while i < hi:  # eight independent traversals in flight, branch-free:
                    m = min(lanes, hi - i)  # leaves loop onto themselves
                    for k in range(m):
                        a[k] = root
                    for _ in range(depth):
                        for k in range(m):
                            node = a[k]
                            a[k] = child[node, np.int64(B[i + k, feat[node]] > cut[node])]
                    for k in range(m):
                        acc[i + k - lo] += value[a[k]]
                    i += m
            out[lo:hi] = acc
        return out

    return run


_KERNELS: dict[tuple[str, bool], Any] = {}
# below this many rows a single thread is faster: waking the pool costs more than it saves
# (and, on a loaded machine, waits for a core)
PARALLEL_MIN_ROWS = 8192


def _kernel(kind: str, n_rows: int) -> Any:
    parallel = n_rows >= PARALLEL_MIN_ROWS
    if (kind, parallel) not in _KERNELS:
        make = _perfect_kernel if kind == "perfect" else _generic_kernel
        _KERNELS[kind, parallel] = _njit[parallel](make())
    return _KERNELS[kind, parallel]


def _pad_perfect(tree: Any, depth: int, scale: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sklearn ``tree_`` as a perfect tree of ``depth``: features and thresholds of the
    ``2^depth - 1`` internal nodes (breadth-first), ``scale`` x the ``2^depth`` leaf values."""
    n_int = 2**depth - 1
    feat = np.zeros(n_int, dtype=np.int64)
    thr = np.full(n_int, np.inf)
    leaf = np.empty(2**depth)
    left, right = tree.children_left, tree.children_right
    value = tree.value[:, 0, 0]
    stack = [(0, 0)]  # (sklearn node, perfect position)
    while stack:
        node, pos = stack.pop()
        if pos >= n_int:  # at the leaf level
            leaf[pos - n_int] = scale * value[node]
            continue
        if left[node] < 0:  # a shallow leaf: always go left, the value below
            stack.append((node, 2 * pos + 1))
            # the right subtree is never reached; fill it for completeness
            stack.append((node, 2 * pos + 2))
            continue
        feat[pos] = tree.feature[node]
        thr[pos] = tree.threshold[node]
        stack.append((left[node], 2 * pos + 1))
        stack.append((right[node], 2 * pos + 2))
    return feat, thr, leaf


class CompiledForest:
    """The trees of a fitted scikit-learn ``GradientBoostingRegressor`` (squared error),
    ``RandomForestRegressor``/``ExtraTreesRegressor`` or ``DecisionTreeRegressor`` as flat
    arrays, predicting bit-identically to scikit-learn (see the module docstring).

    >>> from sklearn.ensemble import GradientBoostingRegressor
    >>> X = np.random.default_rng(0).normal(size=(200, 4)); y = X[:, 0] * X[:, 1]
    >>> m = GradientBoostingRegressor(n_estimators=20, max_depth=3).fit(X, y)
    >>> f = CompiledForest.from_sklearn(m)
    >>> bool(np.array_equal(f.predict(X), m.predict(X)))
    True
    """

    def __init__(self, trees: list[Any], scales: list[float], init: float, divisor: float
                 ) -> None:
        self.init = float(init)
        self.divisor = float(divisor)
        self.n_features = int(trees[0].n_features)
        depth = max(int(t.max_depth) for t in trees)
        self.depth = depth
        # every split threshold of every tree, per feature: a row is then represented by
        # its bin per feature (how many thresholds lie below its value), and the test
        # "x <= threshold number j" becomes "bin <= j", exactly
        feats = np.concatenate([t.feature[t.children_left >= 0] for t in trees])
        thrs = np.concatenate([t.threshold[t.children_left >= 0] for t in trees])
        self.cuts = [np.unique(thrs[feats == j]) for j in range(self.n_features)]
        most = max((len(c) for c in self.cuts), default=0)
        self.bin_dtype = (np.uint8 if most < 255 else np.uint16 if most < 65535
                          else np.uint32)
        never = np.iinfo(self.bin_dtype).max  # a padding node: never go right

        def cut_index(feature: np.ndarray, threshold: np.ndarray) -> np.ndarray:
            out = np.full(len(feature), never, dtype=np.int64)
            for j in np.unique(feature[np.isfinite(threshold)]).tolist():
                sel = (feature == j) & np.isfinite(threshold)
                out[sel] = np.searchsorted(self.cuts[j], threshold[sel])
            return out.astype(self.bin_dtype)

        if depth <= PERFECT_DEPTH:
            parts = [_pad_perfect(t, depth, s) for t, s in zip(trees, scales)]
            feat = np.stack([p[0] for p in parts])
            thr = np.stack([p[1] for p in parts])
            cut = cut_index(feat.ravel(), thr.ravel()).reshape(feat.shape)
            self.kind = "perfect"
            self.arrays: tuple[np.ndarray, ...] = (
                np.ascontiguousarray(feat, dtype=np.int32), np.ascontiguousarray(cut),
                np.ascontiguousarray(np.stack([p[2] for p in parts])))
        else:
            self.kind = "generic"
            offs = np.cumsum([0] + [t.node_count for t in trees])
            feat = np.concatenate([t.feature for t in trees]).astype(np.int64)
            leaf = np.concatenate([t.children_left < 0 for t in trees])
            thr = np.where(leaf, np.inf, np.concatenate([t.threshold for t in trees]))
            feat = np.where(leaf, 0, feat)
            own = np.arange(offs[-1], dtype=np.int64)  # leaves point to themselves
            left = np.where(leaf, own, np.concatenate(
                [t.children_left + o for t, o in zip(trees, offs)])).astype(np.int64)
            right = np.where(leaf, own, np.concatenate(
                [t.children_right + o for t, o in zip(trees, offs)])).astype(np.int64)
            value = np.concatenate([s * t.value[:, 0, 0] for t, s in zip(trees, scales)])
            depths = np.array([t.max_depth for t in trees], dtype=np.int64)
            child = np.ascontiguousarray(np.stack([left, right], axis=1), dtype=np.int32)
            self.arrays = (feat.astype(np.int32), cut_index(feat, thr), child, value,
                           offs[:-1].astype(np.int64), depths)

    @classmethod
    def from_sklearn(cls, model: Any) -> CompiledForest | None:
        """Compile ``model``; ``None`` if it is not a supported single-output regressor or
        numba is unavailable."""
        if numba is None:
            return None
        name = type(model).__name__
        try:
            if name == "GradientBoostingRegressor":
                if getattr(model, "loss", None) != "squared_error":
                    return None
                const = getattr(model.init_, "constant_", None)
                if const is None or np.size(const) != 1:
                    return None
                trees = [e.tree_ for e in model.estimators_[:, 0]]
                lr = float(model.learning_rate)
                return cls(trees, [lr] * len(trees), float(np.ravel(const)[0]), 1.0)
            if name in ("RandomForestRegressor", "ExtraTreesRegressor"):
                if getattr(model, "n_outputs_", 1) != 1:
                    return None
                trees = [e.tree_ for e in model.estimators_]
                return cls(trees, [1.0] * len(trees), 0.0, float(len(trees)))
            if name == "DecisionTreeRegressor":
                if model.n_outputs_ != 1:
                    return None
                return cls([model.tree_], [1.0], 0.0, 1.0)
        except AttributeError:
            return None
        return None

    def bins(self, X: np.ndarray) -> np.ndarray:
        """Each row's bin per feature (scikit-learn's float32 view of the features)."""
        X32 = np.asarray(X, dtype=np.float32)
        if X32.ndim != 2 or X32.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {X32.shape}")
        B = np.zeros(X32.shape, dtype=self.bin_dtype)
        for j, c in enumerate(self.cuts):
            if len(c):
                B[:, j] = np.searchsorted(c, X32[:, j].astype(np.float64), side="left")
        return B

    def predict(self, X: np.ndarray) -> np.ndarray:
        B = self.bins(X)
        init = np.full(len(B), self.init)
        if self.kind == "perfect":
            feat, cut, leaf = self.arrays
            out = _kernel("perfect", len(B))(B, feat, cut, leaf, self.depth, init, _BLOCK)
        else:
            out = _kernel("generic", len(B))(B, *self.arrays, init, _BLOCK_DEEP)
        return out / self.divisor if self.divisor != 1.0 else out


# ---------------------------------------------------------------------- kernel methods
def _sq_dists(A: np.ndarray, B: np.ndarray, B_sq: np.ndarray) -> np.ndarray:
    D = A @ B.T
    D *= -2.0
    D += np.einsum("ij,ij->i", A, A)[:, None]
    D += B_sq[None, :]
    np.maximum(D, 0.0, out=D)
    return D


def _matern_or_rbf(kernel: Any) -> tuple[str, float, float, float] | None:
    """``(kind, constant, length_scale, nu)`` for ``C * Matern|RBF (+ White)`` kernels
    with a scalar length scale, else ``None``."""
    from sklearn.gaussian_process.kernels import (
        RBF,
        ConstantKernel,
        Matern,
        Product,
        Sum,
        WhiteKernel,
    )

    k = kernel
    if isinstance(k, Sum) and isinstance(k.k2, WhiteKernel):
        k = k.k1  # white noise does not enter k(x*, X_train) for x* != X_train
    const = 1.0
    if isinstance(k, Product) and isinstance(k.k1, ConstantKernel):
        const, k = float(k.k1.constant_value), k.k2
    if np.ndim(getattr(k, "length_scale", None)) != 0:
        return None
    if isinstance(k, Matern) and k.nu in (0.5, 1.5, 2.5):
        return "matern", const, float(k.length_scale), float(k.nu)
    if isinstance(k, RBF) and not isinstance(k, Matern):
        return "rbf", const, float(k.length_scale), np.inf
    return None


def kernel_supported(model: Any) -> bool:
    """Whether :func:`kernel_predict` handles this fitted model."""
    name = type(model).__name__
    if name == "SVR":
        return model.kernel == "rbf"
    if name == "GaussianProcessRegressor":
        return (_matern_or_rbf(model.kernel_) is not None and np.ndim(model.alpha_) == 1
                and np.size(getattr(model, "_y_train_std", 1.0)) == 1
                and np.size(getattr(model, "_y_train_mean", 0.0)) == 1)
    return False


def kernel_predict(model: Any, X: np.ndarray, block: int = 4096) -> np.ndarray | None:
    """Predictions of a fitted ``SVR`` (RBF kernel) or ``GaussianProcessRegressor``
    (posterior mean; ``C * Matern(nu=0.5/1.5/2.5) or RBF + White`` kernels), or ``None``
    when :func:`kernel_supported` says no."""
    if not kernel_supported(model):
        return None
    X = np.asarray(X, dtype=np.float64)
    out = np.empty(len(X))
    if type(model).__name__ == "SVR":
        S = np.asarray(model.support_vectors_, dtype=np.float64)
        coef = np.asarray(model.dual_coef_, dtype=np.float64)[0]
        gamma = float(model._gamma)
        S_sq = np.einsum("ij,ij->i", S, S)
        for s in range(0, len(X), block):
            D = _sq_dists(X[s:s + block], S, S_sq)
            D *= -gamma
            np.exp(D, out=D)
            out[s:s + block] = D @ coef
        return out + float(model.intercept_[0])
    kind, const, ls, nu = _matern_or_rbf(model.kernel_)  # type: ignore[misc]
    T = np.asarray(model.X_train_, dtype=np.float64) / ls
    alpha = np.asarray(model.alpha_, dtype=np.float64)
    T_sq = np.einsum("ij,ij->i", T, T)
    for s in range(0, len(X), block):
        D = _sq_dists(X[s:s + block] / ls, T, T_sq)
        if kind == "rbf":
            K = np.exp(-0.5 * D)
        else:
            d = np.sqrt(D)
            if nu == 0.5:
                K = np.exp(-d)
            elif nu == 1.5:
                d *= np.sqrt(3.0)
                K = (1.0 + d) * np.exp(-d)
            else:
                d *= np.sqrt(5.0)
                K = (1.0 + d + d * d / 3.0) * np.exp(-d)
        out[s:s + block] = const * (K @ alpha)
    y_std = float(np.ravel(getattr(model, "_y_train_std", 1.0))[0])
    y_mean = float(np.ravel(getattr(model, "_y_train_mean", 0.0))[0])
    return out * y_std + y_mean
