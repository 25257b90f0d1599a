"""URMP: MUSIC-Synth ensembles in URMP's layout (the fixture), the import, processing and the
real-ensembles track (real soundfont, real ffmpeg)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from musicbench.benchmark import DataRoot, read_clip_frames, side_by_side_strips
from musicbench.concurrency import hold_data_root
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.fsutil import sha256_file
from musicbench.harness.inference import player_crops, run_tracks
from musicbench.instruments import MUSIC_INSTRUMENTS, SYNTH_INSTRUMENTS, URMP_CODES, URMP_EXTRA_INSTRUMENTS
from musicbench.leaderboard import build_leaderboard
from musicbench.media import probe
from musicbench.process import validate_index
from musicbench.splits import train_instruments
from musicbench.synth import SynthConfig, VideoSpec
from musicbench.synth.generate import render_frames, render_performance, render_stems, video_rng
from musicbench.synth.urmp_layout import write_urmp_copy
from musicbench.urmp import import_urmp, process_urmp, read_urmp_manifest
from tests.conftest import AUDIO, REPO_PARAMS, REPO_ROOT, run_cli

URMP_SYNTH = dict(seed=5, duration=14.0, width=192, height=96, fps=16, instruments=("violin",), jobs=1)
# Two pieces: a duet and a quintet, URMP's smallest and largest ensembles.
URMP_PIECES = (("Jupiter", ("vn", "vc")), ("Pavane", ("fl", "ob", "hn", "tbn", "db")))
AUDIO_FRAME_SIZE = REPO_PARAMS["frames"]["size"]
WAV_RATE = 22050  # not the benchmark's 11025 Hz: processing resamples, as for URMP's 48 kHz


def write_urmp_fixture(folder: Path, pieces=URMP_PIECES) -> list[Path]:
    """A small URMP copy: MUSIC-Synth ensembles in URMP's exact layout and file naming."""
    return write_urmp_copy(folder, pieces, SynthConfig(audio=AUDIO, **URMP_SYNTH), wav_rate=WAV_RATE)


@pytest.fixture(scope="session")
def urmp_copy(tmp_path_factory) -> Path:
    """The folder holding the URMP-layout fixture (read-only for tests: copy what you change)."""
    folder = tmp_path_factory.mktemp("urmp") / "URMP"
    write_urmp_fixture(folder)
    return folder


def test_default_instrument_list_is_music_and_urmp_classes_are_an_option():
    assert set(REPO_PARAMS["synth"]["instruments"]) <= set(MUSIC_INSTRUMENTS)
    assert set(URMP_EXTRA_INSTRUMENTS).isdisjoint(MUSIC_INSTRUMENTS)
    assert {URMP_CODES[code] for code in URMP_CODES} <= set(SYNTH_INSTRUMENTS)  # every URMP class renders
    programs = {name: URMP_EXTRA_INSTRUMENTS[name].program for name in URMP_EXTRA_INSTRUMENTS}
    assert programs == {"bassoon": 70, "horn": 60, "oboe": 68, "trombone": 57, "viola": 41, "double_bass": 43}
    config = SynthConfig(audio=AUDIO, **{**URMP_SYNTH, "instruments": ("viola", "oboe", "violin")})
    assert config.instruments == ("viola", "oboe", "violin")
    with pytest.raises(MusicbenchError, match="unknown instrument 'piccolo'.*bassoon"):
        SynthConfig(audio=AUDIO, **{**URMP_SYNTH, "instruments": ("piccolo",)})


