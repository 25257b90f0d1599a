"""Processing stage with the real ffmpeg binary: outputs, trim, bad inputs, resume after a kill, validate."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicbench.benchmark import INDEX_COLUMNS, FrameArchive, read_clip_frames, read_index
from musicbench.config import AudioConfig
from musicbench.manifest import ManifestEntry, write_manifest
from musicbench.media import ffmpeg_exe, write_video
from musicbench.process import ProcessConfig, process_manifest, validate_index

REPO = Path(__file__).resolve().parents[1]
SR, VIDEO_FPS, W, H = 11025, 16, 160, 120
CONFIG = ProcessConfig(audio=AudioConfig(sample_rate=SR, clip_samples=65535, fps=8), size=112, jpeg_qscale=2, crop="center",
                       jobs=2)
PARAMS_YAML = """\
dataset: {source: synth, root: data}
audio: {sample_rate: 11025, clip_samples: 65535}
frames: {fps: 8, size: 112}
process: {jobs: 1, jpeg_qscale: 2, crop: center, duration_tolerance: 1.0}
"""


def _brightness(t: np.ndarray) -> np.ndarray:
    """Grey level that encodes time t (s) in the test videos: 20 + 25 * t."""
    return 20.0 + 25.0 * t


def _make_video(path: Path, seconds: float, seed: int) -> None:
    """An H.264/AAC mp4: grey level rising with time, a tone whose loudness rises with time."""
    n_frames = int(round(seconds * VIDEO_FPS))
    levels = np.clip(_brightness(np.arange(n_frames) / VIDEO_FPS), 0, 255).astype(np.uint8)
    frames = (np.full((H, W, 3), level, dtype=np.uint8) for level in levels)
    t = np.arange(int(seconds * SR)) / SR
    audio = (0.1 + 0.08 * t) * np.sin(2 * np.pi * (330 + 40 * seed) * t)
    write_video(path, frames, VIDEO_FPS, W, H, audio.astype(np.float32), SR)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Source videos by name: good0..good5 (10 s), short (3 s), noaudio, truncated, garbage."""
    folder = tmp_path_factory.mktemp("videos")
    made: dict[str, Path] = {}
    for i in range(6):
        made[f"good{i}"] = folder / f"good{i}.mp4"
        _make_video(made[f"good{i}"], 10.0, i)
    made["short"] = folder / "short.mp4"
    _make_video(made["short"], 3.0, 7)
    made["noaudio"] = folder / "noaudio.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=16:duration=8",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", made["noaudio"]],
        check=True,
    )
    data = made["good0"].read_bytes()
    made["truncated"] = folder / "truncated.mp4"
    made["truncated"].write_bytes(data[: len(data) // 2])
    made["garbage"] = folder / "garbage.mp4"
    made["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return made


def _entry(video_id: str, video: str, **extra) -> ManifestEntry:
    return ManifestEntry(video_id, "solo", ("violin",), "MUSIC-Synth", "synth", video_path=f"videos/{video}.mp4", **extra)


def _make_root(root: Path, videos: dict[str, Path], entries: list[ManifestEntry]) -> Path:
    """A data root holding the entries' videos and manifest.csv; returns the manifest path."""
    (root / "videos").mkdir(parents=True)
    for entry in entries:
        name = Path(entry.video_path).stem
        if name in videos and not (root / entry.video_path).exists():
            shutil.copyfile(videos[name], root / entry.video_path)
    write_manifest(entries, root / "manifest.csv")
    return root / "manifest.csv"


def _tree_bytes(out: Path) -> dict[str, bytes]:
    """Every file under a processed folder, by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*")) if p.is_file()
    }


def test_outputs_rates_counts_and_trim(tmp_path, videos):
    entries = [
        _entry("syn_violin_00", "good0", stems_path="stems/syn_violin_00.flac", boxes_path="boxes/syn_violin_00.json"),
        _entry("syn_violin_01", "good1"),
        _entry("syn_violin_02", "good0", start=2.0, end=9.5),
    ]
    manifest = _make_root(tmp_path, videos, entries)
    summary = process_manifest(manifest, tmp_path, CONFIG)
    assert (summary.processed, summary.skipped, summary.rejected) == (3, 0, 0)
    index = read_index(summary.index_path).set_index("video_id")
    assert list(index.reset_index().columns) == list(INDEX_COLUMNS)

    for video_id in ("syn_violin_00", "syn_violin_01"):
        row = index.loc[video_id]
        info = sf.info(tmp_path / row.audio_path)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (SR, 1, "FLAC", "PCM_24")
        assert info.frames == row.n_samples == 10 * SR and row.duration == pytest.approx(10.0)
        assert row.n_frames == len(FrameArchive(tmp_path / row.frames_path)) == 80  # 10 s at 8 fps
        frames = read_clip_frames(tmp_path / row.frames_path, [0, 79])
        assert frames.dtype == np.uint8 and frames.shape == (2, 112, 112, 3)
        assert (row.frame_width, row.frame_height, row.video_width, row.video_height) == (112, 112, W, H)
        assert row.split == "" and row.source == "synth" and row.instruments == "violin"
    assert index.loc["syn_violin_00", "stems_path"] == "stems/syn_violin_00.flac"
    assert index.loc["syn_violin_00", "boxes_path"] == "boxes/syn_violin_00.json"

    # trim 2.0-9.5 s: 7.5 s of audio and 60 frames, starting at t = 2 s in both streams
    full, trimmed = index.loc["syn_violin_00"], index.loc["syn_violin_02"]
    assert abs(trimmed.n_samples - 7.5 * SR) <= 2 and trimmed.n_frames == 60
    assert (trimmed.start, trimmed.end) == (2.0, 9.5)
    first = read_clip_frames(tmp_path / trimmed.frames_path, [0, 59]).mean(axis=(1, 2, 3))
    assert first[0] == pytest.approx(_brightness(2.0), abs=4) and first[1] == pytest.approx(_brightness(9.375), abs=4)
    full_audio, _ = sf.read(tmp_path / full.audio_path, dtype="float32")
    trimmed_audio, _ = sf.read(tmp_path / trimmed.audio_path, dtype="float32")
    reference = full_audio[2 * SR: 2 * SR + trimmed_audio.size]
    assert np.corrcoef(reference[:SR], trimmed_audio[:SR])[0, 1] > 0.99
    with pytest.raises(Exception, match="frame 80 not in"):
        read_clip_frames(tmp_path / full.frames_path, [80])
    # one archive object serves many reads (its member table is parsed once), byte-identical to fresh reads
    archive = FrameArchive(tmp_path / full.frames_path)
    assert len(archive) == 80
    for indices in ([5, 6, 7], [79, 0], [40]):
        assert np.array_equal(archive.read(indices), read_clip_frames(tmp_path / full.frames_path, indices))
    assert not np.array_equal(archive.read([0]), archive.read([79]))
    with pytest.raises(Exception, match="frame -1 not in"):
        archive.read([-1])


def test_bad_inputs_go_to_rejects_and_index_is_deterministic(tmp_path, videos):
    entries = [
        _entry("syn_violin_00", "good0"),
        _entry("syn_violin_01", "good1"),
        _entry("syn_cello_00", "noaudio"),
        _entry("syn_cello_01", "short"),
        _entry("syn_cello_02", "truncated"),
        _entry("syn_cello_03", "garbage"),
        _entry("syn_cello_04", "not_downloaded"),
        _entry("syn_cello_05", "good2", start=11.0),
    ]
    indexes = []
    for run in ("a", "b"):
        root = tmp_path / run
        manifest = _make_root(root, videos, entries)
        summary = process_manifest(manifest, root, CONFIG)
        assert (summary.processed, summary.rejected) == (2, 6)
        indexes.append((summary.index_path.read_bytes(), summary.rejects_path.read_bytes()))
    assert indexes[0] == indexes[1], "same inputs must give byte-identical index files"

    import pandas as pd

    rejects = pd.read_parquet(summary.rejects_path).set_index("video_id")
    assert rejects["reason"].to_dict() == {
        "syn_cello_00": "no_audio",
        "syn_cello_01": "too_short",
        "syn_cello_02": "corrupt_stream",
        "syn_cello_03": "unreadable",
        "syn_cello_04": "missing_video",
        "syn_cello_05": "trim_out_of_range",
    }
    assert "65535" in rejects.loc["syn_cello_01", "detail"]
    assert str(tmp_path) not in "".join(rejects["detail"])
    assert sorted(read_index(summary.index_path)["video_id"]) == ["syn_violin_00", "syn_violin_01"]
    out = root / "processed"
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["syn_violin_00.flac", "syn_violin_01.flac"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["syn_violin_00.tar", "syn_violin_01.tar"]
    assert not (out / ".work").exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from musicbench.cli import app; app()", *args]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, videos):
    entries = [_entry(f"syn_violin_0{i}", f"good{i}") for i in range(6)]
    reference_root = tmp_path / "reference"
    process_manifest(_make_root(reference_root, videos, entries), reference_root, CONFIG)
    reference = _tree_bytes(reference_root / "processed")

    root = tmp_path / "killed"
    manifest = _make_root(root, videos, entries)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_YAML)
    out = root / "processed"
    command = _cli("process", "--params", str(params), "--manifest", str(manifest), "--root", str(root), "--jobs", "1")
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        finished = list((out / "records").glob("syn_*.json")) if (out / "records").is_dir() else []
        in_flight = list((out / ".work").glob("*/frames/*.jpg")) if (out / ".work").is_dir() else []
        if len(finished) >= 2 and in_flight:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its ffmpeg, mid-video
            killed = True
            break
        time.sleep(0.001)
    proc.wait()
    assert killed, "the run finished before it could be killed mid-video"
    finished_ids = sorted(p.stem for p in (out / "records").glob("*.json") if not p.name.startswith("."))
    assert 2 <= len(finished_ids) < 6 and not (out / "videos.parquet").exists()
    unfinished = sorted({e.video_id for e in entries} - set(finished_ids))

    # A half-written output under a final name (as a non-atomic writer would leave) and a finished
    # output damaged after the fact: neither may be trusted by the rerun.
    (out / "frames" / f"{unfinished[0]}.tar").write_bytes(b"half a tar")
    damaged = finished_ids[0]
    with open(out / "frames" / f"{damaged}.tar", "r+b") as handle:
        handle.truncate(1000)

    summary = process_manifest(manifest, root, CONFIG)
    assert summary.skipped == len(finished_ids) - 1
    assert summary.processed == 6 - summary.skipped and summary.rejected == 0
    assert _tree_bytes(out) == reference, "resumed outputs must equal an uninterrupted run, byte for byte"
    assert validate_index(out / "videos.parquet", root) == []


def test_validate_reports_missing_truncated_and_changed(tmp_path, videos):
    entries = [_entry(f"syn_violin_0{i}", f"good{i}") for i in range(3)]
    manifest = _make_root(tmp_path, videos, entries)
    summary = process_manifest(manifest, tmp_path, CONFIG, jobs=1)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_YAML)
    validate = _cli("validate", "--params", str(params), "--root", str(tmp_path))
    assert validate_index(summary.index_path, tmp_path) == []
    clean = subprocess.run(validate, cwd=REPO, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr

    out = tmp_path / "processed"
    with open(out / "frames" / "syn_violin_00.tar", "r+b") as handle:
        handle.truncate(5000)
    audio = out / "audio" / "syn_violin_01.flac"
    data = bytearray(audio.read_bytes())
    data[len(data) // 2] ^= 0xFF
    audio.write_bytes(bytes(data))
    (out / "audio" / "syn_violin_02.flac").unlink()

    problems = {(p.video_id, p.path, p.problem) for p in validate_index(summary.index_path, tmp_path)}
    assert problems == {
        ("syn_violin_00", "processed/frames/syn_violin_00.tar", "truncated"),
        ("syn_violin_01", "processed/audio/syn_violin_01.flac", "changed"),
        ("syn_violin_02", "processed/audio/syn_violin_02.flac", "missing"),
    }
    dirty = subprocess.run(validate, cwd=REPO, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert dirty.returncode == 1
    for word in ("truncated", "changed", "missing", "syn_violin_02"):
        assert word in dirty.stderr


def test_output_outside_root_is_a_clear_error(tmp_path, videos):
    manifest = _make_root(tmp_path / "root", videos, [_entry("syn_violin_00", "good0")])
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_YAML)
    result = subprocess.run(
        _cli("process", "--params", str(params), "--manifest", str(manifest), "--root", str(tmp_path / "root"),
             "--out", str(tmp_path / "elsewhere")),
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: output folder") and "inside the data root" in result.stderr


def test_several_manifests_are_processed_together_and_ids_must_be_unique(tmp_path, videos):
    from musicbench.errors import MusicbenchError

    solo = _make_root(tmp_path, videos, [_entry("syn_violin_00", "good0")])
    duet_entry = ManifestEntry(
        "syn_duet_00", "duet", ("flute", "violin"), "MUSIC-Synth", "synth", video_path="videos/good1.mp4"
    )
    shutil.copyfile(videos["good1"], tmp_path / "videos" / "good1.mp4")
    write_manifest([duet_entry], tmp_path / "duet.csv")
    summary = process_manifest([solo, tmp_path / "duet.csv"], tmp_path, CONFIG)
    index = read_index(summary.index_path).set_index("video_id")
    assert sorted(index.index) == ["syn_duet_00", "syn_violin_00"]
    assert (index.loc["syn_duet_00", "kind"], index.loc["syn_duet_00", "n_sources"]) == ("duet", 2)
    assert index.loc["syn_duet_00", "instruments"] == "flute violin"
    with pytest.raises(MusicbenchError, match="is in both"):
        process_manifest([solo, solo], tmp_path, CONFIG)


def test_read_manifests_keeps_repeats_only_when_asked(tmp_path):
    from musicbench.errors import MusicbenchError
    from musicbench.manifest import read_manifests

    first = ManifestEntry("syn_violin_00", "solo", ("violin",), "MUSIC-Synth", "synth", video_path="videos/a.mp4")
    second = ManifestEntry("syn_flute_00", "solo", ("flute",), "MUSIC-Synth", "synth", video_path="videos/b.mp4")
    write_manifest([first, second], tmp_path / "one.csv")
    write_manifest([first], tmp_path / "two.csv")
    assert read_manifests(tmp_path / "one.csv") == [first, second]  # file order
    with pytest.raises(MusicbenchError, match="is in both .*one.csv.* and .*two.csv"):
        read_manifests([tmp_path / "one.csv", tmp_path / "two.csv"])
    assert read_manifests([tmp_path / "one.csv", tmp_path / "two.csv"], repeats=True) == [first, second, first]
    with pytest.raises(MusicbenchError, match="no manifest given"):
        read_manifests([])


def test_unreadable_or_incomplete_index_is_a_clear_error(tmp_path):
    import pandas as pd

    from musicbench.errors import MusicbenchError
    from musicbench.fsutil import write_parquet

    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    with pytest.raises(MusicbenchError, match="cannot read index .*garbage.parquet.*; run `musicbench process`"):
        read_index(tmp_path / "garbage.parquet")
    with pytest.raises(MusicbenchError, match="cannot read index .*absent.parquet"):
        read_index(tmp_path / "absent.parquet")
    write_parquet(pd.DataFrame({"video_id": ["a"]}), tmp_path / "partial.parquet")
    with pytest.raises(MusicbenchError, match="partial.parquet' lacks column.*kind"):
        read_index(tmp_path / "partial.parquet")


def test_ffmpeg_log_parsing():
    from musicbench.media import parse_ffmpeg_log

    log = """\
[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'videos/a.mp4':
[info]   Duration: 00:01:02.50, start: 0.000000, bitrate: 300 kb/s
[info]   Stream #0:0[0x1](und): Video: mjpeg (Baseline), yuvj420p, 600x600, 90k tbr (attached pic)
[info]   Stream #0:1[0x2](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p, 640x480 [SAR 1:1 DAR 4:3], 25 fps
[info]   Stream #0:2[0x3](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s
[info] Stream mapping:
[info]   Stream #0:2 -> #0:0 (aac (native) -> pcm_f32le (native))
[info] Output #0, f32le, to 'pipe:':
[info]   Stream #0:0: Video: mjpeg, yuvj420p, 112x112
[error] [h264 @ 0x55d5c0a1b2c0] corrupt macroblock 3 4
[fatal] Conversion failed!
"""
    report = parse_ffmpeg_log(log)
    assert report.opened and report.duration == 62.5 and report.has_audio and report.has_video
    assert (report.video_width, report.video_height) == (640, 480)  # the attached picture is skipped
    assert report.errors == ["[h264] corrupt macroblock 3 4", "Conversion failed!"]
    nothing = parse_ffmpeg_log("[error] videos/x.mp4: Invalid data found when processing input\n")
    assert not nothing.opened and nothing.duration is None and not nothing.has_video
    assert nothing.errors == ["videos/x.mp4: Invalid data found when processing input"]


def test_hostile_manifest_rows_are_rejects_and_the_rest_is_processed(tmp_path, videos):
    """A NUL byte, Latin-1 text, short and long rows, out-of-range and non-numeric times among good rows."""
    import pandas as pd

    good = [_entry("syn_violin_00", "good0"), _entry("syn_violin_01", "good1")]
    manifest = _make_root(tmp_path, videos, good)
    lines = manifest.read_bytes().splitlines(keepends=True)
    hostile = [
        b"syn_cello_00,solo,violin,MUSIC-Synth,synth,,,,videos/good2\x00.mp4,,\n",  # line 3: NUL in video_path
        "syn_cello_01,solo,viol\u00een,MUSIC-Synth,synth,,,,videos/good2.mp4,,\n".encode("latin-1"),
        b"syn_cello_02,solo,violin,MUSIC-Synth,synth,,,\n",
        b"syn_cello_03,solo,violin,MUSIC-Synth,synth,,,,videos/good2.mp4,,,surplus\n",
        b"syn_cello_04,solo,violin,MUSIC-Synth,synth,1e308,,,videos/good2.mp4,,\n",
        b"syn_cello_05,solo,violin,MUSIC-Synth,synth,inf,,,videos/good2.mp4,,\n",
        b"syn_cello_06,solo,violin,MUSIC-Synth,synth,,two,,videos/good2.mp4,,\n",
    ]
    manifest.write_bytes(b"\xef\xbb\xbf" + lines[0] + lines[1] + b"".join(hostile) + lines[2])
    summary = process_manifest(manifest, tmp_path, CONFIG)
    assert (summary.processed, summary.rejected) == (2, len(hostile))
    assert sorted(read_index(summary.index_path)["video_id"]) == ["syn_violin_00", "syn_violin_01"]
    rejects = pd.read_parquet(summary.rejects_path).set_index("video_id")
    expected = {  # id: (reason, line, column)
        "syn_cello_00": ("bad_row", 3, "video_path"), "syn_cello_01": ("bad_row", 4, "instruments"),
        "syn_cello_02": ("bad_row", 5, ""), "syn_cello_03": ("bad_row", 6, ""),
        "syn_cello_04": ("trim_out_of_range", 7, "start"), "syn_cello_05": ("bad_row", 8, "start"),
        "syn_cello_06": ("bad_row", 9, "end"),
    }
    assert rejects["reason"].to_dict() == {video_id: reason for video_id, (reason, _, _) in expected.items()}
    for video_id, (_, line, column) in expected.items():
        detail = rejects.loc[video_id, "detail"]
        assert detail.startswith(f"manifest.csv:{line}: ") and (not column or f"column {column!r}" in detail), detail
        assert "\0" not in detail and "\n" not in detail and str(tmp_path) not in detail
    assert "out of range" in rejects.loc["syn_cello_04", "detail"]
    assert validate_index(summary.index_path, tmp_path) == []


def test_symlink_loops_in_a_manifests_data_are_rejects_and_the_rest_is_processed(tmp_path, videos):
    """Path.resolve raised RuntimeError("Symlink loop") in a worker: a traceback, and every good row lost."""
    import pandas as pd

    entries = [_entry("syn_violin_00", "good0"), _entry("syn_violin_01", "good1"), _entry("syn_cello_00", "loop_a"),
               ManifestEntry("syn_cello_01", "solo", ("cello",), "MUSIC-Synth", "synth", video_path="videos/ring/x.mp4")]
    manifest = _make_root(tmp_path, videos, entries)
    os.symlink("loop_b.mp4", tmp_path / "videos" / "loop_a.mp4")  # a -> b -> a
    os.symlink("loop_a.mp4", tmp_path / "videos" / "loop_b.mp4")
    os.symlink("ring", tmp_path / "videos" / "ring")  # a folder that is a link to itself
    summary = process_manifest(manifest, tmp_path, CONFIG)
    assert (summary.processed, summary.rejected) == (2, 2)
    assert sorted(read_index(summary.index_path)["video_id"]) == ["syn_violin_00", "syn_violin_01"]
    rejects = pd.read_parquet(summary.rejects_path).set_index("video_id")
    assert rejects["reason"].to_dict() == {"syn_cello_00": "bad_path", "syn_cello_01": "bad_path"}
    assert rejects.loc["syn_cello_00", "detail"] == ("'videos/loop_a.mp4' is a symlink loop (its links lead back to each "
                                                    "other); replace the link with the video file")
    assert rejects.loc["syn_cello_01", "detail"].startswith("'videos/ring/x.mp4' is a symlink loop")

    # a processed file replaced by a loop afterwards: validate names it, and the other files are checked
    audio = tmp_path / "processed" / "audio" / "syn_violin_01.flac"
    audio.unlink()
    os.symlink("syn_violin_01.flac", audio)
    problems = validate_index(summary.index_path, tmp_path)
    assert [(p.video_id, p.path, p.problem) for p in problems] == [
        ("syn_violin_01", "processed/audio/syn_violin_01.flac", "missing")]
    assert "is a symlink loop" in problems[0].detail and "\n" not in problems[0].detail
