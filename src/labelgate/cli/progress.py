"""Progress bars, coloured summary tables and ``--quiet`` handling shared by the commands.

Everything goes to stderr, so a command's ``--json -`` output on stdout stays machine-readable;
``quiet=True`` silences all of it (scripts, CI).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

T = TypeVar("T")


def make_console(quiet: bool = False) -> Console:
    """A stderr console; quiet consoles print nothing."""
    return Console(stderr=True, quiet=quiet)


class Steps:
    """One progress bar for a multi-step job; ``callback`` fits the pipelines' ``on_step``."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=None)

    def callback(self, description: str, done: int, total: int) -> None:
        """Show step ``done`` of ``total`` (0-based) with its description."""
        self._progress.update(self._task, description=description, completed=done, total=total)

    def update(self, description: str) -> None:
        """Change the description of an open-ended step (spinner, no total)."""
        self._progress.update(self._task, description=description)

    def track(self, values: Sequence[T], description: str) -> Iterator[T]:
        """Iterate ``values`` advancing the bar, e.g. over jobs being pulled."""
        self._progress.update(self._task, description=description, completed=0, total=len(values))
        for i, v in enumerate(values):
            yield v
            self._progress.update(self._task, completed=i + 1)

    def finish(self) -> None:
        """Mark the bar complete."""
        task = self._progress.tasks[0]
        self._progress.update(self._task, completed=task.total or 1, total=task.total or 1)


@contextmanager
def progress_steps(console: Console) -> Iterator[Steps]:
    """A transient progress bar on ``console`` (invisible when the console is quiet).

    Example::

        with progress_steps(make_console(quiet)) as steps:
            bundle = build_bundle(gt, sources, on_step=steps.callback)
    """
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=console.quiet,
    ) as progress:
        yield Steps(progress)


def rate_text(value: float | None, good: float = 0.9, fair: float = 0.75) -> Text:
    """A proportion as a percentage, green at or above ``good``, yellow above ``fair``, else red.

    Args:
        value: a proportion in [0, 1], or None ("—", dim).
        good, fair: colour thresholds.
    """
    if value is None:
        return Text("—", style="dim")
    style = "green" if value >= good else "yellow" if value >= fair else "red"
    return Text(f"{value:.1%}", style=style)


def summary_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric_from: int = 1
) -> Table:
    """A rich table; cells may be plain values or :class:`rich.text.Text` (kept styled).

    Args:
        title: table title.
        columns: header names.
        rows: cell rows.
        numeric_from: columns from this index on are right-aligned.
    """
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        table.add_column(c, justify="right" if i >= numeric_from else "left")
    for row in rows:
        table.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in row))
    return table
