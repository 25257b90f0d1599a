"""The trust chain, attacked as a hostile user would: each test is an attack that once worked (issue 25),
run for real through the harness (real model processes, real confinement, real files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.export import score_estimates
from musicbench.leaderboard.runs import find_runs
from musicbench.model_runner import MODEL_ENVIRONMENT
from tests.conftest import REPO_ROOT, run_cli
from tests.test_confine import needs_namespaces, run_child

MUSICBENCH = Path(sys.executable).parent / "musicbench"  # the console script: its import path has no working folder
EXAMPLE_MODEL = REPO_ROOT / "baselines" / "motion_energy.py"

# Tries to read every file and list every folder named in `paths` (comma-separated); raises naming
# what it reached, else splits the mixture evenly.
SNOOPING_MODEL = textwrap.dedent('''
    import os

    def reach(path):
        if os.path.isdir(path):
            for folder, _, files in os.walk(path):
                for name in files:
                    with open(os.path.join(folder, name), "rb") as handle:
                        if handle.read(1):
                            return True
            return False
        with open(path, "rb") as handle:
            return bool(handle.read(1))

    class Model:
        def __init__(self, paths):
            self.paths = [p for p in paths.split(",") if p]

        def separate(self, mixture, frames, sample_rate):
            reached = []
            for path in self.paths:
                try:
                    if reach(path):
                        reached.append(path)
                except OSError:
                    pass
            if reached:
                raise RuntimeError(f"reached {len(reached)} of {len(self.paths)}: " + ", ".join(reached))
            return [mixture / len(frames)] * len(frames)

    def load_model(paths="", device="cpu"):
        return Model(paths)
''')


def copy_root(bench_root, target: Path) -> Path:
    """A private copy of the small benchmark's data root (tests may change it)."""
    shutil.copytree(bench_root[0], target, ignore=shutil.ignore_patterns("score_cache"))
    return target


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "processed").rglob("*") if p.is_file() and p.suffix == ".flac")


def snooping(tmp_path: Path, paths: list[Path]) -> tuple[Path, dict[str, str]]:
    model = tmp_path / "snoop.py"
    model.write_text(SNOOPING_MODEL)
    return model, {"paths": ",".join(map(str, paths))}


def assert_nothing_reached(out: Path) -> None:
    inference = pd.read_parquet(out / "inference.parquet")
    assert (inference["status"] == "ok").all(), list(inference["reason"])
    assert json.loads((out / "provenance.json").read_text())["confined"] is True


# ------------------------------------------------------------------------ nothing runs before confinement


@needs_namespaces
def test_modules_in_the_working_folder_never_run_before_confinement(bench_root, tmp_path):
    """The model process put the working folder first on its import path before confining itself: a
    json.py there ran unconfined, kept handles on the hidden folders and published NSDR 99."""
    root = bench_root[0]
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("json", "numpy", "struct", "socket", "platform", "argparse", "sitecustomize", "usercustomize"):
        (evil / f"{name}.py").write_text(f"open({str(evil / ('ran-' + name))!r}, 'w').write('unconfined')\n")
    result = subprocess.run([MUSICBENCH, "evaluate", EXAMPLE_MODEL, "--params", REPO_ROOT / "params.yaml", "--root", root,
                             "--out", tmp_path / "runs" / "run", "--device", "cpu", "--limit", "2"],
                            cwd=evil, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in evil.iterdir() if p.name.startswith("ran-")) == []
    assert json.loads((tmp_path / "runs" / "run" / "provenance.json").read_text())["confined"] is True


