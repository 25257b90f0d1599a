"""The DVC pipeline for real: `dvc repro` in a fresh git repository, then a no-op second run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from musicbench.manifest import read_manifest
from tests.conftest import REPO_ROOT


def _run(args, cwd, env=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_dvc_repro_generates_synth_and_second_run_does_nothing(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    shutil.copytree(REPO_ROOT / "musicbench", repo / "musicbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["synth"].update(solo_per_instrument=1, duets_per_pair=0, duration=3.0, instruments=["cello", "tuba"])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], repo)
    _run(dvc + ["init", "-q"], repo)
    # the stage commands call the `musicbench` script installed beside this interpreter
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    _run(dvc + ["repro"], repo, env)
    entries = read_manifest(repo / "data" / "synth" / "manifest.csv")
    assert [e.video_id for e in entries] == ["solo_cello_00", "solo_tuba_00"]
    assert all((repo / "data" / e.video_path).is_file() for e in entries)
    assert (repo / "dvc.lock").is_file()
    second = _run(dvc + ["repro"], repo, env)
    assert "didn't change, skipping" in second and "Running stage" not in second
    assert "up to date" in _run(dvc + ["status"], repo)
