"""Processing stage: manifest videos -> model-ready audio and frames, plus an index of them.

One code path for MUSIC-Synth and real MUSIC. For each manifest row, one ffmpeg run (built with
ffmpeg-python, executed with the imageio-ffmpeg binary) decodes the video, trimmed to the row's
optional ``start``/``end`` (seconds, input seeking, so the outputs start at ``start``):

- audio: mono, ``audio.sample_rate`` Hz (11025), written as **FLAC, 24-bit integer PCM**
  (quantisation step 2**-23 of full scale, far below any codec noise). Samples beyond [-1, 1]
  after decoding are clipped and counted in the index (``clipped_samples``).
- frames: ``frames.fps`` frames per second (8); frame ``i`` shows the video at about
  ``start + i / fps`` seconds. With ``process.crop: center`` (default) each frame is scaled,
  keeping its aspect ratio, so that its shorter side is ``frames.size`` pixels, then centre-cropped
  to a ``size x size`` square (the Sound of Pixels evaluation convention); with ``crop: none`` it is
  only scaled (shorter side = ``size``). JPEG from ffmpeg's MJPEG encoder at
  ``process.jpeg_qscale`` (2 = best .. 31). All frames of a video live in ONE uncompressed tar of
  ``000000.jpg, 000001.jpg, ...`` (DVC is slow with thousands of small files); read them with
  `musicbench.benchmark.FrameArchive`.

Output layout (``out_dir`` must lie inside the data root; paths in the index are relative to the
data root; the layout's names live in `musicbench.benchmark`)::

    <root>/processed/
        audio/<video_id>.flac        mono FLAC, PCM_24, sample_rate Hz
        frames/<video_id>.tar        uncompressed tar of 000000.jpg ... (uint8 RGB JPEGs)
        records/<video_id>.json      per-video completion record (resume bookkeeping)
        videos.parquet               the index: one row per processed video (see INDEX_COLUMNS)
        rejects.parquet              one row per rejected video: reason code and detail
        .work/                       scratch space of a running stage (removed at the end)

Robustness: every output is written under a temporary name and renamed when complete; a video's
record is written last and names the sha256 of both outputs and a fingerprint of everything they
depend on (the manifest row, the input video's sha256, the processing parameters, the ffmpeg
build). A rerun skips a video only if its record matches and both outputs still hash as recorded,
so a killed run is resumed without trusting any half-written file. Leftover temporary files of a
killed run are deleted at the start of the next one (one run at a time per output folder).

Bad inputs never crash the run and never yield a stand-in clip: a manifest row that cannot be read
(not UTF-8, short or long, a NUL byte, a field that is not a number or out of range), a missing file, a file ffmpeg
cannot open, no audio or no video stream, any decode error, a stream shorter than its container
says, a trim outside the video, audio and video lengths that disagree, silence, or fewer samples
than one clip (``audio.clip_samples``) send the video to ``rejects.parquet`` with a reason code
(`REJECT_REASONS`) and a one-line detail. Index files are written deterministically (rows sorted by
video_id, no pandas metadata, no timestamps): same inputs give byte-identical Parquet files.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import ffmpeg
import numpy as np
import soundfile as sf

from musicbench.benchmark import (
    AUDIO_DIR,
    FRAMES_DIR,
    INDEX_COLUMNS,
    INDEX_NAME,
    RECORDS_DIR,
    REJECTS_NAME,
    WORK_DIR,
    DataRoot,
    processed_paths,
    read_index,
)
from musicbench.concurrency import hold_data_root, worker_pool
from musicbench.config import AudioConfig, check_fields, config_error, config_from_params, jobs_option, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import (
    SymlinkLoopError,
    atomic_path,
    atomic_write_text,
    ensure_writable_dir,
    resolve_in_root,
    sha256_file,
    write_parquet,
)
from musicbench.manifest import BadRow, ManifestEntry, entry_path, scan_manifests
from musicbench.media import BITEXACT_SWS_FLAGS, FfmpegLog, ffmpeg_exe, parse_ffmpeg_log
from musicbench.progress import progress_bar

#: Bumped whenever the bytes this stage writes for the same inputs would change.
#: 2: frames scaled with swscale's exact rounding and JPEG-encoded with the integer DCT (no SIMD paths).
PROCESS_FORMAT_VERSION = 2

REJECT_REASONS: dict[str, str] = {
    "bad_row": "the manifest row is malformed: not UTF-8, a short or long row, a NUL byte, a bad or repeated field",
    "bad_path": "the manifest's video_path is empty, leaves the data root or is a symlink loop",
    "missing_video": "the video file does not exist",
    "unreadable": "ffmpeg cannot open the file (not a media file, or a corrupt container)",
    "no_audio": "the file has no audio stream",
    "no_video": "the file has no video stream",
    "corrupt_stream": "ffmpeg reported decode errors (corrupt or truncated stream)",
    "decode_failed": "ffmpeg exited with an error",
    "trim_out_of_range": "the manifest's start/end lie outside the video (or outside 0 to manifest.MAX_SECONDS)",
    "truncated": "fewer seconds decoded than the container announces",
    "av_mismatch": "audio and frames cover durations that differ by more than the tolerance",
    "silent": "the decoded audio is all zeros",
    "too_short": "fewer audio samples than one clip (audio.clip_samples)",
}

REJECT_COLUMNS: tuple[str, ...] = (
    "video_id", "kind", "instruments", "subset", "source", "video_path", "reason", "detail",
)


@dataclass(frozen=True)
class ProcessConfig:
    """Knobs of the processing stage (params.yaml ``audio``, ``frames`` and ``process`` sections).

    audio: sample rate, clip length and frame rate; size in pixels; jpeg_qscale is ffmpeg's MJPEG
    -q:v (2 best .. 31 worst); crop is ``center`` or ``none``; duration_tolerance in seconds;
    jobs = videos processed in parallel.
    """

    audio: AudioConfig
    size: int = knob(positive=True, key="frames.size")
    jpeg_qscale: int = knob(2, positive=True)
    crop: Literal["center", "none"] = knob("center")
    duration_tolerance: float = knob(1.0, positive=True)
    jobs: int = knob(2, positive=True)

    def __post_init__(self) -> None:
        check_fields(self, "process")  # one type per field, so that fps 8 and 8.0 give the same fingerprint
        if not 2 <= self.jpeg_qscale <= 31:
            raise config_error("process.jpeg_qscale", "must be an integer from 2 (best) to 31", self.jpeg_qscale)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ProcessConfig":
        """Build from a loaded params.yaml (section ``process`` may be left out: its defaults)."""
        return config_from_params(cls, params, "process", optional=True, audio=AudioConfig.from_params(params))

    def fingerprint_fields(self) -> dict[str, Any]:
        """The fields that change output bytes (everything but `jobs`)."""
        fields = {**asdict(self.audio), **asdict(self)}
        for name in ("audio", "jobs"):
            fields.pop(name)
        return fields


@dataclass
class ProcessSummary:
    """Counts of one run and where the index files are."""

    processed: int = 0
    skipped: int = 0
    rejected: int = 0
    index_path: Path | None = None
    rejects_path: Path | None = None
    reasons: dict[str, int] = field(default_factory=dict)


class _Rejected(Exception):
    """A bad video: `reason` is a REJECT_REASONS code, `detail` one line for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class _VideoResult:
    video_id: str
    status: str  # processed | skipped | rejected
    row: dict[str, Any] | None = None
    reject: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# ffmpeg


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """First line of `ffmpeg -version` of the binary in use (part of every output's fingerprint)."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, errors="replace")
    lines = result.stdout.strip().splitlines()
    return lines[0] if lines else "unknown"


def build_ffmpeg_command(
    video: Path, frames_pattern: Path, config: ProcessConfig, start: float | None, end: float | None,
    with_audio: bool = True,
) -> list[str]:
    """The ffmpeg argument list: mono float32 audio to stdout (unless not `with_audio`), JPEG frames
    to `frames_pattern`."""
    input_args: dict[str, Any] = {"threads": 1}  # one decoder thread: parallelism is across videos
    if start is not None:
        input_args["ss"] = repr(float(start))
    if end is not None:
        input_args["to"] = repr(float(end))
    source = ffmpeg.input(os.fspath(video), **input_args)
    audio = source["a:0"].output(
        "pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=config.audio.sample_rate
    )
    size = config.size
    # scale so that the shorter side is `size`, aspect kept; then (crop: center) a centred square.
    # The frames must not depend on the CPU: the one swscale run (scale and conversion to yuvj420p)
    # rounds as swscale's C code does (BITEXACT_SWS_FLAGS), and the MJPEG encoder uses the integer
    # DCT (dct=int), not the x86 SSE2 one; H.264 decoding is exact by the standard.
    frames = source["v:0"].filter("fps", fps=config.audio.fps).filter(
        "scale", size, size, force_original_aspect_ratio="increase", flags=BITEXACT_SWS_FLAGS)
    if config.crop == "center":
        frames = frames.filter("crop", size, size)
    frames = frames.filter("setsar", 1).output(
        os.fspath(frames_pattern), format="image2", vcodec="mjpeg", pix_fmt="yuvj420p", dct="int",
        start_number=0, threads=1, **{"q:v": config.jpeg_qscale, "fflags": "+bitexact", "flags:v": "+bitexact"},
    )
    return (ffmpeg.merge_outputs(audio, frames) if with_audio else frames).global_args(
        "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-filter_complex_threads", "1",
    ).compile(cmd=ffmpeg_exe())


# ---------------------------------------------------------------------------------------------
# frame archives


def _write_frames_tar(frame_files: list[Path], tar_path: Path) -> None:
    """Pack JPEG files into an uncompressed tar named 000000.jpg, ... with fixed metadata."""
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for index, frame_file in enumerate(frame_files):
            data = frame_file.read_bytes()
            info = tarfile.TarInfo(f"{index:06d}.jpg")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))


def extract_frames(video: Path, tar_path: Path, config: ProcessConfig, work: Path) -> tuple[int, int, int]:
    """Decode the frames of `video` alone (no audio needed) as `process_manifest` does (frames.fps,
    scaled, ``config.crop``) into the frame archive `tar_path` (written atomically); return
    (frame count, width, height). Raises MusicbenchError naming the video if ffmpeg fails."""
    from PIL import Image

    frames_dir = work / "frames"
    shutil.rmtree(frames_dir, ignore_errors=True)
    frames_dir.mkdir(parents=True)
    command = build_ffmpeg_command(video, frames_dir / "%06d.jpg", config, None, None, with_audio=False)
    result = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL)
    frame_files = sorted(frames_dir.glob("*.jpg"))
    if result.returncode != 0 or not frame_files:
        report = parse_ffmpeg_log(result.stderr.decode(errors="replace"))
        raise MusicbenchError(f"cannot decode the frames of {os.fspath(video)!r}: "
                              f"{report.errors[-1] if report.errors else 'no frames'}; check the file")
    with atomic_path(tar_path) as tmp:
        _write_frames_tar(frame_files, tmp)
    with Image.open(frame_files[0]) as first:
        width, height = first.size
    shutil.rmtree(frames_dir, ignore_errors=True)
    return len(frame_files), width, height


# ---------------------------------------------------------------------------------------------
# one video


def _fingerprint(entry: ManifestEntry, video_sha256: str, config: ProcessConfig, ffmpeg_build: str) -> str:
    payload = {
        "format_version": PROCESS_FORMAT_VERSION,
        "entry": {**asdict(entry), "instruments": list(entry.instruments)},
        "video_sha256": video_sha256,
        "config": config.fingerprint_fields(),
        "ffmpeg": ffmpeg_build,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _trusted_record(record_path: Path, fingerprint: str, audio_path: Path, frames_path: Path) -> dict | None:
    """The index row of a finished video if its record and both outputs are intact, else None."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    row = record.get("row") if isinstance(record, dict) else None
    if record.get("fingerprint") != fingerprint or not isinstance(row, dict):
        return None
    for path, size_key, sha_key in ((audio_path, "audio_bytes", "audio_sha256"), (frames_path, "frames_bytes", "frames_sha256")):
        try:
            if path.stat().st_size != row.get(size_key) or sha256_file(path) != row.get(sha_key):
                return None
        except OSError:
            return None
    return row


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _decode(entry: ManifestEntry, video: Path, config: ProcessConfig, work: Path) -> tuple[np.ndarray, list[Path], FfmpegLog]:
    """Run ffmpeg; return (mono float32 audio, frame files, log report) or raise _Rejected."""
    frames_dir = work / "frames"
    frames_dir.mkdir(parents=True)
    command = build_ffmpeg_command(video, frames_dir / "%06d.jpg", config, entry.start, entry.end)
    result = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL)
    log = result.stderr.decode(errors="replace").replace(os.fspath(video), entry.video_path)
    report = parse_ffmpeg_log(log)
    first_error = report.errors[0] if report.errors else "no error message"
    if result.returncode != 0:
        if not report.opened:
            raise _Rejected("unreadable", f"ffmpeg cannot open the file: {first_error}")
        if not report.has_audio:
            raise _Rejected("no_audio", "the file has no audio stream")
        if not report.has_video:
            raise _Rejected("no_video", "the file has no video stream")
        raise _Rejected("decode_failed", f"ffmpeg exit code {result.returncode}: {report.errors[-1] if report.errors else first_error}")
    if report.errors:
        # ffmpeg's demuxer and decoders log from their own threads, so the order of these lines varies
        # between runs: quote the smallest, so that rejects.parquet stays byte-identical for the same inputs
        raise _Rejected("corrupt_stream", f"{len(report.errors)} decode error(s), e.g. {min(report.errors)}")
    audio = np.frombuffer(result.stdout, dtype=np.float32)
    frame_files = sorted(frames_dir.glob("*.jpg"))
    return audio, frame_files, report


