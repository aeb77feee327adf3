"""Shared strategies and an independent brute-force oracle for the DSL tests."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from nas.searchspace import Choice, Compare, Condition, Divides, Forbid, Group, IntRange, Space


def brute_force(space: Space) -> list[dict[str, Any]]:
    """All valid configs as flat dicts, by trying every combination of values-or-absent and
    keeping those where each dimension exists exactly when its conditions hold and every
    constraint holds. Independent of Space's solver and counter: it uses only the public
    description (paths, values, conditions, constraints)."""
    paths = space.paths
    domains = [list(space.values(p)) + [None] for p in paths]
    out = []
    for combo in itertools.product(*domains):
        flat = dict(zip(paths, combo))
        ok = True
        for p in paths:
            conds = space.conditions(p)
            exists = all(flat[c.path] is not None and c.holds(flat[c.path]) for c in conds)
            if exists != (flat[p] is not None):
                ok = False
                break
        if not ok:
            continue
        if all(c.check(tuple(flat[q] for q in c.paths)) for c in space.constraints):
            cfg = {k: v for k, v in flat.items() if v is not None}
            if all(pr(space.config(cfg)) for pr in space.predicates):
                out.append(cfg)
    return out


@st.composite
def small_spaces(draw: Any, max_dims: int = 6) -> Space:
    """Random small spaces with nested groups, conditions and declarative constraints."""
    n_items = draw(st.integers(1, 4))
    children: list[Any] = []
    declared: list[tuple[str, tuple[Any, ...]]] = []  # (path, values) of dims so far
    counter = itertools.count()

    def new_dim(prefix: str) -> Any:
        name = f"d{next(counter)}"
        kind = draw(st.sampled_from(["int", "choice", "cat"]))
        if kind == "int":
            low = draw(st.integers(0, 4))
            step = draw(st.integers(1, 2))
            high = low + step * draw(st.integers(0, 2))
            dim: Any = IntRange(name, low, high, step)
        elif kind == "choice":
            vals = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3, unique=True))
            ordered = vals in (sorted(vals), sorted(vals, reverse=True))
            # numbers out of order are only allowed as categories
            dim = Choice(name, tuple(vals), ordinal=None if ordered else False)
        else:
            vals = draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3, unique=True))
            dim = Choice(name, tuple(vals))
        when = ()
        if declared and draw(st.booleans()):
            ppath, pvals = draw(st.sampled_from(declared))
            op = draw(st.sampled_from([">=", "==", "!=", "in"]))
            if (isinstance(pvals[0], str) and op == ">=") or (op == "!=" and len(pvals) == 1):
                op = "=="  # (a condition that never holds is refused)
            v = draw(st.sampled_from(pvals))
            when = (Condition(ppath, op, (v,) if op == "in" else v),)
        dim = type(dim)(**{**dim.__dict__, "when": when})
        declared.append((prefix + name, dim.values))
        return dim

    total = 0
    for _ in range(n_items):
        if total >= max_dims:
            break
        if draw(st.booleans()):
            children.append(new_dim(""))
            total += 1
        else:
            gname = f"g{next(counter)}"
            gwhen = ()
            if declared and draw(st.booleans()):
                ppath, pvals = draw(st.sampled_from(declared))
                if len(pvals) > 1:  # (on one value, != never holds: refused)
                    gwhen = (Condition(ppath, "!=", draw(st.sampled_from(pvals))),)
            kids = []
            for _ in range(draw(st.integers(1, 2))):
                kids.append(new_dim(f"{gname}."))
                total += 1
            children.append(Group(gname, tuple(kids), when=gwhen))
    ints = [(p, v) for p, v in declared if not isinstance(v[0], str)]
    cats = [(p, v) for p, v in declared if isinstance(v[0], str)]
    cons: list[Any] = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["divides", "compare", "forbid"]))
        if kind in ("divides", "compare") and len(ints) >= 2:
            (a, _), (b, _) = draw(st.permutations(ints))[:2]
            if kind == "divides":
                cons.append(Divides(a, b))
            else:
                cons.append(Compare(a, draw(st.sampled_from([">=", "<", "!="])), b))
        elif kind == "forbid" and declared:
            p, v = draw(st.sampled_from(cats or declared))
            cons.append(Forbid({p: draw(st.sampled_from(v))}))
    return Space("hyp", children, cons)
