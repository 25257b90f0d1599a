"""Fixed benchmark mixtures (Mix-and-Separate) and the benchmark version that every score carries.

For the val and test splits, `build_mixtures` draws items of N clips (``mixtures.n_sources``, 2 to 4)
of different instruments from that split's solo videos: for each clip the video, the start
(sample index at ``audio.sample_rate`` and frame index at ``frames.fps``) and the gain. A clip is
``audio.clip_samples`` samples long (65535, about 5.94 s) and covers ``floor(clip_seconds * fps)``
frames from its start frame. Clips are drawn only among *sounding* windows: windows on a hop of a
quarter clip whose RMS is at least ``mixtures.min_rms_db`` dBFS and of which at least
``mixtures.min_active`` of the 1024-sample frames are within 30 dB of the window's loudest frame.
No item uses a video twice. The mixture is ``sum_n gain_n * clip_n``; the references of the
metric are the scaled clips ``gain_n * clip_n``. With ``mixtures.gain_db: 0`` every gain is
``1 / N`` (the Sound of Pixels convention); otherwise ``10 ** (u / 20) / N``, u uniform in ±gain_db.

Files (under ``<root>/mixtures/``)::

    mixtures.parquet   one row per (item, source): MIXTURE_COLUMNS, sorted by item and source
    duets.parquet      duet videos of val/test (natural two-player mixtures): one clip each
    benchmark.json     the benchmark version and counts
    ground_truth.json  SHA-256 of the MUSIC-Synth stems and boxes the items read (`DataRoot.verify_items`)

The benchmark version identifies what the scores are computed on: the items (videos, starts,
lengths, gains), the processing recipe (`definition_recipe`: sample rate, clip length, fps, frame
sizes, metric version) and the reference audio by what it sounds like, never by container bytes:
each clip's loudness contour (`musicbench.benchmark.loudness_contour`, whole dB per 8192 samples)
and the duets' stems by their decoded samples (`pcm_sha256`; soundfile writes them, no ffmpeg).
Another ffmpeg build, another FLAC encoder or another decoder's last-bit rounding leaves it alone;
another clip or an audible change moves it. The exact decoded-sample hash of every clip's file is
kept beside it (``audio_pcm_sha256``) to tell "same samples" from "rounding". The frames, which
models see but which do not define the references, get a fingerprint of their own
(`frames_fingerprint`, over the frame archives' bytes): runs on another encoder's frames share the
version and the board marks them. `compare_mixtures` (against a published table) and
`compare_clips` (against another data root: max abs sample difference and frame PSNR per clip)
tell an encoder's rounding from another benchmark.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import soundfile as sf

from musicbench.benchmark import (
    DEFINITION_NAME,
    DUET_COLUMNS,
    DUETS_NAME,
    MIXTURE_COLUMNS,
    MIXTURES_NAME,
    UNVERSIONED_COLUMNS,
    DataRoot,
    loudness_contour,
    pcm_sha256,
    read_clip_frames,
    read_mixtures,
)
from musicbench.concurrency import holds_data_root
from musicbench.config import AudioConfig, check_fields, config_error, config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, resolve_in_root, write_parquet
from musicbench.metrics import METRIC_VERSION

EVAL_SPLITS = ("val", "test")
ANALYSIS_FRAME = 1024


@dataclass(frozen=True)
class MixturesConfig:
    """params.yaml ``mixtures``, with the benchmark's `AudioConfig` (``audio`` and ``frames.fps``)."""

    audio: AudioConfig
    seed: int = knob(1234, non_negative=True)
    n_sources: Literal[2, 3, 4] = knob(2)
    n_val: int = knob(40, positive=True)
    n_test: int = knob(100, positive=True)
    gain_db: float = knob(0.0)
    min_rms_db: float = knob(-45.0)
    min_active: float = knob(0.5)

    def __post_init__(self) -> None:
        check_fields(self, "mixtures")
        if not 0 <= self.gain_db <= 12:
            raise config_error("mixtures.gain_db", "must be within 0..12 dB", self.gain_db)
        if not 0 <= self.min_active <= 1:
            raise config_error("mixtures.min_active", "must be a fraction 0..1", self.min_active)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "MixturesConfig":
        """Build from a loaded params.yaml: section ``mixtures`` and the `AudioConfig`."""
        return config_from_params(cls, params, "mixtures", audio=AudioConfig.from_params(params))

    @property
    def clip_frames(self) -> int:
        """Frames covered by one clip: floor(clip_samples / sample_rate * fps)."""
        return int(np.floor(self.audio.clip_samples / self.audio.sample_rate * self.audio.fps))