@needs_namespaces
def test_the_model_gets_a_minimal_environment(bench_root, tmp_path, monkeypatch):
    root = bench_root[0]
    monkeypatch.setenv("MUSICBENCH_TEST_TOKEN", "secret-token")
    model = tmp_path / "env.py"
    model.write_text(textwrap.dedent('''
        import os, re

        class Model:
            def __init__(self, allowed):
                self.allowed = re.compile(allowed)

            def separate(self, mixture, frames, sample_rate):
                seen = sorted(name for name in os.environ if name not in ("HOME", "TMPDIR") and not self.allowed.fullmatch(name))
                if any("secret" in value for value in os.environ.values()) or seen:
                    raise RuntimeError("sees " + ", ".join(seen))
                return [mixture / len(frames)] * len(frames)

        def load_model(allowed, device="cpu"):
            return Model(allowed)
    '''))
    evaluate(model, root, tmp_path / "run", device="cpu", limit=1, options={"allowed": MODEL_ENVIRONMENT.pattern})
    assert_nothing_reached(tmp_path / "run")


@needs_namespaces
def test_the_model_never_holds_the_harness_stderr(bench_root, tmp_path):
    """The model inherited the harness's stderr: with stderr going to a log file, it reopened
    /proc/self/fd/2 read-write, read the earlier log, truncated it and rewrote it."""
    model = tmp_path / "logger.py"
    model.write_text(textwrap.dedent('''
        import sys

        class Model:
            def separate(self, mixture, frames, sample_rate):
                print("printed \\x1b[31mby the model")
                try:
                    with open("/proc/self/fd/2", "r+b") as log:
                        seen = log.read()
                        log.seek(0)
                        log.truncate()
                except OSError:
                    seen = b""
                if b"written before" in seen:
                    raise RuntimeError("read the harness's log")
                return [mixture / len(frames)] * len(frames)

        def load_model(device="cpu"):
            return Model()
    '''))
    log = tmp_path / "evaluate.log"
    with open(log, "w") as handle:
        handle.write("written before the run\n")
        handle.flush()
        result = subprocess.run([MUSICBENCH, "evaluate", model, "--params", REPO_ROOT / "params.yaml", "--root", bench_root[0],
                                 "--out", tmp_path / "runs" / "logger", "--device", "cpu", "--limit", "1"],
                                stdout=subprocess.DEVNULL, stderr=handle, timeout=300)
    assert result.returncode == 0
    text = log.read_text()
    assert text.startswith("written before the run\n") and "printed \ufffd[31mby the model" in text and "\x1b" not in text
    assert_nothing_reached(tmp_path / "runs" / "logger")


# ------------------------------------------------------------------------ the references under another name


def dvc_project(bench_root, tmp_path: Path) -> tuple[Path, Path]:
    """A DVC project holding a copy of the data root, whose cache holds hardlinks of its audio (as DVC's
    cache.type hardlink makes them); returns (project, data root)."""
    project = tmp_path / "project"
    root = copy_root(bench_root, project / "data")
    cache = project / ".dvc" / "cache" / "files" / "md5"
    (project / ".dvc" / "config").parent.mkdir(parents=True, exist_ok=True)
    (project / ".dvc" / "config").write_text('[cache]\n    type = "hardlink,symlink"\n')
    for number, path in enumerate(audio_files(root)):
        target = cache / f"{number:02x}" / "0123456789abcdef"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
    (cache / "ff").mkdir()
    return project, root


