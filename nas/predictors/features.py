"""Features of configs for predictors, all computed from the architecture itself.

Feature groups (``kinds``):

- ``encoding``: from ``space.encode_many`` for any space. A categorical dimension becomes a
  one-hot block (all zeros where the dimension is absent); an ordinal one its value index
  scaled to ``[0, 1]`` plus, if it can be absent, a presence flag.
- ``graph``: family-specific structure features (for ``nb201``: which edges and
  input-to-output paths are alive, live-op counts, effective depth and receptive field, the
  op one-hot of the *live* cell, and a path encoding of the live paths).
- ``counts``: for any space, how often each value occurs among the present categorical
  dimensions that share one value list (``nb201``: how many edges run each operation, dead
  edges included; they still cost time).
- ``cost``: exact cost figures (``nb201``: log parameters, log MACs; the supernet families
  -- ``resnet_like``, ``vit_like``, ``mobilenet`` -- log parameters, log FLOPs, from their
  analytic counters at the reference input of 3x32x32 and 10 classes: the features rank
  configs, and another input size scales every config's FLOPs alike).
- ``zc``: zero-cost proxies computed on the real, freshly initialised network
  (:mod:`nas.predictors.zerocost`; for the supernet families the static subnet, built for
  the proxy settings' resolution and classes); expensive, so cached in a directory of the
  caller's choosing.

``encoding``, ``counts``, ``graph`` and ``nb201``'s ``cost`` are vectorised over the
encoding matrix (100,000 configs in well under a second) and make the default kinds. The
supernet families' ``cost`` walks each distinct config's plan (~0.2 ms per config on one
core: 100,000 distinct configs take ~20 s), so it is asked for by name (or ``all``), not a
default; ``zc`` builds one network per config.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import UsageError
from nas.predictors.zerocost import PROXIES, ProxySettings, proxy_matrix

log = logging.getLogger(__name__)

FEATURE_KINDS: tuple[str, ...] = ("encoding", "counts", "graph", "cost", "zc")
# the feature value of a proxy whose log-score is -inf or undefined (a cell whose output is
# cut off scores 0): below every real value of every proxy (jacov reaches about -130 on
# NAS-Bench-201, the logs of snip and grad_norm straddle 0), so the worst networks rank last
ZC_FILL = -1000.0

# family -> function(space, encodings) -> (matrix, names)
_GRAPH: dict[str, Callable[[Any, np.ndarray], tuple[np.ndarray, list[str]]]] = {}
_COST: dict[str, Callable[[Any, np.ndarray], tuple[np.ndarray, list[str]]]] = {}
# family -> function(config, ProxySettings) -> nn.Module (the real network, for zero-cost
# proxies)
_NETWORK: dict[str, Callable[[Any, ProxySettings], Any]] = {}
# families whose cost features are not vectorised (not among the default kinds)
_SLOW_COST: set[str] = set()


def register_family_features(family: str, *, graph: Callable[..., Any] | None = None,
                             cost: Callable[..., Any] | None = None,
                             network: Callable[[Any, ProxySettings], Any] | None = None,
                             vectorised_cost: bool = True) -> None:
    """Register graph/cost feature functions and a network builder for a family.

    Args:
        cost: ``cost(space, encodings) -> (matrix, names)``.
        network: ``network(config, proxy_settings) -> nn.Module``, the freshly built network
            of a config (for the ``zc`` kind).
        vectorised_cost: ``False`` keeps ``cost`` out of :func:`default_kinds` (it is slow
            on many configs).
    """
    if graph is not None:
        _GRAPH[family] = graph
    if cost is not None:
        _COST[family] = cost
        if vectorised_cost:
            _SLOW_COST.discard(family)
        else:
            _SLOW_COST.add(family)
    if network is not None:
        import inspect

        try:  # a builder of one argument (config), as before proxy settings were passed
            n_args = len(inspect.signature(network).parameters)
        except (TypeError, ValueError):
            n_args = 2
        _NETWORK[family] = network if n_args >= 2 else (lambda c, s, f=network: f(c))


def available_kinds(space: Any) -> tuple[str, ...]:
    """The feature kinds this space supports."""
    _register_supernet_families()
    fam = space.family
    out = ["encoding"]
    if _value_groups(space):
        out.append("counts")
    if fam in _GRAPH:
        out.append("graph")
    if fam in _COST:
        out.append("cost")
    if fam in _NETWORK:
        out.append("zc")
    return tuple(out)


def default_kinds(space: Any) -> tuple[str, ...]:
    """The cheap, vectorised kinds this space supports (not ``zc``, and not ``cost`` where
    it is computed config by config)."""
    return tuple(k for k in available_kinds(space)
                 if k != "zc" and not (k == "cost" and space.family in _SLOW_COST))


def encoding_features(space: Any, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One-hot categorical dimensions, scaled ordinal ones (see the module docstring)."""
    enc = np.asarray(enc, dtype=np.float64)
    cols: list[np.ndarray] = []
    names: list[str] = []
    n = enc.shape[0]
    for d, path in enumerate(space.paths):
        dim = space.dimension(path)
        values = dim.values
        col = enc[:, d]
        can_be_absent = bool(space.conditions(path))
        if dim.ordinal:
            denom = max(len(values) - 1, 1)
            cols.append(np.where(col >= 0, col / denom, 0.0)[:, None])
            names.append(f"{path}")
            if can_be_absent:
                cols.append((col >= 0).astype(np.float64)[:, None])
                names.append(f"{path}:present")
        else:
            oh = np.zeros((n, len(values)))
            ok = col >= 0
            oh[np.flatnonzero(ok), col[ok].astype(np.int64)] = 1.0
            cols.append(oh)
            names.extend(f"{path}={v}" for v in values)
    return np.concatenate(cols, axis=1), names


