"""Time to predict 100,000 configs with each registered predictor (issue 5).

    python benchmarks/predictor_speed.py [--space resnet_like] [--n 100000] [--repeats 3]

Each predictor is fitted on 500 random configs of the space with a synthetic target (a fixed
random linear function of the features plus an interaction; the target does not change the
cost of prediction), then predicts ``--n`` freshly sampled configs from their encodings
(features included). Reports the best of ``--repeats`` wall-clock times, one torch thread.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from nas.predictors.features import Featurizer
from nas.predictors.models import get_predictor, list_predictors
from nas.predictors.pipeline import ConfigPredictor
from nas.searchspace import get_space


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="resnet_like")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default=None, help="comma-separated (default: all but auto)")
    args = p.parse_args()
    torch.set_num_threads(1)
    space = get_space(args.space)
    fz = Featurizer(space)
    train = space.sample_many(500, 0)
    X_tr = fz.transform(train)
    rng = np.random.default_rng(0)
    w = rng.normal(size=X_tr.shape[1])
    y = X_tr @ w + 0.5 * X_tr[:, 0] * X_tr[:, -1] + 100.0
    enc = space.encode_many(space.sample_many(args.n, 1))
    distinct = len(np.unique(enc, axis=0))
    names = args.models.split(",") if args.models else [n for n in list_predictors()
                                                        if n != "auto"]
    print(f"{args.space}: {X_tr.shape[1]} features, {args.n} configs ({distinct} distinct)")
    for name in names:
        pipe = ConfigPredictor(fz, get_predictor(name, seed=0).fit(X_tr, y))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            pred = pipe.predict_encodings(enc)
            times.append(time.perf_counter() - t0)
        assert pred.shape == (args.n,)
        print(f"  {name:10s} {min(times):6.3f} s  (median {np.median(times):.3f} s)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