@needs_namespaces
def test_the_dvc_cache_and_every_copy_of_the_references_are_hidden(bench_root, tmp_path, monkeypatch):
    """DVC's cache holds the references under other names (hardlinks; dvc.lock says which is which):
    a model reading them scored NSDR inf on 97 of 100 items and ranked first. Run folders written
    elsewhere were readable too, and so was a cache folder set in DVC's global config."""
    project, root = dvc_project(bench_root, tmp_path)
    remote = tmp_path / "remote"  # a local DVC remote named in config.local: pushed copies of the cache
    remote.mkdir()
    (remote / "clip.flac").write_bytes(audio_files(root)[0].read_bytes())
    (project / ".dvc" / "config.local").write_text(f"['remote \"storage\"']\n    url = {remote}\n")
    shared_cache, global_config = tmp_path / "shared_cache", tmp_path / "dvc_global"  # `dvc config --global cache.dir`
    shared_cache.mkdir()
    global_config.mkdir()
    (shared_cache / "clip.flac").write_bytes(audio_files(root)[1].read_bytes())
    (global_config / "config").write_text(f"[cache]\n    dir = {shared_cache}\n")
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(global_config))
    evaluate(EXAMPLE_MODEL, root, tmp_path / "elsewhere" / "motion", device="cpu", limit=2)  # a run folder elsewhere
    targets = [project / ".dvc", remote, shared_cache, tmp_path / "elsewhere" / "motion" / "estimates", audio_files(root)[0]]
    (project / "models").mkdir()
    weights = project / "models" / "weights.bin"  # a model's own DVC output: in the cache too, and readable to it
    weights.write_bytes(b"weights")
    os.link(weights, project / ".dvc" / "cache" / "files" / "md5" / "ff" / "0123456789abcdef")
    model, options = snooping(project / "models", targets)
    evaluate(model, root, project / "runs" / "snoop", device="cpu", options=options, limit=2)
    assert_nothing_reached(project / "runs" / "snoop")
    # the same attempts unconfined reach every one of them: the attack is real
    evaluate(model, root, project / "runs" / "unconfined", device="cpu", options=options, limit=1, confine=False)
    reason = pd.read_parquet(project / "runs" / "unconfined" / "inference.parquet")["reason"].iloc[0]
    assert reason.startswith(f"RuntimeError: reached {len(targets)} of {len(targets)}: "), reason


@needs_namespaces
def test_no_copy_of_the_references_leaves_the_data_root(bench_root, tmp_path):
    """The leaderboard's demo WAVs (the oracle runs' estimates) were readable by a model, and so were the
    oracle's estimates in its run folder wherever it was moved or copied (`cp -r leaderboard site`):
    an oracle now writes no estimates, and its scores are computed again from the data root."""
    from musicbench.leaderboard import build_leaderboard

    root = copy_root(bench_root, tmp_path / "data")
    oracle = evaluate(None, root, tmp_path / "runs" / "oracle-ibm", oracle="ibm", device="cpu")
    evaluate(EXAMPLE_MODEL, root, tmp_path / "runs" / "motion_energy", device="cpu")
    assert not (tmp_path / "runs" / "oracle-ibm" / "estimates").exists() and oracle["metrics"]["nsdr"]["mean"] > 10
    board = build_leaderboard(tmp_path / "runs", tmp_path / "site", root, demo_items=1)
    rows = {row["folder"]: row for row in board["tables"][0]["rows"]}
    assert rows["oracle-ibm"]["demo"] is None and "never published" in rows["oracle-ibm"]["demo_note"]
    assert rows["oracle-ibm"]["rescored"] and not rows["oracle-ibm"]["untrusted"]  # scored again from the data root
    assert rows["motion_energy"]["demo"] and not list((tmp_path / "site" / "demo").glob("oracle*"))
    model, options = snooping(tmp_path, [tmp_path / "site"])  # a model's published estimates: hidden all the same
    evaluate(model, root, tmp_path / "elsewhere" / "snoop", device="cpu", options=options, limit=1)
    assert_nothing_reached(tmp_path / "elsewhere" / "snoop")


@needs_namespaces
def test_exports_and_the_boxes_file_are_hidden(bench_root, tmp_path):
    """An export folder's labels.csv was readable by a label-free model (ranked in the main track), and
    so was the localization ground truth given with --boxes."""
    from musicbench.export import export_items

    root = copy_root(bench_root, tmp_path / "data")
    export_items(root, tmp_path / "items", limit=1)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"abcdefghijk_0_1/frame_001/00008.jpg": {
        "bbox": [{"box": [1, 2, 3, 4], "category_id": 0}], "wdith": 112, "height": 112}}))
    model, options = snooping(tmp_path, [tmp_path / "items" / "labels.csv", boxes])
    evaluate(model, root, tmp_path / "runs" / "snoop", device="cpu", options=options, limit=1, boxes_file=boxes)
    assert_nothing_reached(tmp_path / "runs" / "snoop")


