"""Sampling + encoding throughput of the DSL (issue 2 goal: >= 20,000 configs/s, one core).

Pins the process to one CPU core, then for each space times ``sample_many(n)`` followed by
``encode_many`` over several rounds and prints the median configs/second. Also prints the
per-call rates of ``sample``, ``mutate`` and ``crossover`` (used one at a time by searchers),
and the time of exact counting (``cardinality()``).

    python benchmarks/searchspace_throughput.py [--n 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from nas.searchspace import get_space  # noqa: E402


def rate(fn, n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--spaces", nargs="+",
                    default=["resnet_like", "mobilenet_like", "vit_like", "nb201"])
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"one core; n={args.n}; median of {args.rounds} rounds")
    print(f"{'space':16s} {'sample_many+encode /s':>22s} {'sample /s':>10s} "
          f"{'mutate /s':>10s} {'crossover /s':>12s}")
    for name in args.spaces:
        print(bench(name, args.n, args.rounds))
    print("\nexact counting, cardinality() (median of the rounds):")
    for name in args.spaces:
        print(f"  {name:30s} {count_seconds(get_space(name), args.rounds) * 1e3:8.2f} ms")
    from nas.searchspace import Choice, Space

    for n in (400, 800, 1500):  # independent dimensions: elimination order matters most
        space = Space(f"wide{n}", [Choice(f"d{i}", (1, 2, 3)) for i in range(n)])
        print(f"  {f'{n} independent 3-value dims':30s} "
              f"{count_seconds(space, args.rounds) * 1e3:8.2f} ms")


def count_seconds(space, rounds: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        space.cardinality(predicates="ignore")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, n: int, rounds: int) -> str:
    """One space's row: bulk sampling + encoding, then single sample/mutate/crossover."""
    space = get_space(name)
    rng = np.random.default_rng(0)
    space.encode_many(space.sample_many(100, rng))  # warm up

    def batch() -> None:
        X = space.encode_many(space.sample_many(n, rng))
        assert X.shape == (n, len(space))

    bulk = rate(batch, n, rounds)
    k = max(n // 20, 200)
    pool = space.sample_many(64, rng)
    single = rate(lambda: [space.sample(rng) for _ in range(k)], k, rounds)
    mut = rate(lambda: [space.mutate(pool[i % 64], rng) for i in range(k)], k, rounds)
    cx = rate(lambda: [space.crossover(pool[i % 64], pool[(i + 1) % 64], rng)
                       for i in range(k)], k, rounds)
    return f"{name:16s} {bulk:22,.0f} {single:10,.0f} {mut:10,.0f} {cx:12,.0f}"

if __name__ == "__main__":
    main()
