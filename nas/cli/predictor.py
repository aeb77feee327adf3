"""``nas predictor evaluate|fit|predict``: predictors from tables of measurements.

``evaluate`` fits on N random rows and reports metrics on M others (several seeds); ``fit``
fits on every row and saves the predictor (``.npz``: JSON header and arrays, no pickle);
``predict`` applies a saved predictor to the rows of a table or to configs in a JSON file.
"""

from __future__ import annotations

import argparse
import json

from nas.cli._common import (
    add_space_argument,
    console,
    err_console,
    input_file,
    int_at_least,
    json_line,
    output_path,
)
from nas.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)
    e = sub.add_parser("evaluate", help="fit on N rows, report metrics on M others")
    e.add_argument("--table", required=True, metavar="CSV")
    add_space_argument(e)
    e.add_argument("--target", required=True, metavar="COLUMN")
    e.add_argument("--n-train", type=int_at_least(2), required=True,
                   help="distinct configs the predictor is fitted on (all their rows)")
    e.add_argument("--n-test", type=int_at_least(2), default=1000,
                   help="other configs the metrics are computed on (default: 1000)")
    e.add_argument("--seeds", type=int_at_least(1), default=5,
                   help="random train/test draws, averaged (default: 5)")
    _model_arguments(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")

    f = sub.add_parser("fit", help="fit on every row of a table and save the predictor")
    f.add_argument("--table", required=True, metavar="CSV")
    add_space_argument(f)
    f.add_argument("--target", required=True, metavar="COLUMN")
    f.add_argument("--out", required=True, metavar="PRED.npz",
                   help="where the fitted predictor is written (atomically)")
    _model_arguments(f)
    f.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default: 0)")
    f.add_argument("--json", action="store_true", help="print one JSON object")

    q = sub.add_parser("predict", help="predict the rows of a table or configs in a file")
    q.add_argument("--predictor", required=True, metavar="PRED.npz",
                   help="a predictor written by `nas predictor fit`")
    add_space_argument(q)
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", metavar="CSV",
                     help="rows mapped to configs like `fit` does (other columns are kept)")
    src.add_argument("--configs", metavar="JSON",
                     help="a JSON list of configs, or one config per line (JSON lines, or "
                          "the space's text form, e.g. NAS-Bench-201 arch strings)")
    q.add_argument("--std", action="store_true",
                   help="also the predictive standard deviation (gp, rf, ensemble)")
    q.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="cache of zero-cost proxy values (predictors fitted with 'zc')")
    q.add_argument("--out", default=None, metavar="CSV",
                   help="write a CSV here (atomically) instead of printing it")


def _transform(args: argparse.Namespace) -> dict[str, str]:
    """``--target-transform`` as a predictor keyword, only when given (each model has its
    own default)."""
    return {} if args.target_transform is None else {"target_transform": args.target_transform}


def _model_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--model", default="auto",
                   help="a registered predictor: ridge, layerwise, svr, rf, gbt, gp, mlp, "
                        "ensemble, auto (default: auto, chosen by cross-validation)")
    e.add_argument("--target-transform", default=None, choices=("normal", "none"),
                   help="fit on rank-based normal scores (robust for accuracies) or on the "
                        "raw values (additive latencies); default: the model's own -- none "
                        "for layerwise, normal for the others")
    e.add_argument("--features", default="default", metavar="KINDS",
                   help="comma-separated feature kinds (encoding, counts, graph, cost, zc); "
                        "'default': every cheap kind the space supports; 'all': also "
                        "zero-cost proxies")
    e.add_argument("--proxies", default="synflow", metavar="NAMES",
                   help="zero-cost proxies for the 'zc' kind (synflow, naswot, snip, "
                        "grad_norm, jacov)")
    e.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="cache zero-cost proxy values in DIR (recommended with 'zc')")


def _kinds(text: str, space: object) -> list[str] | None:
    from nas.predictors.features import available_kinds

    if text == "default":
        return None
    if text == "all":
        return list(available_kinds(space))
    return _names(text, "--features", "kind")


def _names(text: str, flag: str, what: str) -> list[str]:
    """A comma-separated list of names: at least one, none twice."""
    names = [k.strip() for k in text.split(",") if k.strip()]
    if not names:
        raise UsageError(f"{flag} needs at least one {what}, got {text!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{flag}: {twice[0]!r} given twice")
    return names