def _check_lengths(entry: ManifestEntry, audio: np.ndarray, n_frames: int, report: FfmpegLog, config: ProcessConfig) -> None:
    """Raise _Rejected if the decoded lengths disagree with the container, the trim or each other."""
    tolerance = config.duration_tolerance
    start = entry.start or 0.0
    decoded = audio.size / config.audio.sample_rate
    if report.duration is not None:
        if start >= report.duration or (entry.end is not None and entry.end > report.duration + tolerance):
            raise _Rejected(
                "trim_out_of_range",
                f"trim {start:g}-{'end' if entry.end is None else f'{entry.end:g}'} s outside the video's {report.duration:.3f} s",
            )
        expected = (min(entry.end, report.duration) if entry.end is not None else report.duration) - start
        if decoded < expected - tolerance:
            raise _Rejected("truncated", f"decoded {decoded:.3f} s of audio, the container announces {expected:.3f} s")
    if n_frames == 0:
        raise _Rejected("av_mismatch", f"no frames decoded for {decoded:.3f} s of audio")
    frames_duration = n_frames / config.audio.fps
    if abs(frames_duration - decoded) > tolerance:
        raise _Rejected(
            "av_mismatch", f"audio covers {decoded:.3f} s but frames cover {frames_duration:.3f} s ({n_frames} at {config.audio.fps:g} fps)"
        )
    if audio.size and not np.any(audio):
        raise _Rejected("silent", f"all {audio.size} decoded samples are zero")
    if audio.size < config.audio.clip_samples:
        raise _Rejected("too_short", f"{audio.size} samples ({decoded:.3f} s) < one clip of {config.audio.clip_samples} samples")