def test_urmp_classes_render_in_their_register(tmp_path):
    config = SynthConfig(audio=AUDIO, **{**URMP_SYNTH, "duration": 3.0, "recording": "clean"})
    rate = AUDIO.sample_rate
    for name, instrument in URMP_EXTRA_INSTRUMENTS.items():
        spec = VideoSpec(f"solo_{name}_00", "solo", (name,))
        stems, _, parts = render_performance(spec, config, video_rng(config.seed, spec.video_id))
        assert stems.shape == (1, int(3.0 * rate)) and np.sqrt(np.mean(stems**2)) > 0.01, name
        assert all(instrument.low - 12 <= n.pitch <= instrument.high + 12 for n in parts[0].notes), name
        # the loudest spectral peak lies within the register's fundamentals or their first overtones
        spectrum = np.abs(np.fft.rfft(stems[0] * np.hanning(stems.shape[1])))
        peak_hz = np.argmax(spectrum) * rate / stems.shape[1]
        low_hz = 440 * 2 ** ((instrument.low - 12 - 69) / 12)
        high_hz = 440 * 2 ** ((instrument.high + 12 - 69) / 12) * 4
        assert low_hz <= peak_hz <= high_hz, (name, peak_hz)


def test_ensembles_place_player_k_in_the_kth_strip():
    config = SynthConfig(audio=AUDIO, **URMP_SYNTH)
    for names in (("violin", "cello"), ("flute", "oboe", "viola"), ("flute", "oboe", "horn", "trombone", "double_bass")):
        spec = VideoSpec("urmp_test", "ensemble", names)
        rng = video_rng(config.seed, spec.video_id)
        stems, dry, parts = render_performance(spec, config, rng)
        assert stems.shape[0] == len(names) and all(np.any(stem) for stem in stems)
        frames, boxes = render_frames(spec, config, dry, rng)
        strip = config.width / len(names)
        for k in range(len(names)):
            left, right = boxes[k, :, 0], boxes[k, :, 0] + boxes[k, :, 2]
            assert np.all(left >= np.floor(k * strip)) and np.all(right <= np.ceil((k + 1) * strip)), (names, k)
            assert np.all(boxes[k, :, 2] > 0.2 * strip) and np.all(boxes[k, :, 3] > 0.2 * config.height), (names, k)
        # each strip shows its own player: strips differ from one another and move over time
        first, last = frames[0].astype(int), frames[-1].astype(int)
        assert all(np.abs(first[:, x0:x1] - last[:, x0:x1]).mean() > 0.5 for x0, x1 in side_by_side_strips(config.width, len(names)))


def test_urmp_layout_fixture_has_urmp_names_and_consistent_audio(urmp_copy):
    folders = sorted(p.name for p in urmp_copy.iterdir())
    assert folders == ["01_Jupiter_vn_vc", "02_Pavane_fl_ob_hn_tbn_db"]
    files = sorted(p.name for p in (urmp_copy / "01_Jupiter_vn_vc").iterdir())
    assert files == ["AuMix_01_Jupiter_vn_vc.wav", "AuSep_1_vn_01_Jupiter.wav", "AuSep_2_vc_01_Jupiter.wav",
                     "F0s_1_vn_01_Jupiter.txt", "F0s_2_vc_01_Jupiter.txt", "Notes_1_vn_01_Jupiter.txt",
                     "Notes_2_vc_01_Jupiter.txt", "Sco_01_Jupiter_vn_vc.mid", "Vid_01_Jupiter_vn_vc.mp4"]
    quintet = urmp_copy / "02_Pavane_fl_ob_hn_tbn_db"
    stems = [sf.read(quintet / f"AuSep_{k}_{code}_02_Pavane.wav") for k, code in enumerate(("fl", "ob", "hn", "tbn", "db"), 1)]
    mix, rate = sf.read(quintet / "AuMix_02_Pavane_fl_ob_hn_tbn_db.wav")
    assert rate == WAV_RATE and all(r == WAV_RATE and len(s) == len(mix) for s, r in stems)
    assert np.max(np.abs(sum(s for s, _ in stems) - mix)) < 5 / 2**15  # stems sum to the mix (16-bit rounding)
    info = probe(quintet / "Vid_02_Pavane_fl_ob_hn_tbn_db.mp4")
    assert (info.width, info.height) == (URMP_SYNTH["width"], URMP_SYNTH["height"])
    notes = (quintet / "Notes_1_fl_02_Pavane.txt").read_text().splitlines()
    assert notes and all(re.fullmatch(r"[0-9.]+\t[0-9.]+\t[0-9.]+", line) for line in notes)


