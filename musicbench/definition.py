"""The benchmark's definition: which items exist (its identity) and which a data root holds (its coverage).

**Slots and identity.** The fixed val/test items are drawn from the split file alone (the published
lists and ``splits``), never from the videos a data root happens to hold. For item k of split s, a
generator seeded from (``mixtures.seed``, s, k) picks ``mixtures.n_sources`` different classes among
the split's solo classes, for each class one of the split's solo videos of that class (sorted by
id), and its gain (``1 / N``, or ``10 ** (u / 20) / N`` with u uniform in ±``mixtures.gain_db``).
Every val/test duet video of the split file is one duet item. These *slots* (`draw_slots`) and the
recipe (`definition_recipe`) give the benchmark identity (`benchmark_identity`, the
``benchmark_version`` ``mb-`` + 16 hex digits): data roots built from the same lists and params share
it, whatever videos each one lacks.

**Clips.** A data root *holds* an item when it has processed every video of the item and each one
is long enough for a clip. The clip's start is drawn from that video's own audio only: among its
sounding windows (`sounding_starts`), by a generator seeded from (seed, s, k, 1 + source), else its
loudest window; a duet item takes the sounding window nearest the video's centre. So an item depends
on the lists, the params and its own videos: removing a video removes exactly the items that use it,
and adding it back restores them byte for byte. A clip is ``audio.clip_samples`` samples from its
start sample (11025 Hz by default) and ``floor(clip_seconds * fps)`` frames from
``round(start / sample_rate * fps)``.

**Coverage.** What a data root holds is recorded beside the identity in benchmark.json
(`coverage`): per track and split the canonical and the held items, every item not held with its
videos and why ("video not held", "video too short", or with a published definition "audio
differs" and "not in the definition"), and the fingerprint of the held tables
(`musicbench.benchmark.tables_fingerprint`). Each held clip keeps its audio fingerprint, the loudness
contour at its start (`musicbench.benchmark.loudness_contour`), and each item a key over its clips
(`musicbench.benchmark.item_keys`): two data roots' items with one id and different keys are different items and are
never compared.

**Published definitions.** `published_definition` turns a data root's held items into a document
(their starts and fingerprints), `read_definition` checks one against this data root's identity
and slots, and `build_items` with ``published=`` builds exactly its items, reporting a clip whose
audio at the published start has another fingerprint as "audio differs".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import soundfile as sf

from musicbench.benchmark import DUET_COLUMNS, EVAL_SPLITS, MIXTURE_COLUMNS, loudness_contour, pcm_sha256, table_to_csv
from musicbench.config import AudioConfig, check_fields, config_error, config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import resolve_in_root
from musicbench.metrics import METRIC_VERSION
from musicbench.splits import SplitRow

ANALYSIS_FRAME = 1024
DRAW_RULE = "slots from the split file, clip starts from each video's own audio"
DEFINITION_FORMAT = "musicbench benchmark definition 1"
SLOT_COLUMNS = ("item_id", "split", "n_sources", "source_index", "video_id", "instrument", "gain")
DUET_SLOT_COLUMNS = ("item_id", "split", "video_id", "instruments")
NOT_HELD_COLUMNS = ("item_id", "track", "split", "videos", "reason", "item_videos")
# the reasons an item of the identity is not held by a data root
NOT_HELD, TOO_SHORT, AUDIO_DIFFERS, NOT_PUBLISHED = "video not held", "video too short", "audio differs", "not in the definition"
SAME_CLIP = "one clip twice"  # a protocol item that mixes a clip with itself (`musicbench.protocols`): BSS Eval is undefined


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

    def n_items(self, split: str) -> int:
        """The fixed mixture items of `split` ("val" or "test")."""
        return self.n_val if split == "val" else self.n_test


def sounding_starts(audio: np.ndarray, config: MixturesConfig) -> np.ndarray:
    """Start samples (on a quarter-clip hop) of the windows of `audio` ``(n_samples,)`` that are not
    near-silent: RMS at least ``mixtures.min_rms_db`` dBFS and at least ``mixtures.min_active`` of
    the 1024-sample frames within 30 dB of the window's loudest frame."""
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


def start_frame_of(start_sample: int, config: MixturesConfig) -> int:
    """The first frame of a clip starting at `start_sample`: round(start / sample_rate * fps)."""
    return int(round(start_sample / config.audio.sample_rate * config.audio.fps))


