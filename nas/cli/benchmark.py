"""``nas benchmark``: replay a searcher against a table of measurements, beside ``random``."""

from __future__ import annotations

import argparse
import logging

from rich.table import Table

from nas.cli._common import (
    add_space_argument,
    console,
    input_file,
    int_at_least,
    json_line,
    key_values,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", required=True, metavar="CSV",
                   help="measurements; rows map to configs by dimension columns, an 'arch' "
                        "column or a 'config' column of JSON configs")
    add_space_argument(p)
    p.add_argument("--objective", action="append", required=True, metavar="COLUMN:max|min",
                   help="a column to maximise or minimise (repeat for several)")
    p.add_argument("--strategy", required=True,
                   help="searcher: random, evolution, nsga2, agemoea, unsga3, moead, optuna-tpe, "
                        "optuna-nsga2, linas")
    p.add_argument("--budget", type=int_at_least(1), required=True,
                   help="queries (table rows) per run")
    p.add_argument("--seeds", type=int_at_least(1), default=5, help="runs per searcher "
                   "(default: 5)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="searcher option (value parsed as JSON if it can); each searcher "
                        "has its own, e.g. evolution population=20, nsga2 pop_size=20 "
                        "(an unknown one is refused, listing the searcher's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from nas.errors import UsageError
    from nas.search.base import Objective, make_searcher
    from nas.search.replay import load_replay_table, replay, space_size
    from nas.searchspace import load_space
    from nas.utils.progress import task_progress

    input_file(args.table, "--table")
    space = load_space(args.space)
    objectives = [Objective.parse(o) for o in args.objective]
    cols = [o.name for o in objectives]
    dup = next((c for c in cols if cols.count(c) > 1), None)
    if dup is not None:
        raise UsageError(f"--objective: column {dup!r} is given more than once")
    options = key_values(args.option, "--option", reserved={
        "seed": "each run's seed comes from --seeds (runs 0..N-1), not from an option"})
    make_searcher(args.strategy, space, objectives, seed=0, **options)  # fail fast on names
    table = load_replay_table(args.table, space, objectives)
    log = logging.getLogger("nas.benchmark")
    size = space_size(space)
    share = len(table.lookup) / size
    if share < 0.5:
        log.warning("the table holds %d of the %s configs of space %r (%.3g %%): queries "
                    "outside it score the table's worst values, so the figures say how often "
                    "a searcher hits the table as much as how good it is (replay is meant for "
                    "a table of the whole space, e.g. NAS-Bench-201; see 'table hits')",
                    len(table.lookup), f"{size:,}", space.name, 100 * share)
    if args.budget > len(table.lookup):
        log.warning("--budget %d is more than the table's %d distinct configs%s", args.budget,
                    len(table.lookup), ": each run ends when it has queried them all"
                    if share >= 1 else "")
    strategies = [args.strategy] + (["random"] if args.strategy != "random" else [])
    results = {}
    with task_progress(f"{args.seeds} seeds x {len(strategies)} searchers",
                       args.seeds * len(strategies), enabled=not args.json) as advance:
        for name in strategies:
            results[name] = replay(table, space, name, args.budget, args.seeds,
                                   options=options if name == args.strategy else None,
                                   progress=advance)
    single = len(objectives) == 1
    key = "best" if single else "hv_ratio"
    out: dict = {"strategy": args.strategy, "budget": args.budget, "seeds": args.seeds,
                 "objectives": [str(o) for o in objectives]}
    for name, r in results.items():
        prefix = "" if name == args.strategy else "random_"
        out[f"{prefix}{key}_mean"] = float(np.mean(r["scores"]))
        out[f"{prefix}{key}_std"] = float(np.std(r["scores"]))
        out[f"{prefix}table_hits_mean"] = float(np.mean(r["hit_rates"]))
    out["table_coverage"] = share
    if args.json:
        print(json_line(out))
        return 0
    what = f"best {objectives[0]}" if single else "hypervolume ratio to the true front"
    t = Table("searcher", f"{what}: mean", "std", "table hits",
              title=f"{args.table}: {args.budget} queries, {args.seeds} seeds")
    for name, r in results.items():
        t.add_row(name, f"{np.mean(r['scores']):.4f}", f"{np.std(r['scores']):.4f}",
                  f"{100 * np.mean(r['hit_rates']):.1f} %")
    console.print(t)
    return 0