def test_default_synth_rendering_unchanged_by_ensembles():
    """A solo and a duet render exactly as `render_stems` always did: the same draws, the same samples."""
    config = SynthConfig(audio=AUDIO, **{**URMP_SYNTH, "duration": 2.0, "instruments": ("flute", "violin")})
    for spec in (VideoSpec("solo_flute_00", "solo", ("flute",)), VideoSpec("duet_flute_violin_00", "duet", ("flute", "violin"))):
        first, second = video_rng(config.seed, spec.video_id), video_rng(config.seed, spec.video_id)
        stems, dry = render_stems(spec, config, first)
        again, dry_again, _ = render_performance(spec, config, second)
        assert np.array_equal(stems, again) and np.array_equal(dry, dry_again)
        assert first.random() == second.random()


def test_urmp_copy_refuses_bad_pieces(tmp_path):
    config = replace(SynthConfig(audio=AUDIO, **URMP_SYNTH), duration=1.0)
    with pytest.raises(MusicbenchError, match="'xx'"):
        write_urmp_copy(tmp_path, [("Bad", ("vn", "xx"))], config)
    with pytest.raises(MusicbenchError, match="2 to 5"):
        write_urmp_copy(tmp_path, [("Solo", ("vn",))], config)


# ------------------------------------------------------------------------------------ import


