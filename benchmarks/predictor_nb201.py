"""Predictors on NAS-Bench-201 (issue 5): rank correlation on CIFAR-10 accuracy, a latency
predictor, and the time to predict 100,000 configs.

    python benchmarks/predictor_nb201.py [--cache-dir DIR] [--seeds 5] [--out results.json]

Reads ../shared/data/nb201/nb201.csv (relative to the repository root). Zero-cost proxies
(synflow on the real NAS-Bench-201 network) are computed once per architecture on one thread
and cached under --cache-dir (default ~/.cache/nas/proxies; the first run computes up to
~7,000 architectures, a few minutes). Features of test rows come from their architecture only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nas.predictors.evaluate import evaluate_table
from nas.predictors.features import Featurizer
from nas.predictors.models import get_predictor, list_predictors
from nas.predictors.pipeline import ConfigPredictor
from nas.predictors.table import load_measurements, select_rows
from nas.searchspace import get_space

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / ".." / "shared" / "data" / "nb201" / "nb201.csv"


def accuracy(args: argparse.Namespace, space: object, out: dict) -> None:
    runs = [("ensemble", ["encoding", "graph", "cost", "zc"], "goal setting"),
            ("ensemble", ["encoding", "graph", "cost"], "no proxies"),
            ("gbt", ["encoding", "graph", "cost", "zc"], "single gbt"),
            ("gbt", ["encoding"], "one-hot only (reference)")]
    for model, kinds, label in runs:
        for n_train in (100, 500):
            t0 = time.perf_counter()
            res = evaluate_table(args.csv, space, "cifar10_test_acc", n_train=n_train,
                                 n_test=args.n_test, seeds=args.seeds, model=model,
                                 features=kinds, proxies=["synflow"], cache_dir=args.cache_dir)
            s = res.summary()
            key = f"acc/{model}/{'+'.join(kinds)}/{n_train}"
            out[key] = {k: s[k] for k in ("kendall_tau_mean", "kendall_tau_std", "spearman_mean",
                                          "spearman_std", "mape_mean", "within_10pct_mean")}
            print(f"cifar10_test_acc  {label:26s} {model:8s} n_train={n_train:3d}: "
                  f"kendall tau {s['kendall_tau_mean']:.3f} ± {s['kendall_tau_std']:.3f}, "
                  f"spearman {s['spearman_mean']:.3f} ± {s['spearman_std']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


def latency(args: argparse.Namespace, space: object, out: dict) -> None:
    for model, kinds, tt in (("ridge", ["encoding"], "none"),
                             ("layerwise", ["counts"], "none"),
                             ("gp", ["counts"], "none")):
        res = evaluate_table(args.csv, space, "latency_gold_6226_ms", n_train=100,
                             n_test=args.n_test, seeds=args.seeds, model=model, features=kinds,
                             model_kwargs={"target_transform": tt})
        s = res.summary()
        out[f"lat/{model}/{'+'.join(kinds)}/100"] = {
            k: s[k] for k in ("kendall_tau_mean", "kendall_tau_std", "within_10pct_mean",
                              "within_10pct_std", "mape_mean")}
        print(f"latency_gold_6226_ms {model:6s} n_train=100: kendall tau "
              f"{s['kendall_tau_mean']:.3f} ± {s['kendall_tau_std']:.3f}, within ±10% "
              f"{100 * s['within_10pct_mean']:.1f}% ± {100 * s['within_10pct_std']:.1f}",
              flush=True)


def speed(args: argparse.Namespace, space: object, out: dict) -> None:
    configs, y = load_measurements(args.csv, space, "cifar10_test_acc")
    tr, _ = select_rows(len(y), 500, args.n_test, 0)
    big = space.sample_many(100_000, 123)
    enc = space.encode_many(big)
    fz = Featurizer(space)
    X_tr = fz.transform([configs[i] for i in tr])
    for name in [n for n in list_predictors() if n != "auto"]:
        model = get_predictor(name, seed=0).fit(X_tr, y[tr])
        pipe = ConfigPredictor(fz, model)
        t_dedup, t_full = [], []
        for _ in range(args.speed_repeats):  # both ways, alternating, best of N each
            t0 = time.perf_counter()
            pipe.predict_encodings(enc)
            t_dedup.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            X, _ = fz.from_encoding(enc)
            model.predict(X)
            t_full.append(time.perf_counter() - t0)
        out[f"speed/{name}"] = {"distinct_encodings_s": min(t_dedup), "every_row_s": min(t_full)}
        print(f"predict 100,000 nb201 configs  {name:8s}: {min(t_dedup):.3f} s "
              f"(each distinct encoding once; {len(np.unique(enc, axis=0))} distinct), "
              f"{min(t_full):.3f} s (every row)", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default=str(CSV))
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "nas" / "proxies"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--speed-repeats", type=int, default=3)
    p.add_argument("--only", choices=("accuracy", "latency", "speed"), default=None)
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)
    space = get_space("nb201")
    out: dict = {}
    for part in (accuracy, latency, speed):
        if args.only in (None, part.__name__):
            part(args, space, out)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
