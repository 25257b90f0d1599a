"""Convert the official MUSIC video lists (JSON of YouTube ids) into canonical manifests.

The lists come from roudimit/MUSIC_dataset: ``MUSIC_solo_videos.json`` (v1.0, 11 classes),
``MUSIC_duet_videos.json`` (v1.0, keys such as ``"flute violin"``) and
``MUSIC21_solo_videos.json`` (v2.0, 21 classes). Each becomes one manifest CSV under
``manifests/``. Rows keep the lists' order (instrument key order, then id order), so a rerun
gives byte-identical files. Trimmed videos will live at ``music/videos/<id>.mp4`` under the
data root; raw downloads at ``music/raw/<id>.mp4`` (see `musicbench.acquire`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from musicbench.benchmark import music_raw_relpath, music_video_relpath
from musicbench.errors import MusicbenchError
from musicbench.instruments import canonical_instrument
from musicbench.manifest import ManifestEntry, read_manifest, validate_video_id, video_of, write_manifest


@dataclass(frozen=True)
class MusicList:
    """One official list: its JSON file, the manifest it becomes, its kind and subset."""

    json_name: str
    manifest_name: str
    kind: str
    subset: str


MUSIC_LISTS: tuple[MusicList, ...] = (
    MusicList("MUSIC_solo_videos.json", "music_solo.csv", "solo", "MUSIC-11"),
    MusicList("MUSIC_duet_videos.json", "music_duet.csv", "duet", "MUSIC-11"),
    MusicList("MUSIC21_solo_videos.json", "music21_solo.csv", "solo", "MUSIC-21"),
)


def video_relpath(video_id: str) -> str:
    """Path of a (trimmed) video relative to the data root."""
    return music_video_relpath(validate_video_id(video_id))


def raw_relpath(video_id: str) -> str:
    """Path of a raw (untrimmed, as downloaded) video relative to the data root."""
    return music_raw_relpath(validate_video_id(video_id))


def load_music_list(path: str | os.PathLike, kind: str, subset: str) -> list[ManifestEntry]:
    """Read one official JSON list into manifest entries (validated ids, list order kept)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MusicbenchError(
            f"cannot read MUSIC list {str(path)!r}: {exc.strerror}; pass the folder of the official "
            "lists (roudimit/MUSIC_dataset) with --lists"
        ) from None
    except json.JSONDecodeError as exc:
        raise MusicbenchError(f"MUSIC list {str(path)!r} is not valid JSON: {exc}") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise MusicbenchError(f"MUSIC list {str(path)!r} lacks the mapping 'videos' of instrument -> ids")
    entries: list[ManifestEntry] = []
    for key, ids in videos.items():
        if not isinstance(ids, list):
            raise MusicbenchError(f"MUSIC list {str(path)!r}: entry {key!r} must be a list of video ids")
        instruments = tuple(canonical_instrument(name, f"MUSIC list {str(path)!r}, {key!r}") for name in str(key).split())
        for video_id in ids:
            try:
                validate_video_id(video_id)
            except MusicbenchError as exc:
                raise MusicbenchError(f"MUSIC list {str(path)!r}, {key!r}: {exc}") from None
            entries.append(
                ManifestEntry(
                    video_id=video_id, kind=kind, instruments=instruments, subset=subset,
                    source="youtube", video_path=video_relpath(video_id),
                )
            )
    return entries


def build_music_manifests(lists_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write one manifest CSV per official list of `lists_dir` into `out_dir`; return their paths.

    Entries are validated (ids, instrument names, solo/duet arity) by `write_manifest`; files are
    written atomically and are byte-identical when rebuilt from the same lists.
    """
    lists_dir = Path(lists_dir)
    if not lists_dir.is_dir():
        raise MusicbenchError(
            f"MUSIC lists folder {str(lists_dir)!r} not found; pass the folder holding "
            "MUSIC_solo_videos.json etc. (roudimit/MUSIC_dataset) with --lists"
        )
    written: list[Path] = []
    for music_list in MUSIC_LISTS:
        entries = load_music_list(lists_dir / music_list.json_name, music_list.kind, music_list.subset)
        out_path = Path(out_dir) / music_list.manifest_name
        write_manifest(entries, out_path)
        written.append(out_path)
    return written


@dataclass(frozen=True)
class ManifestCounts:
    """Rows of one manifest counted per instrument label (a duet's pair, e.g. 'flute+violin'), and
    the distinct videos they come from (more rows than videos when rows are clips, as Solos')."""

    path: Path
    subset: str
    kind: str
    per_label: dict[str, int]
    videos_per_label: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.per_label.values())

    @property
    def total_videos(self) -> int:
        return sum(self.videos_per_label.values())

    def to_json(self) -> dict:
        """A plain mapping for `musicbench manifest stats --json`."""
        return {"manifest": self.path.as_posix(), "subset": self.subset, "kind": self.kind, "rows": self.total,
                "videos": self.total_videos, "rows_per_label": self.per_label, "videos_per_label": self.videos_per_label}


def manifest_counts(paths: list[str | os.PathLike]) -> list[ManifestCounts]:
    """Count the rows and videos of each manifest per (subset, kind, instrument label)."""
    results: list[ManifestCounts] = []
    for path in paths:
        groups: dict[tuple[str, str], dict[str, set[str]]] = {}
        rows: dict[tuple[str, str], Counter] = {}
        for entry in read_manifest(path):
            label = "+".join(entry.instruments)
            rows.setdefault((entry.subset, entry.kind), Counter())[label] += 1
            groups.setdefault((entry.subset, entry.kind), {}).setdefault(label, set()).add(video_of(entry.video_id))
        for key, counter in rows.items():
            videos = {label: len(ids) for label, ids in groups[key].items()}
            results.append(ManifestCounts(Path(path), *key, dict(sorted(counter.items())), dict(sorted(videos.items()))))
    return results


def manifest_stats_table(paths: list[str | os.PathLike]):
    """A rich Table of row counts per instrument label, one column per (manifest, subset, kind);
    where rows are clips, their videos follow in brackets."""
    from rich.table import Table

    groups = manifest_counts(paths)
    labels = sorted({label for group in groups for label in group.per_label})
    table = Table(title="Manifest rows per instrument (clips: videos in brackets)")
    table.add_column("instrument")
    for group in groups:
        table.add_column(f"{group.path.name}\n{group.subset} {group.kind}", justify="right")

    def cell(rows: int | None, videos: int | None) -> str:
        if rows is None:
            return ""
        return str(rows) if rows == videos else f"{rows} ({videos})"

    for label in labels:
        table.add_row(label, *(cell(group.per_label.get(label), group.videos_per_label.get(label)) for group in groups))
    table.add_row("total", *(cell(group.total, group.total_videos) for group in groups), style="bold")
    return table
