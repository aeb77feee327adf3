"""Latency lookup tables on this machine: build, validate on random subnets, predict speed.

For each space: build the table (input 32, batch 1, 1 thread by default), measure N random
subnets not used to build it (interleaved), and report the hit rate within ±10%, Kendall's
tau and MAPE for each statistic the table stores (the table's own statistic is the target;
the others are shown for comparison), the build time, and the time to predict 50,000
configs (from configs, including their encoding, and from a ready encoding matrix).

Usage::

    python benchmarks/latency_table.py [--spaces resnet_like mobilenet_like] [--validate 100]
        [--repeats 15] [--table-dir /tmp/nas_lut] [--resume] [--validate-runs 3]
        [--correction references|model]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from nas.predictors.latency import build_latency_table, validate_table
from nas.searchspace import load_space


def run_space(name: str, args: argparse.Namespace) -> dict[str, object]:
    space = load_space(name)
    stem = f"{space.name}_{args.input_size}_b{args.batch}_t{args.threads}"
    out = Path(args.table_dir) / f"{stem}.json"
    if out.exists() and not args.resume:
        out.unlink()
    t0 = time.perf_counter()
    table = build_latency_table(space, input_size=args.input_size, batch=args.batch,
                                threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                                out=out, progress=not args.no_progress,
                                statistic=args.statistic)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vals = []
    for r in range(args.validate_runs):  # the same subnets again: the machine's noise
        vals.append(validate_table(table, args.validate, seed=args.seed,
                                   progress=not args.no_progress,
                                   references=args.correction == "references"))
        m = vals[-1].metrics()
        unc = vals[-1].summary().get("uncorrected")
        print(f"  validation run {r + 1}: {100 * m['within_10pct']:.0f}% within ±10%, "
              f"Kendall tau {m['kendall_tau']:.3f}, MAPE {m['mape']:.1f}% (drift correction: "
              f"{vals[-1].correction}"
              + (f"; uncorrected {100 * unc['within_10pct']:.0f}%, tau {unc['kendall_tau']:.3f}"
                 if unc else "") + ")", flush=True)
    val = vals[0]
    val_s = (time.perf_counter() - t0) / len(vals)
    summary = val.summary()
    configs = space.sample_many(50_000, np.random.default_rng(1))
    table.predict_many(configs[:10])  # warm the lookup arrays
    t0 = time.perf_counter()
    table.predict_many(configs)
    predict_s = time.perf_counter() - t0
    enc = space.encode_many(configs)
    t0 = time.perf_counter()
    table.predict_many(enc)
    predict_enc_s = time.perf_counter() - t0
    result = {
        "space": space.name, "units": table.n_units, "build_s": round(build_s, 1),
        "validate_s": round(val_s, 1), "predict_50k_s": round(predict_s, 3),
        "predict_50k_from_encoding_s": round(predict_enc_s, 4),
        "overhead_intercept_ms": round(table.overhead.intercept_ms, 4),
        "overhead_per_block_ms": round(table.overhead.per_block_ms, 4),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()
           if k != "by_statistic"},
        "by_statistic": {s: {k: round(v, 4) for k, v in m.items()}
                         for s, m in summary["by_statistic"].items()},
        "table": str(out),
    }
    if len(vals) > 1:
        runs = [v.metrics() for v in vals]
        result["runs"] = [{k: round(v, 4) for k, v in m.items()} for m in runs]
        for k in ("within_10pct", "kendall_tau", "mape"):
            result[f"{k}_mean_of_runs"] = round(float(np.mean([m[k] for m in runs])), 4)
    raw = out.with_suffix(".validation.json")
    raw.write_text(json.dumps({"measured_ms": {k: v.tolist() for k, v in val.measured.items()},
                               "predicted_ms": {k: v.tolist() for k, v in val.predicted.items()},
                               "statistic": val.statistic, "seed": args.seed}))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spaces", nargs="+", default=["resnet_like", "mobilenet_like"])
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--statistic", default="p10")
    p.add_argument("--validate", type=int, default=100)
    p.add_argument("--validate-runs", type=int, default=1,
                   help="validate this many times on the same subnets (reports each and "
                        "the mean: the machine's noise shows in their spread)")
    p.add_argument("--correction", choices=("references", "model"), default="references",
                   help="validation's drift correction: the table's reference (overhead) "
                        "subnets timed alongside (default), or the build's reference model")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--table-dir", default="/tmp/nas_lut")
    p.add_argument("--resume", action="store_true", help="reuse/resume tables in --table-dir")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    Path(args.table_dir).mkdir(parents=True, exist_ok=True)
    for name in args.spaces:
        r = run_space(name, args)
        print(f"{r['space']}: {r['units']} units, built in {r['build_s']} s; "
              f"{r['n']} random subnets ({r['statistic']}): "
              f"{100 * float(r['within_10pct']):.1f}% within ±10%, "
              f"Kendall tau {float(r['kendall_tau']):.3f}, MAPE {float(r['mape']):.1f}%; "
              f"predict 50,000 configs {r['predict_50k_s']} s "
              f"({r['predict_50k_from_encoding_s']} s from an encoding matrix)")
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
