"""One writing stage at a time per data root, worker processes that die with their parent, and
nothing left behind by a killed run.

The writing stages (synth, acquire/download, process, splits, mixtures) hold the data root's lock
(`hold_data_root`): an exclusive ``flock`` on ``<root>/.musicbench.lock`` (`DataRoot.lock_path`),
which also holds a JSON record of its holder (PID, command line, stage, start time, host) and is
removed when the stage ends. A second run on the same root stops at once with one line naming the
holder; the kernel releases a lock whose holder died (even by SIGKILL), so the next run takes it
over and rewrites the record. The
lock is re-entrant within a process (`acquire_music` calls `download_videos`), and a forked child
closes its copy of the lock file at once, so no worker or orphan can keep a root locked.

`worker_pool` is a ProcessPoolExecutor whose workers get SIGKILL when the process that started
them dies (Linux ``prctl(PR_SET_PDEATHSIG)``), so killing a stage leaves no worker running.

A killed run leaves no folder behind either: `remove_if_killed` hands a path to the process's
janitor, a small process of its own (its own session, so ^C and a signal to the harness's group do
not reach it) that waits on a pipe from the harness and, once the harness is gone however it died
(SIGKILL included), removes every path still handed to it (`keep` takes one back).
`exit_on_sigterm` turns SIGTERM into SystemExit, so that a terminated run cleans up as on ^C.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import inspect
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.fsutil import ensure_writable_dir

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
F = TypeVar("F", bound=Callable)

_held: dict[Path, list[int]] = {}  # lock path -> [file descriptor, depth]
_guard = threading.Lock()


def _close_held_in_child() -> None:
    """After a fork: the child must not keep the parent's locks alive (flock follows the open file)."""
    for fd, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _holder_record(stage: str) -> dict[str, object]:
    return {
        "pid": os.getpid(), "command": " ".join(shlex.join(sys.orig_argv).split())[:300], "stage": stage, "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    }


def read_holder(root: str | os.PathLike) -> dict[str, object] | None:
    """The record of the data root's current (or last, if it died) lock holder, or None."""
    try:
        record = json.loads(DataRoot(root).lock_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _describe(record: dict[str, object] | None) -> str:
    if not record:
        return "another process (its record is not written yet)"
    return (f"PID {record.get('pid')} on {record.get('host')} ({record.get('command')!s}, stage {record.get('stage')}, "
            f"since {record.get('started')})")


@contextlib.contextmanager
def hold_data_root(root: str | os.PathLike, stage: str, wait: float = 0.0) -> Iterator[Path]:
    """Hold the data root's lock while the block runs; yields the lock file's path.

    Another holder: wait up to `wait` seconds for it, then raise MusicbenchError naming it (PID,
    command, stage, start). Re-entrant in one process; released (the lock file removed) on exit.
    """
    path = DataRoot(ensure_writable_dir(root).resolve()).lock_path
    with _guard:
        if path in _held:
            _held[path][1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield path
        finally:
            with _guard:
                _held[path][1] -= 1
        return
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise MusicbenchError(f"data root {str(path.parent)!r} is in use by {_describe(read_holder(path.parent))}; "
                                      f"wait for it to finish (or stop it), then rerun `{stage}`") from None
            time.sleep(0.2)
            continue
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder we waited for removed this file on release: lock the new one
    try:
        os.ftruncate(fd, 0)  # a dead holder's record, if any, is replaced by ours
        os.pwrite(fd, (json.dumps(_holder_record(stage), sort_keys=True) + "\n").encode(), 0)
        with _guard:
            _held[path] = [fd, 1]
        yield path
    finally:
        with _guard:
            _held.pop(path, None)
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a waiting run sees a new file (`_same_file`), never a stale lock
        os.close(fd)  # releases the flock


def holds_data_root(stage: str, root_param: str) -> Callable[[F], F]:
    """Decorator: the function runs under `hold_data_root` of the data root given as its argument `root_param`."""

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with hold_data_root(signature.bind(*args, **kwargs).arguments[root_param], stage):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _same_file(fd: int, path: Path) -> bool:
    """Whether `fd` is still the file at `path` (not unlinked by a holder that released it meanwhile)."""
    try:
        return os.path.samestat(os.fstat(fd), path.stat())
    except OSError:
        return False


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: SIGKILL this worker when its parent dies; exit if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def worker_pool(max_workers: int, mp_context=None) -> ProcessPoolExecutor:
    """A process pool whose workers die with the process that starts them (see the module docstring);
    `mp_context`: a multiprocessing context (e.g. spawn), default the platform's."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp_context, initializer=_die_with_parent,
                               initargs=(os.getpid(),))


# Runs in the janitor (python -I -S): reads records "tree\0PATH\0", "empty\0PATH\0", "keep\0PATH\0" from the
# harness until end of file (the harness is gone), then removes what it still holds: a tree, or a folder only if
# empty. NUL cannot occur in a path, so no path (a run named with a newline, say) can forge a record.
_JANITOR_CODE = """
import os, shutil, signal, sys
for name in ("SIGINT", "SIGHUP", "SIGTERM"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
fields = sys.stdin.buffer.read().split(b"\\0")
held = {}
for kind, path in zip(fields[0::2], fields[1::2]):
    if not os.path.isabs(path):
        continue
    if kind == b"keep":
        held.pop(path, None)
    elif kind in (b"tree", b"empty"):
        held[path] = kind
for path, kind in held.items():
    try:
        if kind == b"empty":
            os.rmdir(path)
        else:
            shutil.rmtree(path)
    except OSError:
        pass
"""


class _Janitor:
    """The janitor process of this process (see the module docstring), started on first use."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _JANITOR_CODE], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, start_new_session=True)

    def tell(self, kind: str, path: str | os.PathLike) -> None:
        self.process.stdin.write(kind.encode() + b"\0" + os.fsencode(os.path.abspath(path)) + b"\0")
        self.process.stdin.flush()


_janitors: dict[int, _Janitor] = {}  # pid -> this process's janitor (a forked child starts its own)


def _janitor() -> _Janitor:
    with _guard:
        if os.getpid() not in _janitors:
            _janitors.clear()
            _janitors[os.getpid()] = _Janitor()
        return _janitors[os.getpid()]


def remove_if_killed(path: str | os.PathLike, empty_only: bool = False) -> None:
    """Have `path` removed should this process die before it calls `keep(path)`: the whole tree, or
    with `empty_only` the folder only if it is empty (what this process created and did not fill)."""
    _janitor().tell("empty" if empty_only else "tree", path)


def keep(path: str | os.PathLike) -> None:
    """Take back a path handed to `remove_if_killed` (done with it, or it now holds a result)."""
    if os.getpid() in _janitors:
        _janitor().tell("keep", path)


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread, where SIGTERM has its default action), SIGTERM raises
    SystemExit(143), so ``finally`` blocks clean up as they do on ^C; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
