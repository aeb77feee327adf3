"""YAML/JSON files: round trips, the repeat shorthand, and errors with file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.errors import ConfigError, SpaceDefinitionError
from nas.searchspace import (
    get_space,
    load_config,
    load_space,
    register_predicate,
    save_config,
)

SPACE_YAML = """\
name: mini_resnet
family: resnet_like
dims:
  - name: stem
    type: group
    children:
      - {name: width, type: choice, values: [16, 32]}
  - name: stages
    type: group
    children:
      - name: "0"
        type: group
        children:
          - {name: depth, type: int, low: 1, high: 3}
          - {name: width, type: choice, values: [24, 32]}
          - name: blocks
            type: group
            repeat: 3
            depth: stages.0.depth
            children:
              - {name: kernel, type: choice, values: [3, 5]}
              - {name: cardinality, type: choice, values: [1, 16]}
constraints:
  - {type: divides, divisor: stages.0.blocks.0.cardinality, dividend: stages.0.width}
"""


def test_yaml_space_with_repeat(tmp_path: Path) -> None:
    p = tmp_path / "mini.yaml"
    p.write_text(SPACE_YAML)
    s = load_space(str(p))
    assert s.name == "mini_resnet" and s.family == "resnet_like"
    from nas.searchspace import Condition

    assert s.conditions("stages.0.blocks.2.kernel") == (Condition("stages.0.depth", ">", 2),)
    assert s.conditions("stages.0.blocks.0.kernel") == ()
    # 2 kernels x 2 cardinalities per block; at width 24 block 0 cannot take cardinality 16
    # (2 choices left there), the other blocks are unconstrained. Times 2 stem widths.
    expected = 2 * ((2 + 2 * 4 + 2 * 4 * 4) + (4 + 4 * 4 + 4 * 4 * 4))
    assert s.cardinality() == expected == sum(1 for _ in s.grid())
    out = tmp_path / "again.json"
    s.save(out)
    assert load_space(str(out)) == s


@pytest.mark.parametrize("text, pattern", [
    ("name: x\ndims:\n  - {name: a, type: choice, values: [1, 1]}\n",
     r"x\.yaml:3: dims\[0\]: .*values must be unique"),
    ("name: x\ndims:\n  - {name: a, type: choice, values: [16, 64, 32]}\n",
     r"x\.yaml:3: dims\[0\]: a: numeric values are ordered .* got \[16, 64, 32\]"),
    ("name: x\ndims:\n  - name: a\n    type: choice\n    values: [1]\n    colour: red\n",
     r"x\.yaml:6: dims\[0\]\.colour: unknown key 'colour'"),
    ("name: x\ndims:\n  - {name: a, type: float, values: [1]}\n",
     r"x\.yaml:3: dims\[0\]\.type: type 'float' is not known; allowed: choice, int, group"),
    ("name: x\ndims:\n  - {name: a, type: choice, values: [1]\n",
     r"x\.yaml:\d+: malformed YAML"),
    ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\nconstraints:\n"
     "  - {type: divides, divisor: a, dividend: b}\n",
     r"x\.yaml:5: constraints\[0\]: .*reads 'b', which is not a dimension"),
    # a forbidden value the dimension does not have forbids nothing (a typo)
    ("name: x\ndims:\n  - {name: a, type: choice, values: [16, 32]}\nconstraints:\n"
     "  - {type: forbid, combination: {a: [64]}}\n",
     r"x\.yaml:5: constraints\[0\]: .*forbids a=64, which is not one of its values \[16, 32\]"),
    ("name: x\ndims:\n  - !!python/object:os.system {}\n",
     r"x\.yaml:3: malformed YAML"),
    # an error two groups deep names its own location once (it was repeated per level)
    ("name: x\ndims:\n  - name: g\n    type: group\n    children:\n      - name: h\n"
     "        type: group\n        children:\n          - {name: a, type: choice, values: [1]}\n"
     "          - {name: b, type: int, low: 3, high: 1}\n",
     r"x\.yaml:10: dims\[0\]\.children\[0\]\.children\[1\]: b: high \(1\) must be >= low"),
    ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\nconstraints:\n  - a >= 1\n",
     r"x\.yaml:5: constraints\[0\]: a constraint must be a mapping with a type \(divides, "),
    # errors found while the space is put together point at their entry, not at line 1
    ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\n"
     "  - {name: a, type: int, low: 1, high: 3}\n",
     r"x\.yaml:4: dims\[1\]\.name: two entries are named 'a'"),
    ("name: x\ndims:\n  - name: g\n    type: group\n    children:\n"
     "      - {name: a, type: int, low: 1, high: 2}\n      - {name: a, type: int, low: 1, "
     "high: 3}\n", r"x\.yaml:7: dims\[0\]\.children\[1\]\.name: two entries are named"),
    ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\n"
     "  - {name: b, type: int, low: 1, high: 2, when: {path: zz, op: '>', value: 1}}\n",
     r"x\.yaml:4: dims\[1\]\.when: b: condition reads 'zz'"),
    # constraints that admit no config are refused at load, at the entry to blame
    ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\n"
     "  - {name: b, type: int, low: 3, high: 4}\nconstraints:\n"
     "  - {type: compare, left: b, op: '>', right: 1}\n"
     "  - {type: compare, left: a, op: '>=', right: b}\n",
     r"x\.yaml:7: constraints\[1\]: this constraint admits no config: a >= b"),
    ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\n"
     "  - {name: b, type: int, low: 1, high: 2}\nconstraints:\n"
     "  - {type: compare, left: a, op: '>', right: b}\n"
     "  - {type: compare, left: b, op: '>=', right: a}\n",
     r"x\.yaml:5: constraints: the constraints together admit no config: a > b; b >= a"),
])
def test_yaml_errors_name_file_line_and_field(tmp_path: Path, text: str, pattern: str) -> None:
    p = tmp_path / "x.yaml"
    p.write_text(text)
    with pytest.raises(SpaceDefinitionError, match=pattern):
        load_space(str(p))


def test_malformed_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"name": "x",\n "dims": [}')
    with pytest.raises(SpaceDefinitionError, match=r"x\.json:2: malformed JSON"):
        load_space(str(p))


def test_config_files(tmp_path: Path) -> None:
    s = get_space("resnet_like")
    c = s.sample(3)
    p = tmp_path / "c.json"
    save_config(c, p)
    assert json.loads(p.read_text())["id"] == c.id
    assert load_config(s, p) == c
    bare = tmp_path / "bare.json"
    bare.write_text(c.to_json())
    assert load_config(s, bare) == c
    bad = tmp_path / "bad.json"
    d = c.to_dict()
    d["stem"]["width"] = 7
    bad.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"bad\.json: stem\.width: got 7, allowed"):
        load_config(s, bad)
    with pytest.raises(ConfigError, match="belongs to space 'nb201'"):
        load_config(s, _write(tmp_path / "o.json", {"space": "nb201", "config": {}}))


def _write(p: Path, obj: object) -> Path:
    p.write_text(json.dumps(obj))
    return p


def test_yaml_booleans_are_yaml_1_2_and_merge_keys_work(tmp_path: Path) -> None:
    # on/off/yes/no are strings (YAML 1.2), not booleans as in YAML 1.1; true/false are
    # booleans; a `<<:` merge key fills in keys that the mapping's own keys may override
    p = tmp_path / "x.yaml"
    p.write_text("name: x\n"
                 "dims:\n"
                 "  - &c {name: mode, type: choice, values: [on, off]}\n"
                 "  - {<<: *c, name: se}\n"
                 "  - {<<: *c, name: act, values: [yes, no]}\n"
                 "  - {<<: *c, name: bias, values: [true, false]}\n")
    s = load_space(str(p))
    assert s.dimension("mode").values == ("on", "off")
    assert s.dimension("se").values == ("on", "off")
    assert s.dimension("act").values == ("yes", "no")
    assert s.dimension("bias").values == (True, False)
    # numbers as in YAML 1.2 and JSON: 1e-3 is a float (YAML 1.1 left it a string), the
    # same space as its JSON twin
    f = tmp_path / "f.yaml"
    f.write_text("name: f\ndims:\n  - {name: lr, type: choice, values: [1e-3, 1.0e-2, 5E2]}\n"
                 "  - {name: tag, type: choice, values: ['1e-4', x]}\n")
    assert load_space(str(f)).values("lr") == (0.001, 0.01, 500.0)
    assert load_space(str(f)).values("tag") == ("1e-4", "x")  # quoted: a string
    j = tmp_path / "f.json"
    j.write_text(json.dumps({"name": "f", "dims": [
        {"name": "lr", "type": "choice", "values": [1e-3, 1.0e-2, 5e2]},
        {"name": "tag", "type": "choice", "values": ["1e-4", "x"]}]}))
    assert load_space(str(j)).fingerprint == load_space(str(f)).fingerprint
    f.write_text("name: f\ndims:\n  - {name: lr, type: choice, values: [1.5e3, 2.5e3, .5e4]}\n")
    assert load_space(str(f)).values("lr") == (1500.0, 2500.0, 5000.0)  # unsigned exponents
    # strings that read as numbers are written quoted: a saved space loads as itself
    from nas.searchspace import Choice, Space

    s2 = Space("q", [Choice("act", ("1e-3", "1e-2", "on")), Choice("lr", (1e-3, 1.5e3))])
    s2.save(tmp_path / "q.yaml")
    back = load_space(str(tmp_path / "q.yaml"))
    assert back.values("act") == ("1e-3", "1e-2", "on") and back.values("lr") == (1e-3, 1.5e3)
    assert back.fingerprint == s2.fingerprint
    # and strings YAML 1.1 reads as booleans are quoted too: other tools read them as strings
    import yaml

    s3 = Space("b", [Choice("mode", ("on", "off", "yes", "no", "maybe"))])
    s3.save(tmp_path / "b.yaml")
    plain = yaml.safe_load((tmp_path / "b.yaml").read_text())
    assert plain["dims"][0]["values"] == ["on", "off", "yes", "no", "maybe"]
    assert load_space(str(tmp_path / "b.yaml")).fingerprint == s3.fingerprint
    # an anchor that merges another, merged where it is defined: valid, its own key wins
    from nas.searchspace.io import read_document, to_plain

    n = tmp_path / "nested.yaml"
    n.write_text("b: &b {k: 0}\nouter: {inner: &m {<<: *b, k: 1}, <<: *m}\n")
    assert to_plain(read_document(n)[0])["outer"] == {"k": 1, "inner": {"k": 1}}
    # a key written twice in one mapping is still an error
    p.write_text("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2, low: 0}\n")
    with pytest.raises(SpaceDefinitionError, match=r"x\.yaml:3: malformed YAML: duplicate key"):
        load_space(str(p))


def test_errors_point_at_the_entry_when_predicates_come_first(tmp_path: Path) -> None:
    # predicates are kept apart from declarative constraints; errors still name the entry
    # of the file (they named the constraint's place among the non-predicates)
    register_predicate("io_test_always", lambda cfg: True)
    head = ("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\nconstraints:\n"
            "  - {type: predicate, name: io_test_always}\n")
    p = tmp_path / "x.yaml"
    p.write_text(head + "  - {type: divides, divisor: a, dividend: zz}\n")
    with pytest.raises(SpaceDefinitionError, match=r"x\.yaml:6: constraints\[1\]: .*reads 'zz'"):
        load_space(str(p))
    p.write_text(head + "  - {type: compare, left: a, op: '>', right: 5}\n")
    with pytest.raises(SpaceDefinitionError,
                       match=r"x\.yaml:6: constraints\[1\]: this constraint admits no config"):
        load_space(str(p))
    # the same space built in Python is not written: the file would not load
    from nas.searchspace import Compare, IntRange, Space

    empty = Space("e", [IntRange("a", 1, 2)], [Compare("a", ">", 5)])
    with pytest.raises(SpaceDefinitionError,
                       match=r"e\.yaml: constraints\[0\]: this constraint admits no config"):
        empty.save(tmp_path / "e.yaml")
    assert not (tmp_path / "e.yaml").exists()


def test_load_looks_for_one_config_before_counting(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    # counting is exponential in the dimensions a constraint couples (a forbid over many
    # kernels took seconds, then ran out of memory): a satisfiable file loads on the
    # solver's first config, without a count; a count that cannot be made refuses nothing
    import nas.searchspace.cardinality as cardinality

    calls = []

    def no_count(space):  # noqa: ANN001, ANN202
        calls.append(space.name)
        raise ConfigError("couples too many dimensions")

    monkeypatch.setattr(cardinality, "count_configs", no_count)
    p = tmp_path / "x.yaml"
    p.write_text(SPACE_YAML)
    assert load_space(str(p)).name == "mini_resnet" and calls == []
    p.write_text("name: x\ndims:\n  - {name: a, type: int, low: 1, high: 2}\nconstraints:\n"
                 "  - {type: compare, left: a, op: '>', right: 5}\n")
    load_space(str(p))  # empty, but not countable here: sampling will say so
    assert calls == ["x"]
