"""Tables of measurements (CSV): rows of (config, values) for predictors.

A row maps to a config of a space in one of two ways:

- through columns named after the space's dimensions (``stages.0.depth``, ...; an empty cell
  is an absent dimension), or
- through an ``arch`` column that the space can parse (``space.parse_arch``; the ``nb201``
  space reads NAS-Bench-201 strings), or
- through a ``config`` column holding each config as JSON (nested as ``Config.to_dict`` or
  flat by dotted path): the ``history.csv`` and ``pareto.csv`` that ``nas search`` writes.

Errors name the file, the line (``table.csv:7``, as an editor counts, the header being line
1) and the column.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UsageError

log = logging.getLogger(__name__)

ARCH_COLUMN = "arch"
CONFIG_COLUMN = "config"


class TableError(UsageError):
    """A table that cannot be used: unreadable, missing columns, bad values -- bad input, so
    a usage error (exit status 2 on the command line)."""


@dataclass(frozen=True)
class Table:
    """A CSV table held in memory: its path, column names and rows (cells as strings)."""

    path: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    # each row's line in the file (1-based, the header is line 1; blank lines are skipped)
    lines: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    def line(self, k: int) -> int:
        """The file line of row ``k`` (0-based; without recorded lines, as if none were
        blank)."""
        return self.lines[k] if k < len(self.lines) else k + 2

    def where(self, k: int) -> str:
        """``path:line`` of row ``k``, for error messages."""
        return f"{self.path}:{self.line(k)}"

    def column_index(self, name: str, *, role: str = "column") -> int:
        """The index of column ``name``.

        Raises:
            TableError: no such column (the message lists the columns there are).
        """
        try:
            return self.columns.index(name)
        except ValueError:
            shown = ", ".join(self.columns[:30]) + (" ..." if len(self.columns) > 30 else "")
            raise TableError(f"{self.path}: no {role} {name!r}; the columns are: {shown}"
                             ) from None

    def column(self, name: str) -> list[str]:
        """The cells of one column."""
        i = self.column_index(name)
        return [r[i] for r in self.rows]


_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")


def read_table(path: str | os.PathLike[str]) -> Table:
    """Read a CSV file with a header row: comma-separated, or semicolon- or tab-separated
    when its header has neither commas nor quotes but those (a spreadsheet's export in a
    locale whose decimal mark is the comma, whose numbers such as ``93,5`` are then read as
    ``93.5``; a TSV file).

    Raises:
        TableError: missing or empty file, duplicate column names, ragged rows.
    """
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:  # (Excel's BOM, if any)
            first = f.readline()
            f.seek(0)
            delimiter = next((d for d in ("\t", ";") if d in first
                              and "," not in first and '"' not in first), ",")
            reader = csv.reader(f, delimiter=delimiter)
            try:
                header = next(reader)
            except StopIteration:
                raise TableError(f"{p}: empty file (a header row is needed)") from None
            header = [h.strip() for h in header]
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise TableError(f"{p}: duplicate column names: {', '.join(dup)}")
            rows, lines = [], []
            for row in reader:
                lineno = reader.line_num  # (a quoted cell may span lines: where it ends)
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise TableError(f"{p}:{lineno}: {len(row)} cells, the header has "
                                     f"{len(header)} columns")
                cells = tuple(c.strip() for c in row)
                if delimiter == ";":  # a decimal-comma locale's numbers: 93,5 is 93.5
                    cells = tuple(c.replace(",", ".") if _DECIMAL_COMMA.match(c) else c
                                  for c in cells)
                rows.append(cells)
                lines.append(lineno)
    except FileNotFoundError:
        raise TableError(f"{p}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise TableError(f"{p}: not a readable CSV file ({e})") from None
    if not rows:
        raise TableError(f"{p}: the table has no data rows")
    return Table(str(p), tuple(header), tuple(rows), tuple(lines))


def table_target(table: Table, column: str) -> np.ndarray:
    """The numeric values of ``column``.

    Raises:
        TableError: the column is missing, or a cell is empty, not a number or not finite
            (the message names the line).
    """
    i = table.column_index(column, role="target column")
    out = np.empty(len(table.rows))
    for k, row in enumerate(table.rows):
        cell = row[i]
        try:
            v = float(cell)
        except ValueError:
            what = "is empty" if cell == "" else f"is not a number: {cell!r}"
            raise TableError(f"{table.where(k)}: column {column!r} {what}") from None
        if not math.isfinite(v):
            raise TableError(f"{table.where(k)}: column {column!r} is not finite: "
                             f"{cell!r}")
        out[k] = v
    return out


def _cell_value(space: Any, path: str, cell: str) -> Any:
    values = space.values(path)
    for v in values:
        if str(v) == cell:
            return v
    try:
        num = float(cell)
    except ValueError:
        return cell
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) == num:
            return v
    return cell


def table_configs(table: Table, space: Any, *, arch_column: str = ARCH_COLUMN) -> list[Any]:
    """The config of every row (see the module docstring for the two ways).

    Raises:
        TableError: neither way applies (the message says which columns are missing), or a row
            is not a valid config of ``space`` (file, row and column named).
    """
    from nas.errors import ConfigError

    cols = set(table.columns)
    dim_cols = [p for p in space.paths if p in cols]
    use_arch = arch_column in cols and space.arch_format and len(dim_cols) < len(space.paths)
    configs = []
    if use_arch:
        return _column_configs(table, arch_column, space.parse_arch)
    if CONFIG_COLUMN in cols and not dim_cols:
        return _column_configs(table, CONFIG_COLUMN, lambda text: _json_config(space, text))
    if not dim_cols:
        how = (f", an {arch_column!r} column" if space.arch_format else
               f" (space {space.name!r} has no arch text format, so an {arch_column!r} column "
               "cannot be used)")
        raise TableError(
            f"{table.path}: no column maps rows to configs of space {space.name!r}: need "
            f"columns named after its dimensions ({', '.join(space.paths[:6])}"
            f"{', ...' if len(space.paths) > 6 else ''}){how} or a {CONFIG_COLUMN!r} column "
            "of JSON configs (as nas search's history.csv has)")
    idx = {p: table.column_index(p) for p in dim_cols}
    for k, row in enumerate(table.rows):
        flat = {p: _cell_value(space, p, row[j]) for p, j in idx.items() if row[j] != ""}
        try:
            configs.append(space.config(flat))
        except ConfigError as e:
            missing = [p for p in space.paths if p not in cols]
            hint = f" (the table has no column for {', '.join(missing[:5])})" if missing else ""
            raise TableError(f"{table.where(k)}: not a config of space "
                             f"{space.name!r}: {e}{hint}") from None
    return configs


def _column_configs(table: Table, column: str, parse: Callable[[str], Any]) -> list[Any]:
    """The config of every row from its text in ``column``, each distinct text parsed once;
    a ``ValueError`` (a ``ConfigError`` among them) of ``parse`` names the line and column."""
    i = table.column_index(column)
    memo: dict[str, Any] = {}
    out = []
    for k, row in enumerate(table.rows):
        text = row[i]
        cfg = memo.get(text)
        if cfg is None:
            try:
                cfg = memo[text] = parse(text)
            except ValueError as e:
                raise TableError(f"{table.where(k)}: column {column!r}: {e}") from None
        out.append(cfg)
    return out


def _json_config(space: Any, text: str) -> Any:
    """The config of a ``config`` cell (JSON, nested or flat by path)."""
    import json

    from nas.errors import ConfigError

    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a config is a JSON object, got {type(data).__name__}")
    try:
        return space.config(data)
    except ConfigError as e:
        raise ValueError(f"not a config of space {space.name!r}: {e}") from None


# what a search's history.csv says in a <metric>_source column for a row that has no
# measurement of that metric: a proposal outside the cost limits (never evaluated) or a
# latency the search did not ask for
UNMEASURED = ("infeasible", "none")


def measured_rows(table: Table, target: str) -> Table:
    """``table`` without the rows whose ``<target>_source`` column (``accuracy_source``; for
    ``latency_ms``, ``latency_source``), as ``nas search`` writes in ``history.csv``, says
    the target was not measured (:data:`UNMEASURED`); the table itself when it has no such
    column or drops nothing."""
    names = [f"{target}_source"] + ([f"{target.rsplit('_', 1)[0]}_source"]
                                    if "_" in target else [])
    col = next((n for n in names if n in table.columns), None)
    if col is None:
        return table
    i = table.column_index(col)
    keep = [k for k, r in enumerate(table.rows) if r[i] not in UNMEASURED]
    kept = tuple(table.rows[k] for k in keep)
    if len(kept) == len(table.rows):
        return table
    log.info("%s: %d of %d rows have no %s (%s says %s); left out", table.path,
             len(table.rows) - len(kept), len(table.rows), target, col, " or ".join(UNMEASURED))
    if not kept:
        raise TableError(f"{table.path}: no row has a measured {target!r} (column {col!r} "
                         f"says {' or '.join(UNMEASURED)} on every row)")
    return Table(table.path, table.columns, kept, tuple(table.line(k) for k in keep))


def load_measurements(path: str | os.PathLike[str], space: Any, target: str,
                      ) -> tuple[list[Any], np.ndarray]:
    """Configs and target values of a table (see :func:`table_configs`, :func:`table_target`),
    less the rows that say they have no measurement of ``target`` (:func:`measured_rows`).
    """
    table = measured_rows(read_table(path), target)
    y = table_target(table, target)
    return table_configs(table, space), y


def select_rows(n: int, n_train: int, n_test: int, seed: int,
                groups: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random train and test row indices for one seed.

    The rows are grouped by ``groups`` (one hashable key per row, e.g. its config; ``None``:
    every row is its own group), and the split is over groups: a permutation of the distinct
    groups whose first ``n_test`` are the test groups and the next ``n_train`` the training
    groups (so for a seed the test rows do not depend on ``n_train``). Every row of a group is
    on that group's side, so a config measured several times is never both trained on and
    tested on; ``n_train`` and ``n_test`` count distinct groups (configs), and with repeated
    configs the returned arrays hold more rows than that (all the repeats). Rows come in the
    permutation's order of their groups, a group's rows in table order.

    A table whose groups are all distinct (e.g. NAS-Bench-201: one row per architecture)
    gets exactly the split of ``groups=None``: the rows of the permutation of ``n`` rows.

    Raises:
        TableError: ``n_train`` or ``n_test`` below 2, or more than the distinct groups.
    """
    if n_train < 2:
        raise TableError(f"--n-train must be at least 2, got {n_train}")
    if n_test < 2:
        raise TableError(f"--n-test must be at least 2, got {n_test}")
    if groups is None:
        unit = np.arange(n)
        n_units = n
    else:
        if len(groups) != n:
            raise ValueError(f"select_rows: {len(groups)} groups for {n} rows")
        ids: dict[Any, int] = {}  # group -> its number, in order of first appearance
        unit = np.fromiter((ids.setdefault(g, len(ids)) for g in groups), dtype=np.int64,
                           count=n)
        n_units = len(ids)
    if n_train + n_test > n_units:
        what = f"{n} rows" if n_units == n else f"{n_units} distinct configs ({n} rows)"
        raise TableError(f"the table has {what}, fewer than --n-train + --n-test = "
                         f"{n_train} + {n_test} (lower them; --n-test defaults to 1000)")
    perm = np.random.default_rng(seed).permutation(n_units)
    if n_units == n:  # no repeated group: group k is row k, the split is the permutation's
        return perm[n_test:n_test + n_train], perm[:n_test]
    rank = np.empty(n_units, dtype=np.int64)
    rank[perm] = np.arange(n_units)
    pos = rank[unit]  # each row's group's place in the permutation
    order = np.argsort(pos, kind="stable")
    k_test, k_end = np.searchsorted(pos[order], [n_test, n_test + n_train])
    return order[k_test:k_end], order[:k_test]


__all__: Sequence[str] = ("ARCH_COLUMN", "Table", "TableError", "load_measurements",
                          "read_table", "select_rows", "table_configs", "table_target")
