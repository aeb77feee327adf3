"""Unit tests of Space/Config behaviour and error messages."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from nas.errors import ConfigError, SpaceDefinitionError
from nas.searchspace import (
    Choice,
    Compare,
    Condition,
    Divides,
    Group,
    IntRange,
    Predicate,
    Space,
    get_space,
    register_predicate,
)


@pytest.fixture(scope="module")
def resnet() -> Space:
    return get_space("resnet_like")


def test_config_is_frozen_hashable_mapping(resnet: Space) -> None:
    c = resnet.default()
    with pytest.raises(AttributeError):
        c.space = None  # type: ignore[misc]
    assert {c: 1}[resnet.config(c.to_dict())] == 1
    assert c["stages.0.depth"] == 2
    assert "stages.0.blocks.2.kernel" not in c  # absent: beyond depth
    assert c.get("stages.0.blocks.2.kernel") is None
    with pytest.raises(KeyError):
        c["stages.0.blocks.2.kernel"]
    assert pickle.loads(pickle.dumps(c)) == c
    d = c.to_dict()
    assert isinstance(d["stages"], list) and len(d["stages"][0]["blocks"]) == 2


def test_config_id_is_stable_across_processes(resnet: Space) -> None:
    c = resnet.min()
    payload = json.dumps({"space": "resnet_like", "config": c.flat()}, sort_keys=True)
    assert c.id == hashlib.sha256(payload.encode()).hexdigest()[:12]
    code = ("from nas.searchspace import get_space;"
            "print(get_space('resnet_like').min().id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, check=True)
    assert out.stdout.strip() == c.id
    assert resnet.max().id != c.id


def test_errors_name_path_value_and_allowed(resnet: Space) -> None:
    d = resnet.default().to_dict()
    d["stages"][2]["blocks"][1]["kernel"] = 9
    with pytest.raises(ConfigError, match=r"stages\.2\.blocks\.1\.kernel: got 9, allowed: 3, 5, 7"):
        resnet.config(d)
    d = resnet.default().to_dict()
    del d["stages"][0]["width"]
    with pytest.raises(ConfigError, match=r"stages\.0\.width: missing \(allowed: 16, 24, 32\)"):
        resnet.config(d)
    d = resnet.default().to_dict()
    d["stages"][0]["colour"] = "red"
    with pytest.raises(ConfigError, match=r"stages\.0\.colour: unknown field \(known here: "
                                          r"[a-z_, ]+\)$"):
        resnet.config(d)
    # a config of another space: said at its first unknown field, nested or flat
    vit = get_space("vit_like")
    for other in (resnet.default().to_dict(), resnet.default().flat()):
        with pytest.raises(ConfigError, match=r"^stem: unknown field \(known here: stages\); a "
                                              r"config of another space than 'vit_like'\?$"):
            vit.config(other)
    with pytest.raises(ConfigError, match=r"^stages\.7: unknown field \(known here: 0, 1, 2\)$"):
        vit.config({"stages.7.depth": 1})
    with pytest.raises(ConfigError, match=r"stages\.0\.depth is a dimension, not a group"):
        vit.config({"stages.0.depth.x": 1})
    d = resnet.default().to_dict()
    d["stages"][0]["blocks"].append({"kernel": 3, "cardinality": 1})
    with pytest.raises(ConfigError, match=r"stages\.0\.blocks\.2\.kernel: given, but it does not "
                                          r"exist unless stages\.0\.depth > 2 \(it is 2\)"):
        resnet.config(d)
    d = resnet.default().to_dict()
    d["stages"][0]["width"] = 24
    d["stages"][0]["blocks"][0]["cardinality"] = 16
    with pytest.raises(ConfigError, match=r"stages\.0\.blocks\.0\.cardinality must divide "
                       r"stages\.0\.width .*cardinality=16, stages\.0\.width=24"):
        resnet.config(d)
    with pytest.raises(ConfigError, match="not 'resnet_like'"):
        resnet.config(get_space("nb201").default())
    with pytest.raises(ConfigError, match="length 49, got 3"):
        resnet.decode([0, 0, 0])


def test_bool_and_int_values_are_distinct() -> None:
    s = Space("b", [Choice("flag", (True, False)), Choice("n", (0, 1))])
    assert s.config({"flag": True, "n": 1})["flag"] is True
    with pytest.raises(ConfigError, match="n: got True"):
        s.config({"flag": True, "n": True})
    assert s.config({"flag": False, "n": 1.0})["n"] == 1  # 1.0 == 1 for numbers


def test_definition_errors() -> None:
    with pytest.raises(SpaceDefinitionError, match="values must be unique"):
        Choice("k", (3, 3))
    with pytest.raises(SpaceDefinitionError, match=r"k: .*increasing or decreasing order, "
                       r"got \[3, 7, 5\]; or set ordinal: true .* or ordinal: false"):
        Choice("k", (3, 7, 5))
    # definitions this package stored before these checks existed (checkpoints, latency
    # tables) still load, with their old meaning and fingerprint
    old = {"name": "old", "dims": [
        {"name": "b", "type": "choice", "values": [1, 2]},
        {"name": "k", "type": "choice", "values": [3, 7, 5]},
        {"name": "a", "type": "choice", "values": [1, 2],
         "when": [{"path": "b", "op": "==", "value": 5}]}]}
    stored = Space.from_dict(old, stored=True)
    assert stored.dimension("k").ordinal
    # written with ordinal: true, so that the file loads; the fingerprint is the old one
    import hashlib
    import json

    assert stored.to_dict()["dims"][1] == {**old["dims"][1], "ordinal": True}
    assert stored.fingerprint == hashlib.sha256(
        json.dumps(old, sort_keys=True).encode()).hexdigest()
    two = {**old, "dims": old["dims"][:2]}  # (without the condition that never holds)
    assert (Space.from_dict(Space.from_dict(two, stored=True).to_dict()).fingerprint
            == Space.from_dict(two, stored=True).fingerprint)  # the written form loads
    assert stored.cardinality() == 6  # (a never exists)
    with pytest.raises(SpaceDefinitionError, match="increasing or decreasing order"):
        Space.from_dict(old)
    assert not Choice("k", (3, 7, 5), ordinal=False).ordinal  # said explicitly: categories
    for cond in (Condition("b", "==", 5), Condition("b", ">", "x")):  # a typo, another type
        with pytest.raises(SpaceDefinitionError, match=r"a: condition 'b .*' never holds \(b "
                           r"takes 1, 2\), so the dimension would never exist"):
            Space("s", [Choice("b", (1, 2)), Choice("a", (1, 2), when=cond)])
    for bad in (True, 2.0):  # equal to 1 and 2, but not ints: another fingerprint
        with pytest.raises(SpaceDefinitionError, match=f"a: default {bad!r} is not in 1..3"):
            IntRange("a", 1, 3, default=bad)
    assert Choice("g", (16, 8, 4)).ordinal and Choice("k", (7,)).ordinal
    with pytest.raises(SpaceDefinitionError, match="multiple of step"):
        IntRange("d", 1, 4, 2)
    with pytest.raises(SpaceDefinitionError, match="default 9 is not one of"):
        Choice("k", (3, 5), default=9)
    with pytest.raises(SpaceDefinitionError, match="declared earlier"):
        Space("s", [Choice("a", (1, 2), when=Condition("b", "==", 1)), Choice("b", (1, 2))])
    with pytest.raises(SpaceDefinitionError, match="not a dimension of space"):
        Space("s", [Choice("a", (1, 2))], [Divides("a", "zzz")])
    with pytest.raises(SpaceDefinitionError, match="two children are named 'a'"):
        Group("g", (Choice("a", (1,)), Choice("a", (2,))))
    with pytest.raises(SpaceDefinitionError, match="op '=<' is not allowed"):
        Condition("a", "=<", 1)


def test_min_max_default_and_constraints_adjust() -> None:
    s = Space("s", [Choice("w", (24, 32)), Choice("g", (1, 16))], [Divides("g", "w")])
    assert s.min().flat() == {"w": 24, "g": 1}
    assert s.max().flat() == {"w": 32, "g": 16}
    s2 = Space("s2", [Choice("w", (32, 24)), Choice("g", (1, 16))], [Divides("g", "w")])
    assert s2.max().flat() == {"w": 24, "g": 1}  # last value of w breaks nothing, g adjusts


def test_encoding_marks_absent_dimensions(resnet: Space) -> None:
    c = resnet.min()
    enc = resnet.encode(c)
    for i, path in enumerate(resnet.paths):
        assert (enc[i] == -1) == (path not in c)
    lo, hi = resnet.bounds()
    assert np.all(lo == 0) and hi[resnet.paths.index("stem.width")] == 2


def test_mutation_rate_and_determinism(resnet: Space) -> None:
    c = resnet.default()
    a = [resnet.mutate(c, np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    heavy = resnet.mutate(c, 1, rate=1.0)
    diff = sum(1 for p in c if heavy.get(p) != c[p])
    assert diff >= len(c) // 2
    with pytest.raises(ConfigError, match="rate"):
        resnet.mutate(c, 1, rate=2.0)


def test_neighbours_change_exactly_one_existing_dimension() -> None:
    s = Space("s", [IntRange("depth", 1, 3), Group("blocks", (
        Group("0", (Choice("k", (3, 5, 7)),)),
        Group("1", (Choice("k", (3, 5, 7)),), when=Condition("depth", ">", 1)),
    ))])
    c = s.config({"depth": 1, "blocks": [{"k": 5}]})
    got = {json.dumps(n.flat(), sort_keys=True) for n in s.neighbours(c)}
    assert got == {
        json.dumps({"blocks.0.k": 3, "depth": 1}, sort_keys=True),
        json.dumps({"blocks.0.k": 7, "depth": 1}, sort_keys=True),
        json.dumps({"blocks.0.k": 5, "blocks.1.k": 3, "depth": 2}, sort_keys=True),
    }


def test_complete_pins_given_values_and_prefers_an_end() -> None:
    s = Space("c", [Choice("width", (24, 32)), IntRange("depth", 1, 2), Group("blocks", (
        Group("0", (Choice("groups", (1, 2, 16)),)),
        Group("1", (Choice("groups", (1, 2, 16)),), when=Condition("depth", ">", 1)),
    ))], [Divides("blocks.0.groups", "width"), Divides("blocks.1.groups", "width")])
    c = s.complete({"width": 24})
    assert c is not None and c.flat() == {"width": 24, "depth": 2, "blocks.0.groups": 2,
                                          "blocks.1.groups": 2}
    assert s.complete({"width": 32}).flat()["blocks.1.groups"] == 16
    assert s.complete({"width": 32}, prefer="min").flat() == {"width": 32, "depth": 1,
                                                               "blocks.0.groups": 1}
    assert s.complete({"width": 24, "blocks.0.groups": 16}) is None   # 16 does not divide 24
    assert s.complete({"depth": 1, "blocks.1.groups": 2}) is None     # block 1 cannot exist
    with pytest.raises(ConfigError, match="blocks.0.groups: 3 is not one of"):
        s.complete({"blocks.0.groups": 3})
    with pytest.raises(ConfigError, match="prefer"):
        s.complete({}, prefer="largest")


def test_predicates_are_enforced_and_counted() -> None:
    register_predicate("even_sum", lambda c: (c["a"] + c["b"]) % 2 == 0)
    s = Space("p", [IntRange("a", 0, 3), IntRange("b", 0, 3)],
              [Predicate("even_sum"), Compare("a", "<=", "b")])
    assert s.cardinality() == 6  # (0,0) (0,2) (1,1) (1,3) (2,2) (3,3)
    assert s.cardinality(predicates="ignore") == 10
    for c in s.sample_many(50, 0):
        assert (c["a"] + c["b"]) % 2 == 0 and c["a"] <= c["b"]
    with pytest.raises(ConfigError, match="predicate 'even_sum' rejects"):
        s.config({"a": 0, "b": 1})
    with pytest.raises(ConfigError, match="needs enumeration"):
        s.cardinality(max_enumerate=5)
    again = Space.from_dict(s.to_dict())
    assert again == s and again.cardinality() == 6


def test_unregistered_predicate_names_known_ones() -> None:
    d = {"name": "x", "dims": [{"name": "a", "type": "int", "low": 0, "high": 1}],
         "constraints": [{"type": "predicate", "name": "nobody_registered_this"}]}
    with pytest.raises(SpaceDefinitionError, match="not registered"):
        Space.from_dict(d)


def test_unsatisfiable_space_errors_clearly() -> None:
    s = Space("u", [IntRange("a", 0, 2)], [Compare("a", ">", 5)])
    assert s.cardinality() == 0
    with pytest.raises(ConfigError, match="unsatisfiable"):
        s.sample(0)
    with pytest.raises(ConfigError, match="unsatisfiable"):
        s.min()


def test_tight_constraints_are_solved_not_reported_unsatisfiable() -> None:
    """A constraint between the first and the last of 22 dimensions that only one value of
    the first satisfies: depth-first search without forward checking tried every value of
    the 20 dimensions in between (3^20) for each wrong first value and gave up."""
    dims = [IntRange("a", 0, 9)] + [Choice(f"m{i}", (1, 2, 3)) for i in range(20)] \
        + [Choice("z", (0,))]
    sp = Space("tight", dims, [Compare("a", "==", "z")])
    assert sp.cardinality() == 3**20
    assert sp.max()["a"] == 0 and sp.default()["a"] == 0
    assert all(c["a"] == 0 for c in sp.sample_many(200, 0))
    assert all(sp.sample(s)["a"] == 0 for s in range(30))
    assert sp.complete({"m0": 2}) is not None
    assert sp.repair(np.full(len(sp), 5.0))["a"] == 0


def test_resnet_like_with_a_width_ordering_constraint_samples() -> None:
    d = get_space("resnet_like").to_dict()
    d["name"] = "ordered"
    d["constraints"] = [*d.get("constraints", []),
                        {"type": "compare", "left": "stages.1.width", "op": "<=",
                         "right": "stages.0.width"}]
    sp = Space.from_dict(d)
    for cfg in [*sp.sample_many(5, 0), *sp.sample_many(50, 1), sp.default(), sp.max()]:
        assert cfg["stages.1.width"] <= cfg["stages.0.width"]


def test_rare_and_raising_predicates() -> None:
    register_predicate("one_in_30", lambda c: sum(c[f"m{i}"] for i in range(6)) % 30 == 0)
    dims = [IntRange(f"m{i}", 0, 9) for i in range(6)]
    rare = Space("rare", dims, [Predicate("one_in_30")])
    assert all(sum(c[f"m{i}"] for i in range(6)) % 30 == 0 for c in rare.sample_many(20, 0))
    register_predicate("boom", lambda c: 1 / 0)
    with pytest.raises(ConfigError, match=r"'boom' raised ZeroDivisionError"):
        Space("b", dims, [Predicate("boom")]).sample(0)
    register_predicate("never", lambda c: False)
    with pytest.raises(ConfigError, match=r"within the search budget, though 1e\+06 configs "
                                          r"satisfy its constraints; its predicates"):
        Space("n", dims, [Predicate("never")]).sample(0)


def test_a_thousand_dimensions_do_not_exhaust_the_recursion_limit() -> None:
    sp = Space("wide", [Choice(f"d{i}", (1, 2)) for i in range(1500)],
               [Compare("d0", "<=", "d1499")])
    assert sp.max()["d0"] <= sp.max()["d1499"] and sp.min()["d0"] == 1
    assert len(sp.neighbours(sp.min())) > 0


def test_sample_is_roughly_uniform_per_dimension(resnet: Space) -> None:
    configs = resnet.sample_many(6000, 0)
    kernels = [c["stages.0.blocks.0.kernel"] for c in configs]
    counts = np.array([kernels.count(k) for k in (3, 5, 7)])
    assert counts.min() > 1800  # each about 2000
    assert len(set(configs)) == 6000


def test_complete_backtracks_to_make_a_conditional_pin_exist() -> None:
    s = Space("t", [Choice("w", (2, 4)), Choice("k", (1, 2)),
                    Choice("c", (1, 4), when=Condition("k", "==", 2))], [Divides("c", "w")])
    assert s.complete({"c": 4}, prefer="min").flat() == {"w": 4, "k": 2, "c": 4}


def test_divides_on_float_values_agrees_between_scalar_and_vectorised_paths() -> None:
    f = Space("f", [Choice("a", (0.5, 1.5, 2.5)), Choice("b", (3.5, 5.0, 7.5))],
              [Divides("a", "b")])
    cs = f.sample_many(400, 0)
    assert all(f.contains(c.flat()) for c in cs)
    assert f.repair_many(np.array([[1.0, 0.0]]))[0] == f.repair([1.0, 0.0])