def sounding_starts(audio: np.ndarray, config: MixturesConfig) -> np.ndarray:
    """Start samples (on a quarter-clip hop) of the windows of `audio` that are not near-silent."""
    hop = config.audio.clip_samples // 4
    starts = np.arange(0, len(audio) - config.audio.clip_samples + 1, hop)
    keep = []
    for start in starts:
        window = audio[start:start + config.audio.clip_samples].astype(np.float64)
        rms_db = 10 * np.log10(np.mean(window**2) + 1e-20)
        frames = window[: len(window) // ANALYSIS_FRAME * ANALYSIS_FRAME].reshape(-1, ANALYSIS_FRAME)
        frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
        active = np.mean(frame_db > frame_db.max() - 30)
        if rms_db >= config.min_rms_db and active >= config.min_active:
            keep.append(int(start))
    return np.array(keep, dtype=np.int64)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def _start_frame(start_sample: int, config: MixturesConfig) -> int:
    return int(round(start_sample / config.audio.sample_rate * config.audio.fps))


def _decoded_audio(root: Path) -> Callable[[str], np.ndarray]:
    """The float32 samples ``(n_samples,)`` of a file given by its path relative to `root`, each file decoded once."""
    @functools.cache
    def of(relpath: str) -> np.ndarray:
        return sf.read(resolve_in_root(root, relpath), dtype="float32")[0]
    return of


def _pcm_hashes(root: Path) -> Callable[[str], str]:
    """`pcm_sha256` of a file given by its path relative to `root`, each file decoded once ("" for "")."""
    @functools.cache
    def of(relpath: str) -> str:
        return pcm_sha256(resolve_in_root(root, relpath)) if relpath else ""
    return of


def _candidates(index: pd.DataFrame, split_of: dict[str, str], split: str, root: Path, config: MixturesConfig):
    """{instrument: [(video row, sounding starts)]} of the split's solo videos, sorted by id."""
    pool: dict[str, list[tuple[pd.Series, np.ndarray]]] = {}
    rows = index[(index["kind"] == "solo") & index["video_id"].map(lambda v: split_of.get(v) == split)]
    for _, row in rows.sort_values("video_id").iterrows():
        audio, _ = sf.read(resolve_in_root(root, row["audio_path"]), dtype="float32")
        starts = sounding_starts(audio, config)
        starts = starts[[_start_frame(s, config) + config.clip_frames <= int(row["n_frames"]) for s in starts]] if len(starts) else starts
        if len(starts):
            pool.setdefault(row["instruments"], []).append((row, starts))
    return pool


def build_mixtures(
    index: pd.DataFrame, split_of: dict[str, str], root: str | os.PathLike, config: MixturesConfig
) -> pd.DataFrame:
    """Draw the fixed val and test items; return the mixture table (MIXTURE_COLUMNS).

    index: the processed-video index (musicbench.process); split_of: ``{video_id: split}``;
    root: the data root the index paths are relative to.
    """
    root = Path(root)
    pcm = _pcm_hashes(root)
    decoded = _decoded_audio(root)

    def loudness(relpath: str, start: int) -> str:
        return loudness_contour(decoded(relpath)[start:start + config.audio.clip_samples])

    records = []
    for split_code, split in enumerate(EVAL_SPLITS):
        pool = _candidates(index, split_of, split, root, config)
        instruments = sorted(pool)
        if len(instruments) < config.n_sources:
            raise MusicbenchError(
                f"split {split!r} has sounding solo clips of {len(instruments)} instrument(s) "
                f"({', '.join(instruments) or 'none'}); mixtures.n_sources = {config.n_sources} needs that many"
            )
        n_items = config.n_val if split == "val" else config.n_test
        for item in range(n_items):
            rng = _rng(config.seed, split_code, item)
            chosen = rng.choice(len(instruments), size=config.n_sources, replace=False)
            for source_index, k in enumerate(chosen):
                videos = pool[instruments[k]]
                row, starts = videos[int(rng.integers(len(videos)))]
                start = int(starts[int(rng.integers(len(starts)))])
                spread = 10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20) if config.gain_db else 1.0
                gain = spread / config.n_sources
                records.append({
                    "item_id": f"{split}-{item:05d}", "split": split, "n_sources": config.n_sources,
                    "source_index": source_index, "video_id": row["video_id"], "instrument": instruments[k],
                    "start_sample": start, "n_samples": config.audio.clip_samples,
                    "start_frame": _start_frame(start, config), "n_frames": config.clip_frames, "gain": float(gain),
                    "audio_path": row["audio_path"], "audio_sha256": row["audio_sha256"],
                    "audio_pcm_sha256": pcm(row["audio_path"]), "clip_loudness_db": loudness(row["audio_path"], start),
                    "frames_path": row["frames_path"], "frames_sha256": row["frames_sha256"],
                })
    return pd.DataFrame.from_records(records, columns=list(MIXTURE_COLUMNS))


