"""Confinement of the model process: it sees nothing of the benchmark and writes only to its scratch folder.

Called first thing in the model's child process, before the untrusted model file is imported. On Linux,
where the kernel allows user namespaces (detected at run time), :func:`confine`:

- enters new user, mount, pid and IPC namespaces (System V shared memory and message queues are
  private, and die with the model), mapping the process's own uid/gid onto themselves, and makes
  every mount private, so nothing done here reaches the harness (a process that already runs threads,
  e.g. numpy's BLAS threads, first forks a single-threaded copy: the kernel refuses threads a user namespace);
- hides each ``hidden`` path: an empty read-only tmpfs over a folder, an empty read-only file over a file;
  and each path's other names where its filesystem is mounted more than once (a bind mount of the
  data root's disk elsewhere reaches the same files);
- makes every other mount read-only except ``scratch`` and ``/dev/shm``, each a fresh private tmpfs
  of at most ``scratch_bytes`` (so whatever the model writes stays in memory, within that cap, and
  vanishes with it; the harness's scratch folder stays empty); device nodes such as ``/dev/null``
  stay usable;
- forks: the caller's process stays behind only to wait and exit with the model's status, while the model
  runs as pid 1 of the new pid namespace with a fresh ``/proc`` (it cannot see or signal any process
  outside) and is killed if that waiting process dies;
- enters one more user and mount namespace, so the kernel locks all of the above: the model, although it
  holds capabilities in its own namespace, cannot unmount a hidden folder or remount anything writable;
- sets ``TMPDIR`` and ``HOME`` to ``scratch`` and changes directory to it.

What it cannot do: file descriptors the process already holds stay open (start it with none but its
pipes); the network and Unix sockets on the filesystem stay reachable; whatever a read-only path
outside the hidden ones holds stays readable. Where namespaces are unavailable (not Linux, the kernel or
a sandbox refuses them) or ``enabled`` is False, nothing is changed and
the result says ``confined=False`` with the reason; it never raises. A step that fails after the
namespaces were entered leaves the process partly restricted and is reported as unconfined too.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
KEPT_MOUNT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC  # statvfs's ST_* bits equal these MS_* bits
SCRATCH_BYTES = 2 << 30  # default size of the model's scratch folder, and of its /dev/shm


@dataclass(frozen=True)
class Confinement:
    """Whether the process is confined, and what was done or why not (one line)."""

    confined: bool
    detail: str


class _Refused(Exception):
    """A confinement step the kernel refused; its message is the reason reported."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise _Refused(f"{what} failed: {os.strerror(err)} ({errno.errorcode.get(err, err)})")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), f"mount {target}")


def _enter_user_namespace(libc: ctypes.CDLL, flags: int) -> None:
    """Unshare a new user namespace (plus ``flags``) in which this process keeps its own uid and gid."""
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | flags), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1\n"), ("gid_map", f"{gid} {gid} 1\n")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _mounts() -> list[tuple[str, str, str]]:
    """(device major:minor, root inside the filesystem, mount point) of each mount, in mount order."""
    def decode(field: bytes) -> str:
        return os.fsdecode(field.decode("unicode_escape").encode("latin-1"))

    with open("/proc/self/mountinfo", "rb") as f:
        return [(fields[2].decode(), decode(fields[3]), decode(fields[4])) for fields in (line.split() for line in f)]


