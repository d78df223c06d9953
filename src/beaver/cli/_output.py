"""Where the CLI writes: data to stdout, messages, progress and errors to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from beaver.errors import BeaverError
from beaver.progress import NullProgress, Progress, Unit

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgressBar
    from rich.progress import TaskID


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    # Consoles are made per call so that CliRunner's swapped streams are honoured.
    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=True)


def info(message: str, *, quiet: bool) -> None:
    """A progress or status line on stderr, silenced by --quiet."""
    if not quiet:
        _console(stderr=True).print(message)


def warn(message: str) -> None:
    """A warning on stderr (shown even with --quiet)."""
    _console(stderr=True).print(f"[yellow]{_escape(message)}[/yellow]")


def render_error(exc: BeaverError) -> None:
    """The one place a BeaverError becomes text: ``Error: <message>`` and the hint."""
    line = f"Error: {exc.message}"
    if exc.hint:
        line += f" {exc.hint}"
    _console(stderr=True).print(f"[red]{_escape(line)}[/red]")


def error_line(message: str) -> None:
    """An error line that is not a BeaverError (interrupts, unexpected failures)."""
    _console(stderr=True).print(f"[red]{_escape(message)}[/red]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> None:
    """A table on stdout."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else _escape(str(cell)) for cell in row))
    _console(stderr=False).print(table)


class RichProgress:
    """A :class:`beaver.progress.Progress` drawn as a rich progress bar on stderr."""

    def __init__(self, bar: RichProgressBar) -> None:
        self._bar = bar
        self._task: TaskID | None = None

    def start(self, description: str, total: float | None = None, unit: Unit = "items") -> None:
        """Begin a task."""
        self.finish()
        self._task = self._bar.add_task(description, total=total, unit=unit)

    def update(self, completed: float) -> None:
        """Move the bar."""
        if self._task is not None:
            self._bar.update(self._task, completed=completed)

    def finish(self) -> None:
        """Complete the current task's bar."""
        if self._task is not None:
            task = next(t for t in self._bar.tasks if t.id == self._task)
            if task.total is not None:
                self._bar.update(self._task, completed=task.total)
            self._bar.stop_task(self._task)
            self._task = None


@contextmanager
def progress(*, quiet: bool) -> Iterator[Progress]:
    """A progress sink for one command: a rich bar, or nothing with --quiet."""
    if quiet:
        yield NullProgress()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgressBar
    from rich.text import Text

    class _Count(ProgressColumn):
        def render(self, task: Task) -> Text:
            inner = DownloadColumn() if task.fields.get("unit") == "bytes" else MofNCompleteColumn()
            return inner.render(task)

    class _Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            if task.fields.get("unit") == "bytes":
                return TransferSpeedColumn().render(task)
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")

    bar = RichProgressBar(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _Count(),
        _Rate(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=False,
    )
    with bar:
        sink = RichProgress(bar)
        try:
            yield sink
        finally:
            sink.finish()