def test_export_overwrite_replaces_only_an_export(bench_root, tmp_path):
    """`musicbench export project --overwrite` replaced a project's own files with the export."""
    from musicbench.export import export_items

    project = tmp_path / "project"
    project.mkdir()
    (project / "thesis.tex").write_text("years of work")
    with pytest.raises(MusicbenchError, match="holds 'thesis.tex', which no export writes"):
        export_items(bench_root[0], project, limit=1, overwrite=True)
    assert (project / "thesis.tex").read_text() == "years of work"
    musdb = tmp_path / "musdb18hq" / "test" / "track1"  # folders holding a mixture.wav, and more: not an export's
    musdb.mkdir(parents=True)
    for stem in ("mixture", "vocals"):
        (musdb / f"{stem}.wav").write_bytes(b"RIFF stems")
    with pytest.raises(MusicbenchError, match="holds 'track1', which no export writes"):
        export_items(bench_root[0], musdb.parent, limit=1, overwrite=True)
    assert (musdb / "vocals.wav").read_bytes() == b"RIFF stems"
    export_items(bench_root[0], tmp_path / "items", limit=1)
    export_items(bench_root[0], tmp_path / "items", limit=1, overwrite=True)  # an export replaces an export


def test_heatmaps_far_larger_than_the_frames_are_refused(bench_root, tmp_path):
    """`localize` returning (n, 1, 2_000_000) heatmaps took the harness from 0.4 to 2.2 GB while scoring."""
    model = tmp_path / "wide.py"
    model.write_text(textwrap.dedent('''
        import numpy as np

        class Model:
            def separate(self, mixture, frames, sample_rate):
                return [mixture / len(frames)] * len(frames)

            def localize(self, mixture, frames, sample_rate):
                return np.ones((len(frames), 1, 2_000_000), np.float32)

        def load_model(device="cpu"):
            return Model()
    '''))
    summary = evaluate(model, bench_root[0], tmp_path / "run", device="cpu", limit=1)
    assert summary["n_excluded"] == 1
    assert list(summary["excluded_reasons"])[0].startswith("localize: heatmaps have shape (2, 1, 2000000): more than 4 times")


@needs_namespaces
def test_a_data_root_folder_that_is_a_symlink_is_hidden_where_it_leads(bench_root, tmp_path):
    """With data/synth/stems a symlink to another disk, only data/synth was hidden: the model read every
    stem at the link's target."""
    root = copy_root(bench_root, tmp_path / "data")
    disk = tmp_path / "bigdisk"
    disk.mkdir()
    shutil.move(root / "synth" / "stems", disk / "stems")
    os.symlink(disk / "stems", root / "synth" / "stems")
    model, options = snooping(tmp_path, [disk / "stems"])
    evaluate(model, root, tmp_path / "runs" / "snoop", device="cpu", options=options, limit=1)
    assert_nothing_reached(tmp_path / "runs" / "snoop")


@needs_namespaces
def test_a_stray_link_to_the_root_folder_neither_blocks_nor_slows_a_run(bench_root, tmp_path):
    """`ln -s / runs/host` made every evaluation walk the whole filesystem, then refuse to run."""
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink("/", runs / "host")
    model, options = snooping(tmp_path, [bench_root[0] / "mixtures"])
    evaluate(model, bench_root[0], runs / "snoop", device="cpu", options=options, limit=1)
    assert_nothing_reached(runs / "snoop")


@needs_namespaces
def test_a_hardlink_outside_the_hidden_folders_stops_the_run(bench_root, tmp_path):
    root = copy_root(bench_root, tmp_path / "data")
    backup = tmp_path / "backup"
    backup.mkdir()
    os.link(audio_files(root)[0], backup / "copy.flac")  # e.g. a backup made with cp -al
    model, options = snooping(tmp_path, [backup / "copy.flac"])
    with pytest.raises(MusicbenchError, match=r"1 file\(s\) the model must not see have other names elsewhere \(hardlinks\)"):
        evaluate(model, root, tmp_path / "runs" / "snoop", device="cpu", options=options, limit=1)
    assert not (tmp_path / "runs" / "snoop").exists()
    evaluate(model, root, tmp_path / "runs" / "snoop", device="cpu", options=options, limit=1, hide=(backup,))
    assert_nothing_reached(tmp_path / "runs" / "snoop")


