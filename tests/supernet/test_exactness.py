"""Extracted subnets compute exactly what the supernet computes at their config."""

from __future__ import annotations

import pytest
import torch

from nas.searchspace import get_space
from nas.supernet import export_torchscript

N_CONFIGS = 200  # per space, besides min and max; every one also through TorchScript
OPTIMIZE_EVERY = 4  # the scripted module also runs on the optimizing executor (~0.4 s more)
TOL = 1e-5

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def configs(space):
    cfgs = [space.min(), space.max()] + space.sample_many(N_CONFIGS, 2026)
    return cfgs


def coverage(space, cfgs):
    """The values of attention, bits and cardinality seen in ``cfgs`` per dimension."""
    seen: dict[str, set] = {}
    for c in cfgs:
        for path, v in c.flat().items():
            key = path.rsplit(".", 1)[-1]
            if key in ("attention", "bits", "cardinality", "kernel", "expand", "depth", "heads",
                       "mlp_ratio"):
                seen.setdefault(key, set()).add(v)
    return seen


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_sample_covers_every_choice(name):
    space = get_space(name)
    seen = coverage(space, configs(space))
    for key, want in (("attention", "stages.0.attention"), ("bits", "stages.0.bits"),
                      ("kernel", "stages.0.blocks.0.kernel"), ("heads", "stages.0.heads"),
                      ("mlp_ratio", "stages.0.mlp_ratio")):
        if space.has(want):
            assert seen[key] == set(space.values(want)), key
    if name == "resnet_like":
        assert seen["cardinality"] == set(space.values("stages.0.blocks.0.cardinality"))


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_extracted_equals_supernet(name, supernets, x):
    net = supernets[name]
    space = net.space
    worst = 0.0
    scripted = 0
    for i, cfg in enumerate(configs(space)):
        with torch.no_grad():
            with net.activate(cfg):
                y = net(x)
            sub = net.extract(cfg)
            assert not sub.training
            ys = sub(x)
            assert y.abs().max() > 1e-2, "output too small for the comparison to mean much"
            diff = (y - ys).abs().max().item()
            worst = max(worst, diff)
            assert diff <= TOL, (i, cfg.to_json(), diff)
            # every config through TorchScript (~0.15 s with the memoized front end), run by
            # the graph interpreter; min, max and every 4th also by the optimizing executor,
            # whose first calls profile and optimise the graph
            ts = export_torchscript(sub)
            with torch.jit.optimized_execution(False):
                dts = (ts(x) - y).abs().max().item()
            assert dts <= TOL, (i, cfg.to_json(), dts)
            if i < 2 or i % OPTIMIZE_EVERY == 0:
                with torch.jit.optimized_execution(True):
                    dts = max((ts(x) - y).abs().max().item() for _ in range(2))
                assert dts <= TOL, (i, cfg.to_json(), dts)
            scripted += 1
    assert scripted == N_CONFIGS + 2


def test_extracted_is_plain_pytorch(supernets, x, tmp_path):
    import pickle

    from nas.supernet import static
    from nas.supernet.blocks import (
        ConvBNAct,
        Head,
        MBConv,
        PatchEmbed,
        Reduction,
        ResBlock,
        Stage,
        SubnetModel,
        TokenAttention,
        TokenHead,
        TransformerBlock,
    )
    from nas.supernet.ops import ElasticActQuant, ElasticAttention

    allowed_ours = (static.QConv2d, static.QLinear, static.FakeQuantAct, static.SqueezeExcite,
                    static.EffectiveSE, static.SpatialMHSA, static.PosEmbed, static.InputCheck,
                    ConvBNAct, Head, MBConv, ResBlock, PatchEmbed, TokenAttention,
                    TransformerBlock, Reduction, TokenHead, Stage, SubnetModel)
    for net in supernets.values():
        cfg = net.space.sample(3)
        sub = net.extract(cfg)
        for m in sub.modules():
            assert isinstance(m, allowed_ours) or type(m).__module__.startswith("torch.nn"), m
            assert not isinstance(m, (ElasticActQuant, ElasticAttention))
        # copied weights: changing the supernet leaves the subnet alone
        before = {k: v.clone() for k, v in sub.state_dict().items()}
        ptrs = {p.data_ptr() for p in net.parameters()}
        assert all(p.data_ptr() not in ptrs for p in sub.parameters())
        clone = pickle.loads(pickle.dumps(sub))
        with torch.no_grad():
            assert torch.equal(clone(x), sub(x))
        for k, v in sub.state_dict().items():
            assert torch.equal(before[k], v)


def test_onnx_export_matches(supernets, x, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from nas.supernet import export_onnx

    for name, net in supernets.items():
        sampled = net.space.sample(11)
        as_float = sampled.to_dict()
        for stage in as_float["stages"]:
            stage["bits"] = 32
        for cfg in (net.space.max(), net.space.config(as_float), sampled):
            sub = net.extract(cfg)
            path = tmp_path / f"{name}.onnx"
            export_onnx(sub, path, in_channels=3, input_size=(8, 8))
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            out = sess.run(None, {"input": x.numpy()})[0]
            with torch.no_grad():
                ref = sub(x).numpy()
            if all(v == 32 for k, v in cfg.flat().items() if k.endswith(".bits")):
                assert abs(out - ref).max() <= 1e-4, (name, cfg.to_json())
            else:  # onnxruntime sums in another order: an activation on a quantization
                # boundary may move by a level (README; benchmarks/export_exactness.py)
                assert (out.argmax(1) == ref.argmax(1)).all(), (name, cfg.to_json())


def test_exact_in_train_mode_forward(supernets, x):
    """Training-mode forward (batch statistics, running-stat updates) agrees too, and the
    supernet's running statistics move exactly like the subnet's."""
    net = supernets["mobilenet_like"]
    cfg = net.space.sample(5)
    sub = net.extract(cfg).train()
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        net.train()
        with net.activate(cfg):
            y = net(x)
            ys = sub(x)
            assert (y - ys).abs().max().item() <= TOL
            st = net.subnet_state_dict()
            for k, v in sub.state_dict().items():
                if k.endswith("running_mean") or k.endswith("running_var"):
                    assert torch.allclose(st[k], v, atol=1e-6), k
    finally:
        net.load_state_dict(saved)
        net.eval()


@pytest.mark.parametrize("name", ["resnet_like", "mobilenet_like", "vit_like"])
def test_train_mode_extraction_before_a_bit_width_was_trained(name):
    """A subnet extracted from a supernet that never trained its bit width initialises the
    width's activation ranges from its first training batch, as the supernet does, so it
    fine-tunes from the same outputs (it had kept the default range: outputs ~0.3 apart)."""
    from nas.searchspace import get_space
    from nas.supernet import build_supernet

    space = get_space(name)
    torch.manual_seed(0)
    net = build_supernet(space, in_channels=3, num_classes=10, input_size=16).train()
    cfg = space.min()  # 4-bit stages
    sub = net.extract(cfg).train()
    for _ in range(2):  # the first batch initialises the ranges, the second uses them
        x = torch.randn(4, 3, 16, 16)
        with net.activate(cfg):
            y = net(x)
        assert torch.allclose(sub(x), y, atol=1e-5, rtol=0)
    # an extraction of a trained width keeps its range: it is not initialised again
    again = net.extract(cfg).train()
    x = 5 * torch.randn(4, 3, 16, 16)
    with net.activate(cfg):
        y = net(x)
    assert torch.allclose(again(x), y, atol=1e-5, rtol=0)
