"""Shared fixtures: a small slice of the NAS-Bench-201 table (read from ../shared/data)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

NB201_CSV = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nb201" / "nb201.csv"


@pytest.fixture(scope="session")
def nb201_rows() -> list[dict[str, str]]:
    """The first 300 rows of the NAS-Bench-201 table."""
    if not NB201_CSV.exists():
        pytest.skip(f"{NB201_CSV} not available")
    with open(NB201_CSV, newline="") as f:
        rows = []
        for i, row in enumerate(csv.DictReader(f)):
            if i >= 300:
                break
            rows.append(row)
    return rows


@pytest.fixture
def nb201_slice(tmp_path: Path, nb201_rows: list[dict[str, str]]) -> Path:
    """The slice written to a CSV file in a temporary directory."""
    path = tmp_path / "nb201_slice.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(nb201_rows[0]))
        w.writeheader()
        w.writerows(nb201_rows)
    return path
