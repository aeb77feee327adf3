"""``nas predictor evaluate``: fit a predictor on a table of measurements, report metrics."""

from __future__ import annotations

import argparse
import json

from nas.cli._common import add_space_argument, console, err_console
from nas.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)
    e = sub.add_parser("evaluate", help="fit on N rows, report metrics on M others")
    e.add_argument("--table", required=True, metavar="CSV")
    add_space_argument(e)
    e.add_argument("--target", required=True, metavar="COLUMN")
    e.add_argument("--n-train", type=int, required=True)
    e.add_argument("--n-test", type=int, default=1000)
    e.add_argument("--seeds", type=int, default=5)
    e.add_argument("--model", default="auto",
                   help="a registered predictor (ridge, svr, rf, gbt, gp, mlp, ensemble, auto)")
    e.add_argument("--target-transform", default="normal", choices=("normal", "none"),
                   help="fit on rank-based normal scores (robust for accuracies; default) or "
                        "on the raw values (e.g. additive latencies with ridge)")
    e.add_argument("--features", default="default", metavar="KINDS",
                   help="comma-separated feature kinds (encoding, graph, cost, zc); 'default': "
                        "every cheap kind the space supports; 'all': also zero-cost proxies")
    e.add_argument("--proxies", default="synflow", metavar="NAMES",
                   help="zero-cost proxies for the 'zc' kind (synflow, naswot, snip, "
                        "grad_norm, jacov)")
    e.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="cache zero-cost proxy values in DIR (recommended with 'zc')")
    e.add_argument("--json", action="store_true", help="print one JSON object")


def _kinds(text: str, space: object) -> list[str] | None:
    from nas.predictors.features import available_kinds

    if text == "default":
        return None
    if text == "all":
        return list(available_kinds(space))
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise UsageError("--features needs at least one kind")
    return kinds


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from nas.predictors.evaluate import evaluate_table
    from nas.predictors.models import list_predictors
    from nas.searchspace import load_space

    if args.model not in list_predictors():
        raise UsageError(f"unknown --model {args.model!r}; known: {', '.join(list_predictors())}")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    space = load_space(args.space)
    kinds = _kinds(args.features, space)
    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                  transient=True, disable=args.json and not err_console.is_terminal) as bar:
        feat_task = bar.add_task("features", total=None)
        seed_task = bar.add_task("fit/evaluate seeds", total=args.seeds)

        def on_features(done: int, total: int) -> None:
            bar.update(feat_task, completed=done, total=total)

        result = evaluate_table(
            args.table, space, args.target, n_train=args.n_train, n_test=args.n_test,
            seeds=args.seeds, model=args.model, features=kinds, proxies=proxies,
            model_kwargs={"target_transform": args.target_transform},
            cache_dir=args.cache_dir, on_features=on_features,
            on_seed=lambda: bar.advance(seed_task))
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    t = Table(title=f"{args.model} on {args.target}: {args.n_train} train / {args.n_test} test "
                    f"rows, {args.seeds} seeds, features {', '.join(result.features)}")
    t.add_column("metric")
    t.add_column("mean", justify="right")
    t.add_column("std", justify="right")
    for m in ("kendall_tau", "spearman", "rmse", "mape", "within_10pct"):
        t.add_row(m, f"{summary[m + '_mean']:.4f}", f"{summary[m + '_std']:.4f}")
    console.print(t)
    return 0
