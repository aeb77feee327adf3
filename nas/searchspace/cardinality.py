"""Exact counting of a space's configs by variable elimination.

Each dimension is a variable whose domain is its values plus "absent". Factors are 0/1 tables:
one per dimension saying it exists exactly when its conditions hold (and is absent
otherwise), and one per declarative constraint. The number of configs is the sum over all
assignments of the product of factors, computed by summing variables out one at a time
(min-degree order), with Python integers so that huge counts stay exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nas.errors import ConfigError

if TYPE_CHECKING:
    from nas.searchspace.space import Space

_MAX_TABLE = 20_000_000

Factor = tuple[tuple[int, ...], np.ndarray]  # (scope of variable ids, table of python ints)


def _activity_factor(space: Space, d: int) -> Factor:
    dim = space._dims[d]
    parents = [p for p, _, _ in dim.conds]
    scope = tuple(dict.fromkeys(parents + [d]))
    sizes = [space._dims[v].n + 1 for v in scope]
    table = np.zeros(sizes, dtype=object)
    for pos in np.ndindex(*sizes):
        assign = dict(zip(scope, pos))  # 0 = absent, k = value index k-1
        active = all(assign[p] > 0 and mask[assign[p] - 1] for p, mask, _ in dim.conds)
        table[pos] = int(active == (assign[d] > 0))
    return scope, table


def _constraint_factor(space: Space, c, ci: tuple[int, ...]) -> Factor:
    scope = tuple(dict.fromkeys(ci))
    sizes = [space._dims[v].n + 1 for v in scope]
    table = np.zeros(sizes, dtype=object)
    for pos in np.ndindex(*sizes):
        assign = dict(zip(scope, pos))
        vals = tuple(
            None if assign[j] == 0 else space._dims[j].values[assign[j] - 1] for j in ci
        )
        table[pos] = int(c.check(vals))
    return scope, table


def _align(f: Factor, scope: tuple[int, ...]) -> np.ndarray:
    fscope, table = f
    order = [fscope.index(v) for v in scope if v in fscope]
    t = np.transpose(table, order)
    shape = [table.shape[fscope.index(v)] if v in fscope else 1 for v in scope]
    return t.reshape(shape)


def count_configs(space: Space) -> int:
    """The exact number of configs of ``space`` allowed by its conditions and declarative
    constraints (predicates are not looked at)."""
    factors: dict[int, Factor] = dict(enumerate(
        [_activity_factor(space, d) for d in range(len(space._dims))]
        + [_constraint_factor(space, c, ci) for c, ci in space._cons_idx]))
    touches: dict[int, set[int]] = {v: set() for v in range(len(space._dims))}  # var -> factors
    for k, (fs, _) in factors.items():
        for v in fs:
            touches[v].add(k)
    next_id = len(factors)
    remaining = set(range(len(space._dims)))
    total = 1
    while remaining:
        # min-degree: the variable whose elimination builds the smallest table (one whose
        # factors read it alone is as small as any: taken at once, so that independent
        # dimensions cost linear time, not quadratic)
        best, best_size, best_scope = None, None, None
        for v in remaining:
            scope: dict[int, None] = {}
            for k in touches[v]:
                scope.update(dict.fromkeys(factors[k][0]))
            scope.setdefault(v, None)
            size = 1
            for u in scope:
                size *= space._dims[u].n + 1
            if best_size is None or size < best_size:
                best, best_size, best_scope = v, size, tuple(scope)
            if len(scope) == 1:
                break
        assert best is not None and best_scope is not None and best_size is not None
        if best_size > _MAX_TABLE:
            raise ConfigError(
                f"space {space.name!r}: its constraints couple too many dimensions to count "
                "exactly (intermediate table of "
                f"{best_size} entries); estimate it from samples instead"
            )
        touching = sorted(touches[best])
        prod = None
        for k in touching:
            a = _align(factors[k], best_scope)
            prod = a if prod is None else prod * a
            for u in factors[k][0]:
                if u != best:
                    touches[u].discard(k)
            del factors[k]
        assert prod is not None
        summed = prod.sum(axis=best_scope.index(best))
        new_scope = tuple(v for v in best_scope if v != best)
        if new_scope:
            factors[next_id] = (new_scope, np.asarray(summed, dtype=object).reshape(
                [space._dims[v].n + 1 for v in new_scope]))
            for u in new_scope:
                touches[u].add(next_id)
            next_id += 1
        else:
            total *= int(summed)
        remaining.discard(best)
        del touches[best]
    return int(total)
