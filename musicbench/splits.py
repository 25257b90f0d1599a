"""Train/val/test splits: deterministic, stratified by instrument, checked for leakage.

A split file is a CSV with columns ``video_id, kind, instruments, split`` (split in train, val,
test), rows sorted by (split, kind, instruments, video_id). One video normally has one row (a video
cut into clips, as Solos' are, one row per clip ``<youtube id>.NN``, all in the video's split); a
published split set that puts a video in two splits keeps both rows, and `find_leakage` reports it.

musicbench's own convention (the Sound of Pixels code shuffled without a seed and kept no test
split): within every stratum, a solo instrument or a duet pair, the videos are sorted by id,
shuffled by a generator seeded from ``splits.seed`` and the stratum's name, and cut by
``splits.fractions`` (default 0.7 / 0.1 / 0.2), rounding so that a stratum of 3 or more videos has at
least one video in val and in test. A stratum of 2 gives one train and one test video, a stratum
of 1 a test video. Adding videos to one stratum never moves videos of another.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.benchmark import DataRoot
from musicbench.concurrency import holds_data_root
from musicbench.config import check_fields, config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, read_text
from musicbench.manifest import ManifestEntry, validate_row_id, video_of

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_COLUMNS: tuple[str, ...] = ("video_id", "kind", "instruments", "split")


@dataclass(frozen=True, order=True)
class SplitRow:
    """One video's membership of a split; instruments space-separated as in the manifest."""

    split: str
    kind: str
    instruments: str
    video_id: str


def _fractions(value: Any) -> tuple[Any, ...]:
    """params.yaml's ``{train: f, val: f, test: f}`` as a (train, val, test) tuple."""
    if not isinstance(value, dict) or set(value) != set(SPLITS):
        raise MusicbenchError("params: splits.fractions must map train, val and test to fractions")
    return tuple(value[s] for s in SPLITS)


@dataclass(frozen=True)
class SplitsConfig:
    """params.yaml ``splits``: the seed, the train/val/test fractions (summing to 1) and an optional
    committed split file to use instead (a path relative to the repository; empty = none)."""

    seed: int = knob(1234, non_negative=True)
    fractions: tuple[float, float, float] = knob((0.7, 0.1, 0.2), parse=_fractions)
    file: str = knob("")

    def __post_init__(self) -> None:
        check_fields(self, "splits")
        if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-9:
            raise MusicbenchError(f"params: splits.fractions must be 3 numbers >= 0 summing to 1, got {list(self.fractions)}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "SplitsConfig":
        """Build from a loaded params.yaml (section ``splits``)."""
        return config_from_params(cls, params, "splits")


def split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """(train, val, test) counts for a stratum of `n` videos (see the module docstring)."""
    if n == 1:
        return 0, 0, 1
    if n == 2:
        return 1, 0, 1
    val = max(1, int(round(n * fractions[1]))) if fractions[1] > 0 else 0
    test = max(1, int(round(n * fractions[2]))) if fractions[2] > 0 else 0
    train = n - val - test
    if train < 1:
        raise MusicbenchError(f"splits.fractions leave no training video in a stratum of {n}")
    return train, val, test


def _stratum_rng(seed: int, stratum: str) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(stratum.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))


def assign_splits(entries: list[ManifestEntry], config: SplitsConfig) -> list[SplitRow]:
    """Split manifest entries per stratum (kind + instruments); returns rows in file order.

    The unit drawn is the video (`video_of`): the clips of one YouTube video (Solos' segments) all
    go to its split, one row each; a stratum's size counts videos.
    """
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    stratum_of: dict[str, tuple[str, str]] = {}
    for entry in entries:
        video = video_of(entry.video_id)
        if video not in stratum_of:
            stratum_of[video] = (entry.kind, " ".join(entry.instruments))
            strata[stratum_of[video]].append(video)
    split_of_video: dict[str, str] = {}
    for (kind, instruments), videos in sorted(strata.items()):
        videos = sorted(videos)
        order = _stratum_rng(config.seed, f"{kind}:{instruments}").permutation(len(videos))
        n_train, n_val, _ = split_sizes(len(videos), config.fractions)
        for position, index in enumerate(order):
            split_of_video[videos[index]] = "train" if position < n_train else "val" if position < n_train + n_val else "test"
    rows = {entry.video_id: SplitRow(split_of_video[video_of(entry.video_id)], *stratum_of[video_of(entry.video_id)], entry.video_id)
            for entry in entries}
    return sorted(rows.values(), key=_row_key)


def _row_key(row: SplitRow) -> tuple:
    return (SPLITS.index(row.split), row.kind, row.instruments, row.video_id)