# ------------------------------------------------------------------------------------ slots and identity


def draw_slots(rows: list[SplitRow], config: MixturesConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mixture slots (SLOT_COLUMNS), duet slots (DUET_SLOT_COLUMNS)) of the val and test splits of
    a split file's `rows`, by item and source: a function of the rows and the params only."""
    records, duets = [], []
    for split_code, split in enumerate(EVAL_SPLITS):
        classes: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            if row.split == split and row.kind == "solo":
                classes[row.instruments].append(row.video_id)
            elif row.split == split and row.kind == "duet":
                duets.append({"item_id": f"duet-{row.video_id}", "split": split, "video_id": row.video_id,
                              "instruments": row.instruments})
        names = sorted(classes)
        if len(names) < config.n_sources:
            raise MusicbenchError(
                f"split {split!r} of the split file has solo videos of {len(names)} instrument(s) "
                f"({', '.join(names) or 'none'}); mixtures.n_sources = {config.n_sources} needs that many")
        for item in range(config.n_items(split)):
            rng = _rng(config.seed, split_code, item)
            chosen = rng.choice(len(names), size=config.n_sources, replace=False)
            for source_index, k in enumerate(chosen):
                videos = sorted(classes[names[k]])
                video = videos[int(rng.integers(len(videos)))]
                spread = 10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20) if config.gain_db else 1.0
                records.append({"item_id": f"{split}-{item:05d}", "split": split, "n_sources": config.n_sources,
                                "source_index": source_index, "video_id": video, "instrument": names[k],
                                "gain": float(spread / config.n_sources)})
    duet_table = pd.DataFrame.from_records(duets, columns=list(DUET_SLOT_COLUMNS))
    return (pd.DataFrame.from_records(records, columns=list(SLOT_COLUMNS)),
            duet_table.sort_values("item_id", kind="stable").reset_index(drop=True))