def _bad_row_reject(bad: BadRow) -> _VideoResult:
    """The reject of a manifest row that could not be read: its detail names the manifest file, line and field."""
    reason = "trim_out_of_range" if bad.problem == "range" and bad.column in ("start", "end") else "bad_row"
    base = {name: bad.fields.get(name, "") for name in REJECT_COLUMNS if name not in ("reason", "detail")}
    detail = bad.message.replace(bad.path, Path(bad.path).name, 1)  # no folder names: same bytes wherever the root is
    return _VideoResult(bad.video_id, "rejected", reject={**base, "video_id": bad.video_id, "reason": reason, "detail": detail})


def _process_video(entry: ManifestEntry, root: Path, out_dir: Path, config: ProcessConfig, ffmpeg_build: str) -> _VideoResult:
    """Process one manifest row; never raises for a bad video (returns a rejected result)."""
    audio_path, frames_path, record_path = processed_paths(out_dir, entry.video_id)
    reject_base = {
        "video_id": entry.video_id, "kind": entry.kind, "instruments": " ".join(entry.instruments),
        "subset": entry.subset, "source": entry.source, "video_path": entry.video_path,
    }
    work = out_dir / WORK_DIR / f"{entry.video_id}.{os.getpid()}"
    try:
        try:
            video = entry_path(root, entry, "video_path")
        except SymlinkLoopError:  # the detail names no folder: same bytes wherever the root is
            raise _Rejected("bad_path", f"{entry.video_path!r} is a symlink loop (its links lead back to each other); "
                                        "replace the link with the video file") from None
        except MusicbenchError as exc:
            raise _Rejected("bad_path", str(exc)) from None
        if not video.is_file():
            raise _Rejected("missing_video", f"{entry.video_path!r} not found under the data root")
        try:
            video_sha256 = sha256_file(video)
        except OSError as exc:
            raise _Rejected("unreadable", f"cannot read {entry.video_path!r}: {exc.strerror}") from None
        fingerprint = _fingerprint(entry, video_sha256, config, ffmpeg_build)
        if (row := _trusted_record(record_path, fingerprint, audio_path, frames_path)) is not None:
            return _VideoResult(entry.video_id, "skipped", row=row)
        _remove(record_path)  # from here on, this video's outputs are untrusted until the new record lands
        shutil.rmtree(work, ignore_errors=True)
        audio, frame_files, report = _decode(entry, video, config, work)
        _check_lengths(entry, audio, len(frame_files), report, config)

        clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
        with atomic_path(audio_path) as tmp:
            sf.write(tmp, np.clip(audio, -1.0, 1.0), config.audio.sample_rate, format="FLAC", subtype="PCM_24")
        with atomic_path(frames_path) as tmp:
            _write_frames_tar(frame_files, tmp)
        from PIL import Image

        with Image.open(frame_files[0]) as first:
            frame_width, frame_height = first.size
        row = {
            "video_id": entry.video_id, "kind": entry.kind, "instruments": " ".join(entry.instruments),
            "n_sources": entry.n_sources, "subset": entry.subset, "source": entry.source, "split": "",
            "start": entry.start, "end": entry.end, "duration": audio.size / config.audio.sample_rate,
            "sample_rate": config.audio.sample_rate, "n_samples": int(audio.size), "clipped_samples": clipped,
            "fps": float(config.audio.fps), "n_frames": len(frame_files),
            "frame_width": frame_width, "frame_height": frame_height,
            "video_width": report.video_width, "video_height": report.video_height,
            "audio_path": audio_path.relative_to(root).as_posix(), "audio_bytes": audio_path.stat().st_size,
            "audio_sha256": sha256_file(audio_path),
            "frames_path": frames_path.relative_to(root).as_posix(), "frames_bytes": frames_path.stat().st_size,
            "frames_sha256": sha256_file(frames_path),
            "video_path": entry.video_path, "video_sha256": video_sha256,
            "stems_path": entry.stems_path, "boxes_path": entry.boxes_path,
        }
        atomic_write_text(record_path, json.dumps({"fingerprint": fingerprint, "row": row}, sort_keys=True, indent=1) + "\n")
        return _VideoResult(entry.video_id, "processed", row=row)
    except OSError as exc:  # a file operation of ours failed (disk full, permissions): stop the run
        raise MusicbenchError(
            f"processing video {entry.video_id} failed: {exc.strerror} ({exc.filename or os.fspath(out_dir)}); "
            "free disk space or fix permissions and rerun: finished videos are kept"
        ) from None
    except _Rejected as rejected:
        _remove(record_path, audio_path, frames_path)  # stale outputs of an input that is now bad
        return _VideoResult(entry.video_id, "rejected", reject={**reject_base, "reason": rejected.reason, "detail": rejected.detail})
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# index files


