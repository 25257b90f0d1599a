"""Rich progress bars for long stages, drawn on stderr."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(description: str, total: int, *, show: bool = True) -> Iterator[Callable[[int], None]]:
    """Show a progress bar on stderr; yield `advance(n=1)` to call as items complete.

    With ``show=False`` nothing is drawn and `advance` does nothing (quiet runs, non-main ranks)."""
    if not show:
        yield lambda n=1: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        yield advance
