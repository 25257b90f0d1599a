"""The canonical manifest: one row per video, shared by MUSIC-Synth and real MUSIC.

A manifest is a CSV file (committed under `manifests/` for real MUSIC, generated for MUSIC-Synth)
with the columns of `MANIFEST_COLUMNS`:

- ``video_id``: YouTube id (11 characters of ``[A-Za-z0-9_-]``, may begin with ``-``) for real
  MUSIC; ``[A-Za-z0-9_-]{1,64}`` for MUSIC-Synth; for a clip cut from a longer YouTube video
  (Solos' segments), the clip id ``<youtube id>.<NN>`` (NN = the segment's 1-based number, two
  digits), whose video is `video_of`. Never a path, never a command-line option.
- ``kind``: ``solo`` or ``duet``.
- ``instruments``: space-separated canonical class names (`musicbench.instruments`), one per
  source, in source order (duets keep the MUSIC list's key order, e.g. ``flute violin``).
- ``subset``: ``MUSIC-11``, ``MUSIC-21``, ``MUSIC-Synth`` or ``Solos``.
- ``source``: ``youtube`` or ``synth``.
- ``start``, ``end``: optional trim in seconds (empty = whole video).
- ``duration``: seconds, empty when unknown (real videos before download).
- ``video_path``, ``stems_path``, ``boxes_path``: paths relative to the data root, empty when
  not applicable. ``stems_path`` is a FLAC with one channel per source (the clean audio of every
  player); ``boxes_path`` a JSON file of per-frame player boxes (see `musicbench.synth`).

Rows are untrusted input: `read_manifest` validates every field and every path.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, read_text, resolve_in_root
from musicbench.instruments import CANONICAL_INSTRUMENTS, canonical_instrument

KINDS = ("solo", "duet")
SUBSETS = ("MUSIC-11", "MUSIC-21", "MUSIC-Synth", "Solos")
SOURCES = ("youtube", "synth")
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
SYNTH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
YOUTUBE_CLIP_ID = re.compile(r"(?P<video>[A-Za-z0-9_-]{11})\.(?P<clip>[0-9]{2})")


@dataclass(frozen=True)
class ManifestEntry:
    """One video of a manifest; see the module docstring for each field."""

    video_id: str
    kind: str
    instruments: tuple[str, ...]
    subset: str
    source: str
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    video_path: str = ""
    stems_path: str = ""
    boxes_path: str = ""

    @property
    def n_sources(self) -> int:
        """Number of sounding players (1 for solo, 2 for duet)."""
        return len(self.instruments)


MANIFEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ManifestEntry))
_PATH_COLUMNS = ("video_path", "stems_path", "boxes_path")


def validate_video_id(video_id: str, source: str = "youtube") -> str:
    """Return `video_id` if it is a well-formed id for `source`, else raise MusicbenchError.

    YouTube ids are exactly 11 characters of ``[A-Za-z0-9_-]``; synth ids 1 to 64 of them.
    Neither may contain a path separator, whitespace or anything a shell would interpret.
    """
    pattern = YOUTUBE_ID if source == "youtube" else SYNTH_ID
    if not isinstance(video_id, str) or not pattern.fullmatch(video_id):
        expected = "11 characters of [A-Za-z0-9_-]" if source == "youtube" else "1-64 characters of [A-Za-z0-9_-]"
        raise MusicbenchError(f"invalid {source} video id {video_id!r}: expected {expected}")
    return video_id


def video_of(row_id: str) -> str:
    """The video a manifest row comes from: the YouTube id of a clip id ``<id>.NN``, else the id itself."""
    match = YOUTUBE_CLIP_ID.fullmatch(row_id)
    return match["video"] if match else row_id


def validate_row_id(row_id: str) -> str:
    """Return `row_id` if it is any safe row id (YouTube, MUSIC-Synth or a YouTube clip id), else raise."""
    if isinstance(row_id, str) and YOUTUBE_CLIP_ID.fullmatch(row_id):
        return row_id
    return validate_video_id(row_id, "synth")


def _parse_float(text: str, column: str, where: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise MusicbenchError(f"{where}: column {column!r} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise MusicbenchError(f"{where}: column {column!r} must be a finite number >= 0, got {text!r}")
    return value


def validate_entry(entry: ManifestEntry, where: str = "manifest") -> ManifestEntry:
    """Check one entry's fields; raise MusicbenchError naming `where` and the field if wrong."""
    if entry.source not in SOURCES:
        raise MusicbenchError(f"{where}: source must be one of {SOURCES}, got {entry.source!r}")
    try:
        if not (entry.source == "youtube" and YOUTUBE_CLIP_ID.fullmatch(entry.video_id)):
            validate_video_id(entry.video_id, entry.source)
    except MusicbenchError as exc:
        raise MusicbenchError(f"{where}: {exc}") from None
    if entry.kind not in KINDS:
        raise MusicbenchError(f"{where}: kind must be 'solo' or 'duet', got {entry.kind!r}")
    if entry.subset not in SUBSETS:
        raise MusicbenchError(f"{where}: subset must be one of {SUBSETS}, got {entry.subset!r}")
    expected_sources = 1 if entry.kind == "solo" else 2
    if len(entry.instruments) != expected_sources:
        raise MusicbenchError(
            f"{where}: a {entry.kind} video lists {expected_sources} instrument(s), got {' '.join(entry.instruments)!r}"
        )
    for name in entry.instruments:
        if name not in CANONICAL_INSTRUMENTS:
            try:  # an alias (Solos' 'DoubleBass', URMP's 'db') is named with its canonical class
                hint = f"; write its canonical name {canonical_instrument(name)!r}"
            except MusicbenchError:
                hint = ""
            raise MusicbenchError(f"{where}: unknown instrument {name!r} (video {entry.video_id}){hint}")
    if entry.start is not None and entry.end is not None and entry.end <= entry.start:
        raise MusicbenchError(f"{where}: end ({entry.end}) must be after start ({entry.start})")
    for column in _PATH_COLUMNS:
        value = getattr(entry, column)
        if value and (os.path.isabs(value) or ".." in Path(value).parts or "\\" in value):
            raise MusicbenchError(f"{where}: {column} {value!r} must be a relative path inside the data root")
    return entry


