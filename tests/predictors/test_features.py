"""Feature kinds of the supernet families: cost (analytic FLOPs/params) and zero-cost
proxies on the real static subnet."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nas.predictors.features import Featurizer, available_kinds, default_kinds
from nas.predictors.models import PredictorFileError, get_predictor
from nas.predictors.pipeline import ConfigPredictor
from nas.predictors.zerocost import ProxySettings
from nas.searchspace import get_space
from nas.supernet.base import analytic_costs


@pytest.mark.parametrize("name", ["resnet_like", "vit_like", "mobilenet_like"])
def test_supernet_families_offer_cost_and_proxies(name: str) -> None:
    space = get_space(name)
    assert {"cost", "zc"} <= set(available_kinds(space))
    # cost walks each config's plan: asked for by name, not among the vectorised defaults
    assert "cost" not in default_kinds(space) and "zc" not in default_kinds(space)
    configs = space.sample_many(4, 0) + [space.min(), space.max()]
    fz = Featurizer(space, kinds=["cost"])
    X = fz.transform(configs)
    assert fz.names() == ["log10_params", "log10_flops"] and X.shape == (6, 2)
    for row, cfg in zip(X, configs):
        c = analytic_costs(space, cfg, in_channels=3, num_classes=10, input_size=32)
        assert row == pytest.approx([math.log10(c.params), math.log10(c.flops)])
    assert X[-1, 1] > X[-2, 1]  # the largest config costs more than the smallest


def test_zero_cost_proxies_on_a_resnet_like_subnet() -> None:
    space = get_space("resnet_like")
    fz = Featurizer(space, kinds=["zc"], proxies=("synflow", "grad_norm"),
                    proxy_settings=ProxySettings(batch=4, resolution=16))
    configs = [space.min(), space.max()]
    X = fz.transform(configs)
    assert X.shape == (2, 2) and np.all(np.isfinite(X))
    assert X[1, 0] > X[0, 0]  # synflow grows with the parameters it sums over
    np.testing.assert_array_equal(fz.transform(configs), X)  # seeded: the same again


def test_predictor_file_whose_kinds_do_not_match_its_features(tmp_path: Path) -> None:
    space = get_space("resnet_like")
    configs = space.sample_many(30, 1)
    y = np.arange(30.0)
    path = tmp_path / "p.npz"
    ConfigPredictor(Featurizer(space, kinds=["encoding", "cost"]),
                    get_predictor("ridge")).fit(configs, y).save(path)
    loaded = ConfigPredictor.load(path, space)
    assert loaded.featurizer.kinds == ("encoding", "cost")
    # the same file claiming other kinds: refused at load, naming the file
    import json

    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["header"].tobytes().decode())
    header["extra"]["kinds"] = ["cost"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "kinds.npz", **arrays)
    with pytest.raises(PredictorFileError, match=r"kinds.npz: corrupt predictor \(fitted on"):
        ConfigPredictor.load(tmp_path / "kinds.npz", space)
    # a predictor on zero-cost proxies of an older definition (files before version 3 did
    # not save it): refused for a family whose values changed since, not for nb201
    from nas.errors import UsageError
    from nas.predictors.zerocost import proxies_changed_since

    header["extra"]["kinds"] = ["encoding", "zc"]
    header["extra"].pop("proxy_version")
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(UsageError, match=r"old.npz: predictor was fitted on zero-cost proxies "
                       r"of definition 2; .* definition 4"):
        ConfigPredictor.load(tmp_path / "old.npz", space)
    assert proxies_changed_since(2, "resnet_like") and not proxies_changed_since(2, "nb201")
    assert proxies_changed_since(1, "nb201") and not proxies_changed_since(3, "resnet_like")
    # 4: vit_like's networks changed (ViT-ResNAS's heads and reductions), no other family's
    assert proxies_changed_since(3, "vit_like") and not proxies_changed_since(4, "vit_like")


@pytest.mark.parametrize("name", ["resnet_like", "vit_like", "mobilenet_like"])
def test_proxies_see_the_whole_network_of_each_family(name: str) -> None:
    # naswot reads every rectifier the forward pass calls (the families call them as
    # functions: hooks on nn.ReLU modules saw none, and naswot was -inf for every config);
    # synflow runs the network linearised (no fake quantization, ReLU6 as ReLU), so the bit
    # widths do not swamp it and saturating activations do not flatten it
    from nas.predictors.features import _NETWORK, _register_supernet_families
    from nas.predictors.zerocost import compute_proxies

    _register_supernet_families()
    space = get_space(name)
    settings = ProxySettings(batch=4, resolution=16)

    def proxies(cfg: object) -> dict[str, float]:
        return compute_proxies(lambda: _NETWORK[space.family](cfg, settings), settings,
                               proxies=("synflow", "naswot"))

    lo, hi = space.min(), space.max()
    lo_v, hi_v = proxies(lo), proxies(hi)
    assert all(math.isfinite(v) for v in (*lo_v.values(), *hi_v.values())), (lo_v, hi_v)
    assert hi_v["naswot"] > lo_v["naswot"] and hi_v["synflow"] > lo_v["synflow"]
    bits = [p for p in space.paths if p.endswith(".bits")]
    full = hi.replace({p: 32 for p in bits})
    low = hi.replace({p: 4 for p in bits})
    assert proxies(low)["synflow"] == pytest.approx(proxies(full)["synflow"], rel=1e-9)
    # two configs that differ only inside the body score differently
    body = [p for p in space.paths if (".depth" in p or ".width" in p) and "head" not in p]
    other = hi.replace({body[0]: space.dimension(body[0]).values[0]})
    assert proxies(other)["synflow"] != hi_v["synflow"]