def run(args: argparse.Namespace) -> int:
    input_file(getattr(args, "table", None), "--table")
    input_file(getattr(args, "predictor", None), "--predictor")
    input_file(getattr(args, "configs", None), "--configs")
    inputs = {f"--{k}": getattr(args, k, None) for k in ("predictor", "configs")}
    if args.predictor_command == "fit":
        inputs["--table"] = args.table
    # fit writes a predictor; predict writes a CSV (also over its --table: columns added)
    replaces = {"fit": ("a predictor",), "predict": ("a text file",)}
    output_path(getattr(args, "out", None), "--out", inputs=inputs,
                replaces=replaces.get(args.predictor_command, ()))
    output_path(getattr(args, "cache_dir", None), "--cache-dir", directory=True)
    if args.predictor_command == "fit":
        return _fit(args)
    if args.predictor_command == "predict":
        return _predict(args)
    return _evaluate(args)


def _check_model(name: str) -> None:
    from nas.predictors.models import list_predictors

    if name not in list_predictors():
        raise UsageError(f"unknown --model {name!r}; known: {', '.join(list_predictors())}")


def _fit(args: argparse.Namespace) -> int:
    import numpy as np

    from nas.predictors.features import Featurizer
    from nas.predictors.metrics import all_metrics
    from nas.predictors.models import get_predictor
    from nas.predictors.pipeline import ConfigPredictor
    from nas.predictors.table import load_measurements
    from nas.searchspace import load_space

    _check_model(args.model)
    space = load_space(args.space)
    fz = Featurizer(space, kinds=_kinds(args.features, space),
                    proxies=_names(args.proxies, "--proxies", "proxy"),
                    cache_dir=args.cache_dir)
    model = get_predictor(args.model, seed=args.seed, **_transform(args))
    configs, y = load_measurements(args.table, space, args.target)
    if len(set(configs)) < 2:  # (as evaluate counts them: repeats of one config teach nothing)
        raise UsageError(f"{args.table}: a predictor needs rows of at least 2 distinct "
                         f"configs, got {len(set(configs))} in {len(y)} rows")
    with err_console.status(f"fitting {args.model} on {len(y)} rows"):
        pred = ConfigPredictor(fz, model).fit(configs, y)
        fitted = pred.predict_configs(configs)
    pred.save(args.out, extra={"target": args.target, "table": str(args.table),
                               "rows": int(len(y))})
    info = {"out": str(args.out), "model": args.model, "rows": int(len(y)),
            "target": args.target, "features": list(fz.kinds),
            "chosen": model.params.get("chosen"),
            "cv_kendall_tau": getattr(model, "cv_scores_", None),
            "training_fit": {k: (float(v) if np.isfinite(v) else None)
                             for k, v in all_metrics(y, np.asarray(fitted)).items()}}
    if args.json:
        print(json_line(info))
    else:
        chosen = f" (auto chose {info['chosen']})" if info["chosen"] else ""
        fit = info["training_fit"]
        console.print(f"fitted {args.model}{chosen} on {len(y)} rows of {args.table} "
                      f"({args.target}; features {', '.join(fz.kinds)}) -> {args.out}")
        def num(v: float | None, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        console.print(f"on its own training rows: Kendall tau {num(fit['kendall_tau'], '.3f')}"
                      f", MAPE {num(fit['mape'], '.2f')}% (use `nas predictor evaluate` for "
                      "held-out figures)")
    return 0


def _read_configs(path: str, space: object) -> list[object]:
    from pathlib import Path

    from nas.errors import ConfigError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--configs {path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--configs {path}: not a UTF-8 text file") from None
    try:
        doc = json.loads(text)
        items = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("["):  # one JSON list: report where it breaks
            raise UsageError(f"--configs {path}: not valid JSON at line {e.lineno}, column "
                             f"{e.colno} ({e.msg})") from None
        items = []
        for k, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as e:
                    if not getattr(space, "arch_format", None):
                        raise UsageError(f"--configs {path}: line {k + 1} is not JSON "
                                         f"({e.msg})") from None
                    items.append(line.strip())  # the space's text form (NB201 strings)
    out = []
    for k, item in enumerate(items):
        try:
            out.append(space.parse_arch(item) if isinstance(item, str)  # type: ignore[attr-defined]
                       else space.config(item))  # type: ignore[attr-defined]
        except (ConfigError, TypeError, ValueError) as e:
            raise UsageError(f"--configs {path}: config #{k + 1}: {e}") from None
    if not out:
        raise UsageError(f"--configs {path}: no configs in the file")
    return out


def _predict(args: argparse.Namespace) -> int:
    import csv
    import io

    from nas.predictors.models import PREDICTORS
    from nas.predictors.pipeline import ConfigPredictor
    from nas.predictors.table import read_table, table_configs
    from nas.searchspace import load_space
    from nas.utils import atomic_write_text

    space = load_space(args.space)
    pred, info = ConfigPredictor.load_with_info(args.predictor, space, args.cache_dir)
    if args.std and not pred.model.supports_std:
        chosen = pred.model.params.get("chosen")
        raise UsageError(f"--std: predictor {pred.model.name!r}"
                         + (f" (it chose {chosen!r})" if chosen else "")
                         + " does not report uncertainty; fit one that does ("
                         + ", ".join(n for n, c in PREDICTORS.items() if c.supports_std is True)
                         + ")")
    name = f"predicted_{info.get('target') or 'value'}"
    if args.table:
        table = read_table(args.table)
        configs = table_configs(table, space)
        header = list(table.columns)
        rows = [list(r) for r in table.rows]
    else:
        configs = _read_configs(args.configs, space)
        header = ["config"]
        rows = [[c.to_json()] for c in configs]  # type: ignore[attr-defined]
    if args.std and pred.featurizer.fast:
        mean, std = pred.predict_encodings(space.encode_many(configs), std=True)
    elif args.std:
        mean, std = pred.model.predict_with_std(pred.featurizer.transform(configs))
    else:
        mean, std = pred.predict_configs(configs), None
    new_cols = [name] + ([f"{name}_std"] if std is not None else [])
    # a re-run replaces them, and drops an earlier run's uncertainty column (it would sit
    # beside predictions it does not belong to)
    keep = [j for j, c in enumerate(header) if c not in (name, f"{name}_std")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([header[j] for j in keep] + new_cols)
    for i, r in enumerate(rows):
        w.writerow([r[j] for j in keep] + [repr(float(mean[i]))]
                   + ([repr(float(std[i]))] if std is not None else []))
    if args.out:
        atomic_write_text(args.out, buf.getvalue())
        err_console.print(f"{len(rows)} predictions -> {args.out}")
    else:
        print(buf.getvalue(), end="")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from nas.predictors.evaluate import evaluate_table
    from nas.searchspace import load_space

    _check_model(args.model)
    space = load_space(args.space)
    kinds = _kinds(args.features, space)
    proxies = _names(args.proxies, "--proxies", "proxy")
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                  transient=True, disable=not err_console.is_terminal) as bar:
        feat_task = bar.add_task("features", total=None)
        seed_task = bar.add_task("fit/evaluate seeds", total=args.seeds)

        def on_features(done: int, total: int) -> None:
            bar.update(feat_task, completed=done, total=total)

        result = evaluate_table(
            args.table, space, args.target, n_train=args.n_train, n_test=args.n_test,
            seeds=args.seeds, model=args.model, features=kinds, proxies=proxies,
            model_kwargs=_transform(args),
            cache_dir=args.cache_dir, on_features=on_features,
            on_seed=lambda: bar.advance(seed_task))
    summary = result.summary()
    if args.json:
        print(json_line(summary))
        return 0
    t = Table(title=f"{args.model} on {args.target}: {args.n_train} train / {args.n_test} test "
                    f"configs, {args.seeds} seeds, features {', '.join(result.features)}")
    t.add_column("metric")
    t.add_column("mean", justify="right")
    t.add_column("std", justify="right")
    for m in ("kendall_tau", "spearman", "rmse", "mape", "within_10pct"):
        t.add_row(m, f"{summary[m + '_mean']:.4f}", f"{summary[m + '_std']:.4f}")
    console.print(t)
    return 0