@needs_namespaces
def test_other_mounts_of_the_hidden_filesystem_are_hidden_too(tmp_path):
    """A bind mount of the data root's filesystem elsewhere reaches the same files by another path."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    data, mirror, scratch = tmp_path / "data", tmp_path / "mirror", tmp_path / "scratch"
    for folder in (data, mirror, scratch):
        folder.mkdir()
    (data / "reference.flac").write_bytes(b"fLaC reference audio")
    wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
               f'mount --bind {tmp_path} {mirror} && exec "$@"', "sh"]
    mirrored = mirror / "data" / "reference.flac"
    report = run_child(f"attempt('mirror', lambda: Path({str(mirrored)!r}).read_bytes().decode())",
                       {"hidden": [str(data)], "scratch": str(scratch)}, prefix=wrapper,
                       before=f"assert open({str(mirrored)!r}).read() == 'fLaC reference audio'")  # the other name is real
    assert report["confined"], report["detail"]
    assert not report["mirror"][0], report["mirror"]


# ------------------------------------------------------------------------ confinement is not optional


@needs_namespaces
def test_a_run_folder_in_the_temporary_folder_stays_confined(bench_root, tmp_path, monkeypatch):
    """With --out /tmp/NAME the scratch folder lay inside a hidden path (the runs folder, /tmp): the run went
    on unconfined, and only provenance said so."""
    root = bench_root[0]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr("tempfile.tempdir", None)
    model, options = snooping(tmp_path, [root / "mixtures"])
    evaluate(model, root, temporary / "run", device="cpu", options=options, limit=1)
    assert_nothing_reached(temporary / "run")


@needs_namespaces
def test_confinement_that_cannot_be_had_stops_the_run(bench_root, tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    root = bench_root[0]
    # a user namespace whose limit on nested user namespaces is 0: the kernel refuses the model's unshare
    wrapper = ["unshare", "--user", "--map-root-user", "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"]
    command = [*wrapper, MUSICBENCH, "evaluate", EXAMPLE_MODEL, "--params", REPO_ROOT / "params.yaml", "--root", root,
               "--device", "cpu", "--limit", "1"]
    refused = subprocess.run([*command, "--out", tmp_path / "runs" / "a"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "could not be confined" in refused.stderr and "--no-confine" in refused.stderr
    assert not (tmp_path / "runs" / "a").exists()
    allowed = subprocess.run([*command, "--out", tmp_path / "runs" / "b", "--no-confine"], capture_output=True, text=True,
                             timeout=300)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads((tmp_path / "runs" / "b" / "provenance.json").read_text())["confined"] is False


def test_an_unconfined_model_cannot_sign_score_cache_entries(bench_root, tmp_path):
    """An unconfined model can read the score cache's key and sign entries that later runs would trust:
    the key is renewed after every unconfined run."""
    root = copy_root(bench_root, tmp_path / "data")
    evaluate(None, root, tmp_path / "runs" / "floor", oracle="mixture", device="cpu", limit=1)
    key = (root / "score_cache" / ".secret").read_bytes()
    evaluate(EXAMPLE_MODEL, root, tmp_path / "runs" / "example", device="cpu", limit=1, confine=False)
    assert (root / "score_cache" / ".secret").read_bytes() != key


# ------------------------------------------------------------------------ run folders


def test_a_path_with_a_newline_cannot_forge_a_janitor_record(tmp_path):
    """A model file named "sep<newline>tree ..py" made the janitor remove the harness's working folder."""
    victim = tmp_path / "work"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    code = textwrap.dedent(f'''
        import os
        from musicbench.concurrency import remove_if_killed
        remove_if_killed({str(tmp_path / "runs" / "sep")!r} + "\\ntree " + {str(victim)!r})
        os.kill(os.getpid(), 9)
    ''')
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, timeout=60)
    time.sleep(1)
    assert (victim / "precious.txt").read_text() == "mine"



