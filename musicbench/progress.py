"""Rich progress bars for long stages, drawn on stderr, and the CPU time that long work reports."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(
    description: str, total: int, *, show: bool = True, with_status: bool = False,
) -> Iterator[Callable[..., None]]:
    """Show a progress bar on stderr; yield `advance(n=1, status=None)` to call as items complete.

    With `with_status`, a text column after the count shows the latest `status` string passed to
    `advance` (e.g. counts per outcome). With ``show=False`` nothing is drawn and `advance` does
    nothing (quiet runs, non-main ranks)."""
    if not show:
        yield lambda n=1, status=None: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if with_status:
        columns.append(TextColumn("{task.fields[status]}"))
    progress = Progress(
        *columns, TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, status="")

        def advance(n: int = 1, status: str | None = None) -> None:
            if status is not None:
                progress.update(task, status=status)
            progress.advance(task, n)

        yield advance


def cpu_seconds(children: bool = False) -> float:
    """User + system CPU seconds of this process so far; with `children`, plus its reaped child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    if children:
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += reaped.ru_utime + reaped.ru_stime
    return total
