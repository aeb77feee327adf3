"""Predictor-driven inner search speed (issue 6 goal: 50,000 candidate evaluations with an
accuracy predictor and a latency lookup table on ``resnet_like`` in <= 5 s on 2 cores).

Fits ``linas``'s accuracy predictor on 100 evaluated configs (synthetic accuracies: only the
speed is measured here), loads or builds the latency table for the digits input (8x8, batch
1, 1 thread; built once into --table), then times ``linas``'s inner NSGA-II over
``--pop`` x ``--generations`` candidates: repair, encoding, features, predictor, table and
pymoo's survival included.

    python benchmarks/inner_search.py [--pop 500] [--generations 100] [--table lut.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nas.predictors.latency import LatencyTable, build_latency_table
from nas.search.base import Objective
from nas.search.linas import LINAS
from nas.searchspace import get_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop", type=int, default=500)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--table", default="runs/bench/resnet_like-8px-lut.json")
    ap.add_argument("--predictor", default="gbt")
    args = ap.parse_args()
    space = get_space("resnet_like")
    path = Path(args.table)
    if path.exists():
        table = LatencyTable.load(path, space=space, require_complete=False)
    if not path.exists() or not table.complete:
        t = time.perf_counter()
        table = build_latency_table(space, input_size=8, in_channels=1, num_classes=10,
                                    batch=1, threads=1, warmup=1, repeats=3, out=path)
        print(f"latency table: {table.n_units} units built in {time.perf_counter() - t:.0f}s")
    objs = [Objective("accuracy", "max"), Objective("latency", "min")]
    s = LINAS(space, objs, seed=0, predictor=args.predictor, inner_pop=args.pop,
              inner_generations=args.generations,
              known={"latency": lambda cs: table.predict_many(cs)})
    rng = np.random.default_rng(0)
    configs = space.sample_many(100, rng)
    acc = np.array([sum(c[f"stages.{i}.width"] for i in range(4)) / 8 + rng.normal()
                    for c in configs])
    s.tell(configs, np.stack([acc, table.predict_many(configs)], axis=1))
    predict = s._predict_fn()
    t = time.perf_counter()
    cands, F = s._inner_search(predict)
    dt = time.perf_counter() - t
    n = args.pop * args.generations
    print(f"inner search: {args.pop} x {args.generations} = {n:,} candidate evaluations in "
          f"{dt:.2f}s ({n / dt:,.0f}/s; {len(cands):,} distinct) — goal <= 5 s for 50,000")


if __name__ == "__main__":
    main()