def _tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {os.fspath(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_import_lists_pieces_players_and_files(urmp_copy, tmp_path):
    before = _tree_state(urmp_copy)
    result = run_cli("urmp", "import", urmp_copy, "--root", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "2 pieces, 7 players" in result.stdout
    copy, pieces = read_urmp_manifest(tmp_path / "data")
    assert copy == urmp_copy.resolve() and _tree_state(urmp_copy) == before  # only read
    assert [p.piece_id for p in pieces] == ["urmp_01_Jupiter", "urmp_02_Pavane"]
    assert pieces[1].instruments == ("flute", "oboe", "horn", "trombone", "double_bass")
    assert [p.stem_path for p in pieces[0].players] == ["01_Jupiter_vn_vc/AuSep_1_vn_01_Jupiter.wav",
                                                        "01_Jupiter_vn_vc/AuSep_2_vc_01_Jupiter.wav"]
    assert pieces[0].video_path == "01_Jupiter_vn_vc/Vid_01_Jupiter_vn_vc.mp4"
    assert pieces[0].sample_rate == WAV_RATE and pieces[0].n_samples == sf.info(urmp_copy / pieces[0].mixture_path).frames
    assert pieces[0].players[1].stem_sha256 == sha256_file(urmp_copy / pieces[0].players[1].stem_path)


def test_import_reports_every_problem_and_writes_nothing(urmp_copy, tmp_path):
    copy = tmp_path / "URMP"
    shutil.copytree(urmp_copy, copy)
    jupiter, pavane = copy / "01_Jupiter_vn_vc", copy / "02_Pavane_fl_ob_hn_tbn_db"
    bolero = copy / "03_Bolero_vn_xx"                                                    # an unknown code
    bolero.mkdir()
    for path in jupiter.iterdir():
        name = path.name.replace("01_Jupiter_vn_vc", bolero.name).replace("01_Jupiter", "03_Bolero")
        shutil.copy(path, bolero / name.replace("_2_vc_", "_2_xx_"))
    (jupiter / "AuSep_2_vc_01_Jupiter.wav").unlink()                                    # a missing stem
    (pavane / "Vid_02_Pavane_fl_ob_hn_tbn_db.mp4").unlink()                             # a missing video
    stem, rate = sf.read(pavane / "AuSep_3_hn_02_Pavane.wav")
    sf.write(pavane / "AuSep_3_hn_02_Pavane.wav", stem[:-100], rate, subtype="PCM_16")  # a shorter stem
    outside = tmp_path / "elsewhere.wav"
    shutil.copy(pavane / "AuSep_1_fl_02_Pavane.wav", outside)
    (pavane / "AuSep_1_fl_02_Pavane.wav").unlink()
    (pavane / "AuSep_1_fl_02_Pavane.wav").symlink_to(outside)                            # leaves the copy
    data = tmp_path / "data"
    result = run_cli("urmp", "import", copy, "--root", data)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = [r"01_Jupiter_vn_vc/AuSep_2_vc_01_Jupiter\.wav: stem of player 2 \(vc\) missing",
                r"02_Pavane_fl_ob_hn_tbn_db/Vid_02_Pavane_fl_ob_hn_tbn_db\.mp4: video missing",
                r"02_Pavane_fl_ob_hn_tbn_db/AuSep_1_fl_02_Pavane\.wav: .*leaves the URMP copy",
                r"02_Pavane_fl_ob_hn_tbn_db: the mixture and stems differ in length",
                r"03_Bolero_vn_xx: unknown instrument code 'xx'"]
    for pattern in expected:
        assert sum(bool(re.search(pattern, line)) for line in errors) == 1, (pattern, errors)
    assert len(errors) == len(expected)
    assert not (data / "urmp").exists()  # no partial manifest
    with pytest.raises(MusicbenchError, match="not a folder"):
        import_urmp(tmp_path / "nothing", data)


def test_import_keeps_the_previous_manifest_when_a_new_copy_is_bad(urmp_copy, tmp_path):
    data = tmp_path / "data"
    assert not import_urmp(urmp_copy, data).problems
    written = DataRoot(data).urmp_manifest_path.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = import_urmp(empty, data)
    assert result.problems == [f"{empty}: no piece folders (NN_Piece_codes/); is this the unpacked URMP archive?"]
    assert DataRoot(data).urmp_manifest_path.read_bytes() == written
    doc = json.loads(written)
    doc["pieces"][0]["players"][0]["stem_path"] = "../../etc/passwd"
    DataRoot(data).urmp_manifest_path.write_text(json.dumps(doc))
    with pytest.raises(MusicbenchError, match="without '..'"):
        read_urmp_manifest(data)


# ------------------------------------------------------------------------------------ processing and the track


# the fixture's track: its two pieces and one it lacks (the copy holds 2 of 3)
FIXTURE_TRACK = ["01_Jupiter_vn_vc", "02_Pavane_fl_ob_hn_tbn_db", "03_Dance_fl_cl"]


def urmp_params(**urmp) -> dict:
    params = copy.deepcopy(REPO_PARAMS)
    params["urmp"] = {"clips_per_piece": 2, "pieces": FIXTURE_TRACK, **urmp}
    return params


@pytest.fixture(scope="session")
def urmp_root(urmp_copy, tmp_path_factory):
    """A data root with the fixture imported and processed (read-only for tests)."""
    root = tmp_path_factory.mktemp("urmp_root")
    assert not import_urmp(urmp_copy, root).problems
    result = process_urmp(urmp_params(), root)
    assert not result.problems
    return root, result


def test_processing_gives_mixture_stems_frames_and_seeded_clips(urmp_copy, urmp_root, tmp_path):
    root, result = urmp_root
    data = DataRoot(root)
    pieces = result.pieces.set_index("piece_id")
    quintet = pieces.loc["urmp_02_Pavane"]
    stems, rate = sf.read(data.resolve(quintet["stems_path"]))
    mixture, _ = sf.read(data.resolve(quintet["audio_path"]))
    assert rate == AUDIO.sample_rate and stems.shape == (len(mixture), 5) and quintet["n_players"] == 5
    # the fixture's stems, resampled from 22050 Hz, are this piece's stems and sum to its mixture
    original, _ = sf.read(urmp_copy / "02_Pavane_fl_ob_hn_tbn_db/AuSep_4_tbn_02_Pavane.wav")
    assert abs(len(original) / 2 - len(mixture)) <= 1
    assert np.corrcoef(original[::2][:len(mixture)], stems[:, 3])[0, 1] > 0.95
    assert np.max(np.abs(stems.sum(axis=1) - mixture)) < 1e-3
    frames = read_clip_frames(data.resolve(quintet["frames_path"]), [0])
    assert frames.shape[1:3] == (AUDIO_FRAME_SIZE, 2 * AUDIO_FRAME_SIZE)  # 2:1 picture kept whole (no crop)
    items = result.items
    assert list(items.groupby("piece_id").size()) == [2, 2] and set(items["split"]) == {"test"}
    for _, clips in items.groupby("piece_id"):
        starts = sorted(clips["start_sample"])
        assert starts[1] - starts[0] >= AUDIO.clip_samples  # non-overlapping
    # the same params give the same clips; another seed other clips
    again = process_urmp(urmp_params(), _copied_root(root, tmp_path / "again"))
    assert again.items.equals(items) and again.version == result.version
    # one clip per piece: drawn among all its sounding windows, so the seed (mixtures.seed) moves it
    drawn = set()
    for seed in range(4):
        params = urmp_params(clips_per_piece=1)
        params["mixtures"] = {**params["mixtures"], "seed": seed}
        one = process_urmp(params, _copied_root(root, tmp_path / f"seed{seed}"))
        assert len(one.items) == 2
        drawn.add((tuple(one.items["start_sample"]), one.version))
    assert len(drawn) > 1


def _copied_root(root: Path, to: Path) -> Path:
    to.mkdir()
    shutil.copytree(root / "urmp", to / "urmp", ignore=shutil.ignore_patterns("processed", "*.parquet", "benchmark.json"))
    return to


def test_processing_lists_a_changed_stem_and_goes_on(urmp_copy, tmp_path):
    copy = tmp_path / "URMP"
    shutil.copytree(urmp_copy, copy)
    root = tmp_path / "data"
    assert not import_urmp(copy, root).problems
    stem = copy / "01_Jupiter_vn_vc/AuSep_1_vn_01_Jupiter.wav"
    audio, rate = sf.read(stem)
    sf.write(stem, audio * 0.5, rate, subtype="PCM_16")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(urmp_params()))
    result = run_cli("urmp", "process", "--root", root, "--params", params)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: urmp_01_Jupiter: 01_Jupiter_vn_vc/AuSep_1_vn_01_Jupiter.wav: changed since "
                      "`musicbench urmp import` (sha256 differs); import the copy again"]
    assert "1 pieces, 2 items" in result.stdout
    assert list(pd.read_parquet(DataRoot(root).urmp_items_path)["piece_id"].unique()) == ["urmp_02_Pavane"]


def test_a_copy_lacking_a_piece_has_the_same_track_and_lacks_only_its_items(urmp_copy, urmp_root, tmp_path):
    """The track is its pieces (urmp.pieces; URMP's 44 by default), whatever a copy holds: a copy
    without Jupiter has the same identity, exactly Jupiter's items fewer, and says so; a piece
    outside the track is a problem and left out."""
    root, full = urmp_root
    assert full.coverage["pieces"] == 3 and full.coverage["held"] == 2 and full.coverage["not_held"] == ["03_Dance_fl_cl"]
    copy = tmp_path / "URMP"
    shutil.copytree(urmp_copy, copy, ignore=shutil.ignore_patterns("01_Jupiter_vn_vc"))
    lacking = tmp_path / "lacking"
    assert not import_urmp(copy, lacking).problems
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(urmp_params()))
    result = run_cli("urmp", "process", "--root", lacking, "--params", params)
    assert result.returncode == 0, result.stderr
    assert f"real-ensembles track {full.version}; 1 of its 3 pieces held; not held: 01_Jupiter_vn_vc, 03_Dance_fl_cl" in \
        " ".join(result.stdout.split())
    items = pd.read_parquet(DataRoot(lacking).urmp_items_path)
    pd.testing.assert_frame_equal(items.reset_index(drop=True),
                                  full.items[full.items["piece_id"] != "urmp_01_Jupiter"].reset_index(drop=True))
    assert DataRoot(lacking).urmp_version() == full.version == DataRoot(root).urmp_version()
    assert DataRoot(lacking).urmp_coverage()["tables_fingerprint"] != full.coverage["tables_fingerprint"]
    # with the default track, URMP's own 44 pieces, the fixture's made-up quintet is not a URMP piece
    default = process_urmp(urmp_params(pieces=[]), _copied_root(root, tmp_path / "default"))
    assert default.problems == ["urmp_02_Pavane: not one of the track's pieces (urmp.pieces); it is left out"]
    assert default.coverage["pieces"] == 44 and default.coverage["held"] == 1 and default.version != full.version


