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
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, resolve_in_root
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


MAX_SECONDS = 86400.0  # start, end and duration: a video longer than a day is not a MUSIC video
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ManifestFieldError(MusicbenchError):
    """A bad manifest field: `column` names it ("" for the row as a whole), `problem` says what kind.

    problem: ``encoding`` (not UTF-8), ``fields`` (short or long row), ``nul`` (a NUL byte),
    ``number`` (not a number, or not finite), ``range`` (a number outside its bounds),
    ``duplicate`` (an id seen before) or ``value`` (any other invalid value).
    """

    def __init__(self, message: str, column: str = "", problem: str = "value") -> None:
        super().__init__(message)
        self.column, self.problem = column, problem


def _parse_float(text: str, column: str, where: str) -> float | None:
    """Seconds from a start, end or duration field: empty → None; else a number from 0 to MAX_SECONDS."""
    text = text.strip()
    if text == "":
        return None
    if not _NUMBER.fullmatch(text):
        kind = "finite number" if text.lower().lstrip("+-") in ("inf", "infinity", "nan") else "number"
        raise ManifestFieldError(f"{where}: column {column!r} must be a {kind} of seconds, got {text!r}", column, "number")
    value = float(text)
    if not 0 <= value <= MAX_SECONDS:
        raise ManifestFieldError(f"{where}: column {column!r} = {text} is out of range (0 to {MAX_SECONDS:g} seconds)",
                                 column, "range")
    return value


def validate_entry(entry: ManifestEntry, where: str = "manifest") -> ManifestEntry:
    """Check one entry's fields; raise ManifestFieldError (a MusicbenchError) naming `where` and the field if wrong."""
    if entry.source not in SOURCES:
        raise ManifestFieldError(f"{where}: column 'source' must be one of {SOURCES}, got {entry.source!r}", "source")
    try:
        if not (entry.source == "youtube" and YOUTUBE_CLIP_ID.fullmatch(entry.video_id)):
            validate_video_id(entry.video_id, entry.source)
    except MusicbenchError as exc:
        raise ManifestFieldError(f"{where}: column 'video_id': {exc}", "video_id") from None
    if entry.kind not in KINDS:
        raise ManifestFieldError(f"{where}: column 'kind' must be 'solo' or 'duet', got {entry.kind!r}", "kind")
    if entry.subset not in SUBSETS:
        raise ManifestFieldError(f"{where}: column 'subset' must be one of {SUBSETS}, got {entry.subset!r}", "subset")
    expected_sources = 1 if entry.kind == "solo" else 2
    if len(entry.instruments) != expected_sources:
        raise ManifestFieldError(
            f"{where}: column 'instruments': a {entry.kind} video lists {expected_sources} instrument(s), "
            f"got {' '.join(entry.instruments)!r}", "instruments",
        )
    for name in entry.instruments:
        if name not in CANONICAL_INSTRUMENTS:
            try:  # an alias (Solos' 'DoubleBass', URMP's 'db') is named with its canonical class
                hint = f"; write its canonical name {canonical_instrument(name)!r}"
            except MusicbenchError:
                hint = ""
            raise ManifestFieldError(f"{where}: column 'instruments': unknown instrument {name!r} (video {entry.video_id}){hint}",
                                     "instruments")
    if entry.start is not None and entry.end is not None and entry.end <= entry.start:
        raise ManifestFieldError(f"{where}: column 'end' ({entry.end}) must be after start ({entry.start})", "end", "range")
    for column in _PATH_COLUMNS:
        value = getattr(entry, column)
        if value and (os.path.isabs(value) or ".." in Path(value).parts or "\\" in value):
            raise ManifestFieldError(f"{where}: column {column!r} = {value!r} must be a relative path inside the data root", column)
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


@dataclass(frozen=True)
class BadRow:
    """A manifest row that `scan_manifests` set aside: where it is, its raw fields, what is wrong.

    `fields` maps each header column to the row's text (printable: NUL bytes and bytes that are
    not UTF-8 written as backslash escapes); `column` and `problem` as in ManifestFieldError;
    `message` is one line ``FILE:LINE: ...`` naming the field.
    """

    path: str
    line: int
    fields: dict[str, str]
    column: str
    problem: str
    message: str

    @property
    def video_id(self) -> str:
        """The row's video_id as written (printable), or ``<line N>`` where it has none."""
        return self.fields.get("video_id") or f"<line {self.line}>"


