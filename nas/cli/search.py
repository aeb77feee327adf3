"""``nas search``: the main job — a Pareto front of accuracy against cost on this machine."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging

from rich.table import Table

from nas.cli._common import (
    add_space_argument,
    console,
    device_arg,
    input_file,
    int_at_least,
    key_values,
    output_path,
    stem_stride_flag,
)

TARGETS = ("latency", "flops", "params", "size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_space_argument(p)
    p.add_argument("--target", nargs="+", choices=TARGETS, default=["latency"],
                   help="cost objective(s) minimised jointly with accuracy (default: latency)")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="hard limit, quoted for the shell: 'latency<=3ms', 'params<=1e6', "
                        "'size<=256KB', 'accuracy>=90' (repeatable)")
    p.add_argument("--supernet", metavar="CKPT", help="search an existing supernet checkpoint "
                   "instead of training one")
    p.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    p.add_argument("--data-root", help="directory of the dataset's files")
    p.add_argument("--strategy", default="linas",
                   help="searcher: linas (default), random, evolution, nsga2, agemoea, unsga3, "
                        "moead, optuna-tpe, optuna-nsga2")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a searcher option (value read as JSON where it can be), repeatable; "
                        "each searcher has its own, e.g. linas population=16, evolution "
                        "mutation_rate=0.2, optuna-tpe storage=sqlite:///o.db (an unknown "
                        "one is refused, listing the searcher's)")
    p.add_argument("--budget", type=int_at_least(1), default=60,
                   help="real evaluations (default: 60)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default: 0)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--train-epochs", type=int_at_least(1),
                   help="epochs of the quick supernet training (default: 12)")
    p.add_argument("--stem-stride", type=int, choices=(1, 2),
                   help="stem stride of the supernet the search trains, as `nas train "
                   "--stem-stride` (default: 2 from 64 pixels up, else 1)")
    p.add_argument("--bn-batches", type=int_at_least(0), default=4,
                   help="batches each subnet's batch-norm statistics are recalibrated on before "
                        "its accuracy is measured (default: 4; `nas eval --bn-batches N` "
                        "reports the same accuracy for a config)")
    p.add_argument("--latency-table", metavar="LUT.json",
                   help="a latency table built by `nas profile` for this space and data "
                        "(batch 1, 1 thread) to use instead of measuring one (copied to the "
                        "output directory)")
    p.add_argument("--max-export", type=int_at_least(1), default=12,
                   help="the most Pareto-front subnets extracted to pareto/ and timed, spread "
                        "along the first target when the front is larger (default: 12)")
    p.add_argument("--threads", type=int_at_least(1), help="torch CPU threads (per worker "
                   "with --workers)")
    p.add_argument("--workers", type=int_at_least(1), default=1,
                   help="evaluate subnets on N Ray workers in parallel (default: 1, in this "
                        "process; needs pip install 'nas-toolkit[ray]'); with the same --threads, "
                        "the same history")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="join a running Ray cluster ('auto' or host:port) instead of starting "
                        "one on this machine")
    p.add_argument("--out", metavar="DIR", help="output directory; the same command with the "
                   "same --out resumes (default: runs/search-<space>-<hash of the options>)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from nas.search.constraints import Limit
    from nas.search.pipeline import SearchOptions, run_search_job
    from nas.searchspace import load_space

    opts = SearchOptions(space=args.space, targets=list(args.target),
                         constraints=list(args.constraint), supernet=args.supernet,
                         data=args.data, data_root=args.data_root, strategy=args.strategy,
                         searcher_options=key_values(args.option, "--option"),
                         budget=args.budget, seed=args.seed, device=args.device,
                         train_epochs=args.train_epochs, threads=args.threads,
                         stem_stride=args.stem_stride, workers=args.workers,
                         ray_address=args.ray_address, bn_batches=args.bn_batches,
                         max_export=args.max_export, latency_table=args.latency_table)
    opts.validate()
    for c in opts.constraints:
        lim = Limit.parse(c)
        if lim.metric == "accuracy" and 0 < lim.value <= 1 and "%" not in c:
            logging.getLogger("nas.search").warning(
                "--constraint %s: accuracy is in percent, so this asks for %g %%; for %g %% "
                "write accuracy%s%g", c, lim.value, 100 * lim.value, lim.op, 100 * lim.value)
    input_file(args.supernet, "--supernet")
    input_file(args.latency_table, "--latency-table")
    output_path(args.out, "--out", directory=True)
    space = load_space(opts.space)
    stem_stride_flag(args.stem_stride, space)
    from nas.search import make_searcher
    from nas.search.base import Objective

    # unknown options and bad values: before any work (with the search's own objectives: a
    # persistent optuna storage gets the study the search then loads)
    make_searcher(opts.strategy, space, [Objective("accuracy", "max")]
                  + [Objective(t, "min") for t in opts.targets], seed=opts.seed,
                  **opts.searcher_options)
    out = args.out
    if out is None:
        digest = hashlib.sha256(json.dumps(opts.identity(), sort_keys=True).encode())
        out = f"runs/search-{space.name}-{digest.hexdigest()[:8]}"
    result = run_search_job(opts, out, progress=not args.no_progress,
                            say=lambda m: console.print(m))
    n, shown = result["front_size"], len(result["front"])
    t = Table(title=f"Pareto front ({n} subnets{f', {shown} exported' if shown < n else ''})"
                    f" — {out}")
    t.add_column("id", no_wrap=True, min_width=12)  # whole, to copy (narrow terminals)
    for name in ("accuracy %", "latency pred ms", "latency meas ms", "MFLOPs", "params",
                 "size KiB"):
        t.add_column(name)
    def ms(v: float | None) -> str:  # NaN (None in JSON) when latency was not asked for
        return "-" if v is None or v != v else f"{v:.3f}"

    for r in result["front"]:
        t.add_row(r["id"], f"{r['accuracy']:.2f}", ms(r["latency_predicted_ms"]),
                  ms(r["latency_measured_ms"]), f"{r['flops'] / 1e6:.2f}",
                  f"{r['params']:,}", f"{r['size_bytes'] / 1024:.1f}")
    console.print(t)
    tm = result["timings"]
    console.print(f"done in {tm['total_s']:.0f}s (supernet {tm['supernet_s']:.0f}s, latency "
                  f"table {tm['latency_table_s']:.0f}s, search {tm['search_s']:.0f}s, export "
                  f"{tm['export_s']:.0f}s); files in {out}/: history.csv, pareto.csv, "
                  "pareto.json, pareto.png, pareto/, summary.json")
    return 0