def test_symlink_loops_in_a_copy_are_problems_and_the_other_pieces_go_on(urmp_copy, tmp_path):
    """Path.resolve raised RuntimeError("Symlink loop"): a traceback from `urmp import` and `urmp process`."""
    copy = tmp_path / "URMP"
    shutil.copytree(urmp_copy, copy)
    jupiter = copy / "01_Jupiter_vn_vc"
    stem = jupiter / "AuSep_2_vc_01_Jupiter.wav"
    stem.rename(tmp_path / "kept.wav")
    stem.symlink_to("AuSep_2_vc_01_Jupiter.wav")                              # a link to itself
    (copy / "03_Bolero_vn_vc").symlink_to("04_Bolero_vn_vc")                  # a -> b -> a
    (copy / "04_Bolero_vn_vc").symlink_to("03_Bolero_vn_vc")
    data = tmp_path / "data"
    result = run_cli("urmp", "import", copy, "--root", data)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: 03_Bolero_vn_vc: the piece folder is a symlink loop (its links lead back to each other); "
        "replace the link with the piece's folder from the URMP archive",
        "error: 04_Bolero_vn_vc: the piece folder is a symlink loop (its links lead back to each other); "
        "replace the link with the piece's folder from the URMP archive",
        "error: 01_Jupiter_vn_vc/AuSep_2_vc_01_Jupiter.wav: stem of player 2 (vc) is a symlink loop (its links lead "
        "back to each other); replace the link with the real file from the URMP archive"]
    scan = import_urmp(copy, data)
    assert [piece.piece_id for piece in scan.pieces] == ["urmp_02_Pavane"]  # the good piece is kept
    assert not (data / "urmp").exists()

    # imported, then a stem becomes a loop: that piece is listed, the other processed
    stem.unlink()
    (tmp_path / "kept.wav").rename(stem)
    for link in ("03_Bolero_vn_vc", "04_Bolero_vn_vc"):
        (copy / link).unlink()
    assert not import_urmp(copy, data).problems
    stem.rename(tmp_path / "kept.wav")
    stem.symlink_to("AuSep_2_vc_01_Jupiter.wav")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(urmp_params()))
    result = run_cli("urmp", "process", "--root", data, "--params", params)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: urmp_01_Jupiter: path '01_Jupiter_vn_vc/AuSep_2_vc_01_Jupiter.wav' under {str(copy)!r} "
                      "is a symlink loop (its links lead back to each other); replace the link with the real file"]
    assert list(pd.read_parquet(DataRoot(data).urmp_items_path)["piece_id"].unique()) == ["urmp_02_Pavane"]