def test_overwrite_replaces_only_a_run_folder(bench_root, tmp_path):
    """--overwrite deleted whatever --out named: `evaluate --out <root>/mixtures --overwrite` replaced the
    benchmark definition, `score --out runs --overwrite` deleted every other run."""
    root = copy_root(bench_root, tmp_path / "data")
    before = sorted(p.name for p in (root / "mixtures").iterdir())
    for out in (root / "mixtures", root, tmp_path):
        with pytest.raises(MusicbenchError, match="overlaps"):
            evaluate(None, root, out, oracle="mixture", device="cpu", limit=1, overwrite=True)
    assert sorted(p.name for p in (root / "mixtures").iterdir()) == before
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        evaluate(None, root, runs / name, oracle="mixture", device="cpu", limit=1)
    result = run_cli("evaluate", "--oracle", "mixture", "--root", root, "--out", runs, "--overwrite", "--limit", "1")
    assert result.returncode == 2 and "holds 'a', 'b', which no run writes" in result.stderr, result.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b"]
    (runs / "a" / "notes.txt").write_text("mine")
    with pytest.raises(MusicbenchError, match="holds 'notes.txt', which no run writes"):
        evaluate(None, root, runs / "a", oracle="mixture", device="cpu", limit=1, overwrite=True)
    assert (runs / "a" / "notes.txt").read_text() == "mine"
    separation = tmp_path / "sepwork"  # a run's names, not a run's content: another tool's estimates
    (separation / "estimates").mkdir(parents=True)
    (separation / "estimates" / "track1_vocals.wav").write_bytes(b"RIFF mine")
    with pytest.raises(MusicbenchError, match="holds 'estimates', which no run writes"):
        evaluate(None, root, separation, oracle="mixture", device="cpu", limit=1, overwrite=True)
    (separation / "estimates" / "track1_vocals.wav").rename(separation / "estimates" / "track1.npy")
    with pytest.raises(MusicbenchError, match="holds no run"):
        evaluate(None, root, separation, oracle="mixture", device="cpu", limit=1, overwrite=True)
    assert (separation / "estimates" / "track1.npy").read_bytes() == b"RIFF mine"


def test_the_leaderboard_writes_only_into_a_folder_of_its_own(bench_root, tmp_path):
    """`musicbench leaderboard --out .` in a project folder deleted its metrics/*.json and metrics.json."""
    from musicbench.leaderboard import build_leaderboard

    root = bench_root[0]
    evaluate(None, root, tmp_path / "runs" / "floor", oracle="mixture", device="cpu", limit=1)
    project = tmp_path / "project"
    (project / "metrics").mkdir(parents=True)
    (project / "metrics" / "train.json").write_text('{"loss": 0.1}')
    (project / "metrics.json").write_text("{}")
    with pytest.raises(MusicbenchError, match="holds 'metrics', 'metrics.json', which no leaderboard build writes"):
        build_leaderboard(tmp_path / "runs", project, root)
    assert (project / "metrics" / "train.json").read_text() == '{"loss": 0.1}' and (project / "metrics.json").exists()
    build_leaderboard(tmp_path / "runs", tmp_path / "board", root)
    build_leaderboard(tmp_path / "runs", tmp_path / "board", root)  # a board's own folder: rebuilt


