"""The data root: every path of its layout, its tables, its frame archives, its items and its version.

Everything a stage writes under the data root (``dataset.root``, default ``data/``) is named here
and nowhere else (mirdata's one path resolver)::

    synth/manifest.csv, synth/{videos,stems,boxes}/<id>.{mp4,flac,json}   MUSIC-Synth (`musicbench synth`)
    music/manifest.csv, music/{raw,videos}/<id>.mp4, music/*.parquet|json real MUSIC (`musicbench acquire`)
    music/solos/manifest.csv, music/solos/clips/<id>.NN.mp4, .../*.json    Solos' clips (`musicbench acquire`)
    urmp/manifest.json                                                     a local URMP copy (`musicbench urmp import`)
    urmp/processed/{audio,stems,frames}/<piece>.{flac,flac,tar}            its pieces, processed (`musicbench urmp process`)
    urmp/{pieces,items}.parquet, urmp/benchmark.json                       the real-ensembles track and its version
    processed/{audio,frames,records}/<id>.{flac,tar,json}                 decoded media (`musicbench process`)
    processed/videos.parquet, processed/rejects.parquet                   the index and the rejects
    splits/splits.csv                                                      train/val/test per video
    mixtures/{mixtures,duets}.parquet, mixtures/benchmark.json             the benchmark definition
    mixtures/ground_truth.json                                             SHA-256 of the stems and boxes it uses
    protocols/<name>/{mixtures,duets}.parquet, .../*.json                 a paper's test set (`musicbench protocol build`)
    score_cache/<sha256>.json, score_cache/.secret                         signed metric results by content hash
    .musicbench.lock                                                       the writing stages' lock (`musicbench.concurrency`)

Paths stored in manifests and tables are relative to the data root, as POSIX strings (the
``*_relpath`` functions); `DataRoot` turns them into paths that never leave the root.

`DataRoot.iter_items` builds the benchmark items (`EvalItem`) that evaluation, validation during
training and the leaderboard's demo pages all read: a model never sees anything else.
`DataRoot.verify_items` checks, once before a run reads them, every file those items are built from:
the mixture tables against benchmark.json's tables fingerprint, the processed audio and frames against the
index's SHA-256 (and the tables' own hash columns), MUSIC-Synth stems and boxes against
``mixtures/ground_truth.json``. Hashes are the one record of a file's content that the index and the
tables already name: nothing of ``processed/`` or the benchmark changes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musicbench.errors import MusicbenchError
from musicbench.fsutil import read_parquet, resolve_in_root, sha256_file

if TYPE_CHECKING:
    from musicbench.annotations import BoxAnnotations

SOURCES = ("synth", "music", "solos")
TRACKS = ("mixtures", "duets")  # the benchmark version's tracks
EVAL_SPLITS = ("val", "test")  # the splits that have fixed items
URMP_TRACK = "urmp"  # the real-ensembles track: only once a URMP copy is imported and processed (own version)
ALL_TRACKS = (*TRACKS, URMP_TRACK)
MANIFEST_NAME = "manifest.csv"

SYNTH_DIR = "synth"
SYNTH_KINDS = {"videos": "mp4", "stems": "flac", "boxes": "json"}
SYNTH_SKIPPED_NAME = "skipped.json"

MUSIC_DIR = "music"
MUSIC_VIDEOS_DIR = f"{MUSIC_DIR}/videos"
MUSIC_RAW_DIR = f"{MUSIC_DIR}/raw"
MUSIC_PARTS_DIR = f"{MUSIC_RAW_DIR}/.parts"
MUSIC_AVAILABILITY_RELPATH = f"{MUSIC_DIR}/availability.parquet"
MUSIC_MANIFEST_RELPATH = f"{MUSIC_DIR}/{MANIFEST_NAME}"
MUSIC_REPORT_RELPATH = f"{MUSIC_DIR}/acquire_report.json"
# Solos shares real MUSIC's YouTube downloads (music/raw, music/availability.parquet: one row per
# YouTube video; the whole video at music/videos/<id>.mp4) and keeps its clips in music/solos.
SOLOS_DIR = f"{MUSIC_DIR}/solos"
SOLOS_CLIPS_DIR = f"{SOLOS_DIR}/clips"
SOLOS_REPORT_RELPATH = f"{SOLOS_DIR}/acquire_report.json"

# URMP (a local copy, never fetched): `musicbench urmp import` writes urmp/manifest.json (paths
# relative to the copy, which stays where it is, read-only); `musicbench urmp process` the rest.
URMP_DIR = "urmp"
URMP_MANIFEST_RELPATH = f"{URMP_DIR}/manifest.json"
URMP_PROCESSED_KINDS = {"audio": "flac", "stems": "flac", "frames": "tar"}
_URMP_PROCESSED_EXTENSIONS = {**URMP_PROCESSED_KINDS, "records": "json"}
URMP_PIECES_NAME, URMP_ITEMS_NAME = "pieces.parquet", "items.parquet"
URMP_PIECE_COLUMNS: tuple[str, ...] = (
    "piece_id", "instruments", "n_players", "sample_rate", "n_samples", "fps", "n_frames", "frame_width",
    "frame_height", "audio_path", "audio_sha256", "stems_path", "stems_sha256", "frames_path", "frames_sha256",
)
URMP_ITEM_COLUMNS: tuple[str, ...] = (
    "item_id", "split", "piece_id", "instruments", "start_sample", "n_samples", "start_frame", "n_frames",
    "audio_path", "audio_sha256", "stems_path", "stems_sha256", "frames_path", "frames_sha256",
)

PROCESSED_DIR = "processed"
AUDIO_DIR, FRAMES_DIR, RECORDS_DIR, WORK_DIR = "audio", "frames", "records", ".work"
INDEX_NAME, REJECTS_NAME = "videos.parquet", "rejects.parquet"

SPLITS_DIR = "splits"
SPLITS_RELPATH = f"{SPLITS_DIR}/splits.csv"
MIXTURES_DIR = "mixtures"
MIXTURES_NAME, DUETS_NAME, DEFINITION_NAME = "mixtures.parquet", "duets.parquet", "benchmark.json"
PROTOCOLS_DIR = "protocols"  # protocols/<name>/: a paper's test set, in the layout of mixtures/ (`musicbench.protocols`)
GROUND_TRUTH_NAME = "ground_truth.json"
VALIDATE_HINT = "run `musicbench validate`"
SCORE_CACHE_DIR, SCORE_CACHE_SECRET_NAME = "score_cache", ".secret"
LOCK_NAME = ".musicbench.lock"

INDEX_COLUMNS: tuple[str, ...] = (
    "video_id", "kind", "instruments", "n_sources", "subset", "source", "split",
    "start", "end", "duration", "sample_rate", "n_samples", "clipped_samples",
    "fps", "n_frames", "frame_width", "frame_height", "video_width", "video_height",
    "audio_path", "audio_bytes", "audio_sha256", "frames_path", "frames_bytes", "frames_sha256",
    "video_path", "video_sha256", "stems_path", "boxes_path",
)
# The mixture and duet tables. ``*_sha256`` hash files (what `verify_items` checks here);
# ``*_pcm_sha256`` hash decoded samples exactly (`pcm_sha256`); ``clip_loudness_db`` is the clip's
# loudness contour (`loudness_contour`). The tables' fingerprint (`tables_fingerprint`, benchmark.json's
# coverage) hashes them without the first two (`UNVERSIONED_COLUMNS`): container bytes, frame
# encodings and a decoder's last-bit rounding do not change it, any audible change of a clip does.
MIXTURE_COLUMNS: tuple[str, ...] = (
    "item_id", "split", "n_sources", "source_index", "video_id", "instrument", "start_sample",
    "n_samples", "start_frame", "n_frames", "gain", "audio_path", "audio_sha256", "audio_pcm_sha256",
    "clip_loudness_db", "frames_path", "frames_sha256",
)
DUET_COLUMNS: tuple[str, ...] = (
    "item_id", "split", "video_id", "instruments", "start_sample", "n_samples", "start_frame", "n_frames",
    "audio_path", "audio_sha256", "audio_pcm_sha256", "clip_loudness_db", "frames_path", "frames_sha256", "stems_path",
    "stems_pcm_sha256", "boxes_path",
)
FILE_HASH_COLUMNS = ("audio_sha256", "frames_sha256")
UNVERSIONED_COLUMNS = (*FILE_HASH_COLUMNS, "audio_pcm_sha256")
# A localization protocol's item table (`musicbench.protocols`) also carries, per source, the annotated
# frame its map is scored against: JSON {"frame", "width", "height", "boxes": [[x, y, w, h], ...]}.
ANNOTATION_COLUMN = "annotation"
LOUDNESS_WINDOW = 8192  # samples per step of a clip's loudness contour
LOUDNESS_FLOOR_DB = -100.0


# ------------------------------------------------------------------------------------ relative paths


def synth_relpath(kind: str, video_id: str) -> str:
    """Path of a MUSIC-Synth file relative to the data root; `kind` is videos, stems or boxes."""
    return f"{SYNTH_DIR}/{kind}/{video_id}.{SYNTH_KINDS[kind]}"


def music_video_relpath(video_id: str) -> str:
    """Path of a trimmed real MUSIC video relative to the data root (`video_id` already validated)."""
    return f"{MUSIC_VIDEOS_DIR}/{video_id}.mp4"


def music_raw_relpath(video_id: str) -> str:
    """Path of a raw (untrimmed, as downloaded) MUSIC video relative to the data root."""
    return f"{MUSIC_RAW_DIR}/{video_id}.mp4"


def solos_clip_relpath(clip_id: str) -> str:
    """Path of a trimmed Solos clip (``<youtube id>.NN``, already validated) relative to the data root."""
    return f"{SOLOS_CLIPS_DIR}/{clip_id}.mp4"


def urmp_processed_relpath(kind: str, piece_id: str) -> str:
    """Path of a processed URMP file relative to the data root; `kind` is audio (the mixture, mono),
    stems (one channel per player, left to right), frames (the archive) or records (what it was made from)."""
    return f"{URMP_DIR}/processed/{kind}/{piece_id}.{_URMP_PROCESSED_EXTENSIONS[kind]}"


def processed_paths(processed_dir: str | os.PathLike, video_id: str) -> tuple[Path, Path, Path]:
    """(audio FLAC, frame archive, record JSON) of one video under a processing output folder."""
    processed_dir = Path(processed_dir)
    return (processed_dir / AUDIO_DIR / f"{video_id}.flac", processed_dir / FRAMES_DIR / f"{video_id}.tar",
            processed_dir / RECORDS_DIR / f"{video_id}.json")


# ------------------------------------------------------------------------------------ the data root


class DataRoot:
    """A data root and every path of its layout (see the module docstring).

    `protocol`: a paper's test set built here (`musicbench.protocols`); the data root is then seen
    through it: its items, definition, version and ground truth are the protocol's
    (``protocols/<name>/``, the layout of ``mixtures/``). A DataRoot is a path (``os.fspath`` gives
    the root), and ``DataRoot(data_root)`` keeps its protocol, so the stages that take a data root
    path take a protocol's view too.
    """

    def __init__(self, root: str | os.PathLike, protocol: str | None = None):
        self.root = Path(root)
        self.protocol = protocol if protocol is not None else getattr(root, "protocol", None)

    def __repr__(self) -> str:
        view = "" if self.protocol is None else f", protocol={self.protocol!r}"
        return f"DataRoot({os.fspath(self.root)!r}{view})"

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __str__(self) -> str:
        return os.fspath(self.root)

    def resolve(self, relative: str | os.PathLike) -> Path:
        """A path stored in a manifest or table (relative, untrusted), refused if it leaves the root."""
        return resolve_in_root(self.root, relative)

    def source_dir(self, source: str) -> Path:
        """``<root>/synth``, ``<root>/music`` or ``<root>/music/solos``: where a dataset source's
        files and manifest live."""
        if source not in SOURCES:
            raise MusicbenchError(f"params: dataset.source must be one of {', '.join(SOURCES)}, got {source!r}")
        return self.root / (SOLOS_DIR if source == "solos" else source)

    def manifest_path(self, source: str) -> Path:
        """The manifest of a dataset source that `musicbench process` reads by default."""
        return self.source_dir(source) / MANIFEST_NAME

    @property
    def synth_dir(self) -> Path:
        return self.root / SYNTH_DIR

    @property
    def urmp_manifest_path(self) -> Path:
        """``<root>/urmp/manifest.json``: the imported URMP copy's pieces (`musicbench.urmp`)."""
        return self.root / URMP_MANIFEST_RELPATH

    @property
    def urmp_pieces_path(self) -> Path:
        """``<root>/urmp/pieces.parquet``: the processed URMP pieces (URMP_PIECE_COLUMNS)."""
        return self.root / URMP_DIR / URMP_PIECES_NAME

    @property
    def urmp_items_path(self) -> Path:
        """``<root>/urmp/items.parquet``: the real-ensembles track's clips (URMP_ITEM_COLUMNS)."""
        return self.root / URMP_DIR / URMP_ITEMS_NAME

    @property
    def urmp_definition_path(self) -> Path:
        """``<root>/urmp/benchmark.json``: the real-ensembles track's version, recipe and counts."""
        return self.root / URMP_DIR / DEFINITION_NAME

    @property
    def processed_dir(self) -> Path:
        return self.root / PROCESSED_DIR

    @property
    def index_path(self) -> Path:
        """``<root>/processed/videos.parquet``: one row per processed video (INDEX_COLUMNS)."""
        return self.processed_dir / INDEX_NAME

    @property
    def splits_path(self) -> Path:
        """``<root>/splits/splits.csv``: the split of every video, written by the `splits` stage."""
        return self.root / SPLITS_RELPATH

    @property
    def mixtures_dir(self) -> Path:
        """``<root>/mixtures``, or ``<root>/protocols/<name>`` seen through a protocol: the items' folder."""
        return self.root / MIXTURES_DIR if self.protocol is None else self.root / PROTOCOLS_DIR / self.protocol

    @property
    def mixtures_path(self) -> Path:
        """``<root>/mixtures/mixtures.parquet``: the fixed val/test items (MIXTURE_COLUMNS)."""
        return self.mixtures_dir / MIXTURES_NAME

    @property
    def duets_path(self) -> Path:
        """``<root>/mixtures/duets.parquet``: the duet items (DUET_COLUMNS)."""
        return self.mixtures_dir / DUETS_NAME

    @property
    def definition_path(self) -> Path:
        """``<root>/mixtures/benchmark.json``: the benchmark version and counts."""
        return self.mixtures_dir / DEFINITION_NAME

    @property
    def ground_truth_path(self) -> Path:
        """``<root>/mixtures/ground_truth.json``: SHA-256 of every stems FLAC and boxes JSON the items read."""
        return self.mixtures_dir / GROUND_TRUTH_NAME

    @property
    def lock_path(self) -> Path:
        """``<root>/.musicbench.lock``: the writing stages' lock and its holder record (`musicbench.concurrency`)."""
        return self.root / LOCK_NAME

    @property
    def score_cache_dir(self) -> Path:
        return self.root / SCORE_CACHE_DIR

    def layout_paths(self) -> list[Path]:
        """Every top-level folder of the layout: what a model under test must never see."""
        names = (SYNTH_DIR, MUSIC_DIR, PROCESSED_DIR, SPLITS_DIR, MIXTURES_DIR, PROTOCOLS_DIR, SCORE_CACHE_DIR)
        paths = [self.root / name for name in names]
        if (self.root / URMP_DIR).exists():  # the URMP track and the copy it was imported from (its real stems)
            paths.append(self.root / URMP_DIR)
            try:
                paths.append(Path(json.loads(self.urmp_manifest_path.read_text())["copy"]))
            except (OSError, KeyError, TypeError, ValueError):
                pass
        return paths

    @property
    def build_command(self) -> str:
        """The command that writes this view's items: `musicbench mixtures`, or `musicbench protocol build NAME`."""
        return "`musicbench mixtures`" if self.protocol is None else f"`musicbench protocol build {self.protocol}`"

    def _protocol_spec(self) -> Any:
        """The `musicbench.protocols.Protocol` this view shows (None: the main benchmark)."""
        from musicbench.protocols import PROTOCOLS

        return PROTOCOLS.get(self.protocol) if self.protocol is not None else None

    @property
    def localization_only(self) -> bool:
        """Whether this view's items score localization alone (a localization protocol, e.g.
        DSOL's solo test): models are asked only for `localize`, and only maps are scored."""
        from musicbench.protocols import LOCALIZATION_TASK

        spec = self._protocol_spec()
        return spec is not None and spec.task == LOCALIZATION_TASK

    @property
    def class_maps(self) -> bool:
        """Whether this view's items are scored per class (DSOL's duets): models are asked for
        `localize_classes`, one map per MUSIC instrument (`musicbench.instruments.MUSIC_INSTRUMENTS`)."""
        spec = self._protocol_spec()
        return spec is not None and spec.class_maps

    def has_definition(self) -> bool:
        """Whether `musicbench mixtures` has written the benchmark definition here."""
        return self.definition_path.is_file()

    def definition(self) -> dict[str, Any]:
        """``mixtures/benchmark.json``: the benchmark identity (``benchmark_version``), the recipe it
        hashes, this data root's coverage (`musicbench.definition.coverage`), the frames fingerprint and counts."""
        path = self.definition_path
        if not self.root.is_dir():
            raise MusicbenchError(f"no data root at {str(self.root.absolute())!r}: pass --root DATA, or run from the project "
                                  "whose params.yaml names it (dataset.root is relative to params.yaml's folder)")
        try:
            doc = json.loads(path.read_text())
            doc["benchmark_version"], doc["recipe"], doc["coverage"]["tables_fingerprint"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            build = self.build_command + (" (or `dvc repro`)" if self.protocol is None else "")
            raise MusicbenchError(f"no benchmark definition at {str(path)!r} (or one written by an older musicbench); "
                                  f"run {build}") from None
        return doc

    def version(self) -> str:
        """The benchmark version of this data root (from ``mixtures/benchmark.json``)."""
        return str(self.definition()["benchmark_version"])

    def frames_fingerprint(self) -> str | None:
        """The fingerprint of the frames the items give models (`musicbench.mixtures.frames_fingerprint`)."""
        value = self.definition().get("frames_fingerprint")
        return str(value) if value else None

    def read_index(self) -> pd.DataFrame:
        """The processed-video index (see `read_index`)."""
        return read_index(self.index_path)

    def has_urmp_track(self) -> bool:
        """Whether `musicbench urmp process` has written the real-ensembles track here (a track of the
        main benchmark: never seen through a protocol)."""
        return self.protocol is None and self.urmp_items_path.is_file()

    def urmp_version(self) -> str | None:
        """The real-ensembles track's identity (``urmp/benchmark.json``), None when there is no track."""
        return None if not self.has_urmp_track() else str(self._urmp_definition()["benchmark_version"])

    def urmp_coverage(self) -> dict[str, Any] | None:
        """What this copy holds of the real-ensembles track (``urmp/benchmark.json``'s coverage:
        ``pieces``, ``held``, ``not_held`` folder names, ``tables_fingerprint``), None without the track."""
        if not self.has_urmp_track():
            return None
        cover = self._urmp_definition()["coverage"]
        return {key: cover[key] for key in ("pieces", "held", "not_held", "tables_fingerprint")}

    def _urmp_definition(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.urmp_definition_path.read_text())
            doc["benchmark_version"], doc["coverage"]["tables_fingerprint"], doc["coverage"]["tables_recipe"]
            return doc
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            raise MusicbenchError(f"no real-ensembles version at {str(self.urmp_definition_path)!r} (or one written by an "
                                  "older musicbench); run `musicbench urmp process`") from None

    def iter_items(self, split: str = "test", limit: int | None = None, track: str = "mixtures",
                   annotations: BoxAnnotations | None = None) -> Iterator[EvalItem]:
        """Build the benchmark items of `split` and `track` ("mixtures", "duets" or "urmp"), in item order.

        Duet items need clean stems and player boxes (MUSIC-Synth); duets without them are skipped.
        A source video without boxes of its own (real MUSIC) takes them from `annotations` (e.g.
        DSOL's, `musicbench.annotations`): the annotated frame nearest the clip's centre, within 1 s.
        URMP items (test split only) are clips of real ensembles with the real stems as references.
        """
        if track not in ALL_TRACKS:
            raise MusicbenchError(f"unknown track {track!r}: choose one of {', '.join(ALL_TRACKS)}")
        if track == "duets":
            yield from self._iter_duet_items(split, limit)
            return
        if track == URMP_TRACK:
            yield from self._iter_urmp_items(split, limit)
            return
        table = self._mixture_rows(split, limit)
        keys = item_keys(table, pd.DataFrame(columns=list(DUET_COLUMNS)))
        index = self.read_index().set_index("video_id", drop=False)
        for item_id, rows in table.groupby("item_id", sort=True):
            references, frames, boxes, class_boxes = [], [], [], None
            for row in rows.itertuples(index=False):
                video = index.loc[row.video_id]
                clip, rate = self._read_clip(row.audio_path, int(row.start_sample), int(row.n_samples), item_id)
                references.append(clip * np.float32(row.gain))
                frames.append(self._read_frames(row.frames_path, int(row.start_frame), int(row.n_frames)))
                centre_frame = int(row.start_frame) + int(row.n_frames) // 2
                if getattr(row, ANNOTATION_COLUMN, ""):  # a localization protocol's own annotated frame comes first
                    annotated, classes = _item_annotation(getattr(row, ANNOTATION_COLUMN), video, item_id)
                    boxes.append(annotated)
                    if classes is not None:  # scored per class: `localize_classes`
                        class_boxes = {name: annotated[[c == name for c in classes]] for name in sorted(set(classes))}
                    continue
                players = self._player_boxes(video, video.get("boxes_path") or "", centre_frame)
                boxes.append(players[0] if players else _annotated_boxes(annotations, video, centre_frame))
            references_array = np.stack(references).astype(np.float32)
            yield EvalItem(item_id, split, list(rows["video_id"]), list(rows["instrument"]), references_array.sum(axis=0),
                           references_array, np.stack(frames), rate, boxes, key=keys[str(item_id)], class_boxes=class_boxes)

    def _iter_duet_items(self, split: str, limit: int | None) -> Iterator[EvalItem]:
        table = self._duet_rows(split, limit)
        keys = item_keys(pd.DataFrame(columns=list(MIXTURE_COLUMNS)), table)
        index = self.read_index().set_index("video_id", drop=False)
        for row in table.itertuples(index=False):
            stems, rate = self._read_clip(row.stems_path, int(row.start_sample), int(row.n_samples), row.item_id)
            references = np.ascontiguousarray(stems.T, dtype=np.float32)
            boxes = self._player_boxes(index.loc[row.video_id], row.boxes_path, int(row.start_frame) + int(row.n_frames) // 2)
            instruments = row.instruments.split()
            if references.shape[0] != len(instruments) or len(boxes) != len(instruments):
                raise MusicbenchError(f"item {row.item_id}: stems/boxes do not match its {len(instruments)} players; "
                                      "regenerate MUSIC-Synth (`dvc repro synth`)")
            frames = self._read_frames(row.frames_path, int(row.start_frame), int(row.n_frames))[None]
            points = [(float(b[0] + b[2] / 2), float(b[1] + b[3] / 2)) for b in boxes]
            yield EvalItem(row.item_id, split, [row.video_id] * len(instruments), instruments, references.sum(axis=0),
                           references, frames, rate, boxes, "duets", points, key=keys[str(row.item_id)])

    def item_ids(self, split: str = "test", limit: int | None = None, track: str = "mixtures") -> list[str]:
        """The ids of the items `iter_items(split, limit, track)` builds, in item order (nothing is read but the tables)."""
        if track not in TRACKS:
            raise MusicbenchError(f"unknown track {track!r}: choose one of {', '.join(TRACKS)}")
        rows = self._mixture_rows(split, limit) if track == "mixtures" else self._duet_rows(split, limit)
        return list(rows["item_id"].drop_duplicates())

    def iter_frame_files(self, split: str = "test", limit: int | None = None,
                         track: str = "mixtures") -> Iterator[tuple[str, list[list[bytes]]]]:
        """The JPEG files of the frames that `iter_items(split, limit, track)` decodes, byte for byte,
        in item order: ``(item_id, [[frame, ...] per source])`` (a duet item has one video)."""
        if track not in TRACKS:
            raise MusicbenchError(f"unknown track {track!r}: choose one of {', '.join(TRACKS)}")
        rows = self._mixture_rows(split, limit) if track == "mixtures" else self._duet_rows(split, limit)
        for item_id, item_rows in rows.groupby("item_id", sort=True):
            yield item_id, [FrameArchive(self.resolve(row.frames_path)).read_jpeg(
                range(int(row.start_frame), int(row.start_frame) + int(row.n_frames))) for row in item_rows.itertuples(index=False)]

    def _iter_urmp_items(self, split: str, limit: int | None) -> Iterator[EvalItem]:
        for row in self._urmp_rows(split, limit).itertuples(index=False):
            mixture, rate = self._read_clip(row.audio_path, int(row.start_sample), int(row.n_samples), row.item_id)
            stems, _ = self._read_clip(row.stems_path, int(row.start_sample), int(row.n_samples), row.item_id)
            references = np.ascontiguousarray(np.atleast_2d(stems.T), dtype=np.float32)
            instruments = row.instruments.split()
            if references.shape[0] != len(instruments):
                raise MusicbenchError(f"item {row.item_id}: {row.stems_path} has {references.shape[0]} stems for "
                                      f"{len(instruments)} players; run `musicbench urmp process`")
            frames = self._read_frames(row.frames_path, int(row.start_frame), int(row.n_frames))[None]
            points = side_by_side_points(frames.shape[3], frames.shape[2], len(instruments))
            yield EvalItem(row.item_id, split, [row.piece_id] * len(instruments), instruments, mixture, references,
                           frames, rate, [None] * len(instruments), URMP_TRACK, points)

    def _urmp_rows(self, split: str, limit: int | None) -> pd.DataFrame:
        """The real-ensembles items of `split` (URMP's are all test items), first `limit`, by item id."""
        table = read_parquet(self.urmp_items_path, URMP_ITEM_COLUMNS, "URMP item table", "run `musicbench urmp process`")
        table = table[table["split"] == split].sort_values("item_id")
        return table.iloc[:None if limit is None else max(limit, 0)]

    def verified_urmp_table(self) -> pd.DataFrame:
        """The URMP item table, checked against its fingerprint (urmp/benchmark.json's coverage);
        MusicbenchError if it disagrees."""
        try:
            cover = self._urmp_definition()["coverage"]
        except MusicbenchError:
            cover = {}
        table = read_parquet(self.urmp_items_path, URMP_ITEM_COLUMNS, "URMP item table", "run `musicbench urmp process`")
        if not cover or urmp_version(table, cover["tables_recipe"]) != cover["tables_fingerprint"]:
            raise MusicbenchError(f"{str(self.urmp_items_path)!r} does not give the version of "
                                  f"{str(self.urmp_definition_path)!r}; run `musicbench urmp process`")
        return table

    def _verify_urmp_items(self, split: str, limit: int | None) -> None:
        """The URMP items table against its version (urmp/benchmark.json) and every file against its SHA-256."""
        self.verified_urmp_table()
        expected = {}
        for row in self._urmp_rows(split, limit).itertuples(index=False):
            expected.update({row.audio_path: row.audio_sha256, row.stems_path: row.stems_sha256,
                             row.frames_path: row.frames_sha256})
        for path, sha in sorted(expected.items()):
            if _content_sha256(self.resolve(path)) != sha:
                raise MusicbenchError(f"{str(self.resolve(path))!r} is not the file the real-ensembles track was built on "
                                      "(sha256 differs); run `musicbench urmp process`")

    def read_verified_items(self, split: str, limit: int | None = None, tracks: Sequence[str] = ("mixtures",),
                            annotations: BoxAnnotations | None = None) -> list[EvalItem]:
        """The items of `split` on `tracks`, each track's files checked first (`verify_items`)."""
        items: list[EvalItem] = []
        for track in tracks:
            self.verify_items(split, limit, track)
            items += self.iter_items(split, limit, track, annotations)
        return items

    def _mixture_rows(self, split: str, limit: int | None) -> pd.DataFrame:
        """The mixture-table rows of the first `limit` items of `split`, by item and source."""
        if self.protocol is not None and split != "test":
            raise MusicbenchError(f"protocol {self.protocol} has test items only; use split 'test', not {str(split)[:20]!r}")
        whole = read_mixtures(self.mixtures_path, hint=f"run {self.build_command}")
        table = whole[whole["split"] == split].sort_values(["item_id", "source_index"])
        if table.empty:
            held = sorted(set(whole["split"]))
            if split not in EVAL_SPLITS:
                raise MusicbenchError(f"unknown split {split!r}: the benchmark's items are in the splits "
                                      f"{' and '.join(EVAL_SPLITS)}; choose --split {' or --split '.join(held or EVAL_SPLITS)}")
            if held:
                raise MusicbenchError(f"this data root holds none of the benchmark's {split!r} items (their videos are "
                                      f"missing: {self.build_command} prints its coverage); choose --split {' or --split '.join(held)}")
            raise MusicbenchError(f"the benchmark has no {split!r} items here; run {self.build_command} (or `dvc repro`) first")
        if limit is not None:
            table = table[table["item_id"].isin(table["item_id"].drop_duplicates().iloc[:max(limit, 0)])]
        return table

    def _duet_rows(self, split: str, limit: int | None) -> pd.DataFrame:
        """The duet-table rows of the first `limit` duet items of `split` that have stems and boxes."""
        table = read_mixtures(self.duets_path, DUET_COLUMNS, f"run {self.build_command}")
        table = table[(table["split"] == split) & (table["stems_path"] != "") & (table["boxes_path"] != "")]
        return table.sort_values("item_id").iloc[:None if limit is None else max(limit, 0)]

    # -------------------------------------------------------------------------------- verified reads

    def verify_items(self, split: str = "test", limit: int | None = None, track: str = "mixtures") -> None:
        """Check every file that `iter_items(split, limit, track)` reads, once, before it reads them.

        The mixture tables must give the tables fingerprint of benchmark.json; the processed audio
        and frames of each item must have the SHA-256 of the index, which the tables' own hash
        columns must name too; stems and boxes (MUSIC-Synth) the SHA-256 in ground_truth.json.
        Raises MusicbenchError ``<file> ...; run `musicbench validate``` on the first mismatch.
        """
        if track not in ALL_TRACKS:
            raise MusicbenchError(f"unknown track {track!r}: choose one of {', '.join(ALL_TRACKS)}")
        if track == URMP_TRACK:
            self._verify_urmp_items(split, limit)
            return
        self.verify_definition()
        rows = self._mixture_rows(split, limit) if track == "mixtures" else self._duet_rows(split, limit)
        index = self.read_index().set_index("video_id", drop=False)
        expected: dict[str, str] = {}
        ground_truth: list[str] = []
        for row in rows.itertuples(index=False):
            if row.video_id not in index.index:
                raise MusicbenchError(f"video {row.video_id} of item {row.item_id} is not in the index {str(self.index_path)!r}; "
                                      f"run {self.build_command}")
            video = index.loc[row.video_id]
            for kind in ("audio", "frames"):
                path, sha = getattr(row, f"{kind}_path"), getattr(row, f"{kind}_sha256")
                if (path, sha) != (video[f"{kind}_path"], video[f"{kind}_sha256"]):
                    raise MusicbenchError(f"item {row.item_id}: {path} differs between the mixture table and the index "
                                          f"{str(self.index_path)!r}; {VALIDATE_HINT}, then {self.build_command}")
                expected[path] = sha
            ground_truth += [row.stems_path, row.boxes_path] if track == "duets" else [video.get("boxes_path") or ""]
        ground_truth = sorted({path for path in ground_truth if path})
        if ground_truth:
            recorded = self.read_ground_truth()
            for path in ground_truth:
                if path not in recorded:
                    raise MusicbenchError(f"{path} has no hash in {str(self.ground_truth_path)!r}; run {self.build_command}")
                expected[path] = recorded[path]
        for path, sha in sorted(expected.items()):
            if _content_sha256(self.resolve(path)) != sha:
                raise MusicbenchError(f"{str(self.resolve(path))!r} is not the file the benchmark was built on "
                                      f"(sha256 differs); {VALIDATE_HINT}")

    def verify_definition(self) -> None:
        """Check that mixtures.parquet and duets.parquet still give the tables fingerprint of benchmark.json's coverage."""
        recorded = (self.definition().get("coverage") or {}).get("tables_fingerprint")
        identities = tuple(_file_identity(path) for path in (self.definition_path, self.mixtures_path, self.duets_path))
        if None not in identities and identities in _VERIFIED_HASHES:
            return
        hint = f"run {self.build_command}"
        recomputed = tables_fingerprint(read_mixtures(self.mixtures_path, hint=hint), read_mixtures(self.duets_path, DUET_COLUMNS, hint))
        if recomputed != recorded:
            raise MusicbenchError(f"{str(self.mixtures_dir)!r}: the mixture tables give tables fingerprint {recomputed}, "
                                  f"benchmark.json records {recorded}; {VALIDATE_HINT}, then {self.build_command}")
        if None not in identities:
            _VERIFIED_HASHES[identities] = recomputed

    def ground_truth_hashes(self, mixtures: pd.DataFrame, duets: pd.DataFrame) -> dict[str, str]:
        """``{relative path: sha256}`` of every stems FLAC and boxes JSON the items of these tables read."""
        index = self.read_index().set_index("video_id", drop=False)
        used = index.loc[index["video_id"].isin(set(mixtures["video_id"]) | set(duets["video_id"]))]
        paths = set(used["stems_path"].fillna("")) | set(used["boxes_path"].fillna(""))
        paths |= set(duets["stems_path"]) | set(duets["boxes_path"])
        return {path: sha256_file(self.resolve(path)) for path in sorted(paths) if path}

    def ground_truth_document(self, mixtures: pd.DataFrame, duets: pd.DataFrame, tables: str) -> dict[str, Any]:
        """``mixtures/ground_truth.json``: `ground_truth_hashes` for the held tables of fingerprint `tables`."""
        return {"tables_fingerprint": tables, "sha256": self.ground_truth_hashes(mixtures, duets)}

    def read_ground_truth(self) -> dict[str, str]:
        """``{relative path: sha256}`` from ground_truth.json, refused unless written for these tables."""
        path = self.ground_truth_path
        try:
            doc = json.loads(path.read_text())
            hashes, tables = doc["sha256"], doc["tables_fingerprint"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            raise MusicbenchError(f"no stems/boxes hashes at {str(path)!r}; run {self.build_command}") from None
        recorded = self.definition()["coverage"]["tables_fingerprint"]
        if tables != recorded or not isinstance(hashes, dict):
            raise MusicbenchError(f"{str(path)!r} was written for the tables {tables}, not {recorded}; "
                                  f"run {self.build_command}")
        return hashes

    def _read_clip(self, path: str, start: int, n_samples: int, item_id: str) -> tuple[np.ndarray, int]:
        """``(n_samples,)`` or ``(n_samples, channels)`` float32 from an audio file, checked for truncation."""
        import soundfile as sf

        clip, rate = sf.read(self.resolve(path), start=start, frames=n_samples, dtype="float32")
        if len(clip) != n_samples:
            raise MusicbenchError(f"item {item_id}: {path} is truncated; run `musicbench validate`")
        return clip, int(rate)

    def _read_frames(self, path: str, start_frame: int, n_frames: int) -> np.ndarray:
        return read_clip_frames(self.resolve(path), range(start_frame, start_frame + n_frames))

    def _player_boxes(self, video: pd.Series, boxes_path: str, centre_frame: int) -> list[np.ndarray] | None:
        """Every player's box at processed frame `centre_frame` of a video with ground truth, else None."""
        if not boxes_path:
            return None
        doc = json.loads(self.resolve(boxes_path).read_text())
        index = int(np.clip(round(_video_time(video, centre_frame) * doc["fps"]), 0, len(doc["boxes"][0]) - 1))
        frame_size = (int(video["frame_width"]), int(video["frame_height"]))
        return [frame_box(player[index], (doc["width"], doc["height"]), frame_size) for player in doc["boxes"]]


_VERIFIED_HASHES: dict[tuple, str] = {}  # file identity → sha256; identities of the definition's files → version


def _file_identity(path: Path) -> tuple[int, ...] | None:
    """(device, inode, size, mtime, ctime) of a file changed more than 2 s ago; None if changed since or missing.

    Any write, rename or metadata change moves the inode change time (``st_ctime_ns``), which the
    kernel alone sets, so a replaced or rewritten file gets another identity; a file changed within
    the last 2 s gets none (the kernel's clock ticks coarser than a write).
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    if time.time_ns() - stat.st_ctime_ns < 2_000_000_000:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def pcm_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of an audio file's decoded samples: the integer PCM (as libsndfile scales it to
    int32) for PCM files, float32 otherwise, with the sample rate and channel count. Two files with
    the same samples get the same hash whatever their container bytes (FLAC frames, padding, tags)."""
    import soundfile as sf

    with sf.SoundFile(os.fspath(path)) as audio:
        dtype = "int32" if audio.subtype.startswith("PCM") else "float32"
        digest = hashlib.sha256(f"{dtype} {audio.samplerate} Hz {audio.channels} ch\n".encode())
        for block in audio.blocks(blocksize=1 << 16, dtype=dtype, always_2d=True):
            digest.update(np.ascontiguousarray(block, dtype="<i4" if dtype == "int32" else "<f4").tobytes())
    return digest.hexdigest()


def urmp_version(items: pd.DataFrame, recipe: dict[str, Any]) -> str:
    """``mbu-`` + 16 hex digits of the SHA-256 over the URMP items table (without file hashes: the
    recipe's decoded-sample hashes stand for the audio) and the recipe as canonical JSON: the
    fingerprint of what a copy holds of the real-ensembles track (its identity is
    `musicbench.urmp.urmp_identity`)."""
    columns = [c for c in URMP_ITEM_COLUMNS if not c.endswith("_sha256")]
    digest = hashlib.sha256(items[columns].to_csv(index=False, lineterminator="\n").encode())
    digest.update(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode())
    return "mbu-" + digest.hexdigest()[:16]


def table_to_csv(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """Canonical CSV text of a table (fixed column order, repr floats): what identities and fingerprints hash."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in table[list(columns)].itertuples(index=False):
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in record])
    return buffer.getvalue()


def tables_fingerprint(mixtures: pd.DataFrame, duets: pd.DataFrame) -> str:
    """``cv-`` + 16 hex digits of the SHA-256 over the held mixture and duet tables without their
    exact hashes (`UNVERSIONED_COLUMNS`: each clip's loudness contour stands for its audio): which
    items a data root holds, and their clips (and a localization protocol's annotated frames,
    `ANNOTATION_COLUMN`, where the table has them)."""
    digest = hashlib.sha256()
    annotated = (ANNOTATION_COLUMN,) if ANNOTATION_COLUMN in mixtures else ()
    for table, columns in ((mixtures, MIXTURE_COLUMNS + annotated), (duets, DUET_COLUMNS)):
        digest.update(table_to_csv(table, tuple(c for c in columns if c not in UNVERSIONED_COLUMNS)).encode())
    return "cv-" + digest.hexdigest()[:16]


# what an item key hashes of each clip: what it is (video, start, length, gain) and how it sounds
KEY_COLUMNS = ("video_id", "start_sample", "n_samples", "start_frame", "n_frames", "clip_loudness_db")


def item_keys(mixtures: pd.DataFrame, duets: pd.DataFrame) -> dict[str, str]:
    """``{item_id: key}``: ``it-`` + 16 hex digits of the SHA-256 over an item's clips (KEY_COLUMNS,
    the gains of a mixture item, the decoded stems of a duet item). Two data roots whose items share
    an id and a key hold the same clips, sounding alike (equal loudness contours: not necessarily
    equal samples, e.g. another decoder's rounding; `musicbench.harness.scoring.item_content_hash` is
    exact)."""
    keys = {}
    for item_id, rows in mixtures.groupby("item_id", sort=True):
        keys[str(item_id)] = _key(table_to_csv(rows.sort_values("source_index"), (*KEY_COLUMNS, "gain")))
    for row in duets.itertuples(index=False):
        keys[str(row.item_id)] = _key(table_to_csv(pd.DataFrame([row._asdict()]), (*KEY_COLUMNS, "stems_pcm_sha256")))
    return keys


def _key(text: str) -> str:
    return "it-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def loudness_contour(clip: np.ndarray, window: int = LOUDNESS_WINDOW) -> str:
    """A clip's loudness contour: the RMS level (dBFS, whole dB, floored at −100) of each `window`
    samples of `clip` ``(n_samples,)``, space-separated (a shorter last window counts too).

    Another decoder's last-bit rounding moves a level by about 1e-7 dB and so practically never
    changes a whole-dB figure (once in thousands of benchmarks); another clip, another video or an
    audible change moves several."""
    clip = np.asarray(clip, dtype=np.float64).reshape(-1)
    levels = []
    for start in range(0, max(clip.size, 1), window):
        part = clip[start:start + window]
        power = float(np.mean(part * part)) if part.size else 0.0
        level = 10 * np.log10(power) if power > 0 else LOUDNESS_FLOOR_DB
        levels.append(str(int(np.floor(max(level, LOUDNESS_FLOOR_DB) + 0.5))))
    return " ".join(levels)


def _content_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, hashed once per process while its `_file_identity` stays the same."""
    identity = _file_identity(path)
    if identity is None or identity not in _VERIFIED_HASHES:
        try:
            sha = sha256_file(path)
        except OSError as exc:
            raise MusicbenchError(f"cannot read {str(path)!r}: {exc.strerror}; {VALIDATE_HINT}") from None
        if identity is not None:
            _VERIFIED_HASHES[identity] = sha
        return sha
    return _VERIFIED_HASHES[identity]


# ------------------------------------------------------------------------------------ tables


def read_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read videos.parquet as a pandas DataFrame; raise MusicbenchError if unreadable or incomplete."""
    return read_parquet(path, INDEX_COLUMNS, "index", "run `musicbench process`")


def read_mixtures(path: str | os.PathLike, columns: tuple[str, ...] = MIXTURE_COLUMNS,
                  hint: str = "run `musicbench mixtures`") -> pd.DataFrame:
    """Read a mixture table (or, with DUET_COLUMNS, the duet table), checking its columns; `hint`:
    how to write it again (a protocol's: `musicbench protocol build NAME`)."""
    return read_parquet(path, columns, "mixture table", hint)


# ------------------------------------------------------------------------------------ frame archives


class FrameArchive:
    """Random access to the JPEG frames of a frame archive written by `musicbench process`.

    The archive's member table (name → byte offset and size) is read once, at construction; each
    `read` then seeks straight to its frames instead of parsing every tar header again.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with tarfile.open(self.path, "r:") as archive:
                self.members = {member.name: (member.offset_data, member.size)
                                for member in archive.getmembers() if member.isfile()}
        except (OSError, tarfile.TarError) as exc:
            raise MusicbenchError(f"cannot read frame archive {os.fspath(path)!r}: {exc}; rerun `musicbench process`") from None

    def __len__(self) -> int:
        return len(self.members)

    def read_jpeg(self, indices: Sequence[int]) -> list[bytes]:
        """The JPEG files of frames `indices` (0-based, at frames.fps), byte for byte as archived.

        Raises MusicbenchError if the archive is unreadable or an index is out of range.
        """
        files = []
        try:
            with open(self.path, "rb") as handle:
                for index in indices:
                    entry = self.members.get(f"{int(index):06d}.jpg") if int(index) >= 0 else None
                    if entry is None:
                        raise MusicbenchError(f"frame {index} not in {os.fspath(self.path)!r} (it holds "
                                              f"{len(self.members)} frames, 0..{len(self.members) - 1})")
                    handle.seek(entry[0])
                    files.append(handle.read(entry[1]))
        except OSError as exc:
            raise MusicbenchError(f"cannot read frame archive {os.fspath(self.path)!r}: {exc}; "
                                  "rerun `musicbench process`") from None
        return files

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Decode frames `indices` (0-based, at frames.fps) as uint8 RGB ``(len(indices), height, width, 3)``.

        Raises MusicbenchError if the archive is unreadable or an index is out of range.
        """
        images = [decode_jpeg(data, os.fspath(self.path)) for data in self.read_jpeg(indices)]
        if not images:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        return np.stack(images)


def decode_jpeg(data: bytes, where: str) -> np.ndarray:
    """One JPEG frame as the harness gives it to models: uint8 RGB ``(height, width, 3)``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise MusicbenchError(f"cannot decode a frame of {where!r}: {exc}; rerun `musicbench process`") from None


def read_clip_frames(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Decode frames `indices` (0-based, at frames.fps) of a frame archive (see `FrameArchive.read`)."""
    return FrameArchive(path).read(indices)


# ------------------------------------------------------------------------------------ items


@dataclass
class EvalItem:
    """One benchmark item as the harness builds it.

    track "mixtures": a fixed Mix-and-Separate item, one video per source; frames uint8
    ``(n_sources, n_frames, H, W, 3)``. track "duets": a clip of one duet video (two players in one
    picture); frames ``(1, n_frames, H, W, 3)`` and `points` holds each player's box centre
    ``(x, y)`` in frame pixels (the "click a player, hear its sound" query).
    mixture ``(n_samples,)`` float32 at sample_rate Hz; references ``(n_sources, n_samples)``
    (gain-scaled clips or clean stems, summing to the mixture); boxes: per source the player's box
    ``[x, y, w, h]`` (or boxes ``(k, 4)``, from an annotation file) in frame pixels at the clip's
    centre frame, or None where no ground truth exists. key: the item's key (`item_keys`; "" for
    URMP items): what it is and how it sounds, equal on every data root that holds this item.
    class_boxes: an item scored per class (a class-aware localization protocol, DSOL's duets): each
    annotated instrument's boxes ``(k, 4)`` in frame pixels (None for every other item).
    """

    item_id: str
    split: str
    video_ids: list[str]
    instruments: list[str]
    mixture: np.ndarray
    references: np.ndarray
    frames: np.ndarray
    sample_rate: int
    boxes: list[np.ndarray | None] = field(default_factory=list)
    track: str = "mixtures"
    points: list[tuple[float, float]] = field(default_factory=list)
    key: str = ""
    class_boxes: dict[str, np.ndarray] | None = None


def frame_box(box: list[float], video_size: tuple[int, int], frame_size: tuple[int, int]) -> np.ndarray:
    """Map a box ``[x, y, w, h]`` in video pixels to processed-frame pixels (scale, centre crop).

    video_size and frame_size are (width, height). The processing stage scales the shorter side to
    the frame size and centre-crops (musicbench.process); the box is clipped to the frame.
    """
    (vw, vh), (fw, fh) = video_size, frame_size
    scale = max(fw / vw, fh / vh)
    ox, oy = (vw * scale - fw) / 2, (vh * scale - fh) / 2
    x0, y0 = np.clip(box[0] * scale - ox, 0, fw), np.clip(box[1] * scale - oy, 0, fh)
    x1, y1 = np.clip((box[0] + box[2]) * scale - ox, 0, fw), np.clip((box[1] + box[3]) * scale - oy, 0, fh)
    return np.array([x0, y0, x1 - x0, y1 - y0])


def side_by_side_strips(width: int, n_players: int) -> list[tuple[int, int]]:
    """Pixel columns ``[x0, x1)`` of the N equal vertical strips of a side-by-side ensemble picture
    (URMP's layout: player k of N, counted from the left, in the k-th): ``x0 = floor(k * width / N)``."""
    edges = [k * width // n_players for k in range(n_players + 1)]
    return list(zip(edges[:-1], edges[1:]))


def side_by_side_points(width: int, height: int, n_players: int) -> list[tuple[float, float]]:
    """The query point ``(x, y)`` of each player of a side-by-side ensemble frame (`side_by_side_strips`):
    the centre of its strip, ``((x0 + x1) / 2, height / 2)`` in frame pixels."""
    return [((x0 + x1) / 2, height / 2) for x0, x1 in side_by_side_strips(width, n_players)]


def _video_time(video: pd.Series, frame: int) -> float:
    """Seconds from the start of the original video to processed frame `frame` (adds the trim start)."""
    start = video.get("start")
    return frame / float(video["fps"]) + (0.0 if start is None or pd.isna(start) else float(start))


def _item_annotation(text: str, video: pd.Series, item_id: str) -> tuple[np.ndarray, list[str] | None]:
    """Boxes ``(k, 4)`` in processed-frame pixels from an item table's `ANNOTATION_COLUMN` cell, and
    each box's class where it names them (else None)."""
    try:
        annotation = json.loads(text)
        size = (int(annotation["width"]), int(annotation["height"]))
        boxes = [[float(v) for v in box] for box in annotation["boxes"]]
        classes = annotation.get("classes")
        if not boxes or min(size) <= 0 or any(len(box) != 4 for box in boxes):
            raise ValueError("no box")
        if classes is not None and (len(classes) != len(boxes) or not all(isinstance(name, str) for name in classes)):
            raise ValueError("classes")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MusicbenchError(f"item {item_id}: its annotated frame is not readable; rebuild the protocol "
                              "(`musicbench protocol build NAME`)") from None
    frame_size = (int(video["frame_width"]), int(video["frame_height"]))
    return np.stack([frame_box(box, size, frame_size) for box in boxes]), classes


def _annotated_boxes(annotations: BoxAnnotations | None, video: pd.Series, frame: int) -> np.ndarray | None:
    """Boxes ``(k, 4)`` in processed-frame pixels from an annotation file, or None."""
    annotated = annotations.boxes_at(video["video_id"], _video_time(video, frame)) if annotations else None
    if annotated is None:
        return None
    frame_size = (int(video["frame_width"]), int(video["frame_height"]))
    return np.stack([frame_box(box, (annotated.width, annotated.height), frame_size) for box in annotated.boxes])