def build_duet_items(
    index: pd.DataFrame, split_of: dict[str, str], root: str | os.PathLike, config: MixturesConfig
) -> pd.DataFrame:
    """One clip per val/test duet video (its most central sounding window): DUET_COLUMNS."""
    root = Path(root)
    pcm = _pcm_hashes(root)
    records = []
    duets = index[(index["kind"] == "duet") & index["video_id"].map(lambda v: split_of.get(v) in EVAL_SPLITS)]
    for _, row in duets.sort_values("video_id").iterrows():
        audio, _ = sf.read(resolve_in_root(root, row["audio_path"]), dtype="float32")
        starts = sounding_starts(audio, config)
        starts = [s for s in starts if _start_frame(int(s), config) + config.clip_frames <= int(row["n_frames"])]
        if not starts:
            continue
        centre = (len(audio) - config.audio.clip_samples) / 2
        start = int(min(starts, key=lambda s: (abs(s - centre), s)))
        records.append({
            "item_id": f"duet-{row['video_id']}", "split": split_of[row["video_id"]], "video_id": row["video_id"],
            "instruments": row["instruments"], "start_sample": start, "n_samples": config.audio.clip_samples,
            "start_frame": _start_frame(start, config), "n_frames": config.clip_frames,
            "audio_path": row["audio_path"], "audio_sha256": row["audio_sha256"], "audio_pcm_sha256": pcm(row["audio_path"]),
            "clip_loudness_db": loudness_contour(audio[start:start + config.audio.clip_samples]),
            "frames_path": row["frames_path"], "frames_sha256": row["frames_sha256"], "stems_path": row.get("stems_path") or "",
            "stems_pcm_sha256": pcm(row.get("stems_path") or ""), "boxes_path": row.get("boxes_path") or "",
        })
    return pd.DataFrame.from_records(records, columns=list(DUET_COLUMNS))