def _index_schema():
    import pyarrow as pa

    types = {
        "n_sources": pa.int64(), "start": pa.float64(), "end": pa.float64(), "duration": pa.float64(),
        "sample_rate": pa.int64(), "n_samples": pa.int64(), "clipped_samples": pa.int64(), "fps": pa.float64(),
        "n_frames": pa.int64(), "frame_width": pa.int64(), "frame_height": pa.int64(),
        "video_width": pa.int64(), "video_height": pa.int64(), "audio_bytes": pa.int64(), "frames_bytes": pa.int64(),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in INDEX_COLUMNS])


def _write_rows(rows: list[dict[str, Any]], columns: Sequence[str], schema, path: str | os.PathLike) -> None:
    """Write rows sorted by video_id to `path` atomically, with no metadata that varies by run."""
    import pyarrow as pa

    rows = sorted(rows, key=lambda row: row["video_id"])
    table = pa.table({name: [row.get(name) for row in rows] for name in columns}, schema=schema)
    write_parquet(table, path, statistics=True, arrow_schema=False)


def write_index(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write the videos index (INDEX_COLUMNS) deterministically."""
    _write_rows(rows, INDEX_COLUMNS, _index_schema(), path)


def write_rejects(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write the rejects table (REJECT_COLUMNS) deterministically."""
    import pyarrow as pa

    _write_rows(rows, REJECT_COLUMNS, pa.schema([(name, pa.string()) for name in REJECT_COLUMNS]), path)


# ---------------------------------------------------------------------------------------------
# the stage


def _clean_leftovers(out_dir: Path) -> None:
    """Delete scratch space and temporary files that a killed run may have left behind."""
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
    for sub in (AUDIO_DIR, FRAMES_DIR, RECORDS_DIR, "."):
        directory = out_dir / sub
        if directory.is_dir():
            for leftover in directory.glob(".*.tmp-*"):
                if leftover.is_file():
                    leftover.unlink()


def default_manifest(params: dict[str, Any], root: str | os.PathLike) -> Path:
    """The manifest processed when none is given, by ``dataset.source``: ``ROOT/synth/manifest.csv``
    (MUSIC-Synth, written by `musicbench synth`), ``ROOT/music/manifest.csv`` (the downloaded and
    trimmed real MUSIC videos, written by `musicbench acquire`) or ``ROOT/music/solos/manifest.csv``
    (Solos' clips on disk, likewise)."""
    source = (params.get("dataset") or {}).get("source", "synth")
    path = DataRoot(root).manifest_path(source)
    if source in ("music", "solos") and not path.is_file():
        raise MusicbenchError(f"no downloaded-video manifest at {str(path)!r}; run `musicbench acquire` (or `dvc repro acquire`) first")
    return path


def process_manifest(
    manifest_path: str | os.PathLike | Sequence[str | os.PathLike],
    root: str | os.PathLike,
    config: ProcessConfig,
    out_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    progress: bool = False,
    executor: concurrent.futures.Executor | None = None,
) -> ProcessSummary:
    """Process every video of a manifest (or of several) into `out_dir` (default ``<root>/processed``).

    Writes audio, frame archives, per-video records, ``videos.parquet`` and ``rejects.parquet``
    (layout in the module docstring). Videos run in parallel on `jobs` processes (default
    ``config.jobs``) or on a given `executor`. Finished videos are skipped on a rerun.
    A manifest row that cannot be read (`musicbench.manifest.scan_manifest`) is a reject
    (``bad_row``, or ``trim_out_of_range`` for a start/end out of bounds) naming its line and
    field; the other rows go on. Raises MusicbenchError for a manifest unusable as a whole (unreadable,
    bad header, an id in two manifests), an unwritable or misplaced output folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise MusicbenchError(f"data root {str(root)!r} is not a folder; pass --root or fix dataset.root")
    root = root.resolve()
    out = Path(out_dir) if out_dir is not None else DataRoot(root).processed_dir
    out = out.resolve()
    if out != root and root not in out.parents:
        raise MusicbenchError(f"output folder {str(out)!r} must lie inside the data root {str(root)!r}")
    with hold_data_root(root, "process"):
        entries, bad_rows = scan_manifests(manifest_path)
        entries.sort(key=lambda entry: entry.video_id)
        jobs = jobs_option(jobs, config.jobs)
        for sub in (AUDIO_DIR, FRAMES_DIR, RECORDS_DIR, WORK_DIR):
            ensure_writable_dir(out / sub)
        _clean_leftovers(out)
        ensure_writable_dir(out / WORK_DIR)
        ffmpeg_build = ffmpeg_version()

        results: list[_VideoResult] = [_bad_row_reject(bad) for bad in bad_rows]
        own_executor = None
        if executor is None and jobs > 1 and len(entries) > 1:
            own_executor = executor = worker_pool(min(jobs, len(entries)))
        try:
            # Submit everything (which forks the workers) before the progress display starts its thread.
            futures = (
                [executor.submit(_process_video, entry, root, out, config, ffmpeg_build) for entry in entries]
                if executor is not None else []
            )
            bar = progress_bar("process videos", len(entries), show=progress)
            with bar as advance:
                if executor is None:
                    for entry in entries:
                        results.append(_process_video(entry, root, out, config, ffmpeg_build))
                        advance(1)
                else:
                    for future in concurrent.futures.as_completed(futures):
                        results.append(future.result())
                        advance(1)
        finally:
            if own_executor is not None:
                own_executor.shutdown(wait=True, cancel_futures=True)
            shutil.rmtree(out / WORK_DIR, ignore_errors=True)

        summary = ProcessSummary(index_path=out / INDEX_NAME, rejects_path=out / REJECTS_NAME)
        for result in results:
            setattr(summary, result.status, getattr(summary, result.status) + 1)
            if result.reject:
                summary.reasons[result.reject["reason"]] = summary.reasons.get(result.reject["reason"], 0) + 1
        write_index([r.row for r in results if r.row is not None], summary.index_path)
        write_rejects([r.reject for r in results if r.reject is not None], summary.rejects_path)
        return summary


# ---------------------------------------------------------------------------------------------
# validation


@dataclass(frozen=True)
class IndexProblem:
    """One file that does not match its record: problem is ``missing``, ``truncated``, ``changed``,
    ``unrecorded`` (a ground-truth file with no hash) or ``stale`` (a mixture table that disagrees
    with the index or the benchmark version); video_id is empty for a table."""

    video_id: str
    path: str
    problem: str
    detail: str


def _check_file(root: str | os.PathLike, video_id: str, relative: str, expected_sha: str,
                expected_bytes: int | None, record: str) -> IndexProblem | None:
    """A problem if the file at `relative` is missing, shorter than `expected_bytes` or hashes otherwise."""
    try:
        path = resolve_in_root(root, relative)
        size = path.stat().st_size
    except MusicbenchError as exc:
        return IndexProblem(video_id, relative, "missing", str(exc))
    except OSError:
        return IndexProblem(video_id, relative, "missing", "file not found")
    if expected_bytes is not None and size < expected_bytes:
        return IndexProblem(video_id, relative, "truncated", f"{size} of {expected_bytes} bytes")
    if (expected_bytes is not None and size != expected_bytes) or sha256_file(path) != expected_sha:
        known = f", {record} {expected_bytes}" if expected_bytes is not None else f" from {record}"
        return IndexProblem(video_id, relative, "changed", f"sha256 differs ({size} bytes{known})")
    return None


def _benchmark_problems(data: DataRoot, index) -> list[IndexProblem]:
    """The mixture tables against benchmark.json and the index; the stems and boxes they use against ground_truth.json."""
    from musicbench.benchmark import DUET_COLUMNS, read_mixtures

    try:
        data.verify_definition()
        mixtures, duets = read_mixtures(data.mixtures_path), read_mixtures(data.duets_path, DUET_COLUMNS)
    except MusicbenchError as exc:
        return [IndexProblem("", data.mixtures_dir.relative_to(data.root).as_posix(), "stale", str(exc))]
    problems: list[IndexProblem] = []
    by_id = index.set_index("video_id", drop=False)
    for table_path, table in ((data.mixtures_path, mixtures), (data.duets_path, duets)):
        table_name = table_path.relative_to(data.root).as_posix()
        for row in table.drop_duplicates("video_id").itertuples(index=False):
            if row.video_id not in by_id.index:
                problems.append(IndexProblem(row.video_id, table_name, "stale", "the video is not in the index"))
                continue
            video = by_id.loc[row.video_id]
            for kind in ("audio", "frames"):
                if (getattr(row, f"{kind}_path"), getattr(row, f"{kind}_sha256")) != (video[f"{kind}_path"], video[f"{kind}_sha256"]):
                    problems.append(IndexProblem(row.video_id, table_name, "stale", f"its {kind} differs from the index's"))
    used = by_id.loc[by_id["video_id"].isin(set(mixtures["video_id"]) | set(duets["video_id"]))]
    owners = {path: row.video_id for row in used.itertuples(index=False) for path in (row.stems_path, row.boxes_path) if path}
    owners |= {path: row.video_id for row in duets.itertuples(index=False) for path in (row.stems_path, row.boxes_path) if path}
    if not owners:
        return problems
    ground_truth = data.ground_truth_path.relative_to(data.root).as_posix()
    try:
        recorded = data.read_ground_truth()
    except MusicbenchError as exc:
        return [*problems, IndexProblem("", ground_truth, "missing", str(exc))]
    for path, video_id in sorted(owners.items()):
        if path not in recorded:
            problems.append(IndexProblem(video_id, path, "unrecorded", f"no sha256 in {ground_truth}"))
        elif (problem := _check_file(data.root, video_id, path, recorded[path], None, ground_truth)) is not None:
            problems.append(problem)
    return problems


def _urmp_problems(data: DataRoot) -> list[IndexProblem]:
    """The real-ensembles item table against urmp/benchmark.json, and every mixture, stems and frames
    file its items read against the table's SHA-256 (video_id: the piece)."""
    table_name = data.urmp_items_path.relative_to(data.root).as_posix()
    try:
        table = data.verified_urmp_table()
    except MusicbenchError as exc:
        return [IndexProblem("", table_name, "stale", str(exc))]
    files = {getattr(row, f"{kind}_path"): (row.piece_id, getattr(row, f"{kind}_sha256"))
             for row in table.itertuples(index=False) for kind in ("audio", "stems", "frames")}
    checked = (_check_file(data.root, piece, path, sha, None, table_name) for path, (piece, sha) in sorted(files.items()))
    return [problem for problem in checked if problem is not None]


def validate_index(index_path: str | os.PathLike, root: str | os.PathLike) -> list[IndexProblem]:
    """Re-check every file the benchmark reads: the processed audio and frames listed in `index_path`
    (size and sha256) and, once `musicbench mixtures` has run, the mixture tables (against
    benchmark.json and the index) and the MUSIC-Synth stems and boxes their items use (against
    ``mixtures/ground_truth.json``), and so for each protocol built there (``protocols/<name>/``,
    `musicbench.protocols`); with a real-ensembles track, its item table and every file its items
    read (`_urmp_problems`).

    Paths in the index are relative to the data root `root`. Returns the problems found (empty if
    all files match); raises MusicbenchError if the index itself cannot be read.
    """
    frame = read_index(index_path)
    problems: list[IndexProblem] = []
    for row in frame.sort_values("video_id").itertuples(index=False):
        for kind in ("audio", "frames"):
            problem = _check_file(root, row.video_id, getattr(row, f"{kind}_path"), getattr(row, f"{kind}_sha256"),
                                  int(getattr(row, f"{kind}_bytes")), "index")
            if problem is not None:
                problems.append(problem)
    from musicbench.protocols import checked_view, protocol_views

    data = DataRoot(root)
    if data.has_definition():
        problems += _benchmark_problems(data, frame)
    for view in protocol_views(root):  # the papers' test sets built here: their tables, like the benchmark's
        try:
            checked_view(view)
        except MusicbenchError as exc:
            problems.append(IndexProblem("", view.mixtures_dir.relative_to(view.root).as_posix(), "stale", str(exc)))
            continue
        problems += _benchmark_problems(view, frame)
    if data.has_urmp_track():
        problems += _urmp_problems(data)
    return problems
