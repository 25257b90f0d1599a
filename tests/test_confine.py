"""Confinement of the model process: a real child process confines itself, then tries what a hostile model would."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs in the child: confine, then report each attempt as [ok, result or error].
CHILD = """
import json, os, sys
from pathlib import Path
from musicbench.confine import confine
args = json.loads(sys.argv[1])
result = confine([Path(p) for p in args["hidden"]], Path(args["scratch"]), enabled=args.get("enabled", True))
report = {"confined": result.confined, "detail": result.detail}
def attempt(name, action):
    try:
        report[name] = [True, action()]
    except BaseException as exc:
        report[name] = [False, f"{type(exc).__name__}: {exc}"]
def write(path):
    with open(path, "w") as f:
        f.write("hostile")
    return str(path)
"""


def namespaces_allowed() -> bool:
    """Whether this kernel lets a fresh single-threaded process enter user and mount namespaces."""
    if not sys.platform.startswith("linux"):
        return False
    probe = "import ctypes; print(ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x00020000))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "0"


needs_namespaces = pytest.mark.skipif(not namespaces_allowed(), reason="this kernel refuses user+mount namespaces: nothing to confine with")


def run_child(body: str, args: dict, prefix: list[str] | None = None, before: str = "") -> dict:
    """Run CHILD + body in a fresh python process (from /), ``before`` ahead of confine(); return its JSON report."""
    code = CHILD.replace("result = confine", before + "\nresult = confine") + textwrap.dedent(body) + "\nprint(json.dumps(report))\n"
    done = subprocess.run([*(prefix or []), sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def bench(tmp_path: Path) -> dict[str, Path]:
    """A data root with references and processed audio, runs/ with another model's run, a score cache file,
    a model folder and a scratch folder; the data root's parent is tmp_path."""
    data = tmp_path / "data"
    (data / "processed").mkdir(parents=True)
    (data / "processed" / "clip.flac").write_bytes(b"fLaC reference audio")
    (data / "mixtures.parquet").write_bytes(b"PAR1 references")
    other = tmp_path / "runs" / "nmf"
    other.mkdir(parents=True)
    (other / "summary.json").write_text('{"nsdr": 5.0}')
    (tmp_path / "score_cache.json").write_text("{}")
    model = tmp_path / "models" / "mine"
    model.mkdir(parents=True)
    (model / "helper_module.py").write_text("WEIGHTS = [1.0, 2.0]\n")
    (tmp_path / "scratch").mkdir()
    return {"root": tmp_path, "data": data, "runs": tmp_path / "runs", "cache": tmp_path / "score_cache.json",
            "model": model, "scratch": tmp_path / "scratch"}


def disk_of(path: Path) -> str:
    """The device node of the block device holding ``path`` (e.g. /dev/vda), or /dev/null where there is none."""
    dev = os.stat(path).st_dev
    try:
        uevent = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/uevent").read_text()
    except OSError:
        return "/dev/null"
    names = [line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("DEVNAME=")]
    return f"/dev/{names[0]}" if names and os.path.exists(f"/dev/{names[0]}") else "/dev/null"


def confine_args(bench: dict[str, Path]) -> dict:
    return {"hidden": [str(bench["data"]), str(bench["runs"]), str(bench["cache"])], "scratch": str(bench["scratch"])}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_namespaces
def test_a_hostile_model_cannot_read_or_change_the_benchmark_or_other_runs(bench):
    before = snapshot(bench["root"])
    report = run_child(f"""
        data, runs, root = Path({str(bench['data'])!r}), Path({str(bench['runs'])!r}), Path({str(bench['root'])!r})
        attempt("read_reference", lambda: (data / "mixtures.parquet").read_bytes().decode())
        attempt("list_data", lambda: os.listdir(data))
        attempt("read_cache", lambda: Path({str(bench['cache'])!r}).read_text())
        attempt("write_data", lambda: write(data / "mixtures.parquet"))
        attempt("write_cache", lambda: write({str(bench['cache'])!r}))
        attempt("write_other_run", lambda: write(runs / "nmf" / "summary.json"))
        attempt("new_run", lambda: os.makedirs(runs / "mine"))
        attempt("delete_processed", lambda: os.remove(data / "processed" / "clip.flac"))
        attempt("replace_data_root", lambda: os.rename(data, root / "elsewhere"))
        attempt("write_beside_data", lambda: write(root / "new.txt"))
        attempt("write_repo", lambda: write({str(REPO / 'hostile.txt')!r}))
        attempt("write_tmp", lambda: write("/tmp/musicbench-hostile.txt"))
        attempt("write_scratch", lambda: write(Path({str(bench['scratch'])!r}) / "state.bin"))
        attempt("tmpdir_home", lambda: [os.environ["TMPDIR"], os.environ["HOME"], os.getcwd()])
        sys.path.insert(0, {str(bench['model'])!r})
        attempt("model_files", lambda: __import__("helper_module").WEIGHTS)
        attempt("numpy", lambda: float(__import__("numpy").arange(4.0).sum()))
    """, confine_args(bench))

    assert report["confined"], report["detail"]
    assert "3 paths hidden" in report["detail"]
    assert not report["read_reference"][0] and "No such file" in report["read_reference"][1]
    assert report["list_data"] == [True, []]
    assert report["read_cache"] == [True, ""]  # an empty file lies over the cache
    for name in ("write_data", "write_cache", "write_other_run", "new_run", "delete_processed", "replace_data_root",
                 "write_beside_data", "write_repo", "write_tmp"):
        assert not report[name][0], (name, report[name])
    assert all("Read-only file system" in report[name][1] for name in ("write_beside_data", "write_repo", "write_tmp", "write_data"))
    scratch = str(bench["scratch"])
    assert report["write_scratch"][0] and report["tmpdir_home"] == [True, [scratch, scratch, scratch]]
    assert report["model_files"] == [True, [1.0, 2.0]]
    assert report["numpy"] == [True, 6.0]
    assert snapshot(bench["root"]) == before  # the scratch folder was a tmpfs: what the model wrote died with it
    assert not (REPO / "hostile.txt").exists() and not Path("/tmp/musicbench-hostile.txt").exists()


