"""``nas profile``: a latency lookup table measured on this device, then validated."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path

from nas.cli._common import (
    add_space_argument,
    console,
    device_arg,
    int_at_least,
    json_line,
    output_path,
    stem_stride_flag,
)
from nas.errors import UsageError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_space_argument(p)
    p.add_argument("--input-size", type=int_at_least(1), default=32,
                   help="input resolution in pixels (default: 32)")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="batch size (default: 1)")
    p.add_argument("--threads", type=int_at_least(1), default=1,
                   help="torch CPU threads (default: 1)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--in-channels", type=int_at_least(1), default=3,
                   help="input channels of the networks (default: 3)")
    p.add_argument("--num-classes", type=int_at_least(1), default=10,
                   help="classes of the networks' head (default: 10)")
    p.add_argument("--stem-stride", type=int, choices=(1, 2),
                   help="stride of the CNN stem, as `nas train --stem-stride` (default: 2 from "
                   "64 pixels up, else 1)")
    p.add_argument("--validate", type=int_at_least(0), default=20, metavar="N",
                   help="check the table on N random subnets (0: skip; default: 20)")
    p.add_argument("--repeats", type=int_at_least(1), default=10,
                   help="timed calls per unit (default: 10)")
    p.add_argument("--warmup", type=int_at_least(0), default=2,
                   help="untimed calls per unit first (default: 2)")
    p.add_argument("--statistic", default="p10", choices=("min", "p10", "median", "mean"),
                   help="the statistic predictions target (default: p10)")
    p.add_argument("--overhead-subnets", type=int_at_least(2), default=48, metavar="K",
                   help="whole subnets measured to fit the per-network overhead (default: 48)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default: 0)")
    p.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming a partial table at --out (a "
                        "complete one is otherwise used as it is)")
    p.add_argument("--out", required=True, metavar="LUT.json")
    p.add_argument("--json", action="store_true", help="print one machine-readable line")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check_replaceable(path: Path) -> None:
    """``--fresh`` replaces the table at ``--out`` (when the new build first saves, not
    before); refuse when the file there is not a latency table, so that a mistyped ``--out``
    cannot overwrite something else."""
    from nas.predictors.latency import FORMAT

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        doc = json.loads(text)
        ok = isinstance(doc, dict) and doc.get("format") == FORMAT
    except ValueError:  # a damaged table still starts as one ({"format":"nas.latency_table")
        ok = re.match(r'\s*\{\s*"format"\s*:\s*"' + re.escape(FORMAT) + '"', text) is not None
    if not ok:
        raise UsageError(f"--out: {path} exists and is not a latency table; --fresh replaces "
                         "only a latency table (choose another file or remove it)")


def run(args: argparse.Namespace) -> int:
    from nas.predictors.latency import BuildInterrupted, build_latency_table, validate_table
    from nas.searchspace import load_space

    if args.validate == 1:
        raise UsageError(f"--validate must be 0 or at least 2, got {args.validate}")
    output_path(args.out, "--out")
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)  # the cores this process may use
    if args.device == "cpu" and args.threads > cores:
        log.warning("--threads %d is more than this machine's %d cores: the table would time "
                    "oversubscribed threads", args.threads, cores)
    space = load_space(args.space)
    stem_stride_flag(args.stem_stride, space)
    if args.fresh and Path(args.out).exists():
        _check_replaceable(Path(args.out))
    show = not args.no_progress and (not args.json or console.is_terminal)
    def stamp() -> int | None:
        try:
            return Path(args.out).stat().st_mtime_ns
        except OSError:
            return None

    before = stamp()
    try:
        table = build_latency_table(
            space, input_size=args.input_size, batch=args.batch, threads=args.threads,
            device=args.device, in_channels=args.in_channels, num_classes=args.num_classes,
            stem_stride=args.stem_stride, warmup=args.warmup, repeats=args.repeats,
            statistic=args.statistic,
            overhead_subnets=args.overhead_subnets, out=args.out, resume=not args.fresh,
            seed=args.seed, progress=show)
    except BuildInterrupted as e:
        if not args.fresh:
            raise
        # (the same command with --fresh would start over: say the one that resumes)
        raise BuildInterrupted(e.signal, e.measured, e.total, e.out,
                               "the same command without --fresh resumes the build") from None
    result: dict[str, object] = {
        "space": space.name, "out": str(args.out), "units": table.n_units,
        "statistic": table.statistic, "device": table.settings.device,
        "threads": table.settings.threads, "batch": table.settings.batch,
        "input_size": list(table.settings.input_size),
        "overhead_intercept_ms": table.overhead.intercept_ms,
        "overhead_per_block_ms": table.overhead.per_block_ms,
        "overhead_scales": dict(table.overhead.scales),
    }
    if args.validate:
        val = validate_table(table, args.validate, seed=args.seed + 1_000_003, progress=show)
        s = val.summary()
        result.update({"validated": s["n"], "within_10pct": s["within_10pct"],
                       "kendall_tau": s["kendall_tau"], "mape": s["mape"],
                       "spearman": s["spearman"], "drift_correction": s["drift_correction"]})
        if "uncorrected" in s:
            result["within_10pct_uncorrected"] = s["uncorrected"]["within_10pct"]
            result["drift_factor"] = s["drift_factor"]
            built_now = stamp() != before  # (a table written by this command)
            if not 0.8 <= s["drift_factor"] <= 1.25 and built_now:
                log.warning("the drift correction scaled this machine's times by %.2f between "
                            "building %s and validating it minutes later: this machine's "
                            "speed moves (shared, throttled or power-saving); uncorrected "
                            "times hold only at the build's machine state, so rebuilding "
                            "would not help -- compare tables by their corrected figures",
                            s["drift_factor"], args.out)
            elif not 0.8 <= s["drift_factor"] <= 1.25:
                log.warning("the drift correction scaled this machine's times by %.2f: it "
                            "runs much faster or slower now than when %s was built (or the "
                            "table comes from another machine or was edited); its absolute "
                            "predictions do not hold here -- rebuild it with --fresh",
                            s["drift_factor"], args.out)
    if args.json:
        print(json_line(result))
        return 0
    # a complete table at --out is used as it is, not written again
    verb = "used" if before is not None and stamp() == before else "wrote"
    console.print(f"{verb} {args.out}: {table.n_units} units of {space.name} "
                  f"({table.settings.device}, {table.settings.threads} thread(s), batch "
                  f"{table.settings.batch}, {args.input_size}px); overhead "
                  f"{table.overhead.describe()}, unit scales "
                  + ", ".join(f"{k} {v:.3f}" for k, v in table.overhead.scales.items()))
    if args.validate:
        console.print(f"validated on {result['validated']} random subnets ({table.statistic}): "
                      f"{100 * float(result['within_10pct']):.1f}% within ±10%, "  # type: ignore[arg-type]
                      f"Kendall tau {float(result['kendall_tau']):.3f}, "  # type: ignore[arg-type]
                      f"MAPE {float(result['mape']):.1f}%"  # type: ignore[arg-type]
                      + (f" (drift-corrected by the table's {result['drift_correction']}; "
                         f"uncorrected {100 * float(result['within_10pct_uncorrected']):.1f}%"  # type: ignore[arg-type]
                         " within ±10%)" if "within_10pct_uncorrected" in result else ""))
    return 0
