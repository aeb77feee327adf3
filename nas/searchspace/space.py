"""The search space and its configs.

A :class:`Space` is an immutable value: a name, a tree of named groups and dimensions, and
constraints. A :class:`Config` is one frozen, hashable member of a space. Dimensions that do
not exist in a config (a block beyond its stage's depth) are *absent*: they are not part of
the config, two configs that differ only there are the same architecture, and they encode as
``-1``.

>>> from nas.searchspace import Space, Group, Choice, IntRange, Condition
>>> space = Space("tiny", [
...     IntRange("depth", 1, 2),
...     Group("blocks", [
...         Group("0", [Choice("kernel", (3, 5))]),
...         Group("1", [Choice("kernel", (3, 5))], when=Condition("depth", ">=", 2)),
...     ]),
... ])
>>> space.cardinality()
6
>>> cfg = space.config({"depth": 1, "blocks": [{"kernel": 5}]})
>>> cfg["blocks.0.kernel"], space.encode(cfg).tolist()
(5, [0.0, 1.0, -1.0])
>>> space.decode(space.encode(cfg)) == cfg
True
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import ConfigError, NasError, SpaceDefinitionError
from nas.searchspace.constraints import (
    Compare,
    Constraint,
    Divides,
    Forbid,
    Predicate,
    constraint_from_dict,
)
from nas.searchspace.dims import (
    CANONICAL_FORM,
    STORED_DEFINITION,
    Choice,
    Condition,
    Group,
    IntRange,
    check_name,
    value_key,
)

RngLike = "np.random.Generator | int | None"
INACTIVE = -1


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """An ``np.random.Generator`` from a generator, a seed, or ``None`` (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {rng!r}")


@contextlib.contextmanager
def _recursion_room(depth: int) -> Iterator[None]:
    """Enough Python recursion for a depth-first walk ``depth`` dimensions deep (a space of
    ~1000 dimensions would hit the default limit of 1000)."""
    old = sys.getrecursionlimit()
    need = 3 * depth + 200
    if need > old:
        sys.setrecursionlimit(need)
    try:
        yield
    finally:
        if need > old:
            sys.setrecursionlimit(old)


class _SearchBudget(Exception):
    pass


@dataclass(frozen=True)
class _Dim:
    """A dimension compiled for fast work: its path, values and activation rule."""

    index: int
    path: str
    spec: Any
    values: tuple[Any, ...]
    arr: np.ndarray
    keys: dict[Any, int]
    ordinal: bool
    default_idx: int
    conds: tuple[tuple[int, np.ndarray, Condition], ...]

    @property
    def n(self) -> int:
        return len(self.values)


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


class Space:
    """A search space: named groups of dimensions plus constraints.

    Args:
        name: the space's name (registry key, and part of every config id).
        children: the top-level dimensions and groups, in order. A dimension's condition may
            only read dimensions declared before it.
        constraints: declarative constraints and named predicates.
        family: which supernet family can build networks of this space (``resnet_like``, ...).
        arch_format: a registered text format for configs (``nb201`` parses
            NAS-Bench-201 strings), used by :meth:`parse_arch` and :meth:`format_arch`.
        description: free text shown by ``nas spaces show``.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[Any],
        constraints: Sequence[Constraint | Predicate] = (),
        *,
        family: str | None = None,
        arch_format: str | None = None,
        description: str = "",
    ) -> None:
        self.name = check_name(name, "space name")
        self.root = Group("root", tuple(children))
        self.family = family
        self.arch_format = arch_format
        self.description = description
        dims: list[_Dim] = []
        index: dict[str, int] = {}
        self._groups: dict[str, tuple[Condition, ...]] = {}
        self._compile(self.root, "", (), dims, index)
        if not dims:
            raise SpaceDefinitionError(f"space {name!r} has no dimensions")
        self._dims: tuple[_Dim, ...] = tuple(dims)
        self._index = index
        self.constraints: tuple[Constraint, ...] = ()
        self.predicates: tuple[Predicate, ...] = ()
        cons, preds, where = [], [], []  # where: each constraint's place in `constraints`
        for i, c in enumerate(constraints):
            if isinstance(c, Predicate):
                preds.append(c)
            elif isinstance(c, Constraint):
                cons.append(c)
                where.append(i)
            else:
                raise SpaceDefinitionError(f"{name}: not a constraint: {c!r}")
        self.constraints = tuple(cons)
        self.predicates = tuple(preds)
        # each constraint's place among those given (a file's entry: predicates between)
        self.constraint_entries: tuple[int, ...] = tuple(where)
        closing: list[list[tuple[Constraint, tuple[int, ...]]]] = [[] for _ in dims]
        self._cons_idx: list[tuple[Constraint, tuple[int, ...]]] = []
        for ci, c in enumerate(self.constraints):
            idxs = []
            for p in c.paths:
                if p not in index:
                    raise SpaceDefinitionError(
                        f"constraint '{c.describe()}' reads {p!r}, which is not a dimension of "
                        f"space {name!r}", ("constraints", where[ci])
                    )
                idxs.append(index[p])
            if isinstance(c, Forbid):  # a value the dimension lacks forbids nothing: a typo
                for (p, vals), d in zip(c.combination, idxs):
                    have = dims[d].keys
                    bad = [v for v in vals if value_key(v) not in have]
                    if bad:
                        raise SpaceDefinitionError(
                            f"constraint '{c.describe()}' forbids {p}={bad[0]!r}, which is not "
                            f"one of its values {list(dims[d].values)}", ("constraints", where[ci]))
            closing[max(idxs)].append((c, tuple(idxs)))
            self._cons_idx.append((c, tuple(idxs)))
        self._closing = tuple(tuple(x) for x in closing)
        # for forward checking: per dimension, the constraints that read it and also read a
        # later dimension (still undecided when it is set)
        ahead: list[list[tuple[int, Constraint, tuple[int, ...]]]] = [[] for _ in dims]
        for k, (c, ci) in enumerate(self._cons_idx):
            for j in set(ci):
                if j < max(ci):
                    ahead[j].append((k, c, ci))
        self._ahead = tuple(tuple(x) for x in ahead)
        self._support_memo: dict[tuple[Any, ...], bool] = {}
        token = CANONICAL_FORM.set(True)
        try:
            self._fingerprint = hashlib.sha256(
                json.dumps(self.to_dict(), sort_keys=True).encode()
            ).hexdigest()
        finally:
            CANONICAL_FORM.reset(token)
        self._list_groups = self._find_list_groups(self.root)

    # ------------------------------------------------------------------ structure
    def _compile(self, group: Group, prefix: str, inherited: tuple[Condition, ...],
                 dims: list[_Dim], index: dict[str, int]) -> None:
        for child in group.children:
            path = f"{prefix}{child.name}"
            conds = inherited + tuple(child.when)
            if isinstance(child, Group):
                self._groups[path] = conds
                self._compile(child, path + ".", conds, dims, index)
                continue
            compiled = []
            for c in conds:
                if c.path not in index:
                    later = " (it must be declared before the dimensions that read it)"
                    raise SpaceDefinitionError(
                        f"{path}: condition reads {c.path!r}, which is not a dimension declared "
                        f"earlier in space {self.name!r}{later}"
                    )
                parent = dims[index[c.path]]
                mask = np.array([c.holds(v) for v in parent.values], dtype=bool)
                if not mask.any() and not STORED_DEFINITION.get():  # a typo: never exists
                    raise SpaceDefinitionError(
                        f"{path}: condition '{c.describe()}' never holds ({c.path} takes "
                        f"{parent.spec.describe_values()}), so the dimension would never exist")
                compiled.append((parent.index, mask, c))
            values = child.values
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            arr = np.array(values, dtype=np.float64 if any(isinstance(v, float) for v in values)
                           else np.int64) if numeric else np.array(values, dtype=object)
            keys = {value_key(v): i for i, v in enumerate(values)}
            dims.append(_Dim(
                index=len(dims), path=path, spec=child, values=values, arr=arr, keys=keys,
                ordinal=bool(child.ordinal), default_idx=keys[value_key(child.default)],
                conds=tuple(compiled),
            ))
            index[path] = len(dims) - 1

    @staticmethod
    def _find_list_groups(root: Group) -> frozenset[int]:
        out = set()

        def walk(g: Group) -> None:
            names = [c.name for c in g.children]
            if names and names == [str(i) for i in range(len(names))]:
                out.add(id(g))
            for c in g.children:
                if isinstance(c, Group):
                    walk(c)

        walk(root)
        return frozenset(out)

    @property
    def paths(self) -> tuple[str, ...]:
        """Dotted paths of every dimension, in declaration (= encoding) order."""
        return tuple(d.path for d in self._dims)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical definition: equal spaces have equal fingerprints."""
        return self._fingerprint

    def __len__(self) -> int:
        return len(self._dims)

    def dimension(self, path: str) -> Choice | IntRange:
        """The dimension spec at ``path``."""
        try:
            return self._dims[self._index[path]].spec
        except KeyError:
            raise ConfigError(f"{path}: not a dimension of space {self.name!r}") from None

    def values(self, path: str) -> tuple[Any, ...]:
        """The allowed values of the dimension at ``path``."""
        return self.dimension(path).values

    def conditions(self, path: str) -> tuple[Condition, ...]:
        """The conditions under which the dimension or group at ``path`` exists."""
        if path in self._index:
            return tuple(c for _, _, c in self._dims[self._index[path]].conds)
        if path in self._groups:
            return self._groups[path]
        raise ConfigError(f"{path}: not a dimension or group of space {self.name!r}")

    def has(self, path: str) -> bool:
        return path in self._index or path in self._groups

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the encoding (``0`` and ``n-1`` per dimension)."""
        return (np.zeros(len(self._dims)), np.array([d.n - 1 for d in self._dims], float))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        return f"Space({self.name!r}, {len(self._dims)} dimensions)"

    def __getstate__(self) -> dict[str, Any]:
        return {"definition": self.to_dict(), "predicates": self.predicates}

    def __setstate__(self, state: dict[str, Any]) -> None:
        preds = {p.name: p for p in state["predicates"]}
        d = dict(state["definition"])
        other = Space.from_dict(d, predicates=preds, stored=True)
        self.__dict__.update(other.__dict__)

    # ------------------------------------------------------------------ activity / checks
    def _active(self, idx: Sequence[int], d: int) -> bool:
        for p, mask, _ in self._dims[d].conds:
            i = idx[p]
            if i < 0 or not mask[i]:
                return False
        return True

    def _value(self, idx: Sequence[int], d: int) -> Any:
        i = idx[d]
        return None if i < 0 else self._dims[d].values[i]

    def _check_closing(self, idx: Sequence[int], d: int) -> bool:
        for c, ci in self._closing[d]:
            if not c.check(tuple(self._value(idx, j) for j in ci)):
                return False
        return True

    def _supported(self, idx: Sequence[int], d: int, limit: int = 4096) -> bool:
        """Forward checking after dimension ``d`` is set: every constraint that reads ``d``
        and a later, undecided dimension must still have some completion of those (each
        either one of its values or, where it may be absent, absent). A constraint with more
        than ``limit`` completions is assumed satisfiable (never prunes wrongly)."""
        for k, c, ci in self._ahead[d]:
            later = sorted({j for j in ci if j > d})
            # what each later dimension may still be: 0 absent, 1 one of its values, 2 either
            kinds = []
            for j in later:
                dim = self._dims[j]
                if all(p <= d for p, _, _ in dim.conds):
                    kinds.append(1 if self._active(idx, j) else 0)
                else:
                    kinds.append(2)
            key = (k, d, tuple(idx[j] for j in ci if j <= d), tuple(kinds))
            ok = self._support_memo.get(key)
            if ok is None:
                options = [[None] if kd == 0 else
                           list(self._dims[j].values) + ([None] if kd == 2 else [])
                           for j, kd in zip(later, kinds)]
                if math.prod(len(o) for o in options) > limit:
                    ok = True
                else:
                    fixed = {j: self._value(idx, j) for j in ci if j <= d}
                    ok = False
                    for combo in itertools.product(*options):
                        vals = {**fixed, **dict(zip(later, combo))}
                        if c.check(tuple(vals[j] for j in ci)):
                            ok = True
                            break
                self._support_memo[key] = ok
            if not ok:
                return False
        return True

    def _satisfied(self, idx: Sequence[int]) -> bool:
        for c, ci in self._cons_idx:
            if not c.check(tuple(self._value(idx, j) for j in ci)):
                return False
        return True

    def _violations(self, idx: Sequence[int]) -> list[str]:
        out = []
        for c, ci in self._cons_idx:
            vals = tuple(self._value(idx, j) for j in ci)
            if not c.check(vals):
                seen = ", ".join(f"{self._dims[j].path}={_fmt(v)}" for j, v in zip(ci, vals))
                out.append(f"constraint violated: {c.describe()} (got {seen})")
        return out

    def _check_predicates(self, cfg: Config) -> str | None:
        for p in self.predicates:
            try:
                ok = p(cfg)
            except Exception as e:  # a user's function: name it, not just its exception
                raise ConfigError(f"space {self.name!r}: {p.describe()} raised "
                                  f"{type(e).__name__}: {e}") from e
            if not ok:
                return f"{p.describe()} rejects this config"
        return None

    def _rows_ok(self, idx: np.ndarray) -> np.ndarray:
        ok = np.ones(idx.shape[0], dtype=bool)
        for c, ci in self._cons_idx:
            cols = []
            for j in ci:
                col = idx[:, j]
                cols.append((self._dims[j].arr[np.maximum(col, 0)], col >= 0))
            ok &= c.check_many(cols)
        return ok

    # ------------------------------------------------------------------ solver
    def _solve(
        self,
        pref: Sequence[int | None] | None,
        rng: np.random.Generator | None,
        *,
        pinned: frozenset[int] = frozenset(),
        required: frozenset[int] = frozenset(),
        budget: int = 50_000,
    ) -> Config | None:
        """:meth:`_search` without forward checking on a small budget (what nearly every
        call needs: forward checking would cost a mutation ~25 %), then with it on the full
        budget (tight constraints between distant dimensions)."""
        quick = self._search(pref, rng, pinned=pinned, required=required,
                             budget=min(budget, 2_000), forward=False)
        if quick is not None or not self._cons_idx:
            return quick
        return self._search(pref, rng, pinned=pinned, required=required, budget=budget,
                            forward=True)

    def _search(
        self,
        pref: Sequence[int | None] | None,
        rng: np.random.Generator | None,
        *,
        pinned: frozenset[int] = frozenset(),
        required: frozenset[int] = frozenset(),
        budget: int = 50_000,
        forward: bool = True,
    ) -> Config | None:
        """Depth-first search for a valid config, trying preferred values first.

        ``pref[d]`` is the preferred value index of dimension ``d`` (``None``: no preference,
        then a random order with ``rng`` or the default first). Pinned dimensions may only take
        their preferred value; ``required`` ones must also exist (a branch where one is absent
        is backtracked). Constraints are checked as soon as every dimension they read is
        decided, and forward-checked before (a value that leaves a constraint no completion
        of its undecided dimensions is skipped at once, instead of being found out after
        every dimension in between was tried); predicates at the end. Returns ``None`` when
        nothing valid is found within ``budget`` nodes.
        """
        dims = self._dims
        D = len(dims)
        idx = [INACTIVE] * D
        nodes = 0

        def candidates(d: int) -> Iterable[int]:
            if not self._active(idx, d):
                return () if d in required else (INACTIVE,)  # required: backtrack
            dim = dims[d]
            p = pref[d] if pref is not None else None
            if p is not None and d in pinned:
                return (p,)
            if p is None and rng is not None:
                return rng.permutation(dim.n).tolist()
            start = dim.default_idx if p is None else p
            if rng is not None:
                rest = [i for i in rng.permutation(dim.n).tolist() if i != start]
            elif dim.ordinal:
                rest = sorted((i for i in range(dim.n) if i != start),
                              key=lambda i: (abs(i - start), i))
            else:
                rest = [i for i in range(dim.n) if i != start]
            return [start, *rest]

        def rec(d: int) -> Config | None:
            nonlocal nodes
            if d == D:
                cfg = Config._make(self, tuple(idx))
                return cfg if self._check_predicates(cfg) is None else None
            for i in candidates(d):
                nodes += 1
                if nodes > budget:
                    raise _SearchBudget
                idx[d] = i
                if self._check_closing(idx, d):
                    found = rec(d + 1)
                    if found is not None:
                        return found
            idx[d] = INACTIVE
            return None

        def rec_ahead(d: int) -> Config | None:  # rec with forward checking
            nonlocal nodes
            if d == D:
                cfg = Config._make(self, tuple(idx))
                return cfg if self._check_predicates(cfg) is None else None
            cands = candidates(d)
            # forward checking pays where it can skip values; a dimension with one candidate
            # (pinned, absent) is left to the closing checks
            ahead = len(cands) > 1 and bool(self._ahead[d])
            for i in cands:
                nodes += 1
                if nodes > budget:
                    raise _SearchBudget
                idx[d] = i
                if self._check_closing(idx, d) and (not ahead or self._supported(idx, d)):
                    found = rec_ahead(d + 1)
                    if found is not None:
                        return found
            idx[d] = INACTIVE
            return None

        try:
            with _recursion_room(D):
                return (rec_ahead if forward else rec)(0)
        except _SearchBudget:
            return None

    def _exact_count(self) -> int | None:
        """The exact count of configs without the predicates (variable elimination), or
        ``None`` where it is too large to make (constraints coupling many dimensions)."""
        try:
            return self.cardinality(predicates="ignore")
        except (NasError, RecursionError, MemoryError):
            return None

    def _unsatisfiable(self) -> ConfigError:
        n = self._exact_count()  # which failure is it?
        if n == 0:
            return ConfigError(f"space {self.name!r}: its constraints are unsatisfiable (they "
                               "admit no config at all)")
        what = (f"{n:.3g} configs satisfy its constraints" if n is not None
                else "its constraints may admit some")
        preds = (f"; its predicates ({', '.join(p.describe() for p in self.predicates)}) may "
                 "reject almost all of them" if self.predicates else "")
        return ConfigError(f"space {self.name!r}: no valid config found within the search "
                           f"budget, though {what}{preds}")

    # ------------------------------------------------------------------ verbs
    def sample(self, rng: np.random.Generator | int | None = None) -> Config:
        """One uniformly drawn valid config (each existing dimension drawn independently,
        draws that break a constraint redrawn)."""
        return self.sample_many(1, rng)[0]

    def sample_many(self, n: int, rng: np.random.Generator | int | None = None) -> list[Config]:
        """``n`` valid configs, drawn in a vectorised way (see :meth:`sample`)."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n must be a non-negative integer, got {n!r}")
        rng = as_rng(rng)
        if n <= 4:  # numpy's per-call overhead dominates for a few rows: draw in Python
            return [self._sample_one(rng) for _ in range(int(n))]
        idx = self._draw(int(n), rng)
        todo = np.flatnonzero(~self._rows_ok(idx)) if self._cons_idx else np.empty(0, int)
        for _ in range(8):
            if not len(todo):
                break
            idx[todo] = self._draw(len(todo), rng)
            todo = todo[~self._rows_ok(idx[todo])]
        out = [Config._make(self, row) for row in map(tuple, idx.tolist())]
        for i in todo.tolist():
            cfg = self._solve(None, rng)
            if cfg is None:
                raise self._unsatisfiable()
            out[i] = cfg
        if self.predicates:
            for i, cfg in enumerate(out):
                if self._check_predicates(cfg) is not None:
                    out[i] = self._draw_accepted(rng)
        return out

    def _draw_accepted(self, rng: np.random.Generator) -> Config:
        """A config the constraints and predicates accept: rejection sampling in batches of
        256 draws (a predicate that accepts 1 % of configs needs ~100), then the solver."""
        for _ in range(16):
            rows = self._draw(256, rng)
            if self._cons_idx:
                rows = rows[self._rows_ok(rows)]
            for row in map(tuple, rows.tolist()):
                cfg = Config._make(self, row)
                if self._check_predicates(cfg) is None:
                    return cfg
        cfg = self._solve(None, rng)
        if cfg is None:
            raise self._unsatisfiable()
        return cfg

    def _sample_one(self, rng: np.random.Generator) -> Config:
        dims = self._dims
        for _ in range(32):
            u = rng.random(len(dims)).tolist()
            idx: list[int] = []
            for d, dim in enumerate(dims):
                active = True
                for p, mask, _ in dim.conds:
                    i = idx[p]
                    if i < 0 or not mask[i]:
                        active = False
                        break
                idx.append(int(u[d] * dim.n) if active else INACTIVE)
            row = tuple(idx)
            if not self._satisfied(row):
                continue
            cfg = Config._make(self, row)
            if self._check_predicates(cfg) is None:
                return cfg
        if self.predicates:
            return self._draw_accepted(rng)
        cfg = self._solve(None, rng)
        if cfg is None:
            raise self._unsatisfiable()
        return cfg

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = np.empty((n, len(self._dims)), dtype=np.int64)
        for d, dim in enumerate(self._dims):
            col = rng.integers(0, dim.n, size=n)
            if dim.conds:
                act = np.ones(n, dtype=bool)
                for p, mask, _ in dim.conds:
                    pc = idx[:, p]
                    act &= (pc >= 0) & mask[np.maximum(pc, 0)]
                col[~act] = INACTIVE
            idx[:, d] = col
        return idx

    def _extreme(self, which: str) -> Config:
        pref = [0 if which == "min" else d.n - 1 if which == "max" else d.default_idx
                for d in self._dims]
        cfg = self._solve(pref, None)
        if cfg is None:
            raise self._unsatisfiable()
        return cfg

    def min(self) -> Config:
        """The smallest config: every dimension at its first value (constraints permitting)."""
        return self._extreme("min")

    def max(self) -> Config:
        """The largest config: every dimension at its last value (constraints permitting)."""
        return self._extreme("max")

    def default(self) -> Config:
        """Every dimension at its default (constraints permitting)."""
        return self._extreme("default")

    def complete(self, values: Mapping[str, Any], *, prefer: str = "max") -> Config | None:
        """A valid config that takes ``values`` (dotted path -> value) where given and, in
        every other dimension, the value nearest its ``prefer`` end (``"max"``, ``"min"`` or
        ``"default"``) that the constraints allow. ``None`` when no valid config takes all
        of ``values`` (including when a given dimension cannot exist alongside the others).
        """
        if prefer not in ("min", "max", "default"):
            raise ConfigError(f"prefer: must be 'min', 'max' or 'default', got {prefer!r}")
        pref: list[int | None] = [
            0 if prefer == "min" else d.n - 1 if prefer == "max" else d.default_idx
            for d in self._dims]
        pinned = set()
        for path, value in values.items():
            if path not in self._index:
                raise ConfigError(self._unknown(str(path)))
            dim = self._dims[self._index[path]]
            i = dim.keys.get(value_key(value))
            if i is None:
                raise ConfigError(f"{path}: {value!r} is not one of {list(dim.values)}")
            pref[dim.index] = i
            pinned.add(dim.index)
        cfg = self._solve(pref, None, pinned=frozenset(pinned), required=frozenset(pinned))
        if cfg is None or any(cfg._idx[d] < 0 for d in pinned):
            return None
        return cfg

    def config(self, data: Config | Mapping[str, Any]) -> Config:
        """Build and validate a config from a nested dict (lists for numbered groups) or a flat
        dict of dotted paths. Raises :class:`ConfigError` naming the field, the value and what
        is allowed."""
        if isinstance(data, Config):
            if data.space is self or data.space.fingerprint == self.fingerprint:
                return data if data.space is self else Config._make(self, data._idx)
            raise ConfigError(
                f"config belongs to space {data.space.name!r}, not {self.name!r}"
                + (" (same name, different definition)" if data.space.name == self.name else "")
            )
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
        if "space" in data and "config" in data and set(data) <= {"space", "config", "id"}:
            if data["space"] != self.name:
                raise ConfigError(f"config belongs to space {data['space']!r}, not {self.name!r}")
            data = data["config"]
            if not isinstance(data, Mapping):
                raise ConfigError("config: must be a mapping")
        flat: dict[str, Any] = {}
        if any(isinstance(k, str) and "." in k for k in data):
            for k, v in data.items():
                if k not in self._index:
                    raise ConfigError(self._unknown(str(k)))
                flat[k] = v
        else:
            self._flatten(self.root, data, "", flat)
        return self._from_flat(flat)

    validate = config

    def contains(self, data: Any) -> bool:
        """Whether ``data`` is a valid config of this space (never raises)."""
        try:
            self.config(data)
            return True
        except (ConfigError, TypeError):
            return False

    __contains__ = contains

    def _unknown(self, path: str) -> str:
        parts = path.split(".")
        # the first part of the path that no dimension has (``stem.width`` in a space
        # without a stem: ``stem``)
        n = 1
        while n < len(parts) and any(p.startswith(".".join(parts[:n]) + ".")
                                     for p in self._index):
            n += 1
        if n < len(parts) and ".".join(parts[:n]) in self._index:
            return f"{path}: unknown field ({'.'.join(parts[:n])} is a dimension, not a group)"
        path = ".".join(parts[:n])
        parent, _, _ = path.rpartition(".")
        known = sorted({p[len(parent) + 1:].split(".")[0] if parent else p.split(".")[0]
                        for p in self._index if not parent or p.startswith(parent + ".")})
        return f"{path}: unknown field (known here: {', '.join(known)}){self._other(parent)}"

    def _other(self, prefix: str) -> str:
        """A hint for a field unknown at the top of a config: likely another space's."""
        return "" if prefix else f"; a config of another space than {self.name!r}?"

    def _flatten(self, group: Group, data: Any, prefix: str, flat: dict[str, Any]) -> None:
        names = {c.name: c for c in group.children}
        if isinstance(data, list) and id(group) in self._list_groups:
            items: Iterable[tuple[Any, Any]] = ((str(i), v) for i, v in enumerate(data))
        elif isinstance(data, Mapping):
            items = data.items()
        else:
            kind = "a list or a mapping" if id(group) in self._list_groups else "a mapping"
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected {kind}, got {data!r}")
        for k, v in items:
            k = str(k)
            if k not in names:
                known = ", ".join(names) if len(names) < 20 else f"{len(names)} fields"
                raise ConfigError(f"{prefix}{k}: unknown field (known here: {known})"
                                  f"{self._other(prefix)}")
            child = names[k]
            if isinstance(child, Group):
                self._flatten(child, v, f"{prefix}{k}.", flat)
            else:
                flat[f"{prefix}{k}"] = v

    def _from_flat(self, flat: Mapping[str, Any]) -> Config:
        idx = [INACTIVE] * len(self._dims)
        for d, dim in enumerate(self._dims):
            present = dim.path in flat
            if not self._active(idx, d):
                if present:
                    why = " and ".join(
                        f"{c.describe()} (it is {_fmt(self._value(idx, p))})"
                        for p, m, c in dim.conds if idx[p] < 0 or not m[idx[p]]
                    )
                    raise ConfigError(f"{dim.path}: given, but it does not exist unless {why}")
                continue
            if not present:
                raise ConfigError(
                    f"{dim.path}: missing (allowed: {dim.spec.describe_values()})"
                )
            v = flat[dim.path]
            try:
                i = dim.keys.get(value_key(v))
            except TypeError:
                i = None
            if i is None:
                raise ConfigError(
                    f"{dim.path}: got {_fmt(v)}, allowed: {dim.spec.describe_values()}"
                )
            idx[d] = i
        return self._checked(idx)

    def _checked(self, idx: list[int]) -> Config:
        """The config of value indices ``idx``, after the constraints and predicates."""
        bad = self._violations(idx)
        if bad:
            raise ConfigError(bad[0])
        cfg = Config._make(self, tuple(idx))
        msg = self._check_predicates(cfg)
        if msg:
            raise ConfigError(msg)
        return cfg

    # ------------------------------------------------------------------ encoding
    def encode(self, config: Config | Mapping[str, Any]) -> np.ndarray:
        """A fixed-length float vector: the value index of each dimension, ``-1`` if absent."""
        return np.array(self.config(config)._idx, dtype=np.float64)

    def encode_many(self, configs: Sequence[Config]) -> np.ndarray:
        """Encode many configs of this space at once, shape ``(len(configs), len(space))``."""
        if not configs:
            return np.empty((0, len(self._dims)))
        rows = []
        for c in configs:
            if not (isinstance(c, Config) and (c.space is self or c.space == self)):
                c = self.config(c)
            rows.append(c._idx)
        return np.array(rows, dtype=np.float64)

    def _vector(self, vector: Sequence[float] | np.ndarray) -> np.ndarray:
        vec = np.asarray(vector, dtype=np.float64).ravel()
        if vec.shape[0] != len(self._dims):
            raise ConfigError(
                f"encoding of space {self.name!r} has length {len(self._dims)}, got {vec.shape[0]}"
            )
        return vec

    def decode(self, vector: Sequence[float] | np.ndarray) -> Config:
        """The config of an encoding (strict: indices must be whole and in range; entries of
        absent dimensions are ignored)."""
        vec = self._vector(vector)
        idx = [INACTIVE] * len(self._dims)
        for d, dim in enumerate(self._dims):
            if not self._active(idx, d):
                continue
            x = vec[d]
            if not np.isfinite(x) or x != int(x) or not 0 <= x < dim.n:
                raise ConfigError(
                    f"{dim.path}: encoded value {float(x):g} is not an index in 0..{dim.n - 1}"
                )
            idx[d] = int(x)
        return self._checked(idx)

    def repair(self, vector: Sequence[float] | np.ndarray) -> Config:
        """The valid config nearest to any real vector (lenient :meth:`decode`).

        Entries are rounded and clipped to the bounds; where a constraint breaks, dimensions
        are changed in declaration order to the nearest allowed value. Deterministic.
        """
        vec = self._vector(vector)
        pref: list[int | None] = []
        for d, dim in enumerate(self._dims):
            x = vec[d]
            pref.append(None if not np.isfinite(x) else int(np.clip(np.rint(x), 0, dim.n - 1)))
        cfg = self._solve(pref, None)
        if cfg is None:
            raise self._unsatisfiable()
        return cfg

    def repair_many(self, X: np.ndarray) -> list[Config]:
        """:meth:`repair` for the rows of a matrix, vectorised: rows that are valid after
        rounding and clipping cost no Python work per dimension; only rows that break a
        constraint (or a predicate) go through the per-row repair."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self._dims):
            raise ConfigError(
                f"expected a matrix with {len(self._dims)} columns, got shape {X.shape}"
            )
        _, hi = self.bounds()
        finite = np.isfinite(X)
        idx = np.clip(np.rint(np.where(finite, X, 0.0)), 0, hi).astype(np.int64)
        for d, dim in enumerate(self._dims):
            if dim.conds:
                act = np.ones(len(idx), dtype=bool)
                for p, mask, _ in dim.conds:
                    pc = idx[:, p]
                    act &= (pc >= 0) & mask[np.maximum(pc, 0)]
                idx[~act, d] = INACTIVE
        ok = self._rows_ok(idx) if self._cons_idx else np.ones(len(idx), dtype=bool)
        ok &= np.all(finite | (idx < 0), axis=1)
        out = [Config._make(self, row) for row in map(tuple, idx.tolist())]
        for i in np.flatnonzero(~ok).tolist():
            out[i] = self.repair(X[i])
        if self.predicates:
            for i, cfg in enumerate(out):
                if self._check_predicates(cfg) is not None:
                    out[i] = self.repair(X[i])
        return out

    # ------------------------------------------------------------------ operators
    def mutate(self, config: Config, rng: np.random.Generator | int | None = None,
               rate: float | None = None) -> Config:
        """A valid config that differs from ``config`` in at least one existing dimension.

        Each existing dimension changes with probability ``rate`` (default ``1/n_existing``;
        at least one always changes) to another of its values; dimensions that come into
        existence (a deeper stage) get random values. Returns ``config`` itself only if no
        different valid config can be reached.
        """
        config = self.config(config)
        rng = as_rng(rng)
        movable = np.array([d for d, i in enumerate(config._idx)
                            if i >= 0 and self._dims[d].n > 1], dtype=np.int64)
        if not len(movable):
            return config
        if rate is None:
            rate = 1.0 / len(movable)
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"rate: must be in [0, 1], got {rate!r}")
        for _ in range(100):
            pref: list[int | None] = [i if i >= 0 else None for i in config._idx]
            flip = rng.random(len(movable)) < rate
            if not flip.any():
                flip[rng.integers(len(movable))] = True
            for d in movable[flip].tolist():
                n = self._dims[d].n
                pref[d] = int((config._idx[d] + rng.integers(1, n)) % n)
            child = self._solve(pref, rng)
            if child is not None and child != config:
                return child
        return config

    def crossover(self, a: Config, b: Config,
                  rng: np.random.Generator | int | None = None) -> Config:
        """A valid child taking each dimension from ``a`` or ``b`` at random (uniform
        crossover); a dimension that exists in one parent only is taken from that parent."""
        a, b = self.config(a), self.config(b)
        rng = as_rng(rng)
        take_a = rng.random(len(self._dims)) < 0.5
        pref: list[int | None] = []
        for d, (ia, ib) in enumerate(zip(a._idx, b._idx)):
            first, second = (ia, ib) if take_a[d] else (ib, ia)
            pref.append(first if first >= 0 else (second if second >= 0 else None))
        child = self._solve(pref, rng)
        return child if child is not None else (a if take_a[0] else b)

    def neighbours(self, config: Config) -> list[Config]:
        """Valid configs that differ from ``config`` in exactly one existing dimension (an
        adjacent value for ordinal dimensions, any other value for categorical ones).
        Dimensions that come into existence take their defaults (constraints permitting)."""
        config = self.config(config)
        out: dict[Config, None] = {}
        base = config._idx
        for d, i in enumerate(base):
            if i < 0:
                continue
            dim = self._dims[d]
            if dim.ordinal:
                cands = [j for j in (i - 1, i + 1) if 0 <= j < dim.n]
            else:
                cands = [j for j in range(dim.n) if j != i]
            for j in cands:
                pref: list[int | None] = [k if k >= 0 else None for k in base]
                pref[d] = j
                pinned = frozenset(k for k, v in enumerate(base) if v >= 0)
                nb = self._solve(pref, None, pinned=pinned)
                if nb is not None:
                    out[nb] = None
        return list(out)

    def grid(self) -> Iterator[Config]:
        """Every valid config, in lexicographic order of the encoding (finite spaces)."""
        dims = self._dims
        D = len(dims)
        idx = [INACTIVE] * D

        def rec(d: int) -> Iterator[Config]:
            if d == D:
                cfg = Config._make(self, tuple(idx))
                if self._check_predicates(cfg) is None:
                    yield cfg
                return
            cands = range(dims[d].n) if self._active(idx, d) else (INACTIVE,)
            for i in cands:
                idx[d] = i
                if self._check_closing(idx, d):
                    yield from rec(d + 1)
            idx[d] = INACTIVE

        def walk() -> Iterator[Config]:
            with _recursion_room(D):
                yield from rec(0)

        return walk()

    def cardinality(self, *, predicates: str = "enumerate", max_enumerate: int = 2_000_000) -> int:
        """The exact number of distinct valid configs.

        Counting rules: configs that differ only in absent dimensions are one architecture and
        counted once. Declarative constraints are counted exactly (variable elimination over
        the constraint graph, no enumeration). Predicates can only be counted by enumerating:
        with ``predicates="enumerate"`` (default) that is done when the count without them is
        at most ``max_enumerate``, otherwise a :class:`ConfigError` says so; with
        ``predicates="ignore"`` they are left out of the count.
        """
        from nas.searchspace.cardinality import count_configs

        if predicates not in ("enumerate", "ignore"):
            raise ConfigError(f"predicates: must be 'enumerate' or 'ignore', got {predicates!r}")
        n = count_configs(self)
        if not self.predicates or predicates == "ignore":
            return n
        if n > max_enumerate:
            raise ConfigError(
                f"space {self.name!r} has {n} configs before its predicates "
                f"({', '.join(p.name for p in self.predicates)}); counting them needs "
                f"enumeration, which is limited to {max_enumerate}. Use "
                "cardinality(predicates='ignore') for the count without them"
            )
        return sum(1 for _ in self.grid())

    # ------------------------------------------------------------------ arch strings
    def parse_arch(self, text: str) -> Config:
        """Parse a config from the space's text format (e.g. a NAS-Bench-201 string)."""
        from nas.searchspace.registry import arch_format

        return self.config(arch_format(self).parse(self, text))

    def format_arch(self, config: Config) -> str:
        """The text form of a config in the space's format."""
        from nas.searchspace.registry import arch_format

        return arch_format(self).format(self, self.config(config))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON/YAML-ready definition (round-trips through :meth:`from_dict`)."""
        d: dict[str, Any] = {"name": self.name}
        if self.family:
            d["family"] = self.family
        if self.arch_format:
            d["arch_format"] = self.arch_format
        if self.description:
            d["description"] = self.description
        d["dims"] = [c.to_dict() for c in self.root.children]
        cons = [c.to_dict() for c in self.constraints] + [p.to_dict() for p in self.predicates]
        if cons:
            d["constraints"] = cons
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any], *,
                  predicates: Mapping[str, Predicate] | None = None,
                  stored: bool = False) -> Space:
        """Build a space from its :meth:`to_dict` form.

        Besides the canonical form, a group may be written once and repeated:
        ``{type: group, name: blocks, repeat: 6, depth: stages.0.depth, children: [...]}``
        makes groups ``"0"``..``"5"``, group ``i`` existing when ``stages.0.depth > i``.

        ``stored``: ``d`` was written by this package earlier (a checkpoint, a latency
        table): definition checks added since then do not refuse it (numeric values out of
        order stay ordinal in their order; a condition that never holds stays), so it keeps
        its meaning and fingerprint.
        """
        token = STORED_DEFINITION.set(bool(stored))
        try:
            return _space_from_dict(d, predicates or {})
        finally:
            STORED_DEFINITION.reset(token)

    def save(self, path: Any) -> None:
        """Write the definition as YAML (``.yaml``/``.yml``) or JSON, atomically."""
        from nas.searchspace.io import save_space

        save_space(self, path)


_SPACE_KEYS = ("name", "family", "arch_format", "description", "dims", "constraints")


def _space_from_dict(d: Any, predicates: Mapping[str, Predicate]) -> Space:
    if not isinstance(d, Mapping):
        raise SpaceDefinitionError(f"a space definition must be a mapping, got {type(d).__name__}")
    extra = [k for k in d if k not in _SPACE_KEYS]
    if extra:
        raise SpaceDefinitionError(
            f"unknown key {extra[0]!r}; allowed: {', '.join(_SPACE_KEYS)}", (str(extra[0]),)
        )
    for key in ("name", "dims"):
        if key not in d:
            raise SpaceDefinitionError(f"missing required key {key!r}", ())
    if not isinstance(d["dims"], list):
        raise SpaceDefinitionError("must be a list of dimensions and groups", ("dims",))
    _unique_names(d["dims"], ("dims",))
    children = [_node_from_dict(c, ("dims", i)) for i, c in enumerate(d["dims"])]
    cons_raw = d.get("constraints") or []
    if not isinstance(cons_raw, list):
        raise SpaceDefinitionError("must be a list", ("constraints",))
    cons: list[Constraint | Predicate] = []
    for i, c in enumerate(cons_raw):
        if isinstance(c, Mapping) and c.get("type") == "predicate" and c.get("name") in predicates:
            cons.append(predicates[c["name"]])
        else:
            cons.append(constraint_from_dict(c, ("constraints", i)))
    for key in ("family", "arch_format", "description"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise SpaceDefinitionError(f"must be a string, got {d[key]!r}", (key,))
    try:
        return Space(d["name"], children, cons, family=d.get("family"),
                     arch_format=d.get("arch_format"), description=d.get("description") or "")
    except SpaceDefinitionError as e:
        if e.field:
            raise
        field: tuple[str | int, ...] = ("name",) if "space name" in str(e) else ()
        if not field:  # "<dotted path>: ...": point at the entry that declares that path
            head = e.bare_message.split(":", 1)[0].strip()
            field = _dotted_fields(d["dims"]).get(head, ())
            if field and "condition reads" in e.bare_message:
                field += ("when",)
        raise SpaceDefinitionError(e.bare_message, field) from None


def _unique_names(raw: list[Any], field: tuple[str | int, ...]) -> None:
    """Two entries of one list of dimensions/groups with the same name: an error at the
    second (its line in a YAML file), not at the list."""
    seen: set[Any] = set()
    for i, c in enumerate(raw):
        name = c.get("name") if isinstance(c, Mapping) else None
        if name is not None and name in seen:
            raise SpaceDefinitionError(f"two entries are named {name!r}", field + (i, "name"))
        seen.add(name)


def _dotted_fields(raw: list[Any], prefix: str = "",
                   field: tuple[str | int, ...] = ("dims",)) -> dict[str, tuple[str | int, ...]]:
    """Dotted path -> location in the definition, for every declared dimension and group
    (a repeated group's copies ``name.0``, ``name.1``, ... point at its one entry)."""
    out: dict[str, tuple[str | int, ...]] = {}
    for i, c in enumerate(raw):
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
            continue
        f = field + (i,)
        path = prefix + c["name"]
        out[path] = f
        kids = c.get("children")
        if isinstance(kids, list):
            reps = c.get("repeat")
            if isinstance(reps, int) and not isinstance(reps, bool) and 0 < reps <= 1024:
                for k in range(reps):
                    out[f"{path}.{k}"] = f
                    out.update(_dotted_fields(kids, f"{path}.{k}.", f + ("children",)))
            else:
                out.update(_dotted_fields(kids, path + ".", f + ("children",)))
    return out


_NODE_KEYS = {
    "choice": ("name", "type", "values", "ordinal", "default", "when"),
    "int": ("name", "type", "low", "high", "step", "default", "when"),
    "group": ("name", "type", "children", "when", "repeat", "depth"),
}


def _when_from(raw: Any, field: tuple[str | int, ...]) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, c in enumerate(items):
        f = field + ((i,) if isinstance(raw, list) else ())
        if not isinstance(c, Mapping) or set(c) - {"path", "op", "value"} or \
                not {"path", "op", "value"} <= set(c):
            raise SpaceDefinitionError(
                "a condition is a mapping with exactly the keys path, op, value", f
            )
        try:
            out.append(Condition(c["path"], c["op"], c["value"]))
        except SpaceDefinitionError as e:
            raise SpaceDefinitionError(e.bare_message, f) from None
    return tuple(out)


def _node_from_dict(d: Any, field: tuple[str | int, ...]) -> Any:
    if not isinstance(d, Mapping):
        raise SpaceDefinitionError(f"expected a mapping (a dimension or group), got {d!r}", field)
    kind = d.get("type")
    if kind not in _NODE_KEYS:
        raise SpaceDefinitionError(
            f"type {kind!r} is not known; allowed: {', '.join(_NODE_KEYS)}", field + ("type",)
        )
    extra = [k for k in d if k not in _NODE_KEYS[kind]]
    if extra:
        raise SpaceDefinitionError(
            f"unknown key {extra[0]!r} for a {kind}; allowed: {', '.join(_NODE_KEYS[kind])}",
            field + (str(extra[0]),),
        )
    if "name" not in d:
        raise SpaceDefinitionError(f"a {kind} needs a name", field)
    when = _when_from(d.get("when"), field + ("when",))
    children: tuple[Any, ...] = ()
    if kind == "group":
        # built outside the try below: a child's error already carries its full location
        raw_children = d.get("children")
        if not isinstance(raw_children, list):
            raise SpaceDefinitionError("a group needs a list of children", field + ("children",))
        _unique_names(raw_children, field + ("children",))
        children = tuple(_node_from_dict(c, field + ("children", i))
                         for i, c in enumerate(raw_children))
    try:
        if kind == "choice":
            if "values" not in d:
                raise SpaceDefinitionError("a choice needs values", ())
            if not isinstance(d["values"], list):
                raise SpaceDefinitionError(f"must be a list, got {d['values']!r}", ("values",))
            return Choice(d["name"], tuple(d["values"]), ordinal=d.get("ordinal"),
                          default=d.get("default"), when=when)
        if kind == "int":
            for k in ("low", "high"):
                if k not in d:
                    raise SpaceDefinitionError(f"an int range needs {k}", ())
            return IntRange(d["name"], d["low"], d["high"], d.get("step", 1),
                            default=d.get("default"), when=when)
        if "repeat" in d:
            n = d["repeat"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise SpaceDefinitionError(f"must be a positive integer, got {n!r}", ("repeat",))
            depth = d.get("depth")
            if depth is not None and not isinstance(depth, str):
                raise SpaceDefinitionError("must be the path of a depth dimension", ("depth",))
            reps = tuple(
                Group(str(i), children,
                      when=(Condition(depth, ">", i),) if depth is not None and i > 0 else ())
                for i in range(n)
            )
            return Group(d["name"], reps, when=when)
        if "depth" in d:
            raise SpaceDefinitionError("'depth' is only allowed together with 'repeat'", ("depth",))
        return Group(d["name"], children, when=when)
    except SpaceDefinitionError as e:
        raise SpaceDefinitionError(e.bare_message, field + e.field) from None


class Config(Mapping[str, Any]):
    """A frozen, hashable member of a space.

    A mapping from the dotted paths of the dimensions that exist to their values
    (``cfg["stages.0.blocks.1.kernel"]``). Serialises to readable nested JSON with
    :meth:`to_dict` / :meth:`to_json`; build one with ``space.config(...)``.
    """

    __slots__ = ("space", "_idx", "_hash")

    space: Space
    _idx: tuple[int, ...]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("build configs with space.config(data), space.sample(), ...")

    @classmethod
    def _make(cls, space: Space, idx: tuple[int, ...]) -> Config:
        obj = object.__new__(cls)
        object.__setattr__(obj, "space", space)
        object.__setattr__(obj, "_idx", idx)
        object.__setattr__(obj, "_hash", hash((space.name, idx)))
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is immutable; use config.replace({...})")

    def __reduce__(self) -> tuple[Callable[..., Config], tuple[Any, ...]]:
        return (Config._make, (self.space, self._idx))

    # mapping protocol over the dimensions that exist
    def __getitem__(self, path: str) -> Any:
        d = self.space._index.get(path)
        if d is None:
            raise KeyError(f"{path}: not a dimension of space {self.space.name!r}")
        i = self._idx[d]
        if i < 0:
            raise KeyError(f"{path}: does not exist in this config")
        return self.space._dims[d].values[i]

    def get(self, path: str, default: Any = None) -> Any:
        d = self.space._index.get(path)
        if d is None or self._idx[d] < 0:
            return default
        return self.space._dims[d].values[self._idx[d]]

    def __iter__(self) -> Iterator[str]:
        dims = self.space._dims
        return (dims[d].path for d, i in enumerate(self._idx) if i >= 0)

    def __len__(self) -> int:
        return sum(1 for i in self._idx if i >= 0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return self._idx == other._idx and (
            self.space is other.space or self.space.fingerprint == other.space.fingerprint
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Config({self.space.name}, {self.to_json()})"

    def flat(self) -> dict[str, Any]:
        """``{dotted path: value}`` for every dimension that exists."""
        dims = self.space._dims
        return {dims[d].path: dims[d].values[i] for d, i in enumerate(self._idx) if i >= 0}

    def to_dict(self) -> dict[str, Any]:
        """Nested dict; numbered groups (stages, blocks) become lists."""
        flat = self.flat()
        space = self.space

        def build(group: Group, prefix: str) -> Any:
            out: dict[str, Any] = {}
            for c in group.children:
                p = prefix + c.name
                if isinstance(c, Group):
                    v = build(c, p + ".")
                    if v is not None:
                        out[c.name] = v
                elif p in flat:
                    out[c.name] = flat[p]
            if not out:
                return None
            if id(group) in space._list_groups and list(out) == [str(i) for i in range(len(out))]:
                return list(out.values())
            return out

        return build(space.root, "") or {}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @property
    def id(self) -> str:
        """A stable 12-hex-digit id: the same for the same space name and values, across runs
        and machines."""
        payload = json.dumps({"space": self.space.name, "config": self.flat()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def replace(self, changes: Mapping[str, Any]) -> Config:
        """A new validated config with some dotted paths changed (``None`` removes a path)."""
        flat = self.flat()
        for k, v in changes.items():
            if v is None:
                flat.pop(k, None)
            else:
                flat[k] = v
        return self.space.config(flat)


__all__ = ["Space", "Config", "as_rng", "INACTIVE", "Divides", "Compare", "Forbid", "Predicate"]
