"""Shared fixtures: a small MUSIC-Synth set generated once per test session (real soundfont, real ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicbench.synth import SynthConfig, generate_synth

REPO_ROOT = Path(__file__).resolve().parents[1]

# Five instruments cover four MUSIC duet pairs: flute+violin, acoustic_guitar+violin,
# flute+trumpet and trumpet+tuba.
SMALL_SYNTH = dict(
    seed=7, solo_per_instrument=1, duets_per_pair=1, duration=7.0, width=128, height=96, fps=16,
    instruments=("acoustic_guitar", "flute", "trumpet", "tuba", "violin"), jobs=2,
)


@pytest.fixture(scope="session")
def small_synth_config() -> SynthConfig:
    return SynthConfig(**SMALL_SYNTH)


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory, small_synth_config):
    """(data_root, manifest entries) of a small generated MUSIC-Synth set."""
    root = tmp_path_factory.mktemp("synth_root")
    entries = generate_synth(small_synth_config, root)
    return root, entries
