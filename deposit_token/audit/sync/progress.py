"""The progress bar of ``index`` while catching up: blocks done of the target, events, events per second."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


class _EventsColumn(ProgressColumn):
    """``12,345 events  20,123 ev/s`` (average over the run: a bursty chain makes an instant rate jumpy)."""

    def render(self, task: Task) -> Text:
        events = task.fields.get("events", 0)
        elapsed = task.elapsed or 0.0
        rate = events / elapsed if elapsed > 0 else 0.0
        return Text(f"{events:,} events  {rate:,.0f} ev/s", style="cyan")


class IndexProgress:
    """Implements ``indexer.Progress`` with a rich progress bar (shown only on a terminal)."""

    def __init__(self, console: Console, start_block: int, enabled: bool = True):
        self.console = console
        self.start_block = start_block
        self._progress = Progress(
            TextColumn("[bold]indexing[/] block {task.fields[block]:,} / {task.fields[target]:,}"),
            BarColumn(),
            TaskProgressColumn(),
            _EventsColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task("index", total=1, block=0, target=0, events=0)
        self._started = time.monotonic()
        self._events = 0

    def __enter__(self) -> IndexProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, checkpoint: int, target: int, events: int) -> None:
        self._events = events
        total = max(1, target - self.start_block + 1)
        self._progress.update(
            self._task,
            total=total,
            completed=max(0, checkpoint - self.start_block + 1),
            block=max(checkpoint, 0),
            target=target,
            events=events,
        )

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return self._events / elapsed if elapsed > 0 else 0.0