def test_two_runs_cannot_claim_one_run_folder(bench_root, tmp_path):
    """Two runs started 1 s apart into one --out both exited 0, and the second silently replaced the first."""
    root = bench_root[0]
    model = tmp_path / "slow.py"
    release = tmp_path / "release"  # the first run's model waits for it: the second run starts while the first runs
    model.write_text(textwrap.dedent(f'''
        import os, time

        class Model:
            def separate(self, mixture, frames, sample_rate):
                deadline = time.monotonic() + 120
                while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
                    time.sleep(0.1)
                return [mixture / len(frames)] * len(frames)

        def load_model(device="cpu"):
            return Model()
    '''))
    out = tmp_path / "runs" / "shared"
    first = threading.Thread(target=evaluate, args=(model, root, out), kwargs={"device": "cpu", "limit": 1, "timeout": 150})
    first.start()
    try:
        deadline = time.monotonic() + 60
        while not list(out.parent.glob(".shared.tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        result = run_cli("evaluate", "--oracle", "mixture", "--root", root, "--out", out, "--limit", "1", "--overwrite")
    finally:
        release.write_text("go")
        first.join()
    assert result.returncode == 2 and "is being written by another run" in result.stderr, result.stderr
    assert json.loads((out / "provenance.json").read_text())["oracle"] is None  # the first run's, whole
    assert [p.name for p in out.parent.iterdir()] == ["shared"]


# ------------------------------------------------------------------------ failing never pays


LOCALIZE_FAILS = textwrap.dedent('''
    import numpy as np

    class Model:
        def __init__(self, fail_on):
            self.fail_on = fail_on.split(",")

        def separate(self, mixture, frames, sample_rate):
            return [mixture / len(frames)] * len(frames)

        def localize(self, mixture, frames, sample_rate):
            if f"{float(mixture.sum()):.6f}" in self.fail_on:
                raise RuntimeError("no idea where")
            return frames.astype(np.float32).std(axis=(1, 4))

    def load_model(fail_on="", device="cpu"):
        return Model(fail_on)
''')


def test_a_failed_localize_is_charged_like_a_failed_separate(bench_root, tmp_path):
    """A localize that failed on a model's 3 worst items raised its cIoU from 0.213 to 0.261 and its
    pointing game from 0.75 to 0.90, and the run still reported complete."""
    from musicbench.benchmark import DataRoot

    root = bench_root[0]
    model = tmp_path / "localizer.py"
    model.write_text(LOCALIZE_FAILS)
    honest = evaluate(model, root, tmp_path / "runs" / "honest", device="cpu", limit=6)
    items = pd.read_parquet(tmp_path / "runs" / "honest" / "items.parquet")
    worst = items.groupby("item_id")["ciou"].mean().nsmallest(2).index
    fail_on = ",".join(f"{float(item.mixture.sum()):.6f}" for item in DataRoot(root).iter_items("test", 6)
                       if item.item_id in set(worst))
    skipped = evaluate(model, root, tmp_path / "runs" / "skipped", device="cpu", limit=6, options={"fail_on": fail_on})
    assert honest["complete"] and not skipped["complete"]
    assert skipped["n_excluded"] == 2
    assert list(skipped["excluded_reasons"]) == ["localize: RuntimeError: no idea where (at localizer.py:13)"]
    assert skipped["localization"]["ciou_mean"] <= honest["localization"]["ciou_mean"]
    figures = [key for key in honest["localization"] if key != "n"]
    assert {"dsol_ciou_success@0.3", "ciou_t05_auc"} <= set(figures)  # every variant is charged alike
    for key in figures:
        assert skipped["localization"][key] <= honest["localization"][key], key
    assert skipped["metrics"]["nsdr"]["mean"] is None  # charged −inf, like a failed separate
    runs, _ = find_runs(tmp_path / "runs")
    assert {run.folder for run in runs} == {"honest", "skipped"}


def test_an_estimate_folder_without_some_heatmaps_is_charged(bench_root, tmp_path):
    """The same through `musicbench score`: heatmaps for some mixture items only."""
    import numpy as np
    import soundfile as sf

    from musicbench.benchmark import DataRoot

    root = bench_root[0]
    estimates = tmp_path / "est"
    for number, item in enumerate(DataRoot(root).iter_items("test", 3)):
        folder = estimates / item.item_id
        folder.mkdir(parents=True)
        for k in range(len(item.references)):
            sf.write(folder / f"source{k}.wav", item.mixture / len(item.references), item.sample_rate, subtype="FLOAT")
            if number:  # none for the first item
                np.save(folder / f"heatmap{k}.npy", np.ones((4, 4), dtype=np.float32))
    summary = score_estimates(estimates, root, tmp_path / "runs" / "files", name="files", limit=3)
    assert summary["n_excluded"] == 1 and not summary["complete"]
    assert list(summary["excluded_reasons"]) == ["localize: no heatmaps for this item (a run that localizes must localize every item)"]


# ------------------------------------------------------------------------ what a model says of itself


def test_an_absurd_parameter_count_is_refused(bench_root, tmp_path):
    """A model claiming 2**63 parameters was accepted by evaluate and crashed `musicbench leaderboard`."""
    model = tmp_path / "huge.py"
    model.write_text(textwrap.dedent('''
        class Parameter:
            def numel(self):
                return 2 ** 63

        class Model:
            def parameters(self):
                return [Parameter()]

            def separate(self, mixture, frames, sample_rate):
                return [mixture / len(frames)] * len(frames)

        def load_model(device="cpu"):
            return Model()
    '''))
    with pytest.raises(MusicbenchError, match=r"parameter count is not an integer from 0 to 2\*\*53"):
        evaluate(model, bench_root[0], tmp_path / "run", device="cpu", limit=1)


@needs_namespaces
def test_a_model_killed_by_the_kernel_is_reported_as_killed(bench_root, tmp_path):
    """A model killed for memory (SIGKILL from the kernel) was reported as "exit code 247"."""
    from musicbench.model_runner import ModelRunner

    model = tmp_path / "sleeper.py"
    model.write_text(textwrap.dedent('''
        import time

        class Model:
            def separate(self, mixture, frames, sample_rate):
                time.sleep(600)

        def load_model(device="cpu"):
            return Model()
    '''))
    import numpy as np

    marker = tmp_path / "hidden-marker"
    marker.mkdir()
    with ModelRunner(model, hide_paths=[marker], timeout=120) as runner:
        result: dict = {}
        caller = threading.Thread(target=lambda: result.update(
            call=runner.call("separate", mixture=np.zeros(16, np.float32), frames=np.zeros((2, 1, 4, 4, 3), np.uint8),
                             sample_rate=11025)))
        caller.start()
        time.sleep(2)
        children = Path(f"/proc/{runner._process.pid}/task/{runner._process.pid}/children").read_text().split()
        while children:  # the innermost process is the model (pid 1 of its namespace): what the kernel would kill
            innermost = children[-1]
            children = Path(f"/proc/{innermost}/task/{innermost}/children").read_text().split()
        os.kill(int(innermost), 9)
        caller.join(60)
    assert not result["call"].ok
    assert result["call"].reason == "the model process died while running separate (killed by SIGKILL (out of memory?))"


@needs_namespaces
def test_the_scratch_space_is_capped_and_in_memory(tmp_path):
    """Scratch writes (host disk, /dev/shm) had no cap."""
    import numpy as np

    from musicbench.model_runner import ModelRunner

    model = tmp_path / "writer.py"
    model.write_text(textwrap.dedent('''
        import os
        import numpy as np

        class Model:
            def separate(self, mixture, frames, sample_rate):
                for folder in (os.environ["TMPDIR"], "/dev/shm"):
                    try:
                        with open(os.path.join(folder, "big.bin"), "wb") as handle:
                            handle.write(bytes(4 << 20))
                    except OSError as exc:
                        raise RuntimeError(f"{folder}: {exc.strerror}")
                return np.zeros((2, len(mixture)), np.float32)

        def load_model(device="cpu"):
            return Model()
    '''))
    with ModelRunner(model, scratch_bytes=1 << 20) as runner:
        scratch = runner.scratch
        result = runner.call("separate", mixture=np.zeros(16, np.float32), frames=np.zeros((2, 1, 4, 4, 3), np.uint8),
                             sample_rate=11025)
        assert os.listdir(scratch) == []  # nothing reaches the host's disk
    assert not result.ok and "No space left on device" in result.reason, result.reason
    assert not os.path.exists(scratch)
