"""How exactly exported subnets reproduce the supernet: TorchScript and ONNX (onnxruntime)
against the extracted PyTorch model, per family and bit width, on real validation images.

For each family a supernet is trained on digits (``--epochs``, default 2, `sandwich`), then
``--configs`` random subnets are extracted at each bit width (every stage's ``bits`` set to
32, 8, 4), exported, and run on ``--images`` validation images. Printed per family and bit
width: the largest |difference| of the logits between the extracted model and TorchScript,
and between it and ONNX under onnxruntime (CPU), and on how many images ONNX predicts the
same class.

    python benchmarks/export_exactness.py [--families resnet_like,mobilenet_like,vit_like]
        [--epochs 2] [--configs 4] [--images 64] [--threads 1]

Needs the test extras (onnx, onnxruntime).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="resnet_like,mobilenet_like,vit_like")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--configs", type=int, default=4)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import onnxruntime as ort

    from nas.data import load_dataset, split
    from nas.supernet import load_supernet
    from nas.supernet.export import export_onnx, export_torchscript
    from nas.training import TrainOptions, train
    from nas.training.evaluate import recalibrate_bn

    torch.set_num_threads(args.threads)
    data = load_dataset("digits")
    parts = split(data, val_fraction=0.1, seed=0)
    x_val = torch.as_tensor(parts.val[0][: args.images]).float()
    x_cal = torch.as_tensor(parts.train[0][:256]).float()
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    print("family | bits | configs | max |d| TorchScript | max |d| ONNX | same class (ONNX)")
    for family in args.families.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            opts = TrainOptions(space=family, epochs=args.epochs, threads=args.threads,
                                seed=0)
            train(opts, Path(tmp) / "run", progress=False)
            net = load_supernet(Path(tmp) / "run" / "supernet.pt")
            net.eval()
            space = net.space
            bits_paths = [p for p in space.paths if p.endswith(".bits")]
            cfgs = space.sample_many(args.configs, np.random.default_rng(1))
            trained = time.perf_counter() - t
            for bits in (32, 8, 4):
                ts_d = onnx_d = 0.0
                same = total = 0
                for i, cfg in enumerate(cfgs):
                    cfg = cfg.replace({p: bits for p in bits_paths})
                    calib = [(x_cal[j:j + 64], None) for j in range(0, 256, 64)]
                    recalibrate_bn(net, cfg, calib, len(calib))
                    model = net.extract(cfg).eval()
                    with torch.no_grad():
                        ref = model(x_val)
                        ts = export_torchscript(model)(x_val)
                    ts_d = max(ts_d, float((ts - ref).abs().max()))
                    path = Path(tmp) / f"m{bits}_{i}.onnx"
                    b = net.build
                    export_onnx(model, path, in_channels=b.in_channels,
                                input_size=b.input_size)
                    sess = ort.InferenceSession(str(path), so,
                                                providers=["CPUExecutionProvider"])
                    out = sess.run(None, {"input": x_val.numpy()})[0]
                    onnx_d = max(onnx_d, float(np.abs(out - ref.numpy()).max()))
                    same += int((out.argmax(1) == ref.numpy().argmax(1)).sum())
                    total += len(out)
                print(f"{family} | {bits} | {len(cfgs)} | {ts_d:.1e} | {onnx_d:.1e} | "
                      f"{same}/{total}", flush=True)
            print(f"({family}: supernet trained in {trained:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
