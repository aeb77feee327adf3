"""Predictor-driven inner search speed (issue 6 goal: 50,000 candidate evaluations with an
accuracy predictor and a latency lookup table on ``resnet_like`` in <= 5 s on 2 cores).

Fits ``linas``'s accuracy predictor on 100 evaluated configs (synthetic accuracies: only the
speed is measured here), loads or builds the latency table for the digits input (8x8, batch
1, 1 thread; built once into --table), then times ``linas``'s inner NSGA-II over
``--pop`` x ``--generations`` candidates: repair, encoding, features, predictor, table and
NSGA-II's survival included. Both inner engines run on the same fitted predictor, in turns
(``--rounds`` each), and their fronts are compared by hypervolume (objectives normalised
by the ranges seen in both runs, reference point 1.1).

    python benchmarks/inner_search.py [--pop 500] [--generations 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nas.predictors.latency import LatencyTable, build_latency_table
from nas.search.base import Objective, hypervolume, pareto_mask
from nas.search.linas import LINAS
from nas.searchspace import get_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop", type=int, default=500)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--table", default="runs/bench/resnet_like-8px-lut.json")
    ap.add_argument("--predictor", default="gbt")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="numpy,pymoo")
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
    engines = args.engines.split(",")
    searchers = {e: LINAS(space, objs, seed=0, predictor=args.predictor, inner_pop=args.pop,
                          inner_generations=args.generations, inner_engine=e,
                          known={"latency": lambda cs: table.predict_many(cs)})
                 for e in engines}
    rng = np.random.default_rng(0)
    configs = space.sample_many(100, rng)
    acc = np.array([sum(c[f"stages.{i}.width"] for i in range(4)) / 8 + rng.normal()
                    for c in configs])
    F0 = np.stack([acc, table.predict_many(configs)], axis=1)
    for s in searchers.values():
        s.tell(configs, F0)
    predict = searchers[engines[0]]._predict_fn()  # one fitted predictor for all engines
    n = args.pop * args.generations
    times: dict[str, list[float]] = {e: [] for e in engines}
    fronts: dict[str, list[np.ndarray]] = {e: [] for e in engines}
    distinct: dict[str, int] = {}
    for r in range(args.rounds):
        for e in (engines if r % 2 == 0 else engines[::-1]):
            s = searchers[e]
            s.rng = np.random.default_rng(r)
            t = time.perf_counter()
            cands, F = s._inner_search(predict)
            times[e].append(time.perf_counter() - t)
            fronts[e].append(F[pareto_mask(F)])
            distinct[e] = len(cands)
    allF = np.vstack([f for e in engines for f in fronts[e]])
    lo, hi = allF.min(0), allF.max(0)
    for e in engines:
        hv = [hypervolume((f - lo) / np.maximum(hi - lo, 1e-12), np.full(2, 1.1))
              for f in fronts[e]]
        dt = float(np.median(times[e]))
        print(f"inner search [{e}]: {args.pop} x {args.generations} = {n:,} candidate "
              f"evaluations in {dt:.2f}s median of {args.rounds} ({n / dt:,.0f}/s; "
              f"{distinct[e]:,} distinct); front hypervolume {np.mean(hv):.4f} "
              f"(normalised, mean of {args.rounds}: {', '.join(f'{h:.4f}' for h in hv)})")
    print("goal: <= 5 s for 50,000")

if __name__ == "__main__":
    main()