def definition_recipe(config: MixturesConfig, frame_size: int, crop: str,
                      synth: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the identity hashes besides the slots: the drawing rule, sample rate (Hz), clip length
    (samples), frames per second, frame size (pixels) and crop, the clip rule's thresholds, the
    metric version and, for MUSIC-Synth, the params that make its videos (`synth`: the ``synth``
    section but its ``jobs``: another seed, scene or recording is another dataset under the same ids)."""
    recipe = {"draw": DRAW_RULE, "sample_rate": config.audio.sample_rate, "clip_samples": config.audio.clip_samples,
              "fps": config.audio.fps, "frame_size": frame_size, "crop": crop, "min_rms_db": config.min_rms_db,
              "min_active": config.min_active, "metric_version": METRIC_VERSION}
    if synth is not None:
        recipe["synth"] = synth
    return recipe


def benchmark_identity(slots: pd.DataFrame, duet_slots: pd.DataFrame, recipe: dict[str, Any]) -> str:
    """``mb-`` + 16 hex digits of the SHA-256 over the canonical slot tables and the recipe as canonical JSON."""
    return identity_of([(slots, SLOT_COLUMNS), (duet_slots, DUET_SLOT_COLUMNS)], recipe)


def identity_of(tables: list[tuple[pd.DataFrame, tuple[str, ...]]], recipe: dict[str, Any]) -> str:
    """``mb-`` + 16 hex digits of the SHA-256 over `tables` (each as canonical CSV of its columns, in
    order) and `recipe` as canonical JSON: a benchmark identity (the main one's, a protocol's)."""
    digest = hashlib.sha256()
    for table, columns in tables:
        digest.update(table_to_csv(table, columns).encode())
    digest.update(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode())
    return "mb-" + digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------ building items


@dataclass
class BuiltItems:
    """What a data root holds of the identity: the mixture table (MIXTURE_COLUMNS), the duet table
    (DUET_COLUMNS), the items it does not hold (NOT_HELD_COLUMNS), each by item id, and why each
    video of those is not held (`video_reasons`: video → reason)."""

    mixtures: pd.DataFrame
    duets: pd.DataFrame
    not_held: pd.DataFrame
    video_reasons: dict[str, str]


def decoded_audio(root: Path) -> Callable[[str], np.ndarray]:
    """The float32 samples ``(n_samples,)`` of a file given by its path relative to `root`, each file decoded once."""
    @functools.cache
    def of(relpath: str) -> np.ndarray:
        return sf.read(resolve_in_root(root, relpath), dtype="float32")[0]
    return of


def pcm_hashes(root: Path) -> Callable[[str], str]:
    """`pcm_sha256` of a file given by its path relative to `root`, each file decoded once ("" for "")."""
    @functools.cache
    def of(relpath: str) -> str:
        return pcm_sha256(resolve_in_root(root, relpath)) if relpath else ""
    return of


def _usable_starts(audio: np.ndarray, n_frames: int, config: MixturesConfig) -> tuple[list[int], list[int]]:
    """(sounding starts, all starts) on the quarter-clip hop whose clip the video's frames cover."""
    hop = config.audio.clip_samples // 4
    every = [int(s) for s in range(0, len(audio) - config.audio.clip_samples + 1, hop)
             if start_frame_of(int(s), config) + config.clip_frames <= n_frames]
    covered = set(every)
    return [int(s) for s in sounding_starts(audio, config) if int(s) in covered], every


def _loudest(audio: np.ndarray, starts: list[int], config: MixturesConfig) -> int:
    power = [float(np.mean(audio[s:s + config.audio.clip_samples].astype(np.float64) ** 2)) for s in starts]
    return starts[int(np.argmax(power))]


def build_items(
    slots: pd.DataFrame, duet_slots: pd.DataFrame, index: pd.DataFrame, root: str | os.PathLike, config: MixturesConfig,
    published: dict[str, Any] | None = None,
) -> BuiltItems:
    """The items of the slots that the data root at `root` holds (its processed-video `index`).

    Without `published`, each clip's start is drawn from its own video's audio (module docstring);
    with a published definition (`read_definition`), the clips are its own and an item is held only
    where every clip's loudness contour here equals the published one ("audio differs" otherwise).
    """
    root = Path(root)
    pcm, decoded = pcm_hashes(root), decoded_audio(root)
    videos = index.set_index("video_id", drop=False)
    fixed = None if published is None else {
        (row["item_id"], int(row.get("source_index", 0))): row for row in (*published["mixtures"], *published["duets"])}
    records, duet_records, not_held = [], [], []
    windows: dict[str, tuple[list[int], list[int]]] = {}

    def clip(item_id: str, source: int, video_id: str, rng: np.random.Generator | None, central: bool) -> tuple[dict | None, str]:
        """({video row fields, start_sample, clip_loudness_db}, "") or (None, why the clip is not held)."""
        if video_id not in videos.index:
            return None, NOT_HELD
        video = videos.loc[video_id]
        audio = decoded(video["audio_path"])
        if fixed is not None:
            entry = fixed.get((item_id, source))
            if entry is None:
                return None, NOT_PUBLISHED
            start = int(entry["start_sample"])
            if start + config.audio.clip_samples > len(audio) or \
                    start_frame_of(start, config) + config.clip_frames > int(video["n_frames"]):
                return None, TOO_SHORT
        else:
            if video_id not in windows:  # each video's windows are measured once, whatever number of items use it
                windows[video_id] = _usable_starts(audio, int(video["n_frames"]), config)
            sounding, every = windows[video_id]
            if not every:
                return None, TOO_SHORT
            if central:
                centre = (len(audio) - config.audio.clip_samples) / 2
                start = min(sounding, key=lambda s: (abs(s - centre), s)) if sounding else _loudest(audio, every, config)
            else:
                start = sounding[int(rng.integers(len(sounding)))] if sounding else _loudest(audio, every, config)
        contour = loudness_contour(audio[start:start + config.audio.clip_samples])
        if fixed is not None and contour != fixed[(item_id, source)]["clip_loudness_db"]:
            return None, AUDIO_DIFFERS
        return {"video": video, "start_sample": start, "clip_loudness_db": contour}, ""

    def common(found: dict) -> dict[str, Any]:
        video, start = found["video"], found["start_sample"]
        return {"start_sample": start, "n_samples": config.audio.clip_samples, "start_frame": start_frame_of(start, config),
                "n_frames": config.clip_frames, "audio_path": video["audio_path"], "audio_sha256": video["audio_sha256"],
                "audio_pcm_sha256": pcm(video["audio_path"]), "clip_loudness_db": found["clip_loudness_db"],
                "frames_path": video["frames_path"], "frames_sha256": video["frames_sha256"]}

    for item_id, item in slots.groupby("item_id", sort=True):
        split = item["split"].iloc[0]
        item_number = int(item_id.rsplit("-", 1)[1])
        held, reasons = [], []
        for slot in item.sort_values("source_index").itertuples(index=False):
            rng = _rng(config.seed, EVAL_SPLITS.index(split), item_number, 1 + int(slot.source_index))
            found, why = clip(item_id, int(slot.source_index), slot.video_id, rng, central=False)
            if found is None:
                reasons.append((slot.video_id, why))
            else:
                held.append({"item_id": item_id, "split": split, "n_sources": int(slot.n_sources),
                             "source_index": int(slot.source_index), "video_id": slot.video_id,
                             "instrument": slot.instrument, "gain": float(slot.gain), **common(found)})
        if reasons:
            not_held.append(not_held_record(item_id, "mixtures", split, reasons, list(item["video_id"])))
        else:
            records += held
    for slot in duet_slots.itertuples(index=False):
        found, why = clip(slot.item_id, 0, slot.video_id, None, central=True)
        if found is None:
            not_held.append(not_held_record(slot.item_id, "duets", slot.split, [(slot.video_id, why)], [slot.video_id]))
            continue
        video = found["video"]
        stems = video.get("stems_path") or ""
        duet_records.append({"item_id": slot.item_id, "split": slot.split, "video_id": slot.video_id,
                             "instruments": slot.instruments, **common(found), "stems_path": stems,
                             "stems_pcm_sha256": pcm(stems), "boxes_path": video.get("boxes_path") or ""})
    return built_items(records, duet_records, not_held)


def built_items(records: list[dict[str, Any]], duet_records: list[dict[str, Any]],
                not_held: list[dict[str, Any]], extra_columns: tuple[str, ...] = ()) -> BuiltItems:
    """`BuiltItems` of held mixture and duet rows and `not_held_record` records (their ``clips``
    give each video's reason, the first one found); the mixture rows keep `extra_columns` too (a
    localization protocol's annotated frames)."""
    video_reasons: dict[str, str] = {}
    for row in not_held:
        for video, why in row.pop("clips"):
            video_reasons.setdefault(video, why)
    return BuiltItems(pd.DataFrame.from_records(records, columns=[*MIXTURE_COLUMNS, *extra_columns]),
                      pd.DataFrame.from_records(duet_records, columns=list(DUET_COLUMNS)),
                      pd.DataFrame.from_records(not_held, columns=list(NOT_HELD_COLUMNS)), dict(sorted(video_reasons.items())))


REASON_ORDER = (NOT_HELD, NOT_PUBLISHED, TOO_SHORT, AUDIO_DIFFERS, SAME_CLIP)


def not_held_record(item_id: str, track: str, split: str, reasons: list[tuple[str, str]], videos: list[str]) -> dict[str, Any]:
    """One NOT_HELD_COLUMNS record: the item's videos that are not held, the first reason in
    `REASON_ORDER` and all its videos (``item_videos``); ``clips`` keeps each (video, reason) until
    `built_items` collects them."""
    return {"item_id": item_id, "track": track, "split": split, "videos": " ".join(sorted({v for v, _ in reasons})),
            "reason": min((why for _, why in reasons), key=REASON_ORDER.index), "item_videos": " ".join(sorted(set(videos))),
            "clips": reasons}


# ------------------------------------------------------------------------------------ keys and coverage

def coverage(slots: pd.DataFrame, duet_slots: pd.DataFrame, built: BuiltItems, tables: str) -> dict[str, Any]:
    """benchmark.json's ``coverage``: ``{track: {split: {"items": canonical, "held": held}}}`` under
    ``tracks``, the items not held (``not_held``: item_id, track, split, videos, reason), the videos
    they lack (``videos_not_held``: video → reason), the held tables' fingerprint (`tables`) and the
    SHA-256 of each held video's frame archive by split (``frames``: the model inputs, compared per video)."""
    held = {"mixtures": set(built.mixtures["item_id"]), "duets": set(built.duets["item_id"])}
    tracks: dict[str, dict[str, dict[str, int]]] = {}
    for track, table in (("mixtures", slots), ("duets", duet_slots)):
        tracks[track] = {}
        for split in EVAL_SPLITS:
            items = set(table.loc[table["split"] == split, "item_id"])
            tracks[track][split] = {"items": len(items), "held": len(items & held[track])}
    frames: dict[str, dict[str, str]] = {split: {} for split in EVAL_SPLITS}
    for table in (built.mixtures, built.duets):
        for row in table.itertuples(index=False):
            frames[row.split][row.video_id] = row.frames_sha256
    return {"tracks": tracks, "not_held": built.not_held.to_dict(orient="records"),
            "videos_not_held": built.video_reasons, "tables_fingerprint": tables,
            "frames": {split: dict(sorted(videos.items())) for split, videos in frames.items()}}


def split_coverage(cover: dict[str, Any], split: str, lengths: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """A run's ``coverage`` (provenance.json): per track, the benchmark's items of `split`
    (``items``), those the data root held (``held``), the ids of those it did not (``not_held``) and
    the videos that made them not held (``videos_not_held``: what the board checks a partial run
    by), with the held tables' fingerprint and the frame archive of each video of the split's held items.
    Where a video of ``videos_not_held`` is held but too short for some clips, ``videos_short`` gives
    its length, ``[samples, frames]`` (from `lengths`, the data root's index): the board then takes
    as not held only the items whose clip of it ends beyond that length."""
    tracks = {}
    for track, splits in cover["tracks"].items():
        counts = splits.get(split, {"items": 0, "held": 0})
        rows = [row for row in cover["not_held"] if row["track"] == track and row["split"] == split]
        videos = sorted({video for row in rows for video in row["videos"].split()})
        tracks[track] = {"items": counts["items"], "held": counts["held"], "not_held": sorted(row["item_id"] for row in rows),
                         "videos_not_held": videos}
        short = {video: list(lengths[video]) for video in videos
                 if cover["videos_not_held"].get(video) == TOO_SHORT and video in (lengths or {})}
        if short:
            tracks[track]["videos_short"] = short
    return {"tracks": tracks, "tables_fingerprint": cover["tables_fingerprint"], "frames": cover["frames"].get(split, {})}


def coverage_lines(cover: dict[str, Any]) -> list[str]:
    """The coverage in words, one line per track and split, e.g. ``test: 97 of 100 items; 3 missing:
    videos solo_flute_10 (video not held), …``."""
    lines = []
    for track, splits in cover["tracks"].items():
        for split, counts in splits.items():
            if not counts["items"]:
                continue
            name = split if track == "mixtures" else f"{split} duets"
            line = f"{name}: {counts['held']} of {counts['items']} items"
            missing = [row for row in cover["not_held"] if row["track"] == track and row["split"] == split]
            if missing:
                why: dict[str, set[str]] = defaultdict(set)
                for row in missing:
                    for video in row["videos"].split():
                        why[cover["videos_not_held"].get(video, row["reason"])].add(video)
                line += f"; {len(missing)} missing: " + "; ".join(
                    f"{reason}: {', '.join(sorted(videos))}" for reason, videos in sorted(why.items()))
            lines.append(line)
    return lines


# ------------------------------------------------------------------------------------ published definitions

PUBLISHED_MIXTURE_FIELDS = ("item_id", "split", "source_index", "video_id", "instrument", "gain", "start_sample",
                            "clip_loudness_db", "audio_pcm_sha256")
PUBLISHED_DUET_FIELDS = ("item_id", "split", "video_id", "instruments", "start_sample", "clip_loudness_db",
                         "audio_pcm_sha256")
MAX_DEFINITION_BYTES = 16 << 20
MAX_DEFINITION_OBJECTS = 200_000  # a definition holds an object per clip: MUSIC's have some hundreds


def published_definition(identity: str, recipe: dict[str, Any], built: BuiltItems) -> dict[str, Any]:
    """The document `musicbench mixtures --publish` writes: the identity, its recipe and every held
    clip (PUBLISHED_MIXTURE_FIELDS, PUBLISHED_DUET_FIELDS): where it starts and how it sounds."""
    def rows(table: pd.DataFrame, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{field: _plain(record[field]) for field in fields} for record in table.to_dict(orient="records")]
    return {"format": DEFINITION_FORMAT, "benchmark_version": identity, "recipe": recipe,
            "mixtures": rows(built.mixtures, PUBLISHED_MIXTURE_FIELDS), "duets": rows(built.duets, PUBLISHED_DUET_FIELDS)}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def read_definition(path: str | os.PathLike, identity: str, recipe: dict[str, Any], slots: pd.DataFrame,
                    duet_slots: pd.DataFrame) -> dict[str, Any]:
    """A published definition checked against this data root's `identity`, `recipe` and slots, or
    MusicbenchError in one line naming the file and the first problem: not a definition, another
    recipe, another identity (other lists or params), no clips, a clip naming a video or item
    outside the lists (or of the other track), or a start that is not on the clip rule's grid (a
    quarter clip). At most `MAX_DEFINITION_BYTES` are read and `MAX_DEFINITION_OBJECTS` objects decoded."""
    path = Path(path)

    def fail(problem: str, fix: str = "publish it again with `musicbench mixtures --publish`") -> MusicbenchError:
        return MusicbenchError(f"definition {str(path)!r}: {problem}; {fix}")

    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise MusicbenchError(f"cannot read definition {str(path)!r}: {exc.strerror}") from None
    if len(raw) > MAX_DEFINITION_BYTES:
        raise fail(f"larger than {MAX_DEFINITION_BYTES >> 20} MiB")
    objects = 0

    def counted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal objects
        objects += 1
        if objects > MAX_DEFINITION_OBJECTS:
            raise ValueError("too many objects")
        return dict(pairs)

    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=counted)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        problem = f"more than {MAX_DEFINITION_OBJECTS} objects" if objects > MAX_DEFINITION_OBJECTS else f"not JSON ({type(exc).__name__})"
        raise fail(problem) from None
    if not isinstance(doc, dict) or doc.get("format") != DEFINITION_FORMAT:
        raise fail(f"not a musicbench definition (format must be {DEFINITION_FORMAT!r})")
    if doc.get("recipe") != recipe:
        theirs = doc.get("recipe") if isinstance(doc.get("recipe"), dict) else {}
        differing = sorted(k for k in set(recipe) | set(theirs) if recipe.get(k) != theirs.get(k))
        raise fail(f"written for another recipe ({', '.join(map(str, differing[:4]))} differ)",
                   "use the params it was published with")
    if doc.get("benchmark_version") != identity:
        raise fail(f"defines benchmark {str(doc.get('benchmark_version'))[:40]!r}, these lists and params give {identity}",
                   "use the split file and params it was published with")
    expected = {"mixtures": {(r.item_id, int(r.source_index)): r for r in slots.itertuples(index=False)},
                "duets": {(r.item_id, 0): r for r in duet_slots.itertuples(index=False)}}
    hop = recipe["clip_samples"] // 4
    seen = set()
    for track, fields in (("mixtures", PUBLISHED_MIXTURE_FIELDS), ("duets", PUBLISHED_DUET_FIELDS)):
        rows = doc.get(track)
        if not isinstance(rows, list):
            raise fail(f"{track} must be a list of clips")
        for number, row in enumerate(rows):
            where = f"{track}[{number}]"
            if not isinstance(row, dict) or any(field not in row for field in fields):
                raise fail(f"{where} must be an object with {', '.join(fields)}")
            key = (row["item_id"], row.get("source_index", 0))
            slot = expected[track].get(key) if isinstance(row["item_id"], str) and type(key[1]) is int else None
            if slot is None or slot.video_id != row["video_id"] or key in seen:
                raise fail(f"{where} names {str(row['item_id'])[:40]!r} with video {str(row['video_id'])[:40]!r}, "
                           f"which is not a clip of the lists' {track} items (or is listed twice)")
            if track == "mixtures" and (row["instrument"] != slot.instrument or row["gain"] != slot.gain):
                raise fail(f"{where}: instrument or gain differ from the item drawn from the lists")
            start, contour = row["start_sample"], row["clip_loudness_db"]
            if type(start) is not int or start < 0 or start > 1 << 40 or not isinstance(contour, str) or len(contour) > 4096:
                raise fail(f"{where}: start_sample must be an integer >= 0 and clip_loudness_db a contour")
            if start % hop:
                raise fail(f"{where}: start_sample {start} is not on the clip grid (a multiple of {hop} samples)")
            seen.add(key)
    if not seen:
        raise fail("defines no clips")
    return doc
