"""Progress bars for long work (rich, on stderr). Library code uses these so that a user of
the CLI sees progress; ``enabled=False`` makes them silent."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True, highlight=False)


def console() -> Console:
    """The stderr console progress bars draw on (log handlers should share it)."""
    return _console


class _TrainingBar:
    def __init__(self, progress: Progress | None, total_epochs: int, steps: int) -> None:
        self.p = progress
        self.total_epochs = total_epochs
        self.steps = steps
        self.task: Any = None

    def start_epoch(self, epoch: int, done: int) -> None:
        if self.p is None:
            return
        desc = f"epoch {epoch + 1}/{self.total_epochs}"
        if self.task is None:
            self.task = self.p.add_task(desc, total=self.steps, completed=done, info="")
        else:
            self.p.reset(self.task, total=self.steps, completed=done, description=desc)

    def advance(self, loss: float, images_per_s: float) -> None:
        if self.p is not None and self.task is not None:
            self.p.update(self.task, advance=1,
                          info=f"loss {loss:.3f}  {images_per_s:,.0f} img/s")

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self.p is None:
            return
        acc = " ".join(f"{k.replace('val_acc_', 'val ')} {v:.1f}%" for k, v in row.items()
                       if k.startswith("val_acc_"))
        self.p.console.print(f"epoch {row['epoch']}/{self.total_epochs}  "
                             f"loss {row.get('loss', float('nan')):.3f}  "
                             f"{row['images_per_s']:,.0f} img/s  {acc}")


@contextlib.contextmanager
def training_progress(*, enabled: bool, total_epochs: int, steps_per_epoch: int
                      ) -> Iterator[_TrainingBar]:
    """A per-epoch bar showing step, loss and images/s."""
    if not enabled:
        yield _TrainingBar(None, total_epochs, steps_per_epoch)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  console=_console, transient=not sys.stderr.isatty()) as p:
        yield _TrainingBar(p, total_epochs, steps_per_epoch)


@contextlib.contextmanager
def task_progress(description: str, total: int | None, *, enabled: bool = True
                  ) -> Iterator[Any]:
    """A simple bar; yields ``advance(n=1, **info)``."""
    if not enabled:
        yield lambda n=1, **kw: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=_console,
                  transient=not sys.stderr.isatty()) as p:
        task = p.add_task(description, total=total)
        yield lambda n=1, **kw: p.update(task, advance=n)
