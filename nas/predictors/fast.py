"""Fast prediction for fitted scikit-learn models: search asks for 10^5 predictions at a time.

scikit-learn predicts a tree ensemble tree by tree, each tree over all rows, so the whole
feature matrix streams through memory once per tree (1000 times for our ``gbt``); its kernel
methods build the full test-by-train distance matrix with ``cdist``. Here:

- :class:`CompiledForest` copies the fitted trees into flat arrays and evaluates them with
  numba kernels over blocks of rows, in parallel. A row is first reduced to its *bin* per
  feature (how many of the forest's split thresholds on that feature lie below its value;
  our features are discrete, a dozen bins at most, so a block of rows fits in L1 as bytes),
  and a split test ``x <= threshold_j`` becomes ``bin <= j``, exactly. Within a block one
  tree at a time visits every row. Trees of depth <= :data:`PERFECT_DEPTH` are padded into
  perfect binary trees (a shallow leaf becomes a node that always goes left, with the leaf's
  value below it) and evaluated level by level: each node of a level compares one feature's
  contiguous bins for all rows of the block, and a row keeps the result of the node it sits
  at; the positions are bytes, so these loops run 32 rows per SIMD instruction, with no
  gathers until the leaf values (5-6x faster than walking each row down its path, even for
  depth-8 trees). Deeper trees keep their nodes and are walked row by row, eight
  traversals in flight, leaves looping onto themselves. The arithmetic is scikit-learn's
  (float32 features against float64 thresholds; leaf values accumulated in the same order),
  so predictions are bit-identical. NaN features are refused (``ValueError``) rather than
  routed: scikit-learn's forests send a missing value down each node's
  ``missing_go_to_left`` side, which bins cannot express (the predictors reject NaN before
  this). Several forests (an ensemble's members) can share one binning and one kernel call.
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
PERFECT_DEPTH = 8  # pad trees up to this depth into perfect trees (2^8 leaves; at most 8)
_BLOCK = 2048  # rows per parallel work item (perfect trees)
_BLOCK_DEEP = 2048  # rows per work item for deep trees (less tree traffic per row)

try:  # numba ships with pymoo's AGE-MOEA dependency; without it, scikit-learn predicts
    import numba

    _njit = {True: numba.njit(cache=True, nogil=True, fastmath=False, parallel=True),
             False: numba.njit(cache=True, nogil=True, fastmath=False, parallel=False)}
except Exception:  # pragma: no cover - numba missing or broken
    numba = None


def _perfect_kernel() -> Any:
    def run(Bt: np.ndarray, feat: np.ndarray, cut: np.ndarray, leaf: np.ndarray,
            group: np.ndarray, depth: int, init: np.ndarray, block: int) -> np.ndarray:
        n = Bt.shape[1]
        n_trees = feat.shape[0]
        out = np.empty((init.shape[0], n))
        n_blocks = (n + block - 1) // block
        for b in numba.prange(n_blocks):
            lo = b * block
            hi = min(n, lo + block)
            m = hi - lo
            acc = np.empty((init.shape[0], m))
            for g in range(init.shape[0]):
                acc[g, :] = init[g]
            # each row's node within the current level, and its test there; bytes (a
            # level has at most 2^PERFECT_DEPTH = 256 nodes), so 32 rows per SIMD op
            pos = np.empty(m, np.uint8)
            go = np.empty(m, np.uint8)
            for t in range(n_trees):  # one small tree at a time over a block of rows
                ft = feat[t]
                ct = cut[t]
                pos[:] = 0
                first = 0  # the level's first node (breadth-first numbering)
                for level in range(depth):
                    # level by level: every node of the level tests all rows (contiguous
                    # bytes of one feature), and a row keeps the test of the node it is at;
                    # no gathers, so the loops run in SIMD lanes
                    go[:] = 0
                    for j in range(1 << level):
                        row = Bt[ft[first + j], lo:hi]
                        c = ct[first + j]
                        here = np.uint8(j)
                        for r in range(m):
                            go[r] |= np.uint8(pos[r] == here) & np.uint8(row[r] > c)
                    for r in range(m):
                        pos[r] = (pos[r] << np.uint8(1)) | go[r]
                    first += 1 << level
                lf = leaf[t]
                a = acc[group[t]]
                for r in range(m):
                    a[r] += lf[pos[r]]
            out[:, lo:hi] = acc
        return out

    return run


def _generic_kernel() -> Any:
    def run(B: np.ndarray, feat: np.ndarray, cut: np.ndarray, child: np.ndarray,
            value: np.ndarray, roots: np.ndarray, depths: np.ndarray, group: np.ndarray,
            init: np.ndarray, block: int) -> np.ndarray:
        n = B.shape[0]
        n_trees = roots.shape[0]
        out = np.empty((init.shape[0], n))
        n_blocks = (n + block - 1) // block
        for b in numba.prange(n_blocks):
            lo = b * block
            hi = min(n, lo + block)
            acc = np.empty((init.shape[0], hi - lo))
            for g in range(init.shape[0]):
                acc[g, :] = init[g]
            for t in range(n_trees):  # one tree at a time over a block of rows
                root = roots[t]
                depth = depths[t]
                at = acc[group[t]]
                i = lo
                # eight independent traversals in flight, branch-free (leaves loop onto
                # themselves), their nodes in registers
                while i + 8 <= hi:
                    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = root
                    for _ in range(depth):
                        a0 = child[a0, np.int64(B[i, feat[a0]] > cut[a0])]
                        a1 = child[a1, np.int64(B[i + 1, feat[a1]] > cut[a1])]
                        a2 = child[a2, np.int64(B[i + 2, feat[a2]] > cut[a2])]
                        a3 = child[a3, np.int64(B[i + 3, feat[a3]] > cut[a3])]
                        a4 = child[a4, np.int64(B[i + 4, feat[a4]] > cut[a4])]
                        a5 = child[a5, np.int64(B[i + 5, feat[a5]] > cut[a5])]
                        a6 = child[a6, np.int64(B[i + 6, feat[a6]] > cut[a6])]
                        a7 = child[a7, np.int64(B[i + 7, feat[a7]] > cut[a7])]
                    r = i - lo
                    at[r] += value[a0]
                    at[r + 1] += value[a1]
                    at[r + 2] += value[a2]
                    at[r + 3] += value[a3]
                    at[r + 4] += value[a4]
                    at[r + 5] += value[a5]
                    at[r + 6] += value[a6]
                    at[r + 7] += value[a7]
                    i += 8
                while i < hi:  # the block's last rows
                    a0 = root
                    for _ in range(depth):
                        a0 = child[a0, np.int64(B[i, feat[a0]] > cut[a0])]
                    at[i - lo] += value[a0]
                    i += 1
            out[:, lo:hi] = acc
        return out

    return run


def _bin_kernel() -> Any:
    def run(X: np.ndarray, cuts: np.ndarray, n_cuts: np.ndarray, Bt: np.ndarray,
            block: int, nan_blocks: np.ndarray) -> None:
        n, d = X.shape
        n_blocks = (n + block - 1) // block
        for b in numba.prange(n_blocks):
            lo = b * block
            hi = min(n, lo + block)
            for j in range(d):
                c = cuts[j]
                k = n_cuts[j]
                for i in range(lo, hi):
                    x = np.float64(X[i, j])
                    a = 0  # how many cuts lie below x: the first cut >= x
                    e = k
                    if x != x:  # NaN: flag the block (the caller refuses it)
                        nan_blocks[b] = 1
                        a = k
                    while a < e:
                        mid = (a + e) >> 1
                        if c[mid] < x:
                            a = mid + 1
                        else:
                            e = mid
                    Bt[j, i] = a

    return run


_KERNELS: dict[tuple[str, bool], Any] = {}
# below this many rows a single thread is faster: waking the pool costs more than it saves
# (and, on a loaded machine, waits for a core)
PARALLEL_MIN_ROWS = 8192


def _kernel(kind: str, n_rows: int) -> Any:
    parallel = n_rows >= PARALLEL_MIN_ROWS
    if (kind, parallel) not in _KERNELS:
        make = {"perfect": _perfect_kernel, "generic": _generic_kernel,
                "bins": _bin_kernel}[kind]
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
    arrays, predicting bit-identically to scikit-learn (see the module docstring) for
    features without NaN; NaN features raise ``ValueError`` (:meth:`bins`), where
    scikit-learn's forests would route them by each node's ``missing_go_to_left``.

    Several forests can be compiled into one (:meth:`merged`): their rows are binned once and
    their trees run in one kernel call, each into its own output row
    (:meth:`predict_groups`).

    >>> from sklearn.ensemble import GradientBoostingRegressor
    >>> X = np.random.default_rng(0).normal(size=(200, 4)); y = X[:, 0] * X[:, 1]
    >>> m = GradientBoostingRegressor(n_estimators=20, max_depth=3).fit(X, y)
    >>> f = CompiledForest.from_sklearn(m)
    >>> bool(np.array_equal(f.predict(X), m.predict(X)))
    True
    """

    def __init__(self, trees: list[Any], scales: list[float], init: float | list[float],
                 divisor: float | list[float], group: list[int] | None = None) -> None:
        self.inits = np.atleast_1d(np.asarray(init, dtype=np.float64))
        self.divisors = np.atleast_1d(np.asarray(divisor, dtype=np.float64))
        group_arr = np.zeros(len(trees), np.int64) if group is None else np.asarray(group)
        if (len(self.inits) != len(self.divisors) or group_arr.shape != (len(trees),)
                or group_arr.min() < 0 or group_arr.max() >= len(self.inits)):
            raise ValueError("one init and divisor per group, and a group for every tree")
        self.group = group_arr.astype(np.int64)
        self._source = (list(trees), list(scales))
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
        self._cut_table = np.full((self.n_features, max(most, 1)), np.inf)
        for j, c in enumerate(self.cuts):
            self._cut_table[j, :len(c)] = c
        self._n_cuts = np.array([len(c) for c in self.cuts], dtype=np.int64)
        never = np.iinfo(self.bin_dtype).max  # a padding node: never go right

        def cut_index(feature: np.ndarray, threshold: np.ndarray) -> np.ndarray:
            out = np.full(len(feature), never, dtype=np.int64)
            for j in np.unique(feature[np.isfinite(threshold)]).tolist():
                sel = (feature == j) & np.isfinite(threshold)
                out[sel] = np.searchsorted(self.cuts[j], threshold[sel])
            return out.astype(self.bin_dtype)

        if depth <= min(PERFECT_DEPTH, 8):  # the kernel's byte lanes hold 2^8 positions
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

    @property
    def n_groups(self) -> int:
        return len(self.inits)

    @classmethod
    def merged(cls, forests: list[CompiledForest]) -> CompiledForest:
        """One forest computing every one of ``forests`` (output row ``g`` of
        :meth:`predict_groups` is ``forests[g].predict``, bit for bit)."""
        if not forests:
            raise ValueError("merged: no forests given")
        if len({f.n_features for f in forests}) != 1:
            raise ValueError("merged forests must read the same features")
        trees: list[Any] = []
        scales: list[float] = []
        group: list[int] = []
        inits: list[float] = []
        divisors: list[float] = []
        for f in forests:
            base = len(inits)
            trees += f._source[0]
            scales += f._source[1]
            group += (f.group + base).tolist()
            inits += f.inits.tolist()
            divisors += f.divisors.tolist()
        return cls(trees, scales, inits, divisors, group)

    @classmethod
    def from_sklearn(cls, model: Any) -> CompiledForest | None:
        """Compile ``model``; ``None`` if it is not a supported single-output regressor or
        numba is unavailable. Predictions are bit-identical to ``model.predict`` for inputs
        without NaN; NaN inputs raise ``ValueError`` (see :meth:`bins`)."""
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
        """Each row's bin per feature (scikit-learn's float32 view of the features), as a
        ``(n_features, n_rows)`` array: one feature's bins are contiguous.

        Raises:
            ValueError: ``X`` has the wrong number of features, or contains NaN (a split
                cannot route a missing value through bins the way scikit-learn does, by each
                node's ``missing_go_to_left``; scikit-learn's gradient boosting refuses NaN
                too). The check is done while binning, at no extra cost.
        """
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        if X32.ndim != 2 or X32.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {X32.shape}")
        Bt = np.empty((self.n_features, len(X32)), dtype=self.bin_dtype)
        nan_blocks = np.zeros((len(X32) + _BLOCK_DEEP - 1) // _BLOCK_DEEP, dtype=np.uint8)
        _kernel("bins", len(X32))(X32, self._cut_table, self._n_cuts, Bt, _BLOCK_DEEP,
                                  nan_blocks)
        if nan_blocks.any():
            rows, cols = np.nonzero(np.isnan(X32))
            raise ValueError(
                f"CompiledForest: the features contain NaN ({len(rows)} values; first at row "
                f"{int(rows[0])}, feature {int(cols[0])}); compiled forests do not route "
                "missing values: predict through scikit-learn (fast.ENABLED = False) or "
                "impute them")
        return Bt

    def predict_groups(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every group, shape ``(n_groups, n_rows)``."""
        Bt = self.bins(X)
        n = Bt.shape[1]
        if self.kind == "perfect":
            feat, cut, leaf = self.arrays
            out = _kernel("perfect", n)(Bt, feat, cut, leaf, self.group, self.depth,
                                        self.inits, _BLOCK)
        else:
            B = np.ascontiguousarray(Bt.T)  # deep trees: one row's bins together
            out = _kernel("generic", n)(B, *self.arrays, self.group, self.inits, _BLOCK_DEEP)
        for g, d in enumerate(self.divisors):
            if d != 1.0:
                out[g] /= d
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions, shape ``(n_rows,)`` (a single forest)."""
        if self.n_groups != 1:
            raise ValueError(f"a merged forest of {self.n_groups}: use predict_groups")
        return self.predict_groups(X)[0]


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
