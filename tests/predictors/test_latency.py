"""Latency measurement and lookup tables (CPU, small spaces; no assertions on timings)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.cli.main import main
from nas.errors import ConfigError, NasError, UsageError
from nas.predictors import latency as lat
from nas.predictors.latency import (
    LatencyTable,
    LatencyTableError,
    build_latency_table,
    current_settings,
    enumerate_units,
    plan_signature,
)
from nas.predictors.profiling import LatencyStats, measure_latency, measure_many
from nas.searchspace import (
    Choice,
    Condition,
    Divides,
    Group,
    IntRange,
    Space,
    get_space,
    load_space,
)
from nas.supernet import BuildArgs, family_class

TINY = """\
name: tiny_resnet
family: resnet_like
dims:
- name: stem
  type: group
  children:
  - {name: width, type: choice, values: [8]}
- name: stages
  type: group
  children:
  - name: '0'
    type: group
    children:
    - {name: depth, type: int, low: 1, high: 2}
    - {name: width, type: choice, values: [8, 16]}
    - name: blocks
      type: group
      children:
      - name: '0'
        type: group
        children:
        - {name: kernel, type: choice, values: [3, 5]}
      - name: '1'
        type: group
        children:
        - {name: kernel, type: choice, values: [3, 5]}
        when:
        - {path: stages.0.depth, op: '>', value: 1}
  - name: '1'
    type: group
    children:
    - {name: depth, type: int, low: 1, high: 1}
    - {name: width, type: choice, values: [16]}
