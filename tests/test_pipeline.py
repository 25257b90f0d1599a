"""The DVC pipeline for real: `dvc repro` in a fresh git repository, then a no-op second run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from musicbench.benchmark import read_index
from musicbench.manifest import read_manifest
from tests.conftest import REPO_ROOT


def _run(args, cwd, env=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_dvc_repro_runs_the_whole_pipeline_and_second_run_does_nothing(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    for folder in ("musicbench", "manifests", "baselines"):
        shutil.copytree(REPO_ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["synth"].update(solo_per_instrument=3, duets_per_pair=1, duration=8.0,
                           instruments=["acoustic_guitar", "cello", "violin"])
    params["mixtures"].update(n_val=3, n_test=6)
    # the baselines train for real, at toy sizes: the test checks the wiring, not their quality
    params["nmf"].update(rank=8, iterations=20, separation_iterations=20, train_seconds_per_video=4.0)
    params["pixelplayer"]["weights"] = "train"  # the published weights were trained on other splits of these videos
    params["pixelplayer"]["cpu"].update(image_size=48, resize=64, steps=6, items_per_epoch=48, batch_size=4,
                                        lr_milestones=[4], checkpoint_every=3, val_every=3, val_items=3, log_every=2)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], repo)
    _run(dvc + ["init", "-q"], repo)
    # the stage commands call the `musicbench` script installed beside this interpreter
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    _run(dvc + ["repro"], repo, env)
    data = repo / "data"
    entries = read_manifest(data / "synth" / "manifest.csv")
    assert len(entries) == 9 + 2  # 3 solo per instrument, duets acoustic_guitar+violin and cello+acoustic_guitar
    assert all((data / e.video_path).is_file() for e in entries)
    assert json.loads((data / "music" / "acquire_report.json").read_text())["skipped"] is True
    assert len(read_index(data / "processed" / "videos.parquet")) == 11
    version = json.loads((data / "mixtures" / "benchmark.json").read_text())["benchmark_version"]
    summaries = {run.name: json.loads((run / "summary.json").read_text()) for run in (repo / "runs").iterdir() if run.is_dir()}
    assert {"oracle-mixture", "oracle-ibm", "oracle-irm", "motion_energy", "sound_follows_motion", "nmf", "pixelplayer"} == set(summaries)
    assert json.loads((repo / "models" / "nmf" / "nmf.json").read_text())["instruments"] == ["acoustic_guitar", "cello", "violin"]
    trained = json.loads((repo / "models" / "pixelplayer" / "summary.json").read_text())
    assert trained["steps"] == 6 and trained["completed"] and (repo / "models" / "pixelplayer" / "best.pt").is_file()
    card = json.loads((repo / "models" / "pixelplayer" / "weights.json").read_text())
    assert card["source"] == "trained here" and card["trained_on"]["benchmark_version"] == json.loads(
        (repo / "data" / "mixtures" / "benchmark.json").read_text())["benchmark_version"]
    assert summaries["nmf"]["uses_labels"] is True
    assert summaries["pixelplayer"]["duets"]["n_scored"] >= 1  # click-to-hear scored on the duet track
    assert all(s["benchmark_version"] == version and s["n_scored"] == 6 for s in summaries.values())
    assert abs(summaries["oracle-mixture"]["metrics"]["nsdr"]["mean"]) < 1e-6
    assert summaries["oracle-irm"]["metrics"]["nsdr"]["mean"] > 10
    board = json.loads((repo / "leaderboard" / "leaderboard.json").read_text())
    assert (repo / "leaderboard" / "index.html").is_file()
    metrics = json.loads(_run(dvc + ["metrics", "show", "--json"], repo))
    assert "motion_energy" in json.dumps(metrics) and "pixelplayer" in json.dumps(metrics) and board
    assert (repo / "dvc.lock").is_file()
    second = _run(dvc + ["repro"], repo, env)
    assert "didn't change, skipping" in second and "Running stage" not in second
    assert "up to date" in _run(dvc + ["status"], repo)