def table_to_csv(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """Canonical CSV text of a table (fixed column order, repr floats): the input of the version hash."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in table[list(columns)].itertuples(index=False):
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in record])
    return buffer.getvalue()


def definition_recipe(config: MixturesConfig, index: pd.DataFrame, mixtures: pd.DataFrame, duets: pd.DataFrame) -> dict[str, Any]:
    """What the benchmark version hashes besides the tables: sample rate (Hz), clip length (samples),
    frames per second, the frame sizes of the videos used (``WxH``, sorted) and the metric version."""
    used = index[index["video_id"].isin(set(mixtures["video_id"]) | set(duets["video_id"]))]
    sizes = sorted({f"{int(w)}x{int(h)}" for w, h in zip(used["frame_width"], used["frame_height"], strict=True)})
    return {"sample_rate": config.audio.sample_rate, "clip_samples": config.audio.clip_samples, "fps": config.audio.fps,
            "frame_sizes": sizes, "metric_version": METRIC_VERSION}


def _version_csv(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return table_to_csv(table, tuple(c for c in columns if c not in UNVERSIONED_COLUMNS))


def benchmark_version(mixtures: pd.DataFrame, duets: pd.DataFrame, recipe: dict[str, Any]) -> str:
    """``mb-`` + the first 16 hex digits of the SHA-256 over the canonical mixture and duet tables
    without their exact hashes (`UNVERSIONED_COLUMNS`: each clip's loudness contour stands for its
    audio, the duets' stems by their decoded samples) and
    the `definition_recipe` as canonical JSON."""
    digest = hashlib.sha256(_version_csv(mixtures, MIXTURE_COLUMNS).encode())
    digest.update(_version_csv(duets, DUET_COLUMNS).encode())
    digest.update(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode())
    return "mb-" + digest.hexdigest()[:16]


def frames_fingerprint(mixtures: pd.DataFrame, duets: pd.DataFrame) -> str:
    """``fr-`` + 16 hex digits of the SHA-256 over the (frame archive, file SHA-256) pairs the items
    use: the model inputs that another JPEG encoder (another ffmpeg build) writes differently."""
    pairs = sorted(set(zip(mixtures["frames_path"], mixtures["frames_sha256"], strict=True))
                   | set(zip(duets["frames_path"], duets["frames_sha256"], strict=True)))
    return "fr-" + hashlib.sha256("".join(f"{path} {sha}\n" for path, sha in pairs).encode()).hexdigest()[:16]


def compare_mixtures(published: pd.DataFrame, data: DataRoot) -> pd.DataFrame:
    """Clips of a published mixture table that this data root lacks or holds otherwise.

    Returns rows (item_id, video_id, problem): ``missing`` (video not processed here), ``audio
    differs`` (another loudness contour: another benchmark), ``samples differ by rounding`` (other
    decoded samples, same contour: another decoder's last bits, the same benchmark) or ``frames
    differ`` (same samples, frame archive with other bytes: another JPEG encoder, the same
    benchmark); empty when they agree.
    """
    local = data.read_index().set_index("video_id")
    pcm = _pcm_hashes(data.root)
    decoded = _decoded_audio(data.root)
    problems = []
    for row in published.itertuples(index=False):
        if row.video_id not in local.index:
            problems.append((row.item_id, row.video_id, "missing"))
            continue
        audio_path = local.at[row.video_id, "audio_path"]
        if pcm(audio_path) != row.audio_pcm_sha256:
            clip = decoded(audio_path)[int(row.start_sample):int(row.start_sample) + int(row.n_samples)]
            same = loudness_contour(clip) == row.clip_loudness_db
            problems.append((row.item_id, row.video_id, "samples differ by rounding" if same else "audio differs"))
        elif local.at[row.video_id, "frames_sha256"] != row.frames_sha256:
            problems.append((row.item_id, row.video_id, "frames differ"))
    return pd.DataFrame(problems, columns=["item_id", "video_id", "problem"])


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB, peak 255) between two uint8 arrays of one shape; inf when equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def compare_clips(data: DataRoot, other: DataRoot) -> pd.DataFrame:
    """Every clip of this root's mixture table read from both roots: item_id, source_index, video_id,
    ``max_abs_diff`` (largest |sample difference| of the clip, full scale 1), ``frames_psnr_db``
    (PSNR of the clip's frames, inf when identical) and ``verdict``: ``identical``; ``audio differs``
    (another loudness contour: another benchmark); ``missing`` (the other root has no such video); else
    the audio (``same samples`` or ``samples differ by rounding``: the same contour) and the frames
    (``same frames``, ``frames re-encoded`` or ``frames differ in size``), e.g. ``same samples, frames re-encoded``."""
    mixtures = read_mixtures(data.mixtures_path)
    other_index = other.read_index().set_index("video_id")
    records = []
    for row in mixtures.itertuples(index=False):
        record = {"item_id": row.item_id, "source_index": int(row.source_index), "video_id": row.video_id,
                  "max_abs_diff": None, "frames_psnr_db": None, "verdict": "missing"}
        if row.video_id in other_index.index:
            theirs = other_index.loc[row.video_id]
            window = {"start": int(row.start_sample), "frames": int(row.n_samples), "dtype": "float64", "always_2d": True}
            ours_audio, _ = sf.read(data.resolve(row.audio_path), **window)
            their_audio, _ = sf.read(other.resolve(theirs["audio_path"]), **window)
            span = range(int(row.start_frame), int(row.start_frame) + int(row.n_frames))
            ours_frames = read_clip_frames(data.resolve(row.frames_path), span)
            their_frames = read_clip_frames(other.resolve(theirs["frames_path"]), span)
            audio = "audio differs"
            if ours_audio.shape == their_audio.shape:
                record["max_abs_diff"] = float(np.max(np.abs(ours_audio - their_audio), initial=0.0))
                if record["max_abs_diff"] == 0:
                    audio = "same samples"
                elif loudness_contour(ours_audio[:, 0]) == loudness_contour(their_audio[:, 0]):
                    audio = "samples differ by rounding"
            frames = "frames differ in size"
            if ours_frames.shape == their_frames.shape:
                record["frames_psnr_db"] = psnr_db(ours_frames, their_frames)
                frames = "same frames" if record["frames_psnr_db"] == float("inf") else "frames re-encoded"
            record["verdict"] = audio if audio == "audio differs" else ("identical" if (audio, frames) == (
                "same samples", "same frames") else f"{audio}, {frames}")
        records.append(record)
    return pd.DataFrame.from_records(records)


def write_benchmark(
    mixtures: pd.DataFrame, duets: pd.DataFrame, out_dir: str | os.PathLike, config: MixturesConfig, recipe: dict[str, Any]
) -> dict[str, Any]:
    """Write mixtures.parquet, duets.parquet and benchmark.json (version, `recipe`, frames fingerprint,
    counts) under `out_dir`; return the json."""
    out_dir = Path(out_dir)
    write_parquet(mixtures, out_dir / MIXTURES_NAME)
    write_parquet(duets, out_dir / DUETS_NAME)
    summary = {
        "benchmark_version": benchmark_version(mixtures, duets, recipe), "recipe": recipe,
        "frames_fingerprint": frames_fingerprint(mixtures, duets),
        "n_sources": config.n_sources, "clip_samples": config.audio.clip_samples, "sample_rate": config.audio.sample_rate,
        "fps": config.audio.fps, "clip_frames": config.clip_frames,
        "items": {split: int(mixtures.loc[mixtures["split"] == split, "item_id"].nunique()) for split in EVAL_SPLITS},
        "duet_items": {split: int((duets["split"] == split).sum()) for split in EVAL_SPLITS},
        "videos": int(mixtures["video_id"].nunique()),
    }
    atomic_write_text(out_dir / DEFINITION_NAME, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


@holds_data_root("mixtures", "root")
def make_mixtures(params: dict[str, Any], root: str | os.PathLike) -> dict[str, Any]:
    """The `mixtures` stage: from the processed index and the splits, write ``<root>/mixtures/``."""
    from musicbench.splits import read_stage_splits

    data = DataRoot(root)
    config = MixturesConfig.from_params(params)
    index = data.read_index()
    splits = read_stage_splits(root)
    mixtures = build_mixtures(index, splits, data.root, config)
    duets = build_duet_items(index, splits, data.root, config)
    summary = write_benchmark(mixtures, duets, data.mixtures_dir, config, definition_recipe(config, index, mixtures, duets))
    data.write_ground_truth(mixtures, duets, summary["benchmark_version"])
    return summary