"""


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lut") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def tiny_space(tiny_file: Path):  # noqa: ANN201
    return load_space(tiny_file)


@pytest.fixture(scope="module")
def tiny_table(tiny_space, tmp_path_factory: pytest.TempPathFactory) -> LatencyTable:  # noqa: ANN001
    out = tmp_path_factory.mktemp("lut") / "tiny.json"
    return build_latency_table(tiny_space, input_size=16, warmup=1, repeats=3,
                               overhead_subnets=4, out=out, progress=False)


# ---------------------------------------------------------------------- measurement
class _ThreadProbe(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen: list[int] = []
        self.grad_mode: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        self.grad_mode.append(torch.is_inference_mode_enabled())
        return self.conv(x)


def test_measure_latency_sane_and_restores_threads() -> None:
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = _ThreadProbe().train()
        s = measure_latency(m, (3, 12, 12), threads=1, warmup=2, repeats=7, batch=2)
        assert torch.get_num_threads() == 2
        assert set(m.seen) == {1} and all(m.grad_mode)
        assert len(m.seen) == 9
        assert m.training  # mode restored
        assert s.repeats == 7
        assert 0 < s.min <= s.p10 <= s.median <= s.max and s.min <= s.mean <= s.max
        assert s.get("p10") == s.p10
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("shape", [5, (3, -1, 8), (), ("a",)])
def test_measure_latency_refuses_bad_input_shapes(shape) -> None:  # noqa: ANN001
    with pytest.raises(UsageError, match="input_shape: a sequence of positive ints"):
        measure_latency(nn.Conv2d(3, 8, 3), shape)


def test_measure_latency_feeds_the_models_dtype() -> None:
    model = nn.Conv2d(3, 8, 3).to(torch.bfloat16)
    assert measure_latency(model, (3, 8, 8), repeats=2, warmup=0).p10 > 0
    assert next(model.parameters()).dtype == torch.bfloat16


def test_measure_many_interleaves_and_checks_arguments() -> None:
    models = [nn.Conv2d(3, 4, 3), nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())]
    out = measure_many(models, (3, 8, 8), warmup=0, repeats=4)
    assert len(out) == 2 and all(isinstance(s, LatencyStats) and s.repeats == 4 for s in out)
    rounds = []  # a progress bar's advance: once per round, warm-up rounds included
    out = measure_many(models, [(3, 8, 8), (3, 10, 10)], warmup=1, repeats=2,
                       on_round=lambda: rounds.append(1))
    assert len(out) == 2 and len(rounds) == 3
    with pytest.raises(UsageError, match="repeats"):
        measure_latency(models[0], (3, 8, 8), repeats=0)
    with pytest.raises(UsageError, match="threads"):
        measure_latency(models[0], (3, 8, 8), threads=0)
    with pytest.raises(UsageError, match="input shapes"):
        measure_many(models, [(3, 8, 8)] * 3)
    with pytest.raises(UsageError, match="statistic"):
        out[0].get("p99")


def test_stats_from_times() -> None:
    s = LatencyStats.from_times(np.arange(1, 11, dtype=float))
    assert (s.min, s.median, s.max, s.repeats) == (1.0, 5.5, 10.0, 10)
    assert s.p10 == pytest.approx(1.9)


# ---------------------------------------------------------------------- the table
def test_table_round_trip(tiny_table: LatencyTable, tiny_space) -> None:  # noqa: ANN001
    assert tiny_table.complete and tiny_table.n_measured == tiny_table.n_units == 12
    loaded = LatencyTable.load(tiny_table.path, space=tiny_space)
    configs = list(tiny_space.grid())
    np.testing.assert_allclose(loaded.predict_many(configs), tiny_table.predict_many(configs))
    assert loaded.settings == tiny_table.settings
    assert loaded.overhead.intercept_ms == tiny_table.overhead.intercept_ms
    doc = json.loads(Path(tiny_table.path).read_text())
    for field in ("device", "threads", "batch", "torch", "input_size"):
        assert field in doc["settings"]
    assert doc["date"] and doc["space"]["name"] == "tiny_resnet"
    # without a space argument the table's own space is used
    np.testing.assert_allclose(LatencyTable.load(tiny_table.path).predict_many(
        [tiny_space.max().to_dict()]), tiny_table.predict_many([tiny_space.max()]))


def test_prediction_is_sum_of_entries_plus_overhead(tiny_table: LatencyTable,
                                                    tiny_space) -> None:  # noqa: ANN001
    t = LatencyTable.load(tiny_table.path, space=tiny_space)
    for i, k in enumerate(t.keys):  # distinct powers of two: any wrong unit shows
        t.entries[k]["p10"] = float(2 ** i)
    t._luts.clear()
    t.overhead = lat.Overhead(0.5, 0.25)
    cfg = tiny_space.config({"stem": {"width": 8}, "stages": {
        "0": {"depth": 2, "width": 16, "blocks": {"0": {"kernel": 5}, "1": {"kernel": 3}}},
        "1": {"depth": 1, "width": 16}}})
    e = {k: t.entries[k]["p10"] for k in t.keys}
    blk = ("ResBlockPlan(in_ch={},width=16,kernel={},groups=1,attention=none,bits=32,"
           "stride={},proj={},in_hw={},hw={})")
    hand = (e["stem(in_ch=3,width=8,stride=1,in_hw=16x16,hw=16x16)"]
            + e[blk.format(8, 5, 1, 1, "16x16", "16x16")]
            + e[blk.format(16, 3, 1, 0, "16x16", "16x16")]
            + e["ResBlockPlan(in_ch=16,width=16,kernel=3,groups=1,attention=none,bits=32,"
                "stride=2,proj=1,in_hw=16x16,hw=8x8)"]
            + e["head(width=16,hw=8x8,classes=10)"]
            + 0.5 + 0.25 * 3)
    assert t.predict(cfg) == pytest.approx(hand)
    # a shallower config drops the second block of stage 0
    cfg1 = tiny_space.config({"stem": {"width": 8}, "stages": {
        "0": {"depth": 1, "width": 16, "blocks": {"0": {"kernel": 5}}},
        "1": {"depth": 1, "width": 16}}})
    assert t.predict(cfg1) == pytest.approx(hand - e[blk.format(16, 3, 1, 0, "16x16", "16x16")]
                                            - 0.25)
    # configs and an encoding matrix agree
    configs = list(tiny_space.grid())
    np.testing.assert_allclose(t.predict_many(configs),
                               t.predict_many(tiny_space.encode_many(configs)))


def _cardinality_first_space() -> Space:
    """The README's example: cardinality listed 1, 2, 16, so ``max()`` takes 16 groups, which
    a width of 24 cannot hold -- units with width 24 must still be enumerated."""
    blocks = [Group(str(i), [Choice("kernel", (3, 5, 7)), Choice("cardinality", (1, 2, 16))],
                    when=None if i == 0 else Condition("stages.0.depth", ">", i))
              for i in range(3)]
    return Space("readme_resnet", [
        Group("stem", [Choice("width", (16, 32))]),
        Group("stages", [Group("0", [
            IntRange("depth", 1, 3), Choice("width", (24, 32, 48)),
            Choice("attention", ("none", "se", "mhsa")), Choice("bits", (4, 8, 32), default=32),
            Group("blocks", blocks)])]),
    ], constraints=[Divides(f"stages.0.blocks.{i}.cardinality", "stages.0.width")
                    for i in range(3)], family="resnet_like")


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "cardinality_first"])
def test_lookup_matches_the_family_plans(name: str) -> None:
    """For random configs, the vectorised lookup picks exactly the units of the family's plan
    (entries set to random values; the sum over the plan's blocks computed directly)."""
    space = _cardinality_first_space() if name == "cardinality_first" else get_space(name)
    build = BuildArgs.make(3, 10, 32)
    maps, units = enumerate_units(space, build)
    rng = np.random.default_rng(0)
    vals = {k: float(v) for k, v in zip(units, rng.uniform(1, 2, len(units)))}
    entries = {k: {s: vals[k] for s in ("min", "p10", "median", "mean", "max")} for k in units}
    table = LatencyTable(space, current_settings(), maps, list(units), entries, complete=True)
    configs = space.sample_many(25 if name != "cardinality_first" else 200, rng) + [
        space.min(), space.max()]
    cls = family_class(space.family)
    for cfg, got in zip(configs, table.unit_sums(configs)[0]):
        plan = cls.make_plan(space, cfg, build)
        blocks = [bp for stage in plan.stages for bp in stage]
        want = sum(vals[plan_signature(type(bp).__name__, bp)] for bp in blocks)
        stem = [k for k in units if k.startswith(f"stem(in_ch=3,width={plan.stem_width},")]
        head = [k for k in units if k.startswith("head(") and k in _head_keys(plan, units)]
        assert len(stem) == 1 and len(head) == 1
        assert got == pytest.approx(want + vals[stem[0]] + vals[head[0]])
    assert list(table.unit_sums(configs)[1]) == [
        sum(len(s) for s in cls.make_plan(space, c, build).stages) for c in configs]


def test_vit_lookup_matches_the_family_plans() -> None:
    """vit_like: patch embedding, reductions, transformer blocks and the token head, looked
    up exactly as the family's plan has them; each unit module runs on its input shape."""
    from nas.supernet.vit import VitReducePlan

    space = get_space("vit_like")
    build = BuildArgs.make(3, 10, 32)
    maps, units = enumerate_units(space, build)
    rng = np.random.default_rng(1)
    vals = {k: float(v) for k, v in zip(units, rng.uniform(1, 2, len(units)))}
    entries = {k: {s: vals[k] for s in ("min", "p10", "median", "mean", "max")} for k in units}
    table = LatencyTable(space, current_settings(), maps, list(units), entries, complete=True)
    configs = space.sample_many(40, rng) + [space.min(), space.max()]
    cls = family_class("vit_like")
    sums, n_blocks = table.unit_sums(configs)
    for cfg, got, nb in zip(configs, sums, n_blocks):
        plan = cls.make_plan(space, cfg, build)
        blocks = [bp for stage in plan.stages for bp in stage]
        want = sum(vals[plan_signature("reduce" if isinstance(bp, VitReducePlan)
                                       else "transformer", bp)] for bp in blocks)
        want += vals[f"patch_embed(in_ch=3,patch=4,grid=8x8,dim={plan.stem_dim},in_hw=32x32)"]
        want += vals[f"token_head(dim={plan.out_dim},tokens=4,classes=10)"]
        assert got == pytest.approx(want)
        assert nb == len(blocks)
    for key in [k for k in units if k.startswith(("transformer", "reduce"))][::40]:
        y = units[key].build().eval()(torch.randn(1, *units[key].input_shape))
        assert y.dim() == 3 and y.shape[0] == 1, key


def _head_keys(plan, units) -> list[str]:  # noqa: ANN001
    if hasattr(plan, "head_width"):
        return [k for k in units if k.startswith(f"head(in_ch={plan.last_width},"
                                                 f"width={plan.head_width},")]
    return [k for k in units if k.startswith(f"head(width={plan.out_width},")]


def test_units_measure_the_blocks_of_real_subnets(tiny_space) -> None:  # noqa: ANN001
    """The module measured for a block is the family's static block for that plan."""
    build = BuildArgs.make(3, 10, 16)
    _, units = enumerate_units(tiny_space, build)
    key = next(k for k in units if "kernel=5" in k and "in_ch=8,width=16" in k)
    blk = units[key].build()
    assert type(blk).__name__ == "ResBlock" and blk.conv2.kernel_size == (5, 5)
    y = blk(torch.randn(1, *units[key].input_shape))
    assert y.shape == (1, 16, 16, 16)


# ---------------------------------------------------------------------- loading errors
def test_loading_warns_on_other_settings(tiny_table: LatencyTable, caplog) -> None:  # noqa: ANN001
    other = current_settings(threads=2, batch=4, input_size=16)
    with caplog.at_level(logging.WARNING, logger="nas.predictors.latency"):
        LatencyTable.load(tiny_table.path, expect=other)
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "other settings" in msg and "threads: 1 vs 2" in msg and "batch: 1 vs 4" in msg
    assert str(tiny_table.path) in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nas.predictors.latency"):
        LatencyTable.load(tiny_table.path, expect=tiny_table.settings)
    assert not caplog.records


def test_corrupt_and_mismatched_tables_name_the_file(tiny_table: LatencyTable,
                                                     tmp_path: Path) -> None:
    doc = json.loads(Path(tiny_table.path).read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(Path(tiny_table.path).read_text()[:200])
    with pytest.raises(LatencyTableError, match=r"bad\.json: not readable JSON"):
        LatencyTable.load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LatencyTableError, match=r"bad\.json: not a latency table"):
        LatencyTable.load(bad)
    broken = dict(doc)
    del broken["settings"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(LatencyTableError, match=r"bad\.json: corrupt"):
        LatencyTable.load(bad)
    broken = dict(doc, keys=doc["keys"][:3])
    bad.write_text(json.dumps(broken))
    with pytest.raises(LatencyTableError, match=r"bad\.json: corrupt"):
        LatencyTable.load(bad)
    for field in ("entries", "settings", "overhead"):  # a list where an object belongs
        bad.write_text(json.dumps(dict(doc, **{field: []})))
        with pytest.raises(LatencyTableError, match=r"bad\.json: corrupt"):
            LatencyTable.load(bad)
    with pytest.raises(LatencyTableError, match=r"no such file"):
        LatencyTable.load(tmp_path / "missing.json")
    # version 1: read, except a vit_like one (its blocks changed); an unknown version is not
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(dict(doc, version=1)))
    assert LatencyTable.load(old).complete
    vit = dict(doc, version=1, space=dict(doc["space"], family="vit_like"))
    old.write_text(json.dumps(vit))
    with pytest.raises(LatencyTableError, match=r"v1\.json: version 1 times vit_like's earlier "
                                                r"blocks .* build it again"):
        LatencyTable.load(old)
    old.write_text(json.dumps(dict(doc, version=3)))
    with pytest.raises(LatencyTableError, match=r"version 3 is not supported \(supported: 1, "
                                                r"2\)"):
        LatencyTable.load(old)
    with pytest.raises(LatencyTableError, match=r"built for space 'tiny_resnet', not for "
                                                r"space 'resnet_like'"):
        LatencyTable.load(tiny_table.path, space=get_space("resnet_like"))
    partial = dict(doc, complete=False, entries=dict(list(doc["entries"].items())[:5]))
    bad.write_text(json.dumps(partial))
    with pytest.raises(LatencyTableError, match=r"bad\.json is incomplete \(5 of 12"):
        LatencyTable.load(bad)
    t = LatencyTable.load(bad, require_complete=False)
    with pytest.raises(LatencyTableError, match="incomplete"):
        t.predict(t.space.max())
    assert issubclass(LatencyTableError, NasError)


def test_configs_of_another_space_are_rejected(tiny_table: LatencyTable) -> None:
    with pytest.raises(ConfigError, match="resnet_like"):
        tiny_table.predict(get_space("resnet_like").default())
    with pytest.raises(UsageError, match="encoding matrix"):
        tiny_table.predict_many(np.zeros((2, 3)))


def test_unsupported_family_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="supported: mobilenet_like, resnet_like, vit_like"):
        build_latency_table(get_space("nb201"), progress=False)