def _value_groups(space: Any) -> list[tuple[tuple[Any, ...], list[int]]]:
    """Categorical dimensions grouped by identical value lists (groups of 2 or more)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for d, path in enumerate(space.paths):
        dim = space.dimension(path)
        if not dim.ordinal:
            groups.setdefault(tuple(dim.values), []).append(d)
    return [(v, ds) for v, ds in groups.items() if len(ds) >= 2]


def count_features(space: Any, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """How often each value occurs among present categorical dimensions sharing its values."""
    enc = np.asarray(enc, dtype=np.float64)
    cols: list[np.ndarray] = []
    names: list[str] = []
    for values, dims in _value_groups(space):
        sub = enc[:, dims]
        last = {space.paths[d].rsplit(".", 1)[-1] for d in dims}
        label = (last.pop() if len(last) == 1
                 else f"{space.paths[dims[0]]}..{space.paths[dims[-1]]}")
        for i, v in enumerate(values):
            cols.append((sub == i).sum(axis=1).astype(np.float64))
            names.append(f"count:{label}={v}")
    return np.stack(cols, axis=1), names


@dataclass
class Featurizer:
    """Turns configs of one space into a feature matrix.

    Args:
        space: the space.
        kinds: feature groups (see the module docstring); ``None``: :func:`default_kinds`.
        proxies: which zero-cost proxies the ``zc`` kind computes.
        proxy_settings: batch, resolution and seed of the proxies.
        cache_dir: where proxy values are cached (``None``: not cached).
        threads: torch threads while computing proxies.
    """

    space: Any
    kinds: Sequence[str] | None = None
    proxies: Sequence[str] = ("synflow",)
    proxy_settings: ProxySettings = field(default_factory=ProxySettings)
    cache_dir: str | os.PathLike[str] | None = None
    threads: int | None = 1

    def __post_init__(self) -> None:
        kinds = tuple(self.kinds) if self.kinds is not None else default_kinds(self.space)
        allowed = available_kinds(self.space)
        for k in kinds:
            if k not in FEATURE_KINDS:
                raise UsageError(f"unknown feature kind {k!r}; known: {', '.join(FEATURE_KINDS)}")
            if k not in allowed:
                raise UsageError(
                    f"feature kind {k!r} is not available for space {self.space.name!r} "
                    f"(family {self.space.family!r}); available: {', '.join(allowed)}")
        if not kinds:
            raise UsageError("at least one feature kind is needed")
        bad = [p for p in self.proxies if p not in PROXIES]
        if bad:
            raise UsageError(f"unknown zero-cost proxies {bad}; known: {', '.join(PROXIES)}")
        self.kinds = kinds

    @property
    def fast(self) -> bool:
        """Whether features come from the encoding alone (no network is built)."""
        return "zc" not in self.kinds

    def from_encoding(self, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The encoding-derived kinds (all but ``zc``), vectorised."""
        enc = np.asarray(enc, dtype=np.float64)
        mats: list[np.ndarray] = []
        names: list[str] = []
        fam = self.space.family
        for k in self.kinds:
            if k == "encoding":
                m, nm = encoding_features(self.space, enc)
            elif k == "counts":
                m, nm = count_features(self.space, enc)
            elif k == "graph":
                m, nm = _GRAPH[fam](self.space, enc)
            elif k == "cost":
                m, nm = _COST[fam](self.space, enc)
            else:
                continue
            mats.append(m)
            names.extend(nm)
        if not mats:
            return np.empty((enc.shape[0], 0)), []
        return np.concatenate(mats, axis=1), names

    def transform(self, configs: Sequence[Any],
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The feature matrix of ``configs`` (shape ``(len(configs), n_features)``)."""
        configs = [c if getattr(c, "space", None) == self.space else self.space.config(c)
                   for c in configs]
        enc = self.space.encode_many(configs)
        mat, _ = self.from_encoding(enc)
        if "zc" in self.kinds:
            net_of = _NETWORK[self.space.family]
            settings = self.proxy_settings

            def build(c: Any) -> Any:
                return net_of(c, settings)
            zc = proxy_matrix(self.space, configs, build, proxies=self.proxies,
                              settings=self.proxy_settings, cache_dir=self.cache_dir,
                              threads=self.threads, progress=progress)
            # a zero score (log -> -inf, e.g. a cell whose output is cut off) or an undefined
            # one becomes a fixed ZC_FILL, independent of the other rows
            zc = np.where(np.isfinite(zc), zc, ZC_FILL)
            mat = np.concatenate([mat, zc], axis=1)
        return mat

    def names(self) -> list[str]:
        """Feature names, in column order."""
        _, names = self.from_encoding(self.space.encode_many([self.space.default()]))
        if "zc" in self.kinds:
            names += [f"zc:{p}" for p in self.proxies]
        return names


# ---------------------------------------------------------------------- NAS-Bench-201
_NB201_PATHS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 3),), ((0, 1), (1, 3)), ((0, 2), (2, 3)), ((0, 1), (1, 2), (2, 3)))
_NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _nb201_ops(space: Any, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Op ids (index into :data:`_NB201_OPS`) of the 6 edges; ``space``-order independent."""
    from nas.supernet.nb201 import EDGE_PATHS

    ops = np.empty((enc.shape[0], 6), dtype=np.int64)
    for e, path in enumerate(EDGE_PATHS):
        d = space.paths.index(path)
        lut = np.array([_NB201_OPS.index(v) for v in space.dimension(path).values])
        ops[:, e] = lut[enc[:, d].astype(np.int64)]
    return ops, list(EDGE_PATHS)


def nb201_graph_features(space: Any, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Structure features of NAS-Bench-201 cells (see the module docstring).

    An edge is *live* when it lies on a path from the input to the output whose edges are all
    not ``none``; dead edges cannot influence the output and are treated as ``none``. The
    features of all 5**6 cells are computed once and looked up.
    """
    ops, _ = _nb201_ops(space, enc)
    table, names = _nb201_graph_table()
    code = ops @ (5 ** np.arange(6))
    return table[code], list(names)


@functools.lru_cache(maxsize=1)
def _nb201_graph_table() -> tuple[np.ndarray, tuple[str, ...]]:
    """Graph features of every cell, row ``sum(op_e * 5**e)``."""
    grid = np.array(list(itertools.product(range(5), repeat=6)))[:, ::-1]
    order = np.argsort(grid @ (5 ** np.arange(6)))
    mat, names = _nb201_graph_compute(grid[order])
    mat.setflags(write=False)
    return mat, tuple(names)


def _nb201_graph_compute(ops: np.ndarray) -> tuple[np.ndarray, list[str]]:
    from nas.supernet.nb201 import EDGE_PATHS, EDGES

    edge_names = list(EDGE_PATHS)
    n = ops.shape[0]
    eidx = {e: k for k, e in enumerate(EDGES)}
    cols: list[np.ndarray] = []
    names: list[str] = []
    path_ops = [np.stack([ops[:, eidx[e]] for e in p], axis=1) for p in _NB201_PATHS]
    live = np.stack([(po != 0).all(axis=1) for po in path_ops], axis=1)
    pnames = ["0-3", "0-1-3", "0-2-3", "0-1-2-3"]
    conv = np.stack([((po == 2) | (po == 3)).sum(axis=1) for po in path_ops], axis=1)
    conv3 = np.stack([(po == 3).sum(axis=1) for po in path_ops], axis=1)
    wconv = np.stack([(po == 3).sum(axis=1) + 0.5 * (po == 2).sum(axis=1) for po in path_ops],
                     axis=1)
    rfield = np.stack([2 * ((po == 3) | (po == 4)).sum(axis=1) for po in path_ops], axis=1)
    for p, name in enumerate(pnames):
        po = path_ops[p]
        a = live[:, p]
        for label, v in (("live", a), ("conv3", a * conv3[:, p]),
                         ("conv1", a * (po == 2).sum(axis=1)), ("pool", a * (po == 4).sum(axis=1)),
                         ("skip", a * (po == 1).sum(axis=1)), ("conv", a * conv[:, p])):
            cols.append(v.astype(np.float64))
            names.append(f"path[{name}].{label}")
    edge_live = np.zeros((n, 6), dtype=bool)
    for p, path in enumerate(_NB201_PATHS):
        for e in path:
            edge_live[:, eidx[e]] |= live[:, p]
    live_ops = np.where(edge_live, ops, 0)
    oh = np.zeros((n, 30))
    for e in range(6):
        oh[np.arange(n), e * 5 + live_ops[:, e]] = 1.0
    cols.extend(oh.T)
    names.extend(f"live:{edge_names[e]}={op}" for e in range(6) for op in _NB201_OPS)
    for o, op in enumerate(_NB201_OPS):
        cols.append((live_ops == o).sum(axis=1).astype(np.float64))
        names.append(f"live_count:{op}")
    any_live = live.any(axis=1)
    summary = {
        "n_live_paths": live.sum(axis=1),
        "connected": any_live,
        "depth_max": np.where(live, conv, -1).max(axis=1),
        "depth_min": np.where(any_live, np.where(live, conv, 99).min(axis=1), -1),
        "wdepth_max": np.where(live, wconv, -1).max(axis=1),
        "has_conv_free_path": (live & (conv == 0)).any(axis=1),
        "rfield_max": np.where(live, rfield, -1).max(axis=1),
        "rfield_min": np.where(any_live, np.where(live, rfield, 99).min(axis=1), -1),
    }
    for i in (1, 2, 3):
        summary[f"indegree_{i}"] = sum((live_ops[:, eidx[(j, i)]] != 0).astype(np.int64)
                                       for j in range(i))
    for k, v in summary.items():
        cols.append(np.asarray(v, dtype=np.float64))
        names.append(k)
    # path encoding (BANANAS-style) of the live paths: count of each op sequence
    for length in (1, 2, 3):
        seqs = list(itertools.product(range(1, 5), repeat=length))
        m = np.zeros((n, len(seqs)))
        for p, path in enumerate(_NB201_PATHS):
            if len(path) != length:
                continue
            code = np.zeros(n, dtype=np.int64)
            for k in range(length):
                code = code * 4 + (np.maximum(path_ops[p][:, k], 1) - 1)
            rows = np.flatnonzero(live[:, p])
            m[rows, code[rows]] += 1.0
        cols.extend(m.T)
        names.extend("pathenc:" + ">".join(_NB201_OPS[o] for o in s) for s in seqs)
    return np.stack(cols, axis=1), names


def nb201_cost_features(space: Any, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """log10 of the exact parameter count and MACs of the CIFAR NAS-Bench-201 network."""
    ops, _ = _nb201_ops(space, enc)
    n1 = (ops == 2).sum(axis=1).astype(np.float64)
    n3 = (ops == 3).sum(axis=1).astype(np.float64)
    from nas.supernet.nb201 import nb201_costs

    base = {k: float(v[0]) for k, v in nb201_costs([dict(zip(
        ("edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3"),
        ("none",) * 6))]).items()}
    # per conv op over all 15 cells: sum over stages of 5 cells * per-cell cost
    p1 = sum(5 * (c * c + 2 * c) for c in (16, 32, 64))
    p3 = sum(5 * (c * c * 9 + 2 * c) for c in (16, 32, 64))
    m1 = sum(5 * c * c * (32 // s) ** 2 for c, s in ((16, 1), (32, 2), (64, 4)))
    m3 = 9 * m1
    params = base["params"] + n1 * p1 + n3 * p3
    macs = base["macs"] + n1 * m1 + n3 * m3
    return np.stack([np.log10(params), np.log10(macs)], axis=1), ["log10_params", "log10_macs"]


def _nb201_network(config: Any, settings: ProxySettings) -> Any:
    from nas.supernet.nb201 import build_nb201

    return build_nb201(config)  # the benchmark's CIFAR network, whatever the settings


register_family_features("nb201", graph=nb201_graph_features, cost=nb201_cost_features,
                         network=_nb201_network)


# ---------------------------------------------------------------------- supernet families
# the build the cost features are counted at (they rank configs; another input size scales
# every config's FLOPs alike)
COST_INPUT = (3, 32, 32)
COST_CLASSES = 10


def supernet_cost_features(space: Any, enc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """log10 of the parameters and FLOPs of each row's config, from the family's analytic
    counter at :data:`COST_INPUT` and :data:`COST_CLASSES` (each distinct row once)."""
    from nas.supernet.base import analytic_costs

    enc = np.asarray(enc, dtype=np.float64)
    uniq, inverse = np.unique(enc, axis=0, return_inverse=True)
    out = np.empty((len(uniq), 2))
    for i, row in enumerate(uniq):
        cfg = space.decode(row)
        c = analytic_costs(space, cfg, in_channels=COST_INPUT[0], num_classes=COST_CLASSES,
                           input_size=COST_INPUT[1:])
        out[i] = (c.params, c.flops)
    return np.log10(np.maximum(out, 1.0))[inverse.ravel()], ["log10_params", "log10_flops"]


def _supernet_network(config: Any, settings: ProxySettings) -> Any:
    from nas.supernet.base import build_subnet

    return build_subnet(config.space, config, in_channels=3,
                        num_classes=settings.num_classes, input_size=settings.resolution)


def _register_supernet_families() -> None:
    """Cost and zero-cost features for every registered supernet family that has none of
    its own (looked up on each call: a family registered later gets them too; imported
    lazily: the supernets need torch)."""
    from nas.supernet.base import list_families

    for fam in list_families():
        if fam not in _COST:
            register_family_features(fam, cost=supernet_cost_features, vectorised_cost=False)
        if fam not in _NETWORK:
            register_family_features(fam, network=_supernet_network)
