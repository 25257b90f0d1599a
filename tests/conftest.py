"""Shared fixtures: a small MUSIC-Synth set generated once per test session (real soundfont, real ffmpeg)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from musicbench.benchmark import DataRoot
from musicbench.config import AudioConfig
from musicbench.mixtures import make_mixtures
from musicbench.process import ProcessConfig, process_manifest
from musicbench.splits import make_splits
from musicbench.synth import SynthConfig, generate_synth

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
AUDIO = AudioConfig.from_params(REPO_PARAMS)  # the repository's audio and frames sections

# Five instruments cover four MUSIC duet pairs: flute+violin, acoustic_guitar+violin,
# flute+trumpet and trumpet+tuba.
SMALL_SYNTH = dict(
    seed=7, solo_per_instrument=1, duets_per_pair=1, duration=7.0, width=128, height=96, fps=16,
    instruments=("acoustic_guitar", "flute", "trumpet", "tuba", "violin"), jobs=2,
)


@pytest.fixture(scope="session")
def small_synth_config() -> SynthConfig:
    return SynthConfig(audio=AUDIO, **SMALL_SYNTH)


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory, small_synth_config):
    """(data_root, manifest entries) of a small generated MUSIC-Synth set."""
    root = tmp_path_factory.mktemp("synth_root")
    entries = generate_synth(small_synth_config, root)
    return root, entries


# A processed MUSIC-Synth benchmark (splits + fixed mixtures) shared by the evaluation and baseline tests.
BENCH_SYNTH = dict(seed=11, solo_per_instrument=3, duets_per_pair=1, duration=8.0, width=128, height=96, fps=16,
                   instruments=("acoustic_guitar", "cello", "flute", "violin"), jobs=2)


def bench_params(**mixture_changes) -> dict:
    """params.yaml with the small benchmark's synth and mixture sizes."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["synth"].update({**BENCH_SYNTH, "instruments": list(BENCH_SYNTH["instruments"])})
    params["mixtures"].update(n_val=6, n_test=12, **mixture_changes)
    params["process"]["jobs"] = 2
    return params


def build_benchmark(root: Path, params: dict) -> dict:
    """process → splits → mixtures on a generated MUSIC-Synth set under root; the mixtures summary."""
    process_manifest(DataRoot(root).manifest_path("synth"), root, ProcessConfig.from_params(params))
    make_splits(params, root, repo=REPO_ROOT)
    return make_mixtures(params, root)


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory):
    """(data root, params, mixtures summary) of a small processed benchmark: 12 solo + 2 duet videos,
    6 val and 12 test items. Tests must not modify it (copy what they change)."""
    root = tmp_path_factory.mktemp("bench_root")
    params = bench_params()
    generate_synth(SynthConfig.from_params(params), root)
    summary = build_benchmark(root, params)
    return root, params, summary


@pytest.fixture(scope="session")
def still_bench_root(tmp_path_factory):
    """`bench_root` generated with ``synth.scene: still`` (only playing moves: motion alone gives the
    answer), for the tests of what motion can do. Tests must not modify it."""
    root = tmp_path_factory.mktemp("still_bench_root")
    params = bench_params()
    params["synth"]["scene"] = "still"
    generate_synth(SynthConfig.from_params(params), root)
    summary = build_benchmark(root, params)
    return root, params, summary


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m musicbench ARGS` for real; capture its text output."""
    return subprocess.run([sys.executable, "-m", "musicbench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def shared_lists(env: str, subfolder: str, marker: str, what: str) -> Path:
    """The folder of published lists `subfolder` of the repository's manifests/published holding
    `marker` (or $`env`, another copy of them); fails the calling test when neither has it."""
    for candidate in (os.environ.get(env), REPO_ROOT / "manifests" / "published" / subfolder):
        if candidate and (Path(candidate) / marker).is_file():
            return Path(candidate)
    pytest.fail(f"{what} not found in manifests/published/{subfolder} (nor ${env})")