def test_resume_measures_only_missing_units(tiny_table: LatencyTable, tiny_space,  # noqa: ANN001
                                            tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    doc = json.loads(Path(tiny_table.path).read_text())
    doc["complete"] = False
    doc["entries"] = dict(list(doc["entries"].items())[:7])
    out = tmp_path / "partial.json"
    out.write_text(json.dumps(doc))
    sizes: list[int] = []
    real = lat.measure_many

    def counting(models, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        sizes.append(len(models))
        return real(models, *a, **kw)

    monkeypatch.setattr(lat, "measure_many", counting)
    t = build_latency_table(tiny_space, input_size=16, warmup=1, repeats=3,
                            overhead_subnets=2, out=out, progress=False)
    # 5 missing units, then min and max subnets for the overhead; each with the reference
    assert sizes == [5 + 1, 2 + 1]
    assert t.complete and LatencyTable.load(out, space=tiny_space).n_measured == 12
    ref = LatencyTable.load(out, space=tiny_space).reference
    assert ref is not None and len(ref["chunks"]) >= 1
    assert ref["baseline"]["p10"] == pytest.approx(
        float(np.median([c["p10"] for c in ref["chunks"]])))
    # a complete table is used as it is; for another statistic only the overhead is redone
    sizes.clear()
    again = build_latency_table(tiny_space, input_size=16, warmup=1, repeats=3,
                                overhead_subnets=2, out=out, progress=False)
    def p10(table: LatencyTable) -> dict[str, float]:
        return {k: v["p10"] for k, v in table.entries.items()}

    assert sizes == [] and p10(again) == pytest.approx(p10(t))
    assert again.overhead.to_dict() == t.overhead.to_dict()
    other = build_latency_table(tiny_space, input_size=16, warmup=1, repeats=3,
                                overhead_subnets=2, out=out, progress=False, statistic="min")
    assert sizes == [2 + 1] and other.statistic == "min" and p10(other) == pytest.approx(p10(t))
    # a partial table of other settings is not silently mixed in
    with pytest.raises(LatencyTableError, match="other settings"):
        build_latency_table(tiny_space, input_size=16, batch=2, warmup=1, repeats=3,
                            out=out, progress=False)


def test_complete_table_is_reused_whatever_its_warmup_and_repeats(
        tiny_table: LatencyTable, tiny_space, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    out = tmp_path / "t.json"
    out.write_text(Path(tiny_table.path).read_text())
    with caplog.at_level(logging.WARNING, logger="nas.predictors.latency"):
        again = build_latency_table(tiny_space, input_size=16, warmup=2, repeats=10,
                                    overhead_subnets=4, out=out, progress=False)
    assert {k: v["p10"] for k, v in again.entries.items()} == pytest.approx(
        {k: v["p10"] for k, v in tiny_table.entries.items()})
    assert "measured with warmup=1, repeats=3 (asked: 2, 10)" in caplog.text
    # a partial one is not resumed with other repeats: the message gives both
    doc = json.loads(out.read_text())
    out.write_text(json.dumps(dict(doc, complete=False)))
    with pytest.raises(LatencyTableError, match=r"warmup/repeats 1/3 here, asked 2/10"):
        build_latency_table(tiny_space, input_size=16, warmup=2, repeats=10,
                            overhead_subnets=4, out=out, progress=False)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["entries"][next(iter(d["entries"]))].update(p10=-4.5),
     r"p10 must be a positive number of ms, got -4\.5"),
    (lambda d: d["entries"][next(iter(d["entries"]))].update(median=float("nan")),
     r"median must be a positive number of ms, got nan"),
    (lambda d: d["overhead"]["scales"].update(float=-3.0),
     r"overhead scale 'float' must be a positive number"),
    (lambda d: d["settings"].update(threads=-1), r"settings\.threads: must be at least 1"),
    (lambda d: d["positions"][0]["keys"].__setitem__(0, -7),
     r"refers to a key that does not exist"),
])
def test_tables_with_impossible_numbers_are_corrupt(tiny_table: LatencyTable, tmp_path: Path,
                                                    edit, message: str) -> None:  # noqa: ANN001
    doc = json.loads(Path(tiny_table.path).read_text())
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(LatencyTableError, match=r"bad\.json: corrupt \(.*" + message):
        LatencyTable.load(bad)


