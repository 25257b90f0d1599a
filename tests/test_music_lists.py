"""The committed MUSIC manifests against the official lists (counts, order, byte-identical rebuild)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicbench.cli import app
from musicbench.errors import MusicbenchError
from musicbench.manifest import read_manifest
from musicbench.music_lists import MUSIC_LISTS, build_music_manifests, load_music_list, manifest_counts
from tests.conftest import shared_lists

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"

# Per-instrument counts of the official lists (roudimit/MUSIC_dataset @ 6f47a09).
MUSIC11_SOLO = {
    "accordion": 60, "acoustic_guitar": 56, "cello": 57, "clarinet": 41, "erhu": 53, "flute": 48,
    "saxophone": 25, "trumpet": 43, "tuba": 51, "violin": 53, "xylophone": 49,
}
MUSIC11_DUET = {
    "acoustic_guitar violin": 43, "saxophone acoustic_guitar": 30, "clarinet acoustic_guitar": 28,
    "cello acoustic_guitar": 15, "flute violin": 11, "flute trumpet": 7, "xylophone acoustic_guitar": 7,
    "xylophone flute": 5, "trumpet tuba": 3,
}
MUSIC21_SOLO = {
    "accordion": 60, "acoustic_guitar": 89, "bagpipe": 51, "banjo": 52, "bassoon": 50, "cello": 57,
    "clarinet": 41, "congas": 53, "drum": 55, "electric_bass": 59, "erhu": 53, "flute": 48, "guzheng": 60,
    "piano": 68, "pipa": 60, "saxophone": 25, "trumpet": 43, "tuba": 52, "ukulele": 60, "violin": 78,
    "xylophone": 50,
}


@pytest.fixture(scope="module")
def lists_dir() -> Path:
    return shared_lists("MUSICBENCH_MUSIC_LISTS", "", "MUSIC_solo_videos.json", "official MUSIC lists")


@pytest.mark.parametrize(
    "name, kind, subset, expected",
    [
        ("music_solo.csv", "solo", "MUSIC-11", MUSIC11_SOLO),
        ("music_duet.csv", "duet", "MUSIC-11", MUSIC11_DUET),
        ("music21_solo.csv", "solo", "MUSIC-21", MUSIC21_SOLO),
    ],
)
def test_committed_manifest_counts(name, kind, subset, expected):
    entries = read_manifest(MANIFESTS / name)
    assert len(entries) == sum(expected.values())
    assert Counter(" ".join(e.instruments) for e in entries) == Counter(expected)
    assert {e.kind for e in entries} == {kind} and {e.subset for e in entries} == {subset}
    assert {e.source for e in entries} == {"youtube"}
    for entry in entries:
        assert entry.video_path == f"music/videos/{entry.video_id}.mp4"
        assert entry.start is None and entry.end is None and entry.duration is None


def test_totals_and_overlap():
    solo = {e.video_id for e in read_manifest(MANIFESTS / "music_solo.csv")}
    duet = {e.video_id for e in read_manifest(MANIFESTS / "music_duet.csv")}
    solo21 = {e.video_id for e in read_manifest(MANIFESTS / "music21_solo.csv")}
    assert (len(solo), len(duet), len(solo21)) == (536, 149, 1164)
    assert len(solo | duet) == 685 and not solo & duet
    assert solo <= solo21  # MUSIC-21 repeats every MUSIC-11 solo video
    dash = [i for i in solo | duet | solo21 if i.startswith("-")]
    assert len(dash) == 44  # 63 rows, 44 distinct ids: ids beginning with '-' survive the CSV round trip


def test_manifests_match_lists_in_order(lists_dir):
    for music_list in MUSIC_LISTS:
        videos = json.loads((lists_dir / music_list.json_name).read_text())["videos"]
        expected = [(vid, tuple(key.split())) for key, ids in videos.items() for vid in ids]
        got = [(e.video_id, e.instruments) for e in read_manifest(MANIFESTS / music_list.manifest_name)]
        assert got == expected


def test_rebuild_is_byte_identical(lists_dir, tmp_path):
    first = build_music_manifests(lists_dir, tmp_path / "a")
    second = build_music_manifests(lists_dir, tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() == (MANIFESTS / a.name).read_bytes()  # the committed files are current


def test_cli_build_and_stats(lists_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["manifest", "build", "--lists", str(lists_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music21_solo.csv", "music_duet.csv", "music_solo.csv"]
    result = runner.invoke(app, ["manifest", "stats", str(tmp_path / "music_solo.csv"), str(tmp_path / "music_duet.csv")])
    assert result.exit_code == 0, result.output
    assert "536" in result.output and "149" in result.output and "accordion" in result.output


def test_manifest_counts():
    (solo,) = manifest_counts([MANIFESTS / "music_solo.csv"])
    assert solo.total == 536 and solo.per_label["accordion"] == 60
    (duet,) = manifest_counts([MANIFESTS / "music_duet.csv"])
    assert duet.per_label["acoustic_guitar+violin"] == 43


def test_bad_lists_give_clear_errors(tmp_path):
    with pytest.raises(MusicbenchError, match="not found"):
        build_music_manifests(tmp_path / "missing", tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"videos": {"flute": ["../../etc/pw"]}}))
    with pytest.raises(MusicbenchError, match="invalid youtube video id"):
        load_music_list(bad, "solo", "MUSIC-11")
    bad.write_text(json.dumps({"videos": {"kazoo": ["AAAAAAAAAAA"]}}))
    (tmp_path / "lists").mkdir()
    for music_list in MUSIC_LISTS:
        (tmp_path / "lists" / music_list.json_name).write_text(bad.read_text())
    with pytest.raises(MusicbenchError, match="unknown instrument 'kazoo'"):
        build_music_manifests(tmp_path / "lists", tmp_path / "out")
    assert not (tmp_path / "out" / "music_solo.csv").exists()
