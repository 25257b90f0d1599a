"""The one manifest reader: encodings, hostile rows, one-line errors naming file, line and field."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicbench.cli import app
from musicbench.errors import MusicbenchError
from musicbench.fsutil import SymlinkLoopError
from musicbench.manifest import MANIFEST_COLUMNS, ManifestEntry, entry_path, manifest_to_csv, read_manifest, scan_manifest

HEADER = ",".join(MANIFEST_COLUMNS) + "\n"
GOOD = [
    ManifestEntry("AAAAAAAAAAA", "solo", ("flute",), "MUSIC-11", "youtube", video_path="music/videos/AAAAAAAAAAA.mp4"),
    ManifestEntry("-BBBBBBBBBB", "duet", ("flute", "violin"), "MUSIC-11", "youtube", start=1.5, end=20.0,
                  video_path="music/videos/-BBBBBBBBBB.mp4"),
]


def _row(video_id: str, start: str = "", video_path: str | None = None, instruments: str = "flute", extra: str = "") -> str:
    path = f"music/videos/{video_id}.mp4" if video_path is None else video_path
    return f"{video_id},solo,{instruments},MUSIC-11,youtube,{start},,,{path},,{extra}\n"


# (row text, column named in the message, words the message must hold)
HOSTILE = {
    "short": ("CCCCCCCCCCC,solo,flute,MUSIC-11,youtube,,,\n", "", "8 field(s) but the header has 11"),
    "long": (_row("CCCCCCCCCCC", extra=",surplus"), "", "12 field(s) but the header has 11"),
    "nul": (_row("CCCCCCCCCCC", video_path="music/videos/C\0.mp4"), "video_path", "NUL byte"),
    "latin1": (None, "instruments", "not UTF-8"),
    "huge_start": (_row("CCCCCCCCCCC", start="1e308"), "start", "out of range"),
    "negative": (_row("CCCCCCCCCCC", start="-3"), "start", "out of range"),
    "nan": (_row("CCCCCCCCCCC", start="nan"), "start", "finite number"),
    "inf": (_row("CCCCCCCCCCC", start="inf"), "start", "finite number"),
    "words": (_row("CCCCCCCCCCC", start="ten"), "start", "must be a number"),
    "unicode_digits": (_row("CCCCCCCCCCC", start="\u0663"), "start", "must be a number"),
    "bad_id": (_row("C C"), "video_id", "invalid youtube video id"),
    "duplicate": (_row("AAAAAAAAAAA"), "video_id", "duplicate video id"),
}


def _write(path: Path, hostile: str) -> Path:
    """A manifest: the good rows, the hostile row on line 3, a good row after it."""
    good = manifest_to_csv(GOOD).splitlines(keepends=True)
    row, _, _ = HOSTILE[hostile]
    data = "".join(good[:2]).encode()
    data += "CCCCCCCCCCC,solo,fl\u00fbte,MUSIC-11,youtube,,,,x.mp4,,\n".encode("latin-1") if row is None else row.encode()
    data += good[2].encode()
    path.write_bytes(data)
    return path


def test_utf8_with_and_without_bom_read_alike(tmp_path):
    text = manifest_to_csv(GOOD)
    (tmp_path / "plain.csv").write_text(text, encoding="utf-8")
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_manifest(tmp_path / "plain.csv") == read_manifest(tmp_path / "bom.csv") == GOOD


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_hostile_row_is_one_line_naming_file_line_and_field(tmp_path, hostile):
    path = _write(tmp_path / "m.csv", hostile)
    _, column, words = HOSTILE[hostile]
    with pytest.raises(MusicbenchError) as raised:
        read_manifest(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:3: ") and words in message and "\n" not in message and "\0" not in message
    if column:
        assert f"column {column!r}" in message
    entries, bad = scan_manifest(path)  # the lenient scan keeps the good rows around it
    assert [e.video_id for e in entries] == [e.video_id for e in GOOD]
    assert [(b.line, b.column) for b in bad] == [(3, column)]


def test_start_out_of_range_is_not_called_unreadable(tmp_path):
    _, bad = scan_manifest(_write(tmp_path / "m.csv", "huge_start"))
    assert (bad[0].column, bad[0].problem) == ("start", "range")


def test_bad_header_is_one_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(HEADER.replace("duration", "durration") + _row("AAAAAAAAAAA"))
    with pytest.raises(MusicbenchError, match=r"m.csv:1: unknown column\(s\) 'durration'"):
        read_manifest(path)
    path.write_text("")
    with pytest.raises(MusicbenchError, match="is empty"):
        read_manifest(path)


def test_cli_reports_a_latin1_manifest_in_one_line(tmp_path):
    path = _write(tmp_path / "latin.csv", "latin1")
    result = CliRunner().invoke(app, ["manifest", "stats", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{path}:3" in lines[0] and "instruments" in lines[0]
    assert "Traceback" not in result.output


def test_a_symlink_loop_in_a_manifests_data_is_one_line_and_the_other_rows_resolve(tmp_path):
    """Path.resolve raised RuntimeError("Symlink loop from ...") (Python 3.11), not a MusicbenchError."""
    videos = tmp_path / "music" / "videos"
    videos.mkdir(parents=True)
    (videos / "AAAAAAAAAAA.mp4").write_bytes(b"video")
    os.symlink("-BBBBBBBBBB.mp4", videos / "-BBBBBBBBBB.mp4")  # a link to itself
    (tmp_path / "manifest.csv").write_text(manifest_to_csv(GOOD))
    entries = read_manifest(tmp_path / "manifest.csv")
    assert entry_path(tmp_path, entries[0], "video_path") == (videos / "AAAAAAAAAAA.mp4").resolve()
    with pytest.raises(SymlinkLoopError) as caught:
        entry_path(tmp_path, entries[1], "video_path")
    assert str(caught.value) == (f"path 'music/videos/-BBBBBBBBBB.mp4' under {str(tmp_path)!r} is a symlink loop (its "
                                 "links lead back to each other); replace the link with the real file")
    assert isinstance(caught.value, MusicbenchError)
    os.symlink("loop", tmp_path / "music" / "loop")  # a loop on the way to the file
    with pytest.raises(SymlinkLoopError, match="^path 'music/loop/x.mp4' under .* is a symlink loop"):
        entry_path(tmp_path, replace(GOOD[0], video_path="music/loop/x.mp4"), "video_path")