# A model with `separate` only: it checks the crops it is given (one per source, each a strip) and
# weights each source by its crop's own picture, so another crop would give other estimates.
CROPS_MODEL = textwrap.dedent('''
    import numpy as np

    class StripModel:
        def separate(self, mixture, frames, sample_rate):
            assert frames.ndim == 5 and frames.dtype == np.uint8, frames.shape
            weights = frames.astype(np.float64).mean(axis=(1, 2, 3, 4)) + 1.0
            return (np.outer(weights / weights.sum(), mixture)).astype(np.float32)

    def load_model(device="cpu"):
        return StripModel()
''')


@pytest.fixture(scope="session")
def bench_with_urmp(bench_root, urmp_copy, tmp_path_factory):
    """A copy of the small MUSIC-Synth benchmark with the URMP fixture imported and processed."""
    root = tmp_path_factory.mktemp("bench_urmp") / "data"
    shutil.copytree(bench_root[0], root)
    assert not import_urmp(urmp_copy, root).problems
    assert not process_urmp(urmp_params(), root).problems
    return root


def test_urmp_items_hold_real_stems_and_strip_points(bench_with_urmp, bench_root):
    data = DataRoot(bench_with_urmp)
    assert run_tracks(DataRoot(bench_root[0]), True) == ("mixtures", "duets")  # no URMP: the runs are as before
    assert run_tracks(data, False) == ("mixtures", "urmp") and run_tracks(data, True) == ("mixtures", "duets", "urmp")
    data.verify_items("test", None, "urmp")
    items = list(data.iter_items("test", track="urmp"))
    assert [i.item_id for i in items] == ["urmp-01_Jupiter-00", "urmp-01_Jupiter-01", "urmp-02_Pavane-00", "urmp-02_Pavane-01"]
    assert list(data.iter_items("val", track="urmp")) == []
    quintet = items[2]
    height, width = quintet.frames.shape[2:4]
    assert quintet.references.shape == (5, AUDIO.clip_samples) and quintet.frames.shape[0] == 1
    assert quintet.instruments == ["flute", "oboe", "horn", "trombone", "double_bass"]
    assert np.allclose(quintet.references.sum(axis=0), quintet.mixture, atol=1e-3)
    assert [x for x, _ in quintet.points] == [(k * width // 5 + (k + 1) * width // 5) / 2 for k in range(5)]
    assert all(y == height / 2 for _, y in quintet.points)
    crops = player_crops(quintet.frames[0], 5)
    assert crops.shape == (5, quintet.frames.shape[1], height, width // 5, 3)
    assert np.array_equal(crops[3], quintet.frames[0][:, :, 3 * width // 5:3 * width // 5 + width // 5])


def test_urmp_track_scored_summarized_and_on_the_board(bench_with_urmp, tmp_path):
    root = bench_with_urmp
    runs = tmp_path / "runs"
    oracle = evaluate(None, root, runs / "oracle-irm", oracle="irm", limit=4)
    assert oracle["urmp"]["n_items"] == 4 and oracle["urmp"]["complete"]
    assert oracle["urmp"]["metrics"]["nsdr"]["mean"] > 3  # the ideal ratio mask on real stems
    model = tmp_path / "strips.py"
    model.write_text(CROPS_MODEL)
    crops = evaluate(model, root, runs / "strips", limit=4)
    assert crops["duets"] is None and crops["urmp"]["n_items"] == 4 and crops["urmp"]["complete"]
    items = pd.read_parquet(runs / "strips" / "items.parquet")
    urmp = items[items["track"] == "urmp"]
    assert len(urmp) == 2 * 2 + 2 * 5 and set(urmp["instrument"]) >= {"violin", "cello", "double_bass"}
    assert set(urmp["video_id"]) == {"urmp_01_Jupiter", "urmp_02_Pavane"}  # a piece is one video to the bootstrap
    at = evaluate(REPO_ROOT / "baselines" / "motion_energy.py", root, runs / "motion", limit=4)
    assert at["urmp"]["complete"] and at["duets"] is not None
    assert json.loads((runs / "motion" / "provenance.json").read_text())["urmp_version"] == DataRoot(root).urmp_version()
    board = build_leaderboard(runs, tmp_path / "board")
    rows = {row["name"]: row for table in board["tables"] for row in table["rows"]}
    assert rows["strips"]["urmp"]["separate_at"] is False and rows["motion_energy"]["urmp"]["separate_at"] is True
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "Real ensembles (URMP" in markdown and "separate (strip crops)" in markdown
    assert DataRoot(root).urmp_version() in markdown
    page = (tmp_path / "board" / "index.html").read_text()
    assert "Real ensembles (URMP)" in page and "separate (strip crops)" in page and "separate_at (strip centres)" in page
    # with the data root, the board names the URMP classes that the training split never had
    train = train_instruments(root)
    with_root = build_leaderboard(runs, tmp_path / "board-root", root, demo_items=0)
    unseen = with_root["tables"][0]["unseen_classes"]
    assert list(unseen) == ["urmp"] and set(unseen["urmp"]) == set(urmp["instrument"]) - train
    assert {"double_bass", "oboe", "horn", "trombone"} <= set(unseen["urmp"]) and "violin" not in unseen["urmp"]
    assert any("urmp track has classes that the training split lacks: " in w for w in with_root["tables"][0]["warnings"])


def test_urmp_track_refuses_a_changed_file(bench_with_urmp, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(bench_with_urmp, root)
    stems = next((root / "urmp/processed/stems").glob("*.flac"))
    audio, rate = sf.read(stems)
    sf.write(stems, audio * 0.9, rate, format="FLAC", subtype="PCM_24")
    with pytest.raises(MusicbenchError, match="not the file the real-ensembles track was built on"):
        DataRoot(root).verify_items("test", None, "urmp")
    # `musicbench validate` covers the track too: the changed stems file, and nothing else
    data = DataRoot(root)
    problems = {(p.video_id, p.path, p.problem) for p in validate_index(data.index_path, root)}
    piece = stems.stem
    assert problems == {(piece, stems.relative_to(root).as_posix(), "changed")}, problems
    result = run_cli("validate", "--params", REPO_ROOT / "params.yaml", "--root", root)
    assert result.returncode == 1 and "`musicbench urmp process` for the real-ensembles track" in " ".join(result.stderr.split())
    (root / "urmp" / "benchmark.json").write_text("{}")  # a table that no longer gives the track's version
    assert {p.problem for p in validate_index(data.index_path, root) if p.path.endswith("items.parquet")} == {"stale"}


def test_import_refuses_while_another_stage_writes_the_root(urmp_copy, tmp_path):
    data = tmp_path / "data"
    with hold_data_root(data, "process"):
        result = run_cli("urmp", "import", urmp_copy, "--root", data)
    assert result.returncode == 2 and "process" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (data / "urmp").exists()


def test_rescoring_after_new_urmp_clips_never_reuses_old_scores(bench_with_urmp, tmp_path):
    """The score cache keys a URMP item by the track's version: new clips under the same item ids
    get their own mixture floor (the mixture oracle's NSDR stays exactly 0)."""
    root = tmp_path / "data"
    shutil.copytree(bench_with_urmp, root)
    cache = tmp_path / "cache"
    versions = {process_urmp(urmp_params(clips_per_piece=1), root).version}  # one clip per piece: the seed moves it
    first = evaluate(None, root, tmp_path / "runs" / "a", oracle="mixture", limit=2, cache_dir=cache)
    for seed in range(1, 6):
        params = urmp_params(clips_per_piece=1)
        params["mixtures"] = {**params["mixtures"], "seed": seed}
        versions.add(process_urmp(params, root).version)
        if len(versions) > 1:
            break
    assert len(versions) > 1
    second = evaluate(None, root, tmp_path / "runs" / "b", oracle="mixture", limit=2, cache_dir=cache)
    for summary in (first, second):
        assert abs(summary["urmp"]["metrics"]["nsdr"]["mean"]) < 1e-6
    floors = [pd.read_parquet(tmp_path / "runs" / run / "items.parquet").query("track == 'urmp'")["sdr_mix"].tolist()
              for run in ("a", "b")]
    assert floors[0] != floors[1]


def test_processing_again_skips_finished_pieces_and_redoes_a_damaged_one(urmp_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(urmp_root[0], root)
    processed = root / "urmp" / "processed"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in processed.rglob("*.*")}
    again = process_urmp(urmp_params(), root)
    assert not again.problems and again.version == urmp_root[1].version
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in processed.rglob("*.*")} == before  # nothing rewritten
    frames = processed / "frames" / "urmp_01_Jupiter.tar"
    frames.write_bytes(frames.read_bytes()[:1000])
    redone = process_urmp(urmp_params(), root)
    assert frames.read_bytes() == before[frames][1] and redone.version == urmp_root[1].version