@needs_namespaces
def test_the_model_cannot_undo_its_confinement_or_reach_other_processes(bench):
    report = run_child(f"""
        import ctypes, signal
        libc = ctypes.CDLL(None, use_errno=True)
        data = {str(bench['data'])!r}.encode()
        def check(result):
            if result != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return os.listdir({str(bench['data'])!r})
        attempt("umount", lambda: check(libc.umount2(data, 2)))
        attempt("remount_rw", lambda: check(libc.mount(None, b"/", None, ctypes.c_ulong(32 | 4096), None)))
        def nested_umount():  # a user namespace of its own, where it holds every capability
            check(libc.unshare(0x10000000 | 0x00020000))
            return check(libc.umount2(data, 2))
        attempt("nested_umount", nested_umount)
        attempt("pid", os.getpid)
        attempt("see_parent", lambda: os.path.exists("/proc/{os.getpid()}"))
        attempt("signal_parent", lambda: os.kill({os.getpid()}, signal.SIGTERM))
        attempt("parent_root", lambda: os.listdir("/proc/1/root" + {str(bench['data'])!r}))
        attempt("read_disk", lambda: open({disk_of(bench['data'])!r}, "rb").read(4096).hex())
    """, confine_args(bench))

    assert report["confined"], report["detail"]
    for name in ("umount", "remount_rw", "nested_umount", "signal_parent"):
        assert not report[name][0], (name, report[name])
    assert report["pid"] == [True, 1]
    assert report["see_parent"] == [True, False]
    assert report["parent_root"] == [True, []]  # pid 1 is the model itself
    if disk_of(bench["data"]) != "/dev/null":  # a filesystem on a block device: its raw bytes hold the references
        assert not report["read_disk"][0], "the raw disk under the data root is readable"


@needs_namespaces
def test_the_exit_status_is_the_models_and_the_model_dies_with_its_process(bench):
    code = CHILD + "sys.exit(7 if report['confined'] else 1)\n"
    args = json.dumps(confine_args(bench))
    done = subprocess.run([sys.executable, "-c", code, args], env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 7

    code = CHILD + "print(report['confined'], flush=True)\nimport time\ntime.sleep(60)\n"
    process = subprocess.Popen([sys.executable, "-c", code, args], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout.readline().strip() == "True"
    process.kill()  # what the runner does on a timeout: the model, a forked child, must die too
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert select.select([process.stdout], [], [], 10)[0] and process.stdout.read() == "", "the model outlived its process"


def test_no_confine_changes_nothing(bench):
    args = {**confine_args(bench), "enabled": False}
    report = run_child(f"attempt('read', lambda: Path({str(bench['data'] / 'mixtures.parquet')!r}).read_text())", args)
    assert report["confined"] is False and report["detail"] == "unconfined: --no-confine"
    assert report["read"] == [True, "PAR1 references"]


@needs_namespaces
def test_a_process_already_running_threads_is_confined_too(bench):
    # numpy's BLAS starts threads at import, and the kernel refuses a new user namespace to a multi-threaded
    # process: a harness whose child imported numpy before confine() must still be confined
    report = run_child(f"""
        attempt("read_reference", lambda: Path({str(bench['data'] / 'mixtures.parquet')!r}).read_bytes())
        attempt("numpy", lambda: float(numpy.ones((64, 64)) @ numpy.ones(64) @ numpy.ones(64)))
    """, confine_args(bench), before="import numpy, threading\nthreading.Thread(target=__import__('time').sleep, args=(2,)).start()")
    assert report["confined"], report["detail"]
    assert not report["read_reference"][0]
    assert report["numpy"] == [True, 4096.0]


@pytest.mark.skipif(shutil.which("unshare") is None or not namespaces_allowed(), reason="needs util-linux unshare and user namespaces")
def test_a_kernel_that_refuses_namespaces_leaves_the_run_unconfined_with_the_reason(bench):
    # a user namespace whose limit on nested user namespaces is 0: the kernel refuses unshare (ENOSPC)
    wrapper = ["unshare", "--user", "--map-root-user", "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"]
    report = run_child(f"attempt('read', lambda: Path({str(bench['data'] / 'mixtures.parquet')!r}).read_text())",
                       confine_args(bench), prefix=wrapper)
    assert report["confined"] is False
    assert report["detail"].startswith("unconfined: the kernel refuses user namespaces here (unshare failed: No space left on device")
    assert report["read"] == [True, "PAR1 references"]


def test_confine_never_raises_on_a_missing_scratch_folder(tmp_path):
    # in-process call is safe here: the check comes before anything is unshared
    from musicbench.confine import confine

    result = confine([tmp_path], tmp_path / "missing")
    assert result.confined is False
    assert result.detail.startswith("unconfined: ")

