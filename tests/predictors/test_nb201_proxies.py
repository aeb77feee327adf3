from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.predictors.features import Featurizer
from nas.predictors.zerocost import PROXIES, ProxySettings, proxy_matrix
from nas.searchspace import get_space
from nas.supernet.nb201 import build_nb201, nb201_costs

ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",  # output cut off from input
)
SMALL = ProxySettings(batch=4, resolution=16)


def test_network_shapes_and_costs() -> None:
    space = get_space("nb201")
    for cfg in space.sample_many(4, 1):
        net = build_nb201(cfg)
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        n_params = sum(p.numel() for p in net.parameters())
        assert n_params == int(nb201_costs([cfg])["params"][0])
    big = space.parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                           "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    costs = nb201_costs([big])  # NAS-Bench-201's largest CIFAR-10 cell: 1.53M params, 220M MACs
    assert costs["params"][0] == pytest.approx(1.5315e6, rel=1e-3)
    assert costs["macs"][0] == pytest.approx(220.1e6, rel=1e-3)


def test_proxies_deterministic_and_differ(tmp_path: Path) -> None:
    space = get_space("nb201")
    cfgs = [space.parse_arch(a) for a in ARCHS]
    a = proxy_matrix(space, cfgs, build_nb201, proxies=PROXIES, settings=SMALL)
    b = proxy_matrix(space, cfgs, build_nb201, proxies=PROXIES, settings=SMALL)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a[:2]))
    assert np.all(a[0] != a[1])  # every proxy tells the two connected cells apart
    assert a[2, PROXIES.index("synflow")] == float("-inf")  # no input-output path: zero score
    # the cache returns the same values without recomputing
    c = proxy_matrix(space, cfgs, build_nb201, proxies=PROXIES, settings=SMALL,
                     cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    d = proxy_matrix(space, cfgs, build_nb201, proxies=PROXIES, settings=SMALL,
                     cache_dir=tmp_path)
    np.testing.assert_array_equal(c, a)
    np.testing.assert_array_equal(d, a)


def test_featurizer_kinds_and_graph_features() -> None:
    space = get_space("nb201")
    f = Featurizer(space, kinds=("encoding", "graph", "cost", "zc"), proxy_settings=SMALL)
    cfgs = [space.parse_arch(a) for a in ARCHS]
    X = f.transform(cfgs)
    names = f.names()
    assert X.shape == (3, len(names)) and np.all(np.isfinite(X))
    col = {n: i for i, n in enumerate(names)}
    assert X[:, col["connected"]].tolist() == [1, 1, 0]
    assert X[:, col["depth_max"]].tolist() == [2, 1, -1]
    assert X[2, col["live:edge_2_3=none"]] == 1  # the dead conv counts as none
    assert X[2, col["edge_2_3=nor_conv_3x3"]] == 1  # but the encoding keeps it
    assert Featurizer(space).kinds == ("encoding", "counts", "graph", "cost")
    fast = Featurizer(space, kinds=("encoding", "graph", "cost"))
    assert fast.fast and not f.fast
    X2, _ = fast.from_encoding(space.encode_many(cfgs))
    np.testing.assert_array_equal(X2, X[:, :-1])
    counts, names = Featurizer(space, kinds=("counts",)).from_encoding(space.encode_many(cfgs))
    assert names[0] == "count:edge_0_1..edge_2_3=none"
    assert counts[2].tolist() == [5, 0, 0, 1, 0]  # dead edges are counted (they still run)


def _cache_with(tmp_path: Path, n: int):
    from nas.predictors.zerocost import ProxyCache

    space = get_space("nb201")
    cache = ProxyCache(tmp_path, space.name, space.fingerprint, SMALL)
    for i in range(n):
        cache.put(f"arch{i}", {"synflow": float(i), "snip": float("-inf")})
    return cache


def test_proxy_cache_drops_a_torn_last_record(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A kill during an append leaves half a record: only that record is lost, and the file
    is repaired so that the next appends are readable."""
    from nas.predictors.zerocost import ProxyCache

    space = get_space("nb201")
    path = _cache_with(tmp_path, 5).path
    data = path.read_bytes()
    path.write_bytes(data[:-12])  # the fifth record, torn
    with caplog.at_level("WARNING", logger="nas.predictors.zerocost"):
        cache = ProxyCache(tmp_path, space.name, space.fingerprint, SMALL)
    assert f"{path.name}:5: dropping the torn last record" in caplog.text
    assert [cache.get(f"arch{i}", ["synflow"]) for i in range(5)] == [
        {"synflow": float(i)} for i in range(4)] + [{}]
    assert cache.get("arch1", ["snip"]) == {"snip": float("-inf")}
    assert path.read_bytes() == data[:data.rindex(b"\n", 0, -1) + 1]  # rewritten without it
    cache.put("arch4", {"synflow": 4.0})
    caplog.clear()
    again = ProxyCache(tmp_path, space.name, space.fingerprint, SMALL)
    assert again.get("arch4", ["synflow"]) == {"synflow": 4.0} and not caplog.text


def test_proxy_cache_bad_middle_record_is_an_error(tmp_path: Path) -> None:
    from nas.predictors.zerocost import ProxyCache, ProxyCacheError

    space = get_space("nb201")
    path = _cache_with(tmp_path, 3).path
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:-10] + "\n" + lines[2])
    with pytest.raises(ProxyCacheError, match=rf"{path.name}:2: not a proxy cache record"):
        ProxyCache(tmp_path, space.name, space.fingerprint, SMALL)
    # a whole record of the wrong shape is not torn: an error even when last
    path.write_text(lines[0] + '{"id": "x", "values": [1]}\n')
    with pytest.raises(ProxyCacheError, match=rf"{path.name}:2: not a proxy cache record"):
        ProxyCache(tmp_path, space.name, space.fingerprint, SMALL)


def test_cut_off_cells_rank_last_on_every_proxy() -> None:
    """A cell whose output is cut off (every edge into node 3 is ``none``) scores 0 on
    synflow/snip/grad_norm and has no defined jacov; its features must sit below every real
    network's (a fill of 0 ranked it above working cells on snip and grad_norm, and jacov
    gave -1.6e6)."""
    import numpy as np

    from nas.predictors.features import ZC_FILL, Featurizer
    from nas.predictors.zerocost import ProxySettings
    from nas.searchspace import get_space

    space = get_space("nb201")
    cut = space.parse_arch("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    good = [space.parse_arch("|skip_connect~0|+|skip_connect~0|skip_connect~1|+"
                             "|skip_connect~0|skip_connect~1|skip_connect~2|"),
            space.parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
                             "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")]
    fz = Featurizer(space, kinds=["zc"], proxies=["snip", "grad_norm", "jacov"],
                    proxy_settings=ProxySettings(batch=4, resolution=8))
    X = fz.transform([cut] + good)
    assert np.all(X[0] == ZC_FILL)
    assert np.all(X[0] < X[1:].min(axis=0))
