"""Run folders: one run at a time claims one, writes beside it and renames the result into place.

A run folder (``runs/NAME``) holds only what a run writes (`RUN_FILES`). `claim_run_folder` makes
``--out`` this run's alone for as long as it runs (an exclusive ``flock`` on the folder itself: a
second run into it stops at once) and refuses a folder inside or holding the data root, and one
that holds anything but a run: ``--overwrite`` replaces a run, never a benchmark definition or a
folder of runs. `staged_folder` writes the new content under ``.<name>.tmp-<pid>`` beside it (the
board skips dot-folders) and swaps it in only once complete. A killed run leaves nothing behind
(`musicbench.concurrency.remove_if_killed`): neither its staging folder nor the empty folder it
created for ``--out``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from musicbench.concurrency import keep, remove_if_killed
from musicbench.errors import MusicbenchError
from musicbench.fsutil import ensure_writable_dir

RUN_FILES = frozenset({"summary.json", "provenance.json", "items.parquet", "inference.parquet", "model.json",
                       "estimates", "heatmaps"})
RUN_MARKERS = ("model.json", "provenance.json")  # a finished run folder has both
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _written_by_a_run(path: Path) -> bool:
    """Whether `path` (an entry of a folder) is what a run writes there: one of its files, a regular
    file, or its estimates/ or heatmaps/ folder holding only regular ``.npy`` files."""
    if path.name not in RUN_FILES or path.is_symlink():
        return False
    if path.name not in ("estimates", "heatmaps"):
        return path.is_file()
    return path.is_dir() and all(entry.is_file(follow_symlinks=False) and entry.name.endswith(".npy")
                                 for entry in os.scandir(path))


def refuse_strangers(folder: Path, strangers: list[str], what: str, writer: str, hint: str) -> None:
    """MusicbenchError, naming up to three of `strangers`, if `folder` (a `what`: "run folder", ...)
    holds entries that no `writer` writes there (none: nothing happens); `hint` ends the message."""
    if strangers:
        shown = ", ".join(repr(name) for name in strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        raise MusicbenchError(f"{what} {str(folder)!r} holds {shown}, which no {writer} writes{hint}")


def check_apart(folder: Path, protected: Iterable[str | os.PathLike], what: str) -> None:
    """Refuse `folder` (absolute) if it lies inside, or holds, any `protected` folder."""
    for path in protected:
        path = Path(os.path.realpath(path))
        real = Path(os.path.realpath(folder))
        if real == path or path in real.parents or real in path.parents:
            raise MusicbenchError(f"{what} {str(folder)!r} overlaps {str(path)!r} (the data root or a runs folder); "
                                  "choose a folder outside it")


@contextlib.contextmanager
def claim_run_folder(out_dir: str | os.PathLike, overwrite: bool, protected: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Hold `out_dir` (made absolute, created if missing) for one run; yields it.

    MusicbenchError, before anything is written, if it lies inside or holds a `protected` folder (the
    data root), is not a folder (or is a symlink), another run holds it, or it holds anything and
    `overwrite` is False, or it holds anything but a run (its files, `RUN_FILES`, as a run writes them:
    estimates/ and heatmaps/ of ``.npy`` files only; and `RUN_MARKERS`). A folder this call created is
    removed again if the run leaves it empty (or is killed)."""
    out_dir = Path(os.path.abspath(out_dir))
    check_apart(out_dir, protected, "run folder")
    ensure_writable_dir(out_dir.parent)
    try:
        os.mkdir(out_dir)
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        raise MusicbenchError(f"run folder {str(out_dir)!r} cannot be created ({exc.strerror}); choose another --out") from None
    if created:
        remove_if_killed(out_dir, empty_only=True)
    try:
        fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise MusicbenchError(f"run folder {str(out_dir)!r} exists and is not a folder (or is a symlink); "
                              "choose another --out") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MusicbenchError(f"run folder {str(out_dir)!r} is being written by another run; wait for it to "
                                  "finish or choose another --out") from None
        entries = sorted(os.listdir(out_dir))
        if entries and not overwrite:
            raise MusicbenchError(f"run folder {str(out_dir)!r} already holds a run; pass --overwrite to replace it "
                                  "(the old run is kept until the new one is complete) or choose another --out")
        refuse_strangers(out_dir, [name for name in entries if not _written_by_a_run(out_dir / name)], "run folder",
                         "run", ": --overwrite replaces only a run folder; choose another --out")
        if entries and not any(name in entries for name in RUN_MARKERS):
            raise MusicbenchError(f"run folder {str(out_dir)!r} holds no run (no {' or '.join(RUN_MARKERS)}): --overwrite "
                                  "replaces only a run folder; choose another --out")
        yield out_dir
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)  # only if the run left it empty
            keep(out_dir)
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), os.fspath(b))


@contextlib.contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out_dir`, ``.<name>.tmp-<pid>``; on success swap it
    into `out_dir` (atomically where the system can), replacing what was there only then; on failure,
    or if the process is killed, delete it and leave `out_dir` as it was."""
    ensure_writable_dir(out_dir.parent)
    work_dir = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(work_dir, ignore_errors=True)  # left by a killed run that had this process id
    work_dir.mkdir()
    remove_if_killed(work_dir)
    try:
        try:
            yield work_dir
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        if out_dir.exists() and _exchange(work_dir, out_dir):
            shutil.rmtree(work_dir, ignore_errors=True)  # now the old content
        else:
            old_dir = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            if out_dir.exists():
                os.rename(out_dir, old_dir)
            os.rename(work_dir, out_dir)
            shutil.rmtree(old_dir, ignore_errors=True)
    finally:
        keep(work_dir)
