"""MUSIC-Synth: decoded videos, stems, boxes, motion, determinism and bad input (real ffmpeg and soundfont)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from musicbench.errors import MusicbenchError
from musicbench.instruments import MUSIC_DUET_PAIRS, MUSIC_INSTRUMENTS
from musicbench.manifest import entry_path, read_manifest
from musicbench.media import probe, read_audio, read_frames
from musicbench.synth import SynthConfig, VideoSpec, generate_synth, plan_videos
from musicbench.synth.generate import render_stems, video_rng
from tests.conftest import SMALL_SYNTH, run_cli


def test_plan_covers_every_instrument_and_duet_pair():
    config = SynthConfig(instruments=MUSIC_INSTRUMENTS)
    specs = plan_videos(config)
    solos = [s for s in specs if s.kind == "solo"]
    duets = {s.instruments for s in specs if s.kind == "duet"}
    assert {s.instruments[0] for s in solos} == set(MUSIC_INSTRUMENTS)
    assert all(sum(s.instruments == (name,) for s in solos) == 6 for name in MUSIC_INSTRUMENTS)
    assert duets == set(MUSIC_DUET_PAIRS)
    assert len(plan_videos(replace(config, scale=2))) == 2 * len(specs)


def test_videos_decode_with_expected_rates_and_duration(small_synth, small_synth_config):
    root, entries = small_synth
    config = small_synth_config
    assert read_manifest(root / "synth" / "manifest.csv") == entries
    assert len(entries) == 5 + 4
    for entry in entries:
        path = entry_path(root, entry, "video_path")
        info = probe(path)
        assert (info.video_codec, info.audio_codec) == ("h264", "aac")
        assert info.fps == config.fps and (info.width, info.height) == (config.width, config.height)
        assert info.sample_rate == config.sample_rate and info.channels == 1
        frames = read_frames(path)
        assert frames.shape == (round(config.duration * config.fps), config.height, config.width, 3)
        audio = read_audio(path, config.sample_rate)
        assert abs(len(audio) - config.duration * config.sample_rate) < 0.03 * config.sample_rate


def test_duet_stems_sum_to_the_video_audio_track(small_synth, small_synth_config):
    root, entries = small_synth
    for entry in [e for e in entries if e.kind == "duet"]:
        stems, rate = sf.read(entry_path(root, entry, "stems_path"), dtype="float64", always_2d=True)
        assert rate == small_synth_config.sample_rate and stems.shape[1] == 2
        assert all(np.sqrt(np.mean(stems[:, k] ** 2)) > 0.01 for k in range(2))
        track = read_audio(entry_path(root, entry, "video_path"), rate).astype(np.float64)
        n = min(len(track), len(stems))
        mixture = stems[:n].sum(axis=1)
        snr = 10 * np.log10(np.sum(mixture**2) / np.sum((track[:n] - mixture) ** 2))
        assert snr > 12, f"{entry.video_id}: AAC track differs from the stem sum by {snr:.1f} dB SNR"
        # each stem alone explains the track far worse than their sum does
        for k in range(2):
            alone = 10 * np.log10(np.sum(mixture**2) / np.sum((track[:n] - stems[:n, k]) ** 2))
            assert alone < snr - 3


def _frame_loudness(stem: np.ndarray, sample_rate: int, fps: int, n_frames: int) -> np.ndarray:
    hop = sample_rate / fps
    return np.array([np.sqrt(np.mean(stem[int(i * hop): int((i + 1) * hop)] ** 2)) for i in range(n_frames)])


def test_boxes_inside_frames_and_motion_follows_own_loudness(small_synth, small_synth_config):
    root, entries = small_synth
    config = small_synth_config
    own, other = [], []
    for entry in entries:
        doc = json.loads(entry_path(root, entry, "boxes_path").read_text())
        boxes = np.array(doc["boxes"])
        n_frames = round(config.duration * config.fps)
        assert boxes.shape == (entry.n_sources, n_frames, 4)
        x, y, w, h = np.moveaxis(boxes, -1, 0)
        assert (x >= 0).all() and (y >= 0).all() and (w > 4).all() and (h > 4).all()
        assert (x + w <= config.width).all() and (y + h <= config.height).all()
        if entry.kind != "duet":
            continue
        frames = read_frames(entry_path(root, entry, "video_path")).astype(np.float64)
        stems, rate = sf.read(entry_path(root, entry, "stems_path"), dtype="float64", always_2d=True)
        loudness = [_frame_loudness(stems[:, k], rate, config.fps, n_frames) for k in range(2)]
        for k in range(2):
            x0, y0 = boxes[k, :, :2].min(axis=0)
            x1, y1 = (boxes[k, :, :2] + boxes[k, :, 2:]).max(axis=0)
            region = frames[:, y0:y1, x0:x1]
            motion = np.abs(np.diff(region, axis=0)).mean(axis=(1, 2, 3))
            own.append(np.corrcoef(motion, loudness[k][1:])[0, 1])
            other.append(np.corrcoef(motion, loudness[1 - k][1:])[0, 1])
    own, other = np.array(own), np.array(other)
    assert (own > other).mean() >= 0.75, (own, other)
    assert own.mean() > 0.25 and own.mean() > other.mean() + 0.15, (own, other)


def _spectral_features(audio: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.unique(np.geomspace(1, spectrum.shape[1] - 1, 41).astype(int))
    bands = np.stack([spectrum[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    log_bands = np.log(bands + 1e-9)
    active = bands.sum(axis=1) > 1e-3 * bands.sum(axis=1).max()
    shape = log_bands[active] - log_bands[active].mean(axis=1, keepdims=True)  # timbre, not loudness
    return np.concatenate([shape.mean(axis=0), shape.std(axis=0)])


def test_instrument_timbres_are_distinguishable():
    """A nearest-centroid classifier on log-band spectra, trained on 4 clips per instrument,
    names the instrument of 3 held-out clips per instrument far above chance (1/11)."""
    config = SynthConfig(instruments=MUSIC_INSTRUMENTS, duration=4.0, seed=3)
    features, labels = [], []
    for label, name in enumerate(MUSIC_INSTRUMENTS):
        for k in range(7):
            spec = VideoSpec(f"solo_{name}_{k:02d}", "solo", (name,))
            stem = render_stems(spec, config, video_rng(config.seed, spec.video_id))[0]
            features.append(_spectral_features(stem.astype(np.float64)))
            labels.append(label)
    features, labels = np.array(features), np.array(labels)
    train = np.array([i % 7 < 4 for i in range(len(labels))])
    mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-9
    z = (features - mean) / std
    centroids = np.stack([z[train & (labels == c)].mean(axis=0) for c in range(len(MUSIC_INSTRUMENTS))])
    predicted = np.argmin(((z[~train][:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    accuracy = (predicted == labels[~train]).mean()
    print(f"timbre classifier held-out accuracy {accuracy:.2f}")
    assert accuracy >= 0.6, f"held-out accuracy {accuracy:.2f} (chance {1 / 11:.2f})"


def test_same_seed_identical_and_other_seed_differs(tmp_path, small_synth, small_synth_config):
    root, entries = small_synth
    config = replace(small_synth_config, instruments=("flute", "violin"), jobs=1)
    generate_synth(config, tmp_path / "again")
    for entry in read_manifest(tmp_path / "again" / "synth" / "manifest.csv"):
        for column in ("stems_path", "boxes_path", "video_path"):
            again = entry_path(tmp_path / "again", entry, column).read_bytes()
            assert again == entry_path(root, entry, column).read_bytes(), (entry.video_id, column)
    generate_synth(config, tmp_path / "same")
    assert (tmp_path / "same/synth/manifest.csv").read_bytes() == (tmp_path / "again/synth/manifest.csv").read_bytes()
    generate_synth(replace(config, seed=8), tmp_path / "other")
    for name in ("solo_flute_00", "duet_flute_violin_00"):
        a, _ = sf.read(tmp_path / f"same/synth/stems/{name}.flac")
        b, _ = sf.read(tmp_path / f"other/synth/stems/{name}.flac")
        assert a.shape != b.shape or not np.array_equal(a, b)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"instruments": ("violin", "banjolele")}, "unknown instrument 'banjolele'"),
        ({"duration": 0}, "synth.duration must be positive"),
        ({"duration": -3.0}, "synth.duration must be positive"),
        ({"solo_per_instrument": 0}, "synth.solo_per_instrument must be positive"),
        ({"scale": -1}, "synth.scale must be positive"),
        ({"width": 0}, "synth.width must be positive"),
    ],
)
def test_bad_params_are_rejected_with_the_parameter_named(change, message):
    with pytest.raises(MusicbenchError, match=message):
        SynthConfig(**{**SMALL_SYNTH, **change})


def _write_params(path, **synth_changes):
    import yaml

    synth = {**SMALL_SYNTH, "instruments": list(SMALL_SYNTH["instruments"][:2]), **synth_changes}
    path.write_text(yaml.safe_dump({"audio": {"sample_rate": 11025}, "synth": synth}))
    return path


_cli = run_cli


def test_cli_errors_are_one_line_and_keep_existing_data(tmp_path):
    params = _write_params(tmp_path / "params.yaml", instruments=["flute"], duets_per_pair=0)
    assert _cli("synth", "--params", str(params), "--root", str(tmp_path / "data")).returncode == 0
    synth_dir = tmp_path / "data" / "synth"
    before = {p: p.read_bytes() for p in synth_dir.rglob("*") if p.is_file()}

    bad_cases = [
        (_write_params(tmp_path / "p1.yaml", instruments=["flute", "kazoo"]), "kazoo"),
        (_write_params(tmp_path / "p2.yaml", duration=0), "synth.duration"),
        (_write_params(tmp_path / "p3.yaml", soundfont=str(tmp_path / "missing.sf2")), "missing.sf2"),
    ]
    (tmp_path / "garbage.sf2").write_bytes(b"RIFF\x00\x00\x00\x00sfbkLIST" + os.urandom(64))
    bad_cases.append((_write_params(tmp_path / "p4.yaml", soundfont=str(tmp_path / "garbage.sf2")), "garbage.sf2"))
    for params_file, needle in bad_cases:
        result = _cli("synth", "--params", str(params_file), "--root", str(tmp_path / "data"))
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    after = {p: p.read_bytes() for p in synth_dir.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder_is_a_clear_error_posix_user(tmp_path):  # pragma: no cover - CI runs as root
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    params = _write_params(tmp_path / "params.yaml")
    result = _cli("synth", "--params", str(params), "--root", str(locked / "data"))
    assert result.returncode != 0 and "locked" in result.stderr


def test_output_folder_that_is_a_file_is_a_clear_error(tmp_path):
    """The CI machine runs as root, so an unwritable folder is made by putting a file in the way."""
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    params = _write_params(tmp_path / "params.yaml")
    result = _cli("synth", "--params", str(params), "--root", str(blocker))
    assert result.returncode == 2
    assert result.stderr.startswith("error: output folder") and "data" in result.stderr
    assert blocker.read_text() == "not a folder"


def test_cli_help_lists_the_stage_commands():
    result = _cli("--help")
    assert result.returncode == 0
    assert "synth" in result.stdout