def _inside(path: str, folder: str) -> str | None:
    """`path` relative to `folder` ("" for the folder itself), or None when it lies elsewhere."""
    if path == folder:
        return ""
    prefix = folder.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def other_mount_names(path: str, mounts: list[tuple[str, str, str]]) -> list[str]:
    """The other names of the real path `path` through every other mount of its filesystem (bind mounts)."""
    holding = [m for m in mounts if _inside(path, m[2]) is not None]
    if not holding:
        return []
    device, root, point = max(reversed(holding), key=lambda m: len(m[2]))  # the last, deepest mount holding it
    in_filesystem = os.path.join(root, _inside(path, point)).rstrip("/") or "/"
    names = []
    for other_device, other_root, other_point in mounts:
        rest = _inside(in_filesystem, other_root) if other_device == device else None
        if rest is not None and other_point != point:
            name = os.path.join(other_point, rest).rstrip("/") or "/"
            if os.path.lexists(name) and os.path.realpath(name) == name:
                names.append(name)
    return names


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _hide_files(libc: ctypes.CDLL, files: list[str], scratch: str) -> None:
    """Cover each file with an empty read-only file from a tmpfs mounted on ``scratch`` then detached."""
    _mount(libc, "tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
    empty = os.path.join(scratch, "empty")
    open(empty, "w").close()
    for path in files:
        _mount(libc, empty, path, None, MS_BIND)
        _mount(libc, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | KEPT_MOUNT_FLAGS & os.statvfs(path).f_flag)
    _check(libc.umount2(os.fsencode(scratch), MNT_DETACH), f"umount {scratch}")


def _make_read_only(libc: ctypes.CDLL, scratch: str) -> None:
    """Remount every mount read-only except ``scratch`` and ``/proc`` (replaced by a fresh one later).

    A mount point this process cannot reach (another user's FUSE mount, a folder it may not enter) is
    left alone: the model, with the same credentials, cannot reach it either.
    """
    for _, _, point in _mounts():
        if _is_under(point, "/proc") or point == scratch:
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            continue
        if not flags & MS_RDONLY:
            _mount(libc, None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags & KEPT_MOUNT_FLAGS)


def _continue_in_child() -> None:
    """Fork and return in the child; the parent only waits and exits as the child did.

    The child is killed (SIGKILL) when the parent dies, so killing the caller's process still kills the model.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    alive_r, alive_w = os.pipe()  # only the parent holds the write end: EOF here once the parent is gone
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        if select.select([alive_r], [], [], 0)[0]:  # the parent died before prctl took effect
            os._exit(1)
        os.close(alive_r)
        return
    code = 1
    try:  # never return here: this process only waits, and must not run the caller's code or cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the model gets ^C itself and exits; we follow
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code < 0:  # killed by a signal: die of the same one (SIGKILL's handler cannot be set, nor need be)
            if -code not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
            code = 128 - code
    finally:
        os._exit(code)


def _confine_linux(hidden: Sequence[Path], scratch: Path, scratch_bytes: int) -> Confinement:
    scratch_dir = os.path.realpath(scratch)
    if not os.path.isdir(scratch_dir):
        return Confinement(False, f"unconfined: scratch folder {scratch_dir} does not exist")
    targets = {os.path.realpath(p) for p in hidden if os.path.lexists(p)}
    mounts = _mounts()
    targets = sorted(targets | {name for target in targets for name in other_mount_names(target, mounts)})
    if any(_is_under(scratch_dir, t) for t in targets):
        return Confinement(False, f"unconfined: scratch folder {scratch_dir} lies inside a hidden path")
    libc = _libc()
    if len(os.listdir("/proc/self/task")) > 1:  # e.g. numpy's BLAS threads, started by the caller's imports
        _continue_in_child()  # the kernel gives a new user namespace only to a single-threaded process
    try:
        _enter_user_namespace(libc, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)
    except (_Refused, OSError) as exc:
        return Confinement(False, f"unconfined: the kernel refuses user namespaces here ({exc})")
    try:
        _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
        files = [t for t in targets if not os.path.isdir(t)]
        if files:
            _hide_files(libc, files, scratch_dir)
        writable = f"size={scratch_bytes},mode=1777"
        _mount(libc, "tmpfs", scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV, writable)
        _make_read_only(libc, scratch_dir)
        for folder in (t for t in targets if os.path.isdir(t)):
            _mount(libc, "tmpfs", folder, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
        if os.path.isdir("/dev/shm"):
            _mount(libc, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, writable)
        _continue_in_child()  # as pid 1 of the new pid namespace
        _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _enter_user_namespace(libc, CLONE_NEWNS)  # locks every mount above against unmount and remount
        os.chdir(scratch_dir)
    except (_Refused, OSError) as exc:
        return Confinement(False, f"unconfined: {exc}")
    os.environ["TMPDIR"] = os.environ["HOME"] = scratch_dir
    return Confinement(
        True,
        f"confined (Linux user, mount, pid and IPC namespaces): {len(targets)} paths hidden, writable only {scratch_dir} "
        f"and /dev/shm ({scratch_bytes >> 20} MiB each, in memory)",
    )


def confine(hidden: Sequence[Path], scratch: Path, enabled: bool = True, scratch_bytes: int | None = None) -> Confinement:
    """Confine this process: hide ``hidden`` paths, leave only ``scratch`` (and ``/dev/shm``, each a tmpfs of
    `scratch_bytes`, default `SCRATCH_BYTES`) writable (see the module docstring).

    Call it first in the model's process, before the model file is imported. On success the caller goes on
    in a forked child (pid 1 of its own pid namespace) whose exit status the original process mirrors.
    """
    if not enabled:
        return Confinement(False, "unconfined: --no-confine")
    if not sys.platform.startswith("linux"):
        return Confinement(False, f"unconfined: confinement needs Linux namespaces (this is {sys.platform})")
    try:
        return _confine_linux(hidden, scratch, SCRATCH_BYTES if scratch_bytes is None else int(scratch_bytes))
    except Exception as exc:  # never raise: an unexpected failure is reported, the run goes on unconfined
        return Confinement(False, f"unconfined: {type(exc).__name__}: {exc}")