def _printable(text: str) -> str:
    """`text` on one line: NUL, control characters and undecodable bytes as backslash escapes."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in raw)


def _read_header(path: Path, reader) -> list[str]:
    """The header row of a manifest: known, unique column names holding the required ones."""
    header = next(reader, None)
    if header is None:
        raise MusicbenchError(f"manifest {str(path)!r} is empty; it needs the header {','.join(MANIFEST_COLUMNS)}")
    header = [name.strip() for name in header]
    unknown = [name for name in header if name not in MANIFEST_COLUMNS]
    if unknown:
        raise MusicbenchError(f"{path}:1: unknown column(s) {', '.join(map(repr, map(_printable, unknown)))}; "
                              f"a manifest has the columns {','.join(MANIFEST_COLUMNS)}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise MusicbenchError(f"{path}:1: column(s) {', '.join(repeated)} appear twice in the header")
    missing = [c for c in ("video_id", "kind", "instruments", "subset", "source") if c not in header]
    if missing:
        raise MusicbenchError(f"manifest {str(path)!r} lacks column(s) {', '.join(missing)}")
    return header


def _parse_row(header: list[str], values: list[str], where: str) -> ManifestEntry:
    """One data row → a validated entry, or ManifestFieldError naming `where` and the field."""
    if len(values) != len(header):
        raise ManifestFieldError(f"{where}: {len(values)} field(s) but the header has {len(header)}; "
                                 "quote fields that hold commas", problem="fields")
    row = dict(zip(header, values))
    for column, value in row.items():
        if "\0" in value:
            raise ManifestFieldError(f"{where}: column {column!r} holds a NUL byte ('{_printable(value)}')", column, "nul")
        if any("\udc80" <= c <= "\udcff" for c in value):
            raise ManifestFieldError(f"{where}: column {column!r} is not UTF-8 text ('{_printable(value)}'); "
                                     "save the manifest as UTF-8", column, "encoding")
    entry = ManifestEntry(
        video_id=row["video_id"], kind=row["kind"], instruments=tuple(row["instruments"].split()),
        subset=row["subset"], source=row["source"],
        start=_parse_float(row.get("start", ""), "start", where),
        end=_parse_float(row.get("end", ""), "end", where),
        duration=_parse_float(row.get("duration", ""), "duration", where),
        video_path=row.get("video_path", ""), stems_path=row.get("stems_path", ""), boxes_path=row.get("boxes_path", ""),
    )
    return validate_entry(entry, where)


def scan_manifest(path: str | os.PathLike) -> tuple[list[ManifestEntry], list[BadRow]]:
    """The good entries of a manifest CSV and its bad rows, in file order; never stops at a bad row.

    The file is UTF-8, with or without a byte-order mark (spreadsheet programs write one). A row
    with bytes of another encoding, more or fewer fields than the header, a NUL byte, a start, end
    or duration that is not a number of seconds from 0 to MAX_SECONDS, an invalid field (see
    `validate_entry`) or an id seen on an earlier row is a `BadRow`. Raises MusicbenchError only
    when the file as a whole is unusable (unreadable, empty, a bad header).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MusicbenchError(f"cannot read manifest {os.fspath(path)!r}: {exc.strerror}") from None
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _read_header(path, reader)
    except csv.Error as exc:
        raise MusicbenchError(f"{path}:1: the header is not valid CSV ({exc})") from None
    entries: list[ManifestEntry] = []
    bad: list[BadRow] = []
    seen: set[str] = set()
    while True:
        line_no = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # an unterminated quote: the rest of the file is one field
            bad.append(BadRow(str(path), line_no, {}, "", "fields", f"{path}:{line_no}: not valid CSV ({exc}); "
                              "check the quotes on this line"))
            break
        if not values:
            continue  # a blank line
        where = f"{path}:{line_no}"
        try:
            entry = _parse_row(header, values, where)
            if entry.video_id in seen:
                raise ManifestFieldError(f"{where}: column 'video_id': duplicate video id {entry.video_id!r}", "video_id", "duplicate")
        except ManifestFieldError as exc:
            fields = {name: _printable(value) for name, value in zip(header, values)}
            bad.append(BadRow(str(path), line_no, fields, exc.column, exc.problem, _printable(str(exc))))
            continue
        seen.add(entry.video_id)
        entries.append(entry)
    return entries, bad


def scan_manifests(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, repeats: bool = False,
) -> tuple[list[ManifestEntry], list[BadRow]]:
    """Good entries and bad rows of one or several manifests (each scanned by `scan_manifest`), in order.

    An id in two manifests is an error naming both, unless `repeats`: then every row is kept for
    the caller to merge (`musicbench download` reads the MUSIC-11 and MUSIC-21 manifests, which
    share videos). No manifest at all is an error.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise MusicbenchError("no manifest given; name at least one manifest CSV")
    seen: dict[str, Path] = {}
    entries: list[ManifestEntry] = []
    bad: list[BadRow] = []
    for path in map(Path, paths):
        good, rejected = scan_manifest(path)
        bad += rejected
        for entry in good:
            if entry.video_id in seen and not repeats:
                raise MusicbenchError(f"video {entry.video_id} is in both {str(seen[entry.video_id])!r} and "
                                      f"{str(path)!r}; list each id in one manifest only")
            seen.setdefault(entry.video_id, path)
            entries.append(entry)
    return entries, bad


def _refuse_bad_rows(bad: list[BadRow]) -> None:
    if bad:
        more = f" (and {len(bad) - 1} more bad row(s))" if len(bad) > 1 else ""
        raise MusicbenchError(bad[0].message + more)


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read and validate a manifest CSV (see `scan_manifest`); the first bad row is a MusicbenchError
    ``FILE:LINE: column 'x' ...``."""
    entries, bad = scan_manifest(path)
    _refuse_bad_rows(bad)
    return entries


def read_manifests(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, repeats: bool = False,
) -> list[ManifestEntry]:
    """Entries of one or several manifests (see `scan_manifests`); any bad row is a MusicbenchError."""
    entries, bad = scan_manifests(paths, repeats=repeats)
    _refuse_bad_rows(bad)
    return entries


def entry_path(root: str | os.PathLike, entry: ManifestEntry, column: str) -> Path:
    """Absolute path of an entry's `column` (video_path, stems_path, boxes_path), kept inside `root`;
    a MusicbenchError (one line) for an empty, escaping or symlink-looping path (`resolve_in_root`)."""
    value = getattr(entry, column)
    if not value:
        raise MusicbenchError(f"video {entry.video_id}: manifest has no {column}")
    return resolve_in_root(root, value)
