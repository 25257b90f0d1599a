"""MUSIC-Synth: decoded videos, stems, boxes, motion, determinism and bad input (real ffmpeg and soundfont)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from musicbench.errors import MusicbenchError
from musicbench.instruments import MUSIC_DUET_PAIRS, MUSIC_INSTRUMENTS, get_instrument
from musicbench.manifest import entry_path, read_manifest
from musicbench.media import probe, read_audio, read_frames
from musicbench.synth import SynthConfig, VideoSpec, generate_synth, plan_videos
from musicbench.synth.audio import default_soundfont, render_part
from musicbench.synth.generate import render_stems, video_rng
from musicbench.synth.recording import (
    Room,
    apply_recording,
    draw_recording,
    draw_room,
    high_shelf_biquad,
    peaking_biquad,
    room_impulse_response,
)
from musicbench.synth.score import Note, Part
from tests.conftest import AUDIO, REPO_PARAMS, SMALL_SYNTH, run_cli


def test_plan_covers_every_instrument_and_duet_pair():
    config = SynthConfig(audio=AUDIO, instruments=MUSIC_INSTRUMENTS)
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
        assert info.sample_rate == config.audio.sample_rate and info.channels == 1
        frames = read_frames(path)
        assert frames.shape == (round(config.duration * config.fps), config.height, config.width, 3)
        audio = read_audio(path, config.audio.sample_rate)
        assert abs(len(audio) - config.duration * config.audio.sample_rate) < 0.03 * config.audio.sample_rate


def test_duet_stems_sum_to_the_video_audio_track(small_synth, small_synth_config):
    root, entries = small_synth
    for entry in [e for e in entries if e.kind == "duet"]:
        stems, rate = sf.read(entry_path(root, entry, "stems_path"), dtype="float64", always_2d=True)
        assert rate == small_synth_config.audio.sample_rate and stems.shape[1] == 2
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
    own, other, lively_own, lively_other = [], [], [], []
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
        # the players' own motion (a still scene: nothing else moves), drawn as the video was, then
        # the same through the lively scene's encoded video (the fixture's default)
        from musicbench.synth.generate import render_frames

        still = replace(config, scene="still")
        rng = video_rng(still.seed, entry.video_id)
        _, performances = render_stems(VideoSpec(entry.video_id, entry.kind, entry.instruments), still, rng)
        still_frames, still_boxes = render_frames(VideoSpec(entry.video_id, entry.kind, entry.instruments), still,
                                                  performances, rng)
        stems, rate = sf.read(entry_path(root, entry, "stems_path"), dtype="float64", always_2d=True)
        loudness = [_frame_loudness(stems[:, k], rate, config.fps, n_frames) for k in range(2)]
        for frames, scene_boxes, into in ((np.stack(still_frames).astype(np.float64), still_boxes, (own, other)),
                                          (read_frames(entry_path(root, entry, "video_path")).astype(np.float64), boxes,
                                           (lively_own, lively_other))):
            for k in range(2):
                x0, y0 = scene_boxes[k, :, :2].min(axis=0)
                x1, y1 = (scene_boxes[k, :, :2] + scene_boxes[k, :, 2:]).max(axis=0)
                motion = np.abs(np.diff(frames[:, y0:y1, x0:x1], axis=0)).mean(axis=(1, 2, 3))
                into[0].append(np.corrcoef(motion, loudness[k][1:])[0, 1])
                into[1].append(np.corrcoef(motion, loudness[1 - k][1:])[0, 1])
    own, other = np.array(own), np.array(other)
    assert (own > other).mean() >= 0.75, (own, other)
    assert own.mean() > 0.25 and own.mean() > other.mean() + 0.15, (own, other)
    # in the lively scene a player's region moves with other things too: its own sound explains less of it
    assert np.mean(lively_own) < own.mean(), (lively_own, own)


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
    config = SynthConfig(audio=AUDIO, instruments=MUSIC_INSTRUMENTS, duration=4.0, seed=3)
    features, labels = [], []
    for label, name in enumerate(MUSIC_INSTRUMENTS):
        for k in range(7):
            spec = VideoSpec(f"solo_{name}_{k:02d}", "solo", (name,))
            stem = render_stems(spec, config, video_rng(config.seed, spec.video_id))[0][0]
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
        ({"recording": "studio"}, "synth.recording must be one of varied, clean, got 'studio'"),
    ],
)
def test_bad_params_are_rejected_with_the_parameter_named(change, message):
    with pytest.raises(MusicbenchError, match=message):
        SynthConfig(audio=AUDIO, **{**SMALL_SYNTH, **change})


def _write_params(path, **synth_changes):
    import yaml

    synth = {**SMALL_SYNTH, "instruments": list(SMALL_SYNTH["instruments"][:2]), **synth_changes}
    path.write_text(yaml.safe_dump({"audio": REPO_PARAMS["audio"], "frames": REPO_PARAMS["frames"], "synth": synth}))
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


def _gain_db(sos: np.ndarray, frequency: float, sample_rate: int) -> float:
    from scipy import signal

    _, response = signal.sosfreqz(sos, worN=[frequency], fs=sample_rate)
    return float(20 * np.log10(np.abs(response[0])))


def test_equaliser_sections_have_the_drawn_gains():
    rate = 11025
    assert _gain_db(peaking_biquad(800.0, 6.0, 1.2, rate), 800.0, rate) == pytest.approx(6.0, abs=0.01)
    assert _gain_db(peaking_biquad(800.0, -7.5, 0.7, rate), 800.0, rate) == pytest.approx(-7.5, abs=0.01)
    assert abs(_gain_db(peaking_biquad(800.0, 6.0, 1.2, rate), 60.0, rate)) < 0.5  # far from the band: flat
    shelf = high_shelf_biquad(3000.0, -9.0, rate)
    assert _gain_db(shelf, 5400.0, rate) == pytest.approx(-9.0, abs=0.5)
    assert abs(_gain_db(shelf, 200.0, rate)) < 0.2


def test_room_response_has_the_drawn_reverberation_time_and_direct_ratio():
    rate = 11025
    for rt60, drr in ((0.3, 3.0), (0.8, 10.0)):
        response = room_impulse_response(Room(rt60, drr), rate, seed=5)
        assert response[0] == 1.0
        tail = response[1:]
        assert 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(drr, abs=1e-6)
        # Schroeder backward integration; the -5 .. -25 dB slope extrapolated to -60 dB (T20)
        decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail**2))
        t5, t25 = np.argmax(decay < -5) / rate, np.argmax(decay < -25) / rate
        assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.1)
    dry = np.zeros(rate)
    dry[100] = 1.0
    wet = apply_recording(dry, draw_recording(np.random.default_rng(0), get_instrument("cello"), Room(0.5, 6.0)), rate)
    assert wet.shape == dry.shape and np.abs(wet[:100]).max() < 1e-12  # causal: nothing before the sound
    assert np.abs(wet[2000:]).max() > 0.0  # the room rings on


def test_tuning_shifts_the_pitch_by_the_drawn_cents():
    rate = 11025
    part = Part(get_instrument("flute"), [Note(0.0, 1.5, 69, 100)])
    peaks = []
    for cents in (0.0, 25.0, -25.0):
        audio = render_part(part, 1.5, rate, default_soundfont(), tuning_cents=cents)[2000:14000]
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size), n=1 << 18))
        low = int(400 / rate * (1 << 18))
        peak = low + int(np.argmax(spectrum[low:int(480 / rate * (1 << 18))]))
        peaks.append(peak * rate / (1 << 18))
    assert 1200 * np.log2(peaks[1] / peaks[0]) == pytest.approx(25.0, abs=3.0)
    assert 1200 * np.log2(peaks[2] / peaks[0]) == pytest.approx(-25.0, abs=3.0)


def _long_term_spectrum_db(audio: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    return 10 * np.log10(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-12)


def _onset_strength(audio: np.ndarray, hop: int = 441) -> np.ndarray:
    energy = np.log(np.square(audio[: audio.size // hop * hop]).reshape(-1, hop).sum(axis=1) + 1e-6)
    return np.maximum(np.diff(energy), 0.0)


def test_varied_recordings_change_how_a_video_sounds_but_not_its_music():
    """`recording: varied` against `clean` for the same six saxophone videos: the same notes (the
    dry performances' onsets agree) and the same draws left for the pictures, a different sound (long-term spectra differ by several dB in
    shape), and several saxophone variants drawn."""
    rendered = {}
    for recording in ("clean", "varied"):
        config = SynthConfig(audio=AUDIO, instruments=("saxophone",), duration=4.0, seed=3, recording=recording)
        for k in range(6):
            spec = VideoSpec(f"solo_saxophone_{k:02d}", "solo", ("saxophone",))
            rng = video_rng(config.seed, spec.video_id)
            stems, dry = render_stems(spec, config, rng)
            assert stems.shape == dry.shape == (1, int(4.0 * 11025))
            rendered[recording, k] = stems[0].astype(np.float64), dry[0].astype(np.float64)
            rendered[recording, k, "next draw"] = rng.random()  # what the pictures are drawn from next
    distances, agreements = [], []
    for k in range(6):
        (clean, clean_dry), (varied, varied_dry) = rendered["clean", k], rendered["varied", k]
        assert np.array_equal(clean, clean_dry)  # clean: nothing between the performance and the stem
        difference = _long_term_spectrum_db(clean) - _long_term_spectrum_db(varied)
        difference = difference[10:470] - difference[10:470].mean()
        distances.append(np.sqrt(np.mean(difference**2)))
        agreements.append(np.corrcoef(_onset_strength(clean_dry), _onset_strength(varied_dry))[0, 1])
        assert rendered["clean", k, "next draw"] == rendered["varied", k, "next draw"]
    assert min(distances) > 2.0, distances
    assert min(agreements) > 0.5, agreements
    programs = set()
    for k in range(6):
        chain = video_rng(3, f"solo_saxophone_{k:02d}/recording")
        programs.add(draw_recording(chain, get_instrument("saxophone"), draw_room(chain)).program)
    assert len(programs) >= 2 and programs <= {64, 65, 66, 67}


def test_a_lively_scene_moves_where_nothing_sounds_and_leaves_the_audio_as_it_was():
    """`synth.scene: lively` (the default): players idle and gesture while silent, the light drifts,
    in some videos the camera shakes and a bystander walks; the audio and the rest of the picture
    come from the same draws as `still` (the scene has its own generator)."""
    from musicbench.synth.generate import render_frames
    from musicbench.synth.visual import PlayerFigure, draw_scene_motion, light_and_shake

    lively = SynthConfig(audio=AUDIO, seed=1234, instruments=("cello", "flute"), duration=6.0)
    still = replace(lively, scene="still")
    seen = {"silent": 0}
    for number in range(8):
        spec = VideoSpec(f"solo_cello_{number:02d}", "solo", ("cello",))
        rendered = {}
        for config in (lively, still):
            rng = video_rng(config.seed, spec.video_id)
            stems, performances = render_stems(spec, config, rng)
            frames, boxes = render_frames(spec, config, performances, rng)
            rendered[config.scene] = (stems, performances, np.stack(frames).astype(np.float64), boxes)
        np.testing.assert_array_equal(rendered["lively"][0], rendered["still"][0])  # the same recording
        _, performances, moving, _ = rendered["lively"]
        _, _, quiet, _ = rendered["still"]
        n_frames = len(quiet)
        loudness = _frame_loudness(performances[0].astype(np.float64), AUDIO.sample_rate, lively.fps, n_frames)
        quiet_frames = loudness < 1e-4 * loudness.max()
        # frame pairs (i, i+1) in a silence that began 8 frames before: the playing motion has died down
        silent = np.array([i for i in range(8, n_frames - 1) if quiet_frames[i - 8:i + 2].all()], dtype=int)
        if len(silent):  # still: next to nothing moves while it is silent (the playing motion's last decay); lively: much does
            at_rest = np.abs(np.diff(quiet, axis=0))[silent].mean()
            assert at_rest < 0.2 and np.abs(np.diff(moving, axis=0))[silent].mean() > max(0.5, 5 * at_rest)
            seen["silent"] += 1
        brightness = moving.mean(axis=(1, 2, 3)) / quiet.mean(axis=(1, 2, 3))
        assert brightness.max() - brightness.min() > 0.05  # the light changes over the clip
    assert seen["silent"] >= 1, seen
    # how often the rest happens, over many videos' own draws; and the camera moves the picture whole
    figure = PlayerFigure.random(np.random.default_rng(0), "cello", 80.0, 80.0, 110.0)
    scenes = [draw_scene_motion(video_rng(1234, f"v{n}/scene"), [figure], [np.zeros(96)], 16.0, 160, 120) for n in range(300)]
    assert 0.3 < np.mean([bool(np.any(scene.shake)) for scene in scenes]) < 0.5
    assert 0.2 < np.mean([scene.bystander is not None for scene in scenes]) < 0.4
    assert all(np.abs(scene.shake).max() <= 3 and np.abs(scene.idle).max() > 0 for scene in scenes)
    picture = np.random.default_rng(1).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    moved = light_and_shake(picture, 1.0, (2, -1))
    np.testing.assert_array_equal(moved[:-1, 2:], picture[1:, :-2])  # content 2 px right, 1 px up
