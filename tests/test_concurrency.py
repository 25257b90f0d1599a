"""The data root's lock and worker processes that die with their stage: real processes, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from musicbench.benchmark import DataRoot, read_index
from musicbench.concurrency import hold_data_root, read_holder
from musicbench.errors import MusicbenchError
from musicbench.manifest import read_manifest
from musicbench.process import validate_index

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def _holder_script(root: Path, stage: str) -> list[str]:
    """A Python process that takes the root's lock, says so, and sleeps."""
    code = textwrap.dedent(f"""
        import time
        from musicbench.concurrency import hold_data_root
        with hold_data_root({str(root)!r}, {stage!r}):
            print("held", flush=True)
            time.sleep(60)
    """)
    return [sys.executable, "-c", code]


def _alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _exe_name(pid: int) -> str:
    """The program file name of `pid`, "" once it has exited (processes come and go while we look)."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def test_second_holder_is_refused_naming_the_first_and_a_dead_holder_is_taken_over(tmp_path):
    holder = subprocess.Popen(_holder_script(tmp_path, "process"), stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MusicbenchError) as refused:
            with hold_data_root(tmp_path, "mixtures"):
                pytest.fail("two holders of one data root")
        message = str(refused.value)
        assert f"is in use by PID {holder.pid} " in message and "stage process" in message and "\n" not in message
        assert "hold_data_root" in message  # the holder's command line
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert read_holder(tmp_path)["pid"] == holder.pid  # the dead holder's record is still there
    with hold_data_root(tmp_path, "mixtures") as lock_path:
        assert read_holder(tmp_path)["pid"] == os.getpid() and read_holder(tmp_path)["stage"] == "mixtures"
        with hold_data_root(tmp_path, "download"):  # re-entrant in one process
            assert lock_path.is_file()
        assert lock_path.is_file()
    assert not DataRoot(tmp_path).lock_path.exists()  # removed on release: nothing left in the root


def test_a_waiting_run_gets_the_lock_when_the_holder_ends(tmp_path):
    holder = subprocess.Popen(_holder_script(tmp_path, "synth"), stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {holder.pid}"])
    with hold_data_root(tmp_path, "process", wait=30):
        assert read_holder(tmp_path)["pid"] == os.getpid()
    assert 0.8 < time.monotonic() - started < 30
    holder.wait()


def test_every_writing_stage_is_refused_while_another_holds_the_root(tmp_path):
    import yaml

    from musicbench.acquire import DownloadConfig, acquire_music, download_videos
    from musicbench.config import AudioConfig
    from musicbench.manifest import ManifestEntry
    from musicbench.mixtures import make_mixtures
    from musicbench.process import ProcessConfig, process_manifest
    from musicbench.splits import make_splits
    from musicbench.synth import SynthConfig, generate_synth

    params = yaml.safe_load(PARAMS.read_text())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video_id,kind,instruments,subset,source\n")
    video = ManifestEntry("AAAAAAAAAAA", "solo", ("flute",), "MUSIC-11", "youtube")
    stages = {
        "synth": lambda: generate_synth(SynthConfig.from_params(params), tmp_path),
        "download": lambda: download_videos([video], tmp_path, DownloadConfig(), show_progress=False),
        "acquire": lambda: acquire_music(params, tmp_path, show_progress=False),
        "process": lambda: process_manifest(manifest, tmp_path, ProcessConfig(audio=AudioConfig.from_params(params), size=8)),
        "splits": lambda: make_splits({**params, "dataset": {"source": "synth"}}, tmp_path, repo=REPO),
        "mixtures": lambda: make_mixtures(params, tmp_path),
    }
    holder = subprocess.Popen(_holder_script(tmp_path, "process"), stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        for name, stage in stages.items():
            with pytest.raises(MusicbenchError, match=rf"is in use by PID {holder.pid} .*then rerun `{name}`$"):
                stage()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def _process_cli(root: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "musicbench", "process", "--params", str(PARAMS), "--root", str(root), "--jobs", str(jobs)]


def _check_complete(root: Path) -> None:
    expected = sorted(entry.video_id for entry in read_manifest(DataRoot(root).manifest_path("synth")))
    assert sorted(read_index(DataRoot(root).index_path)["video_id"]) == expected
    assert validate_index(DataRoot(root).index_path, root) == []


def test_two_concurrent_process_runs_end_with_a_complete_valid_index(small_synth, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(small_synth[0], root)
    runs = [subprocess.Popen(_process_cli(root, 1), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(run.pid, run.wait(timeout=600), run.stderr.read()) for run in runs]
    codes = sorted(code for _, code, _ in outcomes)
    assert codes == [0, 2], outcomes
    (winner, _, _), (_, _, refusal) = sorted(outcomes, key=lambda outcome: outcome[1])
    lines = [line for line in refusal.splitlines() if line.strip()]
    # the loser names the winner, or (when it looked between the winner's lock and its record) says the record is not written yet
    assert len(lines) == 1 and lines[0].startswith("error: data root"), refusal
    assert f"in use by PID {winner} " in lines[0] or "in use by another process (its record is not written yet)" in lines[0], refusal
    _check_complete(root)
    assert not DataRoot(root).lock_path.exists()


def test_sigkill_of_process_leaves_no_worker_running(small_synth, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(small_synth[0], root)
    run = subprocess.Popen(_process_cli(root, 2), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and run.poll() is None and time.monotonic() < deadline:
        workers = {pid for pid in _descendants(run.pid) if "python" in _exe_name(pid)}
        time.sleep(0.01)
    assert len(workers) >= 2, "the pool's workers never started"
    started = _descendants(run.pid)
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if _alive(pid)], "workers of a killed `musicbench process` still run"
    assert read_holder(root)["pid"] == run.pid  # the dead run's lock record, taken over below
    again = subprocess.run(_process_cli(root, 2), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    _check_complete(root)