# ---------------------------------------------------------------------- CLI
def test_cli_profile_json(tiny_file: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "lut.json"
    rc = main(["profile", "--space", str(tiny_file), "--input-size", "16", "--batch", "1",
               "--threads", "1", "--out", str(out), "--validate", "4", "--repeats", "3",
               "--warmup", "1", "--overhead-subnets", "3", "--json"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    r = json.loads(line[0])
    assert r["units"] == 12 and r["validated"] == 4 and r["statistic"] == "p10"
    assert 0.0 <= r["within_10pct"] <= 1.0 and r["mape"] >= 0
    assert r["kendall_tau"] is None or -1.0 <= r["kendall_tau"] <= 1.0
    assert r["drift_correction"] == "reference subnets"  # the table's overhead subnets
    assert 0.0 <= r["within_10pct_uncorrected"] <= 1.0
    assert r["drift_factor"] > 0
    assert LatencyTable.load(out).complete
    # run again: the complete table is used as it is, and the line says so (not "wrote")
    stamp = out.stat().st_mtime_ns
    rc = main(["profile", "--space", str(tiny_file), "--input-size", "16", "--batch", "1",
               "--threads", "1", "--out", str(out), "--repeats", "3", "--warmup", "1",
               "--overhead-subnets", "3", "--no-progress"])
    printed = " ".join(capsys.readouterr().out.split())
    assert rc == 0 and out.stat().st_mtime_ns == stamp
    assert printed.startswith(f"used {out}: 12 units") and " ms per block" in printed
    assert "+ -" not in printed


def test_cli_profile_warns_when_the_correction_rescales_a_table(
        tiny_table: LatencyTable, tiny_file: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A table whose every time is doubled (edited, or built on a slower machine) validates
    well once corrected by its own doubled reference subnets; the rescaling is reported."""
    doc = json.loads(Path(tiny_table.path).read_text())
    for v in doc["entries"].values():
        for k in v:
            v[k] *= 2
    oh = doc["overhead"]
    oh["intercept_ms"] *= 2
    oh["per_block_ms"] *= 2
    for sub in oh["subnets"]:
        sub["measured_ms"] *= 2
        sub["unit_sum_ms"] *= 2
    out = tmp_path / "doubled.json"
    out.write_text(json.dumps(doc))
    assert main(["profile", "--space", str(tiny_file), "--input-size", "16", "--out",
                 str(out), "--validate", "4", "--repeats", "3", "--warmup", "1",
                 "--overhead-subnets", "4", "--json", "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "scaled this machine's times by" in " ".join(cap.err.split())
    assert json.loads(cap.out)["drift_factor"] > 1.25


def test_cli_profile_errors(tiny_file: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["profile", "--space", "nb201", "--out", str(tmp_path / "x.json")]) == 2
    assert "do not support family 'nb201'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    # an --out that is not a latency table to resume: a wrong input file, exit status 2
    assert main(["profile", "--space", str(tiny_file), "--out", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["profile", "--space", str(tiny_file), "--out", str(bad), "--validate",
                 "1"]) == 2
    # --fresh replaces a latency table (when the new one is first saved), nothing else
    other = tmp_path / "results.csv"
    other.write_text("a,b\n1,2\n")
    for space in (str(tiny_file), "nb201"):
        assert main(["profile", "--space", space, "--out", str(other), "--fresh"]) == 2
        assert "results.csv exists and is not a latency table" in capsys.readouterr().err
        assert other.read_text() == "a,b\n1,2\n"
    # a damaged table is what --fresh is for
    cut = tmp_path / "cut.json"
    cut.write_text('{"format":"nas.'
                   'latency_table","version":1,"comp')
    assert main(["profile", "--space", str(tiny_file), "--input-size", "16", "--out", str(cut),
                 "--fresh", "--validate", "0", "--repeats", "2", "--warmup", "0",
                 "--overhead-subnets", "2", "--no-progress"]) == 0
    assert LatencyTable.load(cut).complete


def test_unit_classes_and_overhead_fit(tiny_table: LatencyTable, tiny_space) -> None:  # noqa: ANN001
    assert lat.unit_class("stem(in_ch=3,width=8)", False) == 0
    assert lat.unit_class("ResBlockPlan(width=8,bits=32,stride=1)", True) == 1
    assert lat.unit_class("ResBlockPlan(width=8,bits=4,stride=1)", True) == 2
    assert lat.unit_class("MBBlockPlan(width=8,kernel=3)", True) == 1
    assert lat.unit_class("ResBlockPlan(width=8,attention=mhsa,bits=4,stride=1)", True) == 3
    big = "ResBlockPlan(width=8,attention=mhsa,bits=32,in_hw=32x32,hw=32x32)"
    assert lat.unit_class(big, True) == 3  # 1,024 positions: memory-bound attention
    small = "ResBlockPlan(width=8,attention=mhsa,bits=4,in_hw=32x32,hw=16x16)"
    assert lat.unit_class(small, True) == 2  # 256 positions: a block like the others
    assert lat.unit_class("ResBlockPlan(width=8,attention=se,bits=32,stride=1)", True) == 1
    # vit_like: global attention over 32x32 tokens is memory-bound, 4x4 windows are not
    vit = "transformer(dim=64,heads=4,hidden=128,window={},bits={},hw={})"
    assert lat.unit_class(vit.format(0, 32, "32x32"), True) == 3
    assert lat.unit_class(vit.format(4, 32, "32x32"), True) == 1
    assert lat.unit_class(vit.format(0, 8, "8x8"), True) == 2
    t = LatencyTable.load(tiny_table.path, space=tiny_space)
    rng = np.random.default_rng(0)
    for k in t.keys:
        t.entries[k]["p10"] = float(rng.uniform(0.5, 2.0))
    t._luts.clear()
    configs = list(tiny_space.grid())
    by_class, blocks = t.class_sums(configs)
    np.testing.assert_allclose(by_class.sum(1), t.unit_sums(configs)[0])
    assert np.all(by_class[:, 2] == 0) and np.all(by_class[:, 0] > 0)  # no quantized blocks
    # whole networks that cost 0.3 ms + 0.1 ms per block + 1.2x their blocks + 1x glue
    measured = 0.3 + 0.1 * blocks + 1.2 * by_class[:, 1] + by_class[:, 0]
    oh = lat.fit_overhead(t, configs, measured, prior=1e-6)
    assert oh.scales["float"] == pytest.approx(1.2, rel=0.05)
    t.overhead = oh
    np.testing.assert_allclose(t.predict_many(configs), measured, rtol=0.02)
    assert oh.scales["quant"] == pytest.approx(1.0)  # no data: the prior keeps it at 1
    # the fitted terms survive a save/load round trip; old tables without scales load as 1
    path = tiny_table.path.parent / "fitted.json"
    t.save(path)
    t2 = LatencyTable.load(path, space=tiny_space)
    np.testing.assert_allclose(t2.predict_many(configs), t.predict_many(configs))
    assert lat.Overhead(0.5, 0.25).scale_vector().tolist() == [1.0] * len(lat.UNIT_CLASSES)
    with pytest.raises(UsageError, match="positive"):
        lat.fit_overhead(t, configs[:2], [1.0, -1.0])


def test_steady_allocator_is_idempotent() -> None:
    from nas.predictors import profiling

    first = profiling.steady_allocator()
    assert isinstance(first, bool) and profiling.steady_allocator() is first
    if sys.platform == "linux" and os.environ.get("NAS_STEADY_ALLOCATOR", "1") != "0":
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert first


def test_drift_correction(tiny_table: LatencyTable) -> None:
    from nas.predictors.profiling import LatencyStats, drift_factors, reference_model

    now = LatencyStats(min=2.0, p10=2.2, median=3.0, mean=3.5, max=9.0, repeats=5)
    f = drift_factors(now, {"min": 1.0, "p10": 1.1, "median": 1.5, "mean": 1.75})
    assert f == {"min": 0.5, "p10": 0.5, "median": 0.5, "mean": 0.5}
    unit = LatencyStats(min=4.0, p10=4.4, median=6.0, mean=7.0, max=10.0, repeats=5)
    assert unit.scaled(f) == LatencyStats(2.0, 2.2, 3.0, 3.5, 5.0, 5)
    assert drift_factors(now, {}) == {s: 1.0 for s in ("min", "p10", "median", "mean")}
    a, b = reference_model(3), reference_model(3)  # the same network in every process
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(a(x), b(x))
    # validation reports the drift-corrected and the raw measurements
    val = lat.validate_table(tiny_table, 3, repeats=3, progress=False)
    assert val.raw is not None and set(val.raw) == set(val.measured)
    assert "uncorrected" in val.summary()


def test_validation_is_corrected_by_the_tables_reference_subnets(tiny_table: LatencyTable,
                                                                  monkeypatch) -> None:
    """A machine 1.5x slower at validation than at the build: timed next to the table's
    overhead subnets, the validation subnets are put back at the build's machine state."""
    from nas.predictors.profiling import LatencyStats

    table = tiny_table
    assert len(table.overhead.subnets) == 4

    def key(cfg) -> str:  # noqa: ANN001
        return json.dumps(cfg.to_dict(), sort_keys=True)

    then = {json.dumps(r["config"], sort_keys=True): r["measured_ms"]
            for r in table.overhead.subnets}

    def at_build(cfg) -> float:  # noqa: ANN001
        return then.get(key(cfg), table.predict(cfg))

    monkeypatch.setattr(lat, "build_subnets", lambda space, cfgs, settings: list(cfgs))

    def slow_machine(models, shapes, **kw):  # noqa: ANN001, ANN202
        return [LatencyStats(*(1.5 * at_build(m),) * 5, repeats=1) for m in models]

    monkeypatch.setattr(lat, "measure_many", slow_machine)
    val = lat.validate_table(table, 6, repeats=3, progress=False, chunk=4)
    assert val.correction == "reference subnets"
    configs = table.space.sample_many(6, np.random.default_rng(12345))
    expected = np.array([at_build(c) for c in configs])
    assert val.measured_ms == pytest.approx(expected)
    assert val.raw is not None and val.raw["p10"] == pytest.approx(1.5 * expected)
    assert val.summary()["drift_correction"] == "reference subnets"
    with pytest.raises(lat.UsageError, match="chunk"):
        lat.validate_table(table, 6, chunk=0, progress=False)
    # without its reference subnets the table falls back to the build's reference model
    monkeypatch.undo()
    val = lat.validate_table(table, 3, repeats=3, progress=False, references=False)
    assert val.correction == "reference model" and val.raw is not None


def test_attention_units_have_their_own_drift_reference(tiny_file: Path,
                                                       tmp_path: Path) -> None:
    from nas.predictors.profiling import attention_reference

    text = tiny_file.read_text().replace(
        "    - {name: width, type: choice, values: [8, 16]}\n",
        "    - {name: width, type: choice, values: [8, 16]}\n"
        "    - {name: attention, type: choice, values: [none, mhsa]}\n", 1)
    assert text != tiny_file.read_text()
    (tmp_path / "att.yaml").write_text(text)
    space = load_space(tmp_path / "att.yaml")
    small = build_latency_table(space, input_size=8, warmup=1, repeats=2, overhead_subnets=2,
                                chunk=8, progress=False)
    assert "attention" not in small.reference  # 64 positions: no memory-bound attention
    table = build_latency_table(space, input_size=32, warmup=1, repeats=3, overhead_subnets=3,
                                chunk=4, out=tmp_path / "att.json", progress=False)
    ref = table.reference
    assert ref is not None and len(ref["attention"]["chunks"]) == len(ref["chunks"]) > 1
    for part in (ref, ref["attention"]):  # rebased to the median over the build
        assert part["baseline"]["p10"] == pytest.approx(
            float(np.median([c["p10"] for c in part["chunks"]])))
    configs = list(space.grid())
    shares = table.attention_shares(configs)
    has_mhsa = np.array([c["stages.0.attention"] == "mhsa" for c in configs])
    assert np.all(shares[~has_mhsa] == 0) and np.all((shares[has_mhsa] > 0)
                                                      & (shares[has_mhsa] < 1))
    assert lat._blend({"p10": 1.0}, {"p10": 2.0}, 0.25) == {"p10": 1.25}
    assert ref["attention"]["input_shape"] == [32, 32, 32]  # the attention units' own map
    reloaded = LatencyTable.load(tmp_path / "att.json", space=space)
    assert reloaded.reference == ref
    # a table written before the mhsa class keeps its classing (its scales assume it)
    doc = json.loads((tmp_path / "att.json").read_text())
    del doc["overhead"]["class_scheme"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    old = LatencyTable.load(tmp_path / "old.json", space=space)
    assert old.overhead.class_scheme == 1
    assert all((c != 3).all() for c in old._class_luts())
    assert any((c == 3).any() for c in reloaded._class_luts())
    val = lat.validate_table(reloaded, 3, repeats=3, progress=False)
    assert np.all(np.isfinite(val.measured_ms)) and val.raw is not None
    a, b = attention_reference(), attention_reference()  # the same layer in every process
    x = torch.randn(1, 32, 4, 4)
    assert torch.equal(a(x), b(x))


def test_overhead_subnets_span_the_latency_range(tiny_table: LatencyTable) -> None:
    rng = np.random.default_rng(0)
    cs = lat.overhead_configs(tiny_table, 6, rng)
    space = tiny_table.space
    assert cs[:2] == [space.min(), space.max()] and len(cs) == len(set(cs)) == 6
    sums = tiny_table.unit_sums(cs)[0]
    everything = tiny_table.unit_sums(list(space.grid()))[0]
    assert sums.min() == pytest.approx(everything.min())  # the cheapest network is in
    assert sums.max() == pytest.approx(everything.max())  # and the most expensive
    assert np.all(np.diff(sums[2:]) >= 0)  # the rest in order over the range


def test_a_space_the_family_refuses_fails_before_any_measurement(tmp_path: Path) -> None:
    """nas profile checks the space as a supernet build would (here: a cardinality that may
    not divide its width, with no constraint excluding it) before timing anything."""
    from nas.searchspace import Choice, Group, IntRange, Space
    from nas.supernet import SupernetError

    space = Space("nodiv", [Group("stem", (Choice("width", (8,)),)), Group("stages", (
        Group("0", (IntRange("depth", 1, 1), Choice("width", (16, 24)), Group("blocks", (
            Group("0", (Choice("cardinality", (16, 1)),)),)))),))], family="resnet_like")
    out = tmp_path / "lut.json"
    with pytest.raises(SupernetError, match="cardinality=16 does not divide"):
        lat.build_latency_table(space, input_size=8, in_channels=1, out=out, progress=False)
    assert not out.exists()


def test_an_interrupted_build_keeps_what_it_measured(tiny_space, tiny_file: Path,  # noqa: ANN001
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """Ctrl-C during the unit measurements saves every unit measured so far (not only the
    last periodic save) and says how to resume; the resumed build measures only the rest."""
    import nas.predictors.latency as lat

    real, calls = lat.measure_many, []

    def measure(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(len(a[0]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(lat, "measure_many", measure)
    out = tmp_path / "lut.json"
    with pytest.raises(KeyboardInterrupt, match=r"interrupted \(SIGINT\); 4 of 12 units "
                                                r"measured are kept in .*lut.json: the same "
                                                r"command resumes the build"):
        build_latency_table(tiny_space, input_size=16, warmup=1, repeats=2, chunk=4,
                            overhead_subnets=2, out=out, progress=False, save_every_s=1e9)
    partial = LatencyTable.load(out, require_complete=False)
    assert partial.n_measured == 4 and not partial.complete
    monkeypatch.setattr(lat, "measure_many", real)
    table = build_latency_table(tiny_space, input_size=16, warmup=1, repeats=2, chunk=4,
                                overhead_subnets=2, out=out, progress=False)
    assert table.complete and table.n_measured == 12
    # nas profile --fresh, interrupted: the command that resumes is the one without --fresh
    from nas.cli.main import main

    def stop_in_units(*a, **k):  # noqa: ANN002, ANN003, ANN202
        if len(a[0]) > 2:  # (the units' chunk: units and the reference models)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(lat, "measure_many", stop_in_units)
    fresh = tmp_path / "fresh.json"
    argv = ["profile", "--space", str(tiny_file), "--input-size", "16", "--warmup", "1",
            "--repeats", "2", "--overhead-subnets", "2", "--validate", "0", "--fresh",
            "--no-progress", "--out", str(fresh)]
    assert main(argv) == 130
    assert "0 of 12 units measured are kept in" in " ".join(capsys.readouterr().err.split())
    assert main(argv) == 130  # (again: nothing else resumes a --fresh command)
    err = " ".join(capsys.readouterr().err.split())
    assert "the same command without --fresh resumes the build" in err


def test_one_build_of_a_table_file_at_a_time(tiny_space, tmp_path: Path,  # noqa: ANN001
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A second build of a table file that is being built is refused (both had timed on the
    same cores and overwritten each other); a killed build's temporaries go; an interrupt
    while the overhead subnets are measured keeps the units and says so."""
    import nas.predictors.latency as lat
    from nas.errors import DirectoryInUseError
    from nas.utils.files import DirectoryLock

    out = tmp_path / "lut.json"
    held = DirectoryLock.for_file(out, doing="built")
    held.acquire()
    try:
        with pytest.raises(DirectoryInUseError, match=r"lut.json: is being built by process"):
            build_latency_table(tiny_space, input_size=16, warmup=1, repeats=2,
                                overhead_subnets=2, out=out, progress=False)
    finally:
        held.release()
    (tmp_path / ".lut.json.abcd1234.tmp").write_text("{")  # a killed save
    (tmp_path / ".other.json.abcd1234.tmp").write_text("{")  # not this table's

    def stop(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(lat, "measure_configs", stop)  # the overhead subnets
    with pytest.raises(KeyboardInterrupt, match=r"12 of 12 units measured are kept"):
        build_latency_table(tiny_space, input_size=16, warmup=1, repeats=2,
                            overhead_subnets=2, out=out, progress=False)
    assert not (tmp_path / ".lut.json.abcd1234.tmp").exists()
    assert (tmp_path / ".other.json.abcd1234.tmp").exists()
    assert LatencyTable.load(out, require_complete=False).n_measured == 12
