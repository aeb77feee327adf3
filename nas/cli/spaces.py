"""``nas spaces``: list, show, sample, validate and export search spaces."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from nas.cli._common import console, int_at_least, output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="spaces_command", metavar="ACTION")
    sub.add_parser("list", help="the registered spaces: family, dimensions, cardinality "
                               "(also what `nas spaces` alone prints)")
    s = sub.add_parser("show", help="a table of a space's groups, dimensions and choices")
    s.add_argument("space", metavar="NAME|FILE")
    s = sub.add_parser("sample", help="random valid configs, one JSON object per line")
    s.add_argument("space", metavar="NAME|FILE")
    s.add_argument("--n", type=int_at_least(0), default=1, help="how many (default 1)")
    s.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    s.add_argument("--with-id", action="store_true", help="wrap as {space, id, config}")
    s = sub.add_parser("validate", help="check a config file against a space")
    s.add_argument("space", metavar="NAME|FILE")
    s.add_argument("config", metavar="CONFIG.json")
    s = sub.add_parser("export", help="write a space's definition as YAML or JSON")
    s.add_argument("space", metavar="NAME|FILE")
    s.add_argument("--out", required=True, metavar="FILE.yaml|FILE.json")


def _fmt_count(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"{n:.3e}"


def run(args: argparse.Namespace) -> int:
    from nas.errors import UsageError
    from nas.searchspace import get_space, list_spaces, load_config, load_space

    cmd = args.spaces_command
    if cmd in (None, "list"):
        table = Table("name", "family", "dimensions", "cardinality", title="registered spaces")
        for name in list_spaces():
            sp = get_space(name)
            table.add_row(name, sp.family or "-", str(len(sp)), _fmt_count(sp.cardinality()))
        console.print(table)
        return 0
    space = load_space(args.space)
    if cmd == "show":
        console.print(f"[bold]{space.name}[/bold]  family: {space.family or '-'}  "
                      f"dimensions: {len(space)}  cardinality: {_fmt_count(space.cardinality())}")
        if space.description:
            console.print(" ".join(space.description.split()))
        table = Table("path", "type", "values", "default", "exists when")
        for path in space.paths:
            dim = space.dimension(path)
            when = " and ".join(c.describe() for c in space.conditions(path)) or "always"
            kind = dim.kind if dim.kind == "int" else ("ordinal" if dim.ordinal else "categorical")
            table.add_row(path, kind, dim.describe_values(), str(dim.default), when)
        console.print(table)
        cons = [c.describe() for c in space.constraints] + [p.describe() for p in space.predicates]
        if cons:
            console.print("constraints:")
            for c in cons:
                console.print(f"  - {c}")
        return 0
    if cmd == "sample":
        out = sys.stdout
        for cfg in space.sample_many(args.n, args.seed):
            obj = ({"space": space.name, "id": cfg.id, "config": cfg.to_dict()}
                   if args.with_id else cfg.to_dict())
            out.write(json.dumps(obj) + "\n")
        return 0
    if cmd == "validate":
        cfg = load_config(space, args.config)
        print(f"valid: {args.config} is a config of {space.name} (id {cfg.id})")
        return 0
    if cmd == "export":
        if not str(args.out).lower().endswith((".yaml", ".yml", ".json")):
            raise UsageError(f"--out {args.out}: the file name must end in .yaml, .yml or "
                             ".json (it decides the format)")
        output_path(args.out, "--out", replaces=("a text file",),  # (not a table, a checkpoint)
                    inputs={"space": args.space if Path(args.space).is_file() else None})
        space.save(args.out)
        print(f"wrote {args.out}")
        return 0
    raise UsageError(f"unknown action {cmd!r}")