def _format_float(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def manifest_to_csv(entries: list[ManifestEntry]) -> str:
    """Serialise entries to CSV text, byte-identical for identical entries."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for entry in entries:
        row = asdict(entry)
        row["instruments"] = " ".join(entry.instruments)
        for column in ("start", "end", "duration"):
            row[column] = _format_float(row[column])
        writer.writerow([row[c] for c in MANIFEST_COLUMNS])
    return buffer.getvalue()


def write_manifest(entries: list[ManifestEntry], path: str | os.PathLike) -> None:
    """Validate and write entries as CSV to `path` atomically; ids must be unique."""
    seen: set[str] = set()
    for entry in entries:
        validate_entry(entry, where=str(path))
        if entry.video_id in seen:
            raise MusicbenchError(f"{path}: duplicate video id {entry.video_id!r}")
        seen.add(entry.video_id)
    atomic_write_text(path, manifest_to_csv(entries))


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read and validate a manifest CSV; raise MusicbenchError naming the file and line if bad."""
    path = Path(path)
    text = read_text(path, "manifest")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("video_id", "kind", "instruments", "subset", "source") if c not in (reader.fieldnames or [])]
    if missing:
        raise MusicbenchError(f"manifest {str(path)!r} lacks column(s) {', '.join(missing)}")
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for line_no, row in enumerate(reader, start=2):
        where = f"{path}:{line_no}"
        entry = ManifestEntry(
            video_id=row["video_id"],
            kind=row["kind"],
            instruments=tuple(row["instruments"].split()),
            subset=row["subset"],
            source=row["source"],
            start=_parse_float(row.get("start") or "", "start", where),
            end=_parse_float(row.get("end") or "", "end", where),
            duration=_parse_float(row.get("duration") or "", "duration", where),
            video_path=row.get("video_path") or "",
            stems_path=row.get("stems_path") or "",
            boxes_path=row.get("boxes_path") or "",
        )
        validate_entry(entry, where)
        if entry.video_id in seen:
            raise MusicbenchError(f"{where}: duplicate video id {entry.video_id!r}")
        seen.add(entry.video_id)
        entries.append(entry)
    return entries


def read_manifests(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, repeats: bool = False,
) -> list[ManifestEntry]:
    """Entries of one or several manifests (each read by `read_manifest`), in the order given.

    An id in two manifests is an error naming both, unless `repeats`: then every row is kept for
    the caller to merge (`musicbench download` reads the MUSIC-11 and MUSIC-21 manifests, which
    share videos). No manifest at all is an error.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise MusicbenchError("no manifest given; name at least one manifest CSV")
    seen: dict[str, Path] = {}
    entries: list[ManifestEntry] = []
    for path in map(Path, paths):
        for entry in read_manifest(path):
            if entry.video_id in seen and not repeats:
                raise MusicbenchError(f"video {entry.video_id} is in both {str(seen[entry.video_id])!r} and "
                                      f"{str(path)!r}; list each id in one manifest only")
            seen.setdefault(entry.video_id, path)
            entries.append(entry)
    return entries


def entry_path(root: str | os.PathLike, entry: ManifestEntry, column: str) -> Path:
    """Absolute path of an entry's `column` (video_path, stems_path, boxes_path), kept inside `root`."""
    value = getattr(entry, column)
    if not value:
        raise MusicbenchError(f"video {entry.video_id}: manifest has no {column}")
    return resolve_in_root(root, value)