def splits_to_csv(rows: list[SplitRow]) -> str:
    """CSV text of split rows, byte-identical for identical rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPLIT_COLUMNS)
    for row in sorted(rows, key=_row_key):
        writer.writerow([row.video_id, row.kind, row.instruments, row.split])
    return buffer.getvalue()


def write_splits(rows: list[SplitRow], path: str | os.PathLike) -> None:
    """Write a split file atomically."""
    atomic_write_text(path, splits_to_csv(rows))


def read_splits(path: str | os.PathLike) -> list[SplitRow]:
    """Read and validate a split file; raise MusicbenchError naming the file and line if bad."""
    path = Path(path)
    text = read_text(path, "split file")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != SPLIT_COLUMNS:
        raise MusicbenchError(f"split file {str(path)!r} must have the columns {', '.join(SPLIT_COLUMNS)}")
    rows = []
    for line, record in enumerate(reader, start=2):
        if record["split"] not in SPLITS or record["kind"] not in ("solo", "duet"):
            raise MusicbenchError(f"{path}:{line}: split must be train/val/test and kind solo/duet")
        try:
            validate_row_id(record["video_id"])  # any row id: YouTube, synth or a clip of a YouTube video
        except MusicbenchError as exc:
            raise MusicbenchError(f"{path}:{line}: {exc}") from None
        rows.append(SplitRow(record["split"], record["kind"], record["instruments"], record["video_id"]))
    return rows


def find_leakage(rows: list[SplitRow]) -> dict[str, tuple[str, ...]]:
    """Videos listed in more than one split: ``{video_id: (splits...)}`` (empty when clean). Clips
    count as their video (`video_of`): two segments of one YouTube video in two splits leak."""
    memberships: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        memberships[video_of(row.video_id)].add(row.split)
    return {vid: tuple(s for s in SPLITS if s in splits) for vid, splits in sorted(memberships.items()) if len(splits) > 1}


def split_of(rows: list[SplitRow]) -> dict[str, str]:
    """``{video_id: split}`` of a leak-free split set; raise MusicbenchError if any video leaks."""
    leaks = find_leakage(rows)
    if leaks:
        first = next(iter(leaks.items()))
        raise MusicbenchError(f"{len(leaks)} video(s) are in two splits (e.g. {first[0]} in {', '.join(first[1])}); fix the split file")
    return {row.video_id: row.split for row in rows}


def read_stage_split_rows(root: str | os.PathLike) -> list[SplitRow]:
    """The rows of the data root's split file (`DataRoot.splits_path`), refused if any video leaks."""
    path = DataRoot(root).splits_path
    if not path.is_file():
        raise MusicbenchError(f"no split file at {str(path)!r}; run `musicbench splits build` (or `dvc repro`) first")
    rows = read_splits(path)
    split_of(rows)  # refuses a leaking split set
    return rows


def read_stage_splits(root: str | os.PathLike) -> dict[str, str]:
    """``{video_id: split}`` of the data root's split file (`DataRoot.splits_path`), leak-checked."""
    return split_of(read_stage_split_rows(root))


def train_instruments(root: str | os.PathLike) -> set[str] | None:
    """The classes of the data root's train videos (None without a readable split file): what a
    method trained on this data root has heard."""
    path = DataRoot(root).splits_path
    if not path.is_file():
        return None
    try:
        rows = read_splits(path)
    except MusicbenchError:
        return None
    return {name for row in rows if row.split == "train" for name in row.instruments.split()}


MUSIC_MANIFESTS = ("manifests/music_solo.csv", "manifests/music_duet.csv")
SOLOS_MANIFEST = "manifests/solos.csv"  # its clips are split by video (`assign_splits`)


@holds_data_root("splits", "root")
def make_splits(params: dict[str, Any], root: str | os.PathLike, repo: str | os.PathLike = ".") -> Path:
    """The `splits` stage: write ``<root>/splits/splits.csv`` for ``dataset.source``.

    ``splits.file`` set: that committed split file (e.g. a published set) is used as is, after a
    leakage check. Otherwise splits are assigned from the dataset's manifests: MUSIC-Synth's
    generated manifest, the committed MUSIC manifests (`MUSIC_MANIFESTS`) or Solos' (`SOLOS_MANIFEST`).
    """
    from musicbench.manifest import read_manifest

    config = SplitsConfig.from_params(params)
    if config.file:
        rows = read_splits(Path(repo) / config.file)
    else:
        source = (params.get("dataset") or {}).get("source", "synth")
        if source == "synth":
            manifests = [DataRoot(root).manifest_path(source)]
        elif source == "music":
            manifests = [Path(repo) / m for m in MUSIC_MANIFESTS]
        elif source == "solos":
            manifests = [Path(repo) / SOLOS_MANIFEST]
        else:
            raise MusicbenchError(f"params: dataset.source must be 'synth', 'music' or 'solos', got {source!r}")
        entries = [e for m in manifests for e in read_manifest(m)]
        rows = assign_splits(entries, config)
    split_of(rows)  # refuses a leaking split set
    out = DataRoot(root).splits_path
    write_splits(rows, out)
    return out
