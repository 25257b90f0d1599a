"""Rich progress bars for long stages, drawn on stderr, the CPU time that long work reports, and
untrusted text made safe to show (`plain`)."""

from __future__ import annotations

import contextlib
import re
import resource
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# C0 and C1 control characters (ESC starts terminal sequences) and Unicode's bidirectional formatting
# characters (e.g. U+202E RIGHT-TO-LEFT OVERRIDE reverses how the rest of a line reads)
# characters and lone surrogates (which no UTF-8 file or terminal can take: one in a run's name crashed the
# whole board), the line and paragraph separators U+2028/U+2029 and the noncharacters U+FFFE/U+FFFF
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                         "\ud800-\udfff\u2028\u2029\ufffe\uffff]")


def plain(text: object) -> str:
    """Untrusted text (a run name, a model's error message) as one line that shows what it says:
    every control or bidirectional formatting character, line separator, noncharacter and lone
    surrogate becomes U+FFFD, so none can move the cursor, colour a terminal, reorder the text around
    it or stop a UTF-8 file from being written."""
    return _UNSHOWABLE.sub("\ufffd", str(text))


def note(text: object) -> None:
    """One line ``note: TEXT`` on stderr, shown as text (`plain`): what a user should know of a run."""
    Console(stderr=True, markup=False, emoji=False, highlight=False).print(plain(f"note: {text}"), soft_wrap=True)


@contextlib.contextmanager
def progress_bar(
    description: str, total: int, *, show: bool = True, with_status: bool = False,
) -> Iterator[Callable[..., None]]:
    """Show a progress bar on stderr; yield `advance(n=1, status=None)` to call as items complete.

    `description` and every `status` are shown as text (`plain`; never read as Rich markup).

    With `with_status`, a text column after the count shows the latest `status` string passed to
    `advance` (e.g. counts per outcome). With ``show=False`` nothing is drawn and `advance` does
    nothing (quiet runs, non-main ranks)."""
    if not show:
        yield lambda n=1, status=None: None
        return
    # the description may name a model file: shown as text (no Rich markup, no control characters)
    columns = [TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn()]
    if with_status:
        columns.append(TextColumn("{task.fields[status]}", markup=False))
    progress = Progress(
        *columns, TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True, markup=False, emoji=False),
        transient=False,
    )
    with progress:
        task = progress.add_task(plain(description), total=total, status="")

        def advance(n: int = 1, status: str | None = None) -> None:
            if status is not None:
                progress.update(task, status=plain(status))
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
