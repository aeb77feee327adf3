"""The built-in spaces."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nas.errors import ConfigError, UsageError
from nas.searchspace import get_space, list_spaces, load_space

NB201_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "nb201" / "nb201.csv"


def test_registry_lists_and_errors() -> None:
    assert {"resnet_like", "mobilenet_like", "vit_like", "nb201"} <= set(list_spaces())
    with pytest.raises(UsageError, match="known spaces: .*resnet_like"):
        get_space("resnet")


def test_resnet_like_structure_and_size() -> None:
    s = get_space("resnet_like")
    assert s.cardinality() >= 10**15
    paths = set(s.paths)
    for st in range(4):
        for dim in ("depth", "width", "attention", "bits"):
            assert f"stages.{st}.{dim}" in paths
        assert f"stages.{st}.blocks.0.kernel" in paths
        assert f"stages.{st}.blocks.0.cardinality" in paths
    assert set(s.values("stages.3.attention")) >= {"none", "se", "ese", "mhsa"}
    assert set(s.values("stages.0.bits")) >= {4, 8, 32}
    assert s.values("stages.1.blocks.0.kernel") == (3, 5, 7)
    assert {1, 2, 4, 8} <= set(s.values("stages.1.blocks.0.cardinality"))
    seen = {(c["stages.0.attention"], c["stages.0.bits"]) for c in s.sample_many(500, 1)}
    assert len(seen) == 12


def test_mobilenet_and_vit_like() -> None:
    m = get_space("mobilenet_like")
    assert m.values("stages.0.blocks.0.expand") == (3, 4, 6)
    assert set(m.values("stages.2.attention")) == {"none", "se"}
    v = get_space("vit_like")
    assert set(v.values("stages.0.attention")) >= {"global", "window"}
    # heads have a fixed width (ViT-ResNAS): any number of them goes with any dimension
    assert not v.constraints
    assert v.cardinality() == (4 * 3 * 5 * 3 * 2 * 3) ** 3


@pytest.mark.skipif(not NB201_CSV.exists(), reason="shared NAS-Bench-201 table not present")
def test_nb201_parses_every_row_of_the_benchmark() -> None:
    s = get_space("nb201")
    with NB201_CSV.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == s.cardinality() == 15625
    ids = set()
    for row in rows:
        c = s.parse_arch(row["arch"])
        assert s.format_arch(c) == row["arch"]
        ids.add(c)
    assert len(ids) == 15625


def test_nb201_bad_strings() -> None:
    s = get_space("nb201")
    with pytest.raises(ConfigError, match="3 nodes"):
        s.parse_arch("|nor_conv_3x3~0|")
    with pytest.raises(ConfigError, match="edge_0_1: got 'conv9'"):
        s.parse_arch("|conv9~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_load_space_by_name_or_file(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    get_space("vit_like").save(p)
    assert load_space(str(p)) == get_space("vit_like")
    with pytest.raises(UsageError, match="no such file"):
        load_space(str(tmp_path / "missing.yaml"))
