"""Supernet and subnet checkpoints, and ``nas extract``."""

from __future__ import annotations

import json

import pytest
import torch

from nas.cli.main import main
from nas.errors import UsageError
from nas.searchspace import get_space, save_config
from nas.supernet import (
    CheckpointError,
    build_supernet,
    load_subnet,
    load_supernet,
    save_subnet,
    save_supernet,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, supernets):
    path = tmp_path_factory.mktemp("ckpt") / "mobile.pt"
    save_supernet(supernets["mobilenet_like"], path, meta={"epoch": 3})
    return path


def test_round_trip(ckpt, supernets, x):
    net = supernets["mobilenet_like"]
    raw = torch.load(ckpt, weights_only=True)
    assert raw["format"] == "nas.supernet" and raw["version"] == 3
    assert raw["build"] == {"in_channels": 3, "num_classes": 5, "input_size": [8, 8]}
    loaded = load_supernet(ckpt, space=get_space("mobilenet_like")).eval()
    assert loaded.checkpoint_meta == {"epoch": 3}
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    cfg = net.space.sample(8)
    with torch.no_grad(), net.activate(cfg), loaded.activate(cfg):
        assert torch.equal(net(x), loaded(x))


def test_other_space_and_corrupt_files(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="holds space 'mobilenet_like', not 'resnet_like'"):
        load_supernet(ckpt, space=get_space("resnet_like"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable supernet checkpoint"):
        load_supernet(bad)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(ckpt.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="bad.pt|trunc.pt"):
        load_supernet(trunc)
    other = tmp_path / "other.pt"
    torch.save({"format": "something"}, other)
    with pytest.raises(CheckpointError, match="format 'something', expected 'nas.supernet'"):
        load_supernet(other)
    wrong = tmp_path / "wrong.pt"
    raw = torch.load(ckpt, weights_only=True)
    raw["build"]["num_classes"] = 7
    torch.save(raw, wrong)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_supernet(wrong)
    with pytest.raises(CheckpointError, match="no such file"):
        load_supernet(tmp_path / "missing.pt")
    future = tmp_path / "future.pt"
    raw = torch.load(ckpt, weights_only=True)
    raw["version"] = 4
    torch.save(raw, future)
    with pytest.raises(CheckpointError, match=r"version 4 is not supported \(supported: 1, 2, "
                                              r"3\)"):
        load_supernet(future)
    # a text file (the weights-only unpickler raises IndexError on it) and a pickle that
    # would run code: clear errors, neither torch's traceback nor its advice to unpickle
    text = tmp_path / "text.pt"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(CheckpointError, match=r"text.pt: not a readable supernet checkpoint \("
                       r"it is a text file"):
        load_supernet(text)
    config = tmp_path / "c.json"  # a config given where the checkpoint goes
    config.write_text('{"stem": {"width": 16}}\n')
    with pytest.raises(UsageError, match=r"c.json: not a readable supernet checkpoint \(it is "
                       r"a JSON file"):
        load_supernet(config)
    with pytest.raises(UsageError, match=r"trunc.pt: .*cut short"):
        load_supernet(trunc)
    evil = tmp_path / "evil.pt"
    torch.save({"f": pytest.raises}, evil)
    with pytest.raises(CheckpointError, match=r"it asks to load _pytest\.raises\.raises, which "
                       r"is refused") as e:
        load_supernet(evil)
    assert "weights_only` set to `False`" not in str(e.value)


def test_earlier_files_load_unless_their_networks_changed(supernets, x, tmp_path):
    """Version 1 quantized activations after ReLUs with a signed range; version 2 with an
    unsigned one. Version 3 gave vit_like heads a fixed width and its reductions a skip path
    without parameters. Quantized CNN files of version 1 and vit_like files of versions 1
    and 2 are refused with the reason; float-only subnets of version 1 and CNN files of
    version 2 compute as before and still load."""
    def as_v(path, version=1):
        raw = torch.load(path, weights_only=True)
        raw["version"] = version
        torch.save(raw, path)

    path = tmp_path / "mobilenet_like.pt"
    save_supernet(supernets["mobilenet_like"], path)
    as_v(path, 2)
    assert load_supernet(path).space.name == "mobilenet_like"
    as_v(path, 1)
    with pytest.raises(CheckpointError, match=r"version 1 is not supported for quantized "
                                              r"mobilenet_like networks .* train the "
                                              r"supernet again"):
        load_supernet(path)
    path = tmp_path / "vit_like.pt"
    save_supernet(supernets["vit_like"], path)
    for version in (1, 2):
        as_v(path, version)
        with pytest.raises(CheckpointError, match=rf"version {version} is not supported for "
                                                  r"vit_like networks .*fixed width.* train "
                                                  r"the supernet again"):
            load_supernet(path)
    # the built-in vit_like of those versions had heads dividing the dimension: asked for
    # today's vit_like, such a file is refused for its version, not as another space
    raw = torch.load(path, weights_only=True)
    raw["space"]["constraints"] = [{"type": "divides", "divisor": f"stages.{s}.heads",
                                    "dividend": f"stages.{s}.embed_dim"} for s in range(3)]
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"version 2 is not supported for vit_like"):
        load_supernet(path, space=get_space("vit_like"))
    net = supernets["resnet_like"]
    for bits, ok in ((32, True), (4, False)):
        d = net.space.sample(3).to_dict()
        for st in d["stages"]:
            st["bits"] = bits
        cfg = net.space.config(d)
        path = tmp_path / f"sub{bits}.pt"
        save_subnet(net.extract(cfg), cfg, path, in_channels=3, num_classes=5, input_size=8)
        as_v(path)
        if ok:
            model, got = load_subnet(path)
            with torch.no_grad(), net.activate(cfg):
                assert got == cfg and torch.equal(model.eval()(x), net(x))
        else:
            with pytest.raises(CheckpointError, match="extract it again from a supernet"):
                load_subnet(path)


def test_subnet_round_trip(supernets, x, tmp_path):
    net = supernets["resnet_like"]
    cfg = net.space.sample(21)
    sub = net.extract(cfg)
    path = tmp_path / "sub.pt"
    save_subnet(sub, cfg, path, in_channels=3, num_classes=5, input_size=8)
    model, got = load_subnet(path)
    assert got == cfg and not model.training  # ready for inference, as TorchScript loads
    # a file that could not be loaded back is not written: other build arguments or config
    for kwargs, c, what in (({"in_channels": 1}, cfg, r"stem\.conv\.weight is \(\d+, 3, 3, 3\)"),
                            ({}, net.space.max() if net.space.max() != cfg else
                             net.space.min(), "")):
        with pytest.raises(CheckpointError, match=rf"save_subnet: the model is not config "
                           rf"{c.id} .*{what}"):
            save_subnet(sub, c, tmp_path / "wrong.pt", **{"in_channels": 3, "num_classes": 5,
                                                          "input_size": 8, **kwargs})
    assert not (tmp_path / "wrong.pt").exists()
    with torch.no_grad():
        assert torch.equal(model(x), sub.eval()(x))
    # a file of another space, a family that does not fit, weights that do not fit
    with pytest.raises(CheckpointError, match=r"sub\.pt: checkpoint holds space"):
        load_subnet(path, space=supernets["mobilenet_like"].space)
    payload = torch.load(path, weights_only=True)
    bad = tmp_path / "bad.pt"
    torch.save({**payload, "family": "mobilenet_like",
                "space": {**payload["space"], "family": "mobilenet_like"}}, bad)
    with pytest.raises(CheckpointError, match=r"bad\.pt: .*does not fit family "
                                              r"'mobilenet_like'"):
        load_subnet(bad)
    sd = dict(payload["state_dict"])
    name = next(k for k in sd if k.endswith("weight") and sd[k].dim() == 4)
    sd[name] = sd[name][:1]
    torch.save({**payload, "state_dict": sd}, bad)
    with pytest.raises(CheckpointError, match=rf"weights do not fit config .*{name}"):
        load_subnet(bad)


def test_cli_extract_all_formats(ckpt, supernets, x, tmp_path, capsys):
    net = supernets["mobilenet_like"]
    cfg = net.space.sample(4)
    cfg_path = tmp_path / "cfg.json"
    save_config(cfg, cfg_path)
    with torch.no_grad(), net.activate(cfg):
        ref = net(x)
    for fmt in ("state_dict", "torchscript", "onnx"):
        out = tmp_path / f"model.{fmt}"
        code = main(["extract", "--supernet", str(ckpt), "--config", str(cfg_path),
                     "--out", str(out), "--format", fmt, "--bn-batches", "0"])  # as stored
        printed = capsys.readouterr().out
        assert code == 0 and cfg.id in printed and out.exists()
        if fmt == "state_dict":
            model, got = load_subnet(out)
            assert got == cfg
            with torch.no_grad():
                assert (model.eval()(x) - ref).abs().max() <= 1e-5
        elif fmt == "torchscript":
            model = torch.jit.load(str(out))
            with torch.no_grad():
                assert (model(x) - ref).abs().max() <= 1e-5
        else:
            ort = pytest.importorskip("onnxruntime")
            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = sess.run(None, {"input": x.numpy()})[0]
            assert abs(got - ref.numpy()).max() <= 1e-4


def test_cli_extract_errors(ckpt, tmp_path, capsys):
    cfg_path = tmp_path / "other.json"
    save_config(get_space("resnet_like").min(), cfg_path)
    code = main(["extract", "--supernet", str(ckpt), "--config", str(cfg_path),
                 "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 1 and "belongs to space 'resnet_like'" in err and len(err.splitlines()) == 1
    code = main(["extract", "--supernet", str(tmp_path / "none.pt"), "--config",
                 str(cfg_path), "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err  # a missing input file is a usage error, like --config's
    assert code == 2 and "--supernet" in err and "no such file" in err \
        and len(err.splitlines()) == 1
    # a file that is no checkpoint at all: a usage error too (exit 2), saying what it is
    code = main(["eval", "--supernet", str(cfg_path), "--sample", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "it is a JSON file" in err and len(err.splitlines()) == 1
    d = tmp_path / "adir"
    d.mkdir()
    code = main(["extract", "--supernet", str(d), "--config", str(cfg_path),
                 "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "is a directory, not a file" in err and len(err.splitlines()) == 1
    code = main(["extract", "--supernet", str(ckpt), "--config", str(cfg_path), "--out", str(d)])
    err = capsys.readouterr().err
    assert code == 2 and "is a directory; give a file name" in err
    bad_cfg = tmp_path / "bad.json"
    bad_cfg.write_text(json.dumps({"stem": {"width": 17}}))
    code = main(["extract", "--supernet", str(ckpt), "--config", str(bad_cfg),
                 "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 1 and "stem.width: got 17, allowed" in err


def test_cli_extract_does_not_overwrite_what_it_is_not(ckpt, supernets, tmp_path, capsys):
    """--out over an input, a checkpoint or a text file is refused before any work; over an
    earlier export of the same format it is replaced."""
    import shutil

    net = supernets["mobilenet_like"]
    cfg_path = tmp_path / "cfg.json"
    save_config(net.space.sample(1), cfg_path)
    sn = tmp_path / "sn.pt"
    shutil.copy(ckpt, sn)
    before = sn.read_bytes()

    def extract(out, fmt="state_dict"):
        code = main(["extract", "--supernet", str(sn), "--config", str(cfg_path), "--out",
                     str(out), "--format", fmt, "--bn-batches", "0"])
        return code, capsys.readouterr().err

    code, err = extract(sn)
    assert code == 2 and "--out " in err and "is the --supernet file" in err
    code, err = extract(cfg_path)
    assert code == 2 and "is the --config file" in err
    other = tmp_path / "other_supernet.pt"
    shutil.copy(ckpt, other)
    code, err = extract(other)
    assert code == 2 and "exists and is a supernet checkpoint, not a subnet file" in err
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, err = extract(notes, "torchscript")
    assert code == 2 and "exists and is a text file, not a TorchScript model" in err
    assert sn.read_bytes() == before and notes.read_text() == "my notes\n"
    for fmt in ("state_dict", "torchscript", "onnx"):  # an earlier export is replaced
        out = tmp_path / f"m.{fmt}"
        assert extract(out, fmt)[0] == 0
        assert extract(out, fmt)[0] == 0, fmt


def test_device_argument_round_trip(tmp_path):
    """Everything follows the device it is given (CUDA when there is one)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    space = get_space("resnet_like")
    net = build_supernet(space, in_channels=3, num_classes=3, input_size=8, device=device)
    assert all(p.device.type == device for p in net.parameters())
    cfg = space.sample(2)
    sub = net.extract(cfg)
    assert all(p.device.type == device for p in sub.parameters())
    path = tmp_path / "n.pt"
    save_supernet(net, path)
    again = load_supernet(path, device=device)
    assert next(again.parameters()).device.type == device
    xx = torch.randn(2, 3, 8, 8, device=device)
    net.eval()
    with torch.no_grad(), net.activate(cfg):
        assert (net(xx) - sub.eval()(xx)).abs().max() <= 1e-5
