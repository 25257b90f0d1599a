"""Solos as a source, and the one instrument vocabulary: the committed manifest and split against the
published lists, the builder's errors, and the whole Solos path offline (real yt-dlp against a
loopback server serving MUSIC-Synth videos → cut clips → process → splits → mixtures)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from musicbench.acquire import acquire_music, read_availability
from musicbench.benchmark import DataRoot, read_index
from musicbench.cli import app
from musicbench.errors import MusicbenchError
from musicbench.instruments import (
    CANONICAL_INSTRUMENTS,
    MUSIC21_INSTRUMENTS,
    SOLOS_INSTRUMENTS,
    URMP_CODES,
    canonical_instrument,
)
from musicbench.manifest import ManifestEntry, read_manifest, validate_entry, video_of, write_manifest
from musicbench.media import probe
from musicbench.mixtures import make_mixtures
from musicbench.process import ProcessConfig, default_manifest, process_manifest
from musicbench.solos import acquire_solos, build_solos_manifest, load_solos_lists
from musicbench.splits import SplitRow, SplitsConfig, assign_splits, find_leakage, make_splits, read_splits, split_of
from tests.conftest import REPO_ROOT, shared_lists
from tests.test_acquire import FakeVideoHost

MANIFEST = REPO_ROOT / "manifests" / "solos.csv"
SPLIT_FILE = REPO_ROOT / "manifests" / "splits" / "musicbench_solos.csv"
# Videos per class in solos_ids.json (PROVENANCE.md); the 10 ids without segments have no clip.
IDS_PER_CLASS = {"bassoon": 56, "cello": 134, "clarinet": 49, "double_bass": 58, "flute": 47, "horn": 50, "oboe": 53,
                 "saxophone": 45, "trombone": 50, "trumpet": 50, "tuba": 41, "viola": 55, "violin": 66}
WITHOUT_SEGMENTS = {"trumpet": 9, "violin": 1}


@pytest.fixture(scope="module")
def lists_dir() -> Path:
    return shared_lists("MUSICBENCH_SOLOS_LISTS", "solos_juanfmontesinos", "solos_ids.json", "Solos lists")


# ------------------------------------------------------------------------------------ vocabulary


def test_every_source_label_maps_to_one_canonical_name():
    assert all(canonical_instrument(name) == name for name in CANONICAL_INSTRUMENTS)  # MUSIC's own names unchanged
    assert set(MUSIC21_INSTRUMENTS) | set(SOLOS_INSTRUMENTS) == set(CANONICAL_INSTRUMENTS)
    solos_labels = ["Bassoon", "Cello", "Clarinet", "DoubleBass", "Flute", "Horn", "Oboe", "Saxophone", "Trombone",
                    "Trumpet", "Tuba", "Viola", "Violin"]
    assert [canonical_instrument(label) for label in solos_labels] == list(SOLOS_INSTRUMENTS)
    assert {canonical_instrument(code) for code in URMP_CODES} == set(SOLOS_INSTRUMENTS)  # URMP's 13 codes, one class each
    for alias, name in [("contrabass", "double_bass"), ("double bass", "double_bass"), ("db", "double_bass"),
                        ("Acoustic Guitar", "acoustic_guitar"), ("acoustic-guitar", "acoustic_guitar"),
                        ("French horn", "horn"), ("sax", "saxophone"), ("TPT", "trumpet")]:
        assert canonical_instrument(alias) == name
    with pytest.raises(MusicbenchError, match=r"^lists.json: unknown instrument 'kazoo'; use a class of accordion") as info:
        canonical_instrument("kazoo", "lists.json")
    assert "\n" not in str(info.value)
    with pytest.raises(MusicbenchError, match="unknown instrument"):
        canonical_instrument(None)  # type: ignore[arg-type]
    # manifests hold canonical names only: an alias is refused, naming the class to write
    clip = ManifestEntry("AAAAAAAAAAA.01", "solo", ("DoubleBass",), "Solos", "youtube", video_path="music/solos/clips/x.mp4")
    with pytest.raises(MusicbenchError, match=r"unknown instrument 'DoubleBass' .*; write its canonical name 'double_bass'"):
        validate_entry(clip)


# ------------------------------------------------------------------------------------ the committed manifest


def test_committed_solos_manifest_counts():
    clips = read_manifest(MANIFEST)
    assert len(clips) == 1353
    videos = {video_of(c.video_id) for c in clips}
    assert len(videos) == 744 == sum(IDS_PER_CLASS.values()) - sum(WITHOUT_SEGMENTS.values())
    per_class = {name: len({video_of(c.video_id) for c in clips if c.instruments == (name,)}) for name in IDS_PER_CLASS}
    assert per_class == {name: n - WITHOUT_SEGMENTS.get(name, 0) for name, n in IDS_PER_CLASS.items()}
    assert {(c.kind, c.subset, c.source) for c in clips} == {("solo", "Solos", "youtube")}
    assert len({v for v in videos if v.startswith("-")}) == 13  # every id beginning with '-' survives the CSV
    for clip in clips:
        assert clip.video_path == f"music/solos/clips/{clip.video_id}.mp4"
        assert clip.start is not None and clip.end is not None and clip.end - clip.start >= 6.0  # every segment > 1 clip
    # the segments of one video keep their order and never overlap
    by_video = defaultdict(list)
    for clip in clips:
        by_video[video_of(clip.video_id)].append(clip)
    for segments in by_video.values():
        assert [int(c.video_id[-2:]) for c in segments] == list(range(1, len(segments) + 1))
        assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))


def test_solos_manifest_matches_the_lists_and_rebuilds_byte_identical(lists_dir, tmp_path):
    ids = json.loads((lists_dir / "solos_ids.json").read_text())
    stamps = json.loads((lists_dir / "solos_timestamps.json").read_text())
    expected = [(f"{vid}.{n:02d}", canonical_instrument(label), first / 25, (last + 1) / 25)
                for label, vids in ids.items() for vid in vids for n, (first, last) in enumerate(stamps[label].get(vid, []), 1)]
    got = [(c.video_id, c.instruments[0], c.start, c.end) for c in read_manifest(MANIFEST)]
    assert got == expected
    assert build_solos_manifest(lists_dir, tmp_path / "solos.csv").read_bytes() == MANIFEST.read_bytes()
    result = CliRunner().invoke(app, ["manifest", "build-solos", "--lists", str(lists_dir), "--out", str(tmp_path / "cli.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.csv").read_bytes() == MANIFEST.read_bytes()


def _write_lists(folder: Path, ids: dict, stamps: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "solos_ids.json").write_text(json.dumps(ids))
    (folder / "solos_timestamps.json").write_text(json.dumps(stamps))
    return folder


@pytest.mark.parametrize("ids, stamps, message", [
    ({"Kazoo": ["AAAAAAAAAAA"]}, {"Kazoo": {"AAAAAAAAAAA": [[0, 50]]}}, r"class 'Kazoo': unknown instrument 'Kazoo'"),
    ({"Flute": ["../../etc/pw"]}, {"Flute": {}}, r"class 'Flute': invalid youtube video id '../../etc/pw'"),
    ({"Flute": ["AAAAAAAAAAA"]}, {"Flute": {"AAAAAAAAAAA": [[50, 10]]}}, r"'Flute' AAAAAAAAAAA: segment \[50, 10\] must be"),
    ({"Flute": ["AAAAAAAAAAA"], "Oboe": ["AAAAAAAAAAA"]}, {}, r"class 'Oboe': video AAAAAAAAAAA is also listed under 'Flute'"),
    ({"Flute": []}, {"Flute": {"AAAAAAAAAAA": [[0, 50]]}}, r"id\(s\) of class 'Flute' \(e.g. AAAAAAAAAAA\) are not in solos_ids.json"),
])
def test_bad_solos_lists_give_one_line_errors_and_write_nothing(tmp_path, ids, stamps, message):
    lists = _write_lists(tmp_path / "lists", ids, stamps)
    with pytest.raises(MusicbenchError, match=message) as info:
        build_solos_manifest(lists, tmp_path / "solos.csv")
    assert "\n" not in str(info.value) and not (tmp_path / "solos.csv").exists()
    with pytest.raises(MusicbenchError, match="cannot read Solos list"):
        load_solos_lists(tmp_path / "absent")


def test_manifest_stats_counts_clips_and_videos():
    runner = CliRunner()
    result = runner.invoke(app, ["manifest", "stats", str(MANIFEST), str(REPO_ROOT / "manifests" / "music_solo.csv")])
    assert result.exit_code == 0, result.output
    assert "double_bass" in result.output and "1353 (744)" in result.output and "536" in result.output
    result = runner.invoke(app, ["manifest", "stats", "--json", str(MANIFEST)])
    assert result.exit_code == 0, result.output
    (solos,) = json.loads(result.output)
    assert (solos["subset"], solos["rows"], solos["videos"]) == ("Solos", 1353, 744)
    assert solos["rows_per_label"]["cello"] == 278 and solos["videos_per_label"]["cello"] == 134


# ------------------------------------------------------------------------------------ the committed split


def test_committed_solos_split_is_seeded_and_never_splits_a_video():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    rows = assign_splits(read_manifest(MANIFEST), SplitsConfig.from_params(params))
    assert read_splits(SPLIT_FILE) == rows and len(rows) == 1353
    assert not find_leakage(rows)
    splits_of_video = defaultdict(set)
    for row in rows:
        splits_of_video[video_of(row.video_id)].add(row.split)
    assert all(len(s) == 1 for s in splits_of_video.values())
    videos_per_split = Counter(next(iter(s)) for s in splits_of_video.values())
    assert videos_per_split["train"] > videos_per_split["test"] > videos_per_split["val"] > 0
    # every class is in every split
    assert {(r.split, r.instruments) for r in rows} == {(s, i) for s in ("train", "val", "test") for i in SOLOS_INSTRUMENTS}


def test_two_segments_of_one_video_in_two_splits_are_leakage(tmp_path):
    rows = [SplitRow("train", "solo", "oboe", "AAAAAAAAAAA.01"), SplitRow("test", "solo", "oboe", "AAAAAAAAAAA.02"),
            SplitRow("val", "solo", "oboe", "BBBBBBBBBBB.01")]
    assert find_leakage(rows) == {"AAAAAAAAAAA": ("train", "test")}
    with pytest.raises(MusicbenchError, match=r"1 video\(s\) are in two splits \(e.g. AAAAAAAAAAA in train, test\)"):
        split_of(rows)
    path = tmp_path / "leaky.csv"
    path.write_text("video_id,kind,instruments,split\n" + "".join(f"{r.video_id},solo,oboe,{r.split}\n" for r in rows))
    result = CliRunner().invoke(app, ["splits", "check", str(path)])
    assert result.exit_code == 1 and "AAAAAAAAAAA" in result.output


def test_a_clip_manifest_is_refused_by_musicbench_download(tmp_path):
    clip = ManifestEntry("AAAAAAAAAAA.01", "solo", ("oboe",), "Solos", "youtube", start=1.0, end=9.0,
                         video_path="music/solos/clips/AAAAAAAAAAA.01.mp4")
    manifest = tmp_path / "clips.csv"
    write_manifest([clip], manifest)
    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  source: music\n")
    result = CliRunner().invoke(app, ["download", str(manifest), "--params", str(params), "--root", str(tmp_path / "data"),
                                      "--url-template", "http://127.0.0.1:9/v/{id}.mp4", "--quiet"])
    assert result.exit_code == 2 and "is a clip of video AAAAAAAAAAA" in result.output
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------------------------ the Solos path, offline

# Fake YouTube ids (one beginning with '-') for MUSIC-Synth's solo videos (7 s each), as Solos would list
# them: (class label, synth video served, segments at 25 fps). GONE is listed but the server answers 404.
GONE = "GoneGoneGon"
SOLOS_LIKE = {
    "Flute": {"fluteAAAAAA": ("solo_flute_00", [[0, 74], [100, 162]]), "-fluteBBBBB": ("solo_flute_00", [[25, 149]]),
              "fluteCCCCCC": ("solo_flute_00", [[50, 174]])},
    "Violin": {"violinAAAAA": ("solo_violin_00", [[0, 99]]), "violinBBBBB": ("solo_violin_00", [[75, 174]]),
               "violinCCCCC": ("solo_violin_00", [[10, 84], [110, 174]])},
    "Tuba": {"tubaAAAAAAA": ("solo_tuba_00", [[0, 124], [150, 300]]), GONE: (None, [[0, 100]])},  # 6-12 s: past the end
}


def test_solos_pipeline_offline_from_download_to_mixtures(small_synth, tmp_path):
    synth_root, synth_entries = small_synth
    synth_videos = {e.video_id: (synth_root / e.video_path).read_bytes() for e in synth_entries}
    repo = tmp_path / "repo"
    lists = _write_lists(tmp_path / "lists", {label: list(videos) for label, videos in SOLOS_LIKE.items()},
                         {label: {vid: segs for vid, (_, segs) in videos.items()} for label, videos in SOLOS_LIKE.items()})
    build_solos_manifest(lists, repo / "manifests" / "solos.csv")
    clips = {c.video_id: c for c in read_manifest(repo / "manifests" / "solos.csv")}
    assert len(clips) == 11 and clips["fluteAAAAAA.02"].start == 4.0 and clips["fluteAAAAAA.02"].end == pytest.approx(6.52)

    host = FakeVideoHost()
    for videos in SOLOS_LIKE.values():
        for vid, (synth_id, _) in videos.items():
            if synth_id:
                host.files[vid] = synth_videos[synth_id]
    root = tmp_path / "data"
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["dataset"] = {"source": "solos", "root": str(root)}
    params["download"].update(url_template=host.url_template, sleep=0.0, sleep_requests=0.0, retries=1, backoff=0.01)
    params["audio"]["clip_samples"] = 16384  # 1.5 s: the clips last 2.5 to 5 s
    params["mixtures"].update(n_val=2, n_test=4)
    try:
        with contextlib.chdir(repo):  # the stage reads manifests/solos.csv of the working directory, as `dvc repro` does
            report = json.loads(acquire_music(params, root, show_progress=False).read_text())
        assert report["counts"] == {"downloaded": 9, "unavailable": 1, "failed": 1, "not tried": 0}
        assert report["per_instrument"]["tuba"] == {"downloaded": 1, "unavailable": 1, "failed": 1, "not tried": 0}
        # one download per video, however many segments: as many requests as a plain MUSIC download makes
        assert len({host.requests[vid] for vid in host.files}) == 1 and host.requests["fluteAAAAAA"] <= 2, host.requests
        clip_rows = read_availability(root / "music" / "solos" / "availability.parquet")
        assert clip_rows[f"{GONE}.01"].status == "unavailable" and "404" in clip_rows[f"{GONE}.01"].reason
        # a segment past the video's end is one failed clip (no file), and stops nothing else
        assert clip_rows["tubaAAAAAAA.02"].status == "failed" and "ends before the segment" in clip_rows["tubaAAAAAAA.02"].reason
        assert not (root / clips["tubaAAAAAAA.02"].video_path).exists()

        # every clip on disk is its segment: duration (end - start), cut from its own video
        for clip_id, row in clip_rows.items():
            if row.status == "downloaded":
                clip = clips[clip_id]
                assert probe(root / clip.video_path).duration == pytest.approx(clip.end - clip.start, abs=0.1)
                assert row.raw_path == f"music/raw/{video_of(clip_id)}.mp4"

        # a rerun fetches nothing and cuts nothing again
        requests = sum(host.requests.values())
        mtimes = {p: p.stat().st_mtime_ns for p in (root / "music" / "solos" / "clips").iterdir()}
        with contextlib.chdir(repo):
            acquire_music(params, root, show_progress=False)
        assert sum(host.requests.values()) == requests
        assert {p: p.stat().st_mtime_ns for p in (root / "music" / "solos" / "clips").iterdir()} == mtimes
    finally:
        host.close()

    # process → splits → mixtures: the same code as for MUSIC
    manifest = default_manifest(params, root)
    assert manifest == root / "music" / "solos" / "manifest.csv"
    summary = process_manifest(manifest, root, ProcessConfig.from_params(params))
    assert (summary.processed, summary.rejected) == (9, 0)
    index = read_index(DataRoot(root).index_path)
    assert sorted(index["video_id"]) == sorted(c for c in clips if not c.startswith(GONE) and c != "tubaAAAAAAA.02")
    for row in index.itertuples():
        clip = clips[row.video_id]
        assert row.n_samples / row.sample_rate == pytest.approx(clip.end - clip.start, abs=0.1)
        assert row.subset == "Solos" and row.source == "youtube"
    # ... and starts where its segment starts: the clip's audio lines up with its video's clean stem at `start`
    stems = {e.video_id: e for e in synth_entries}
    for clip_id in ("fluteAAAAAA.02", "violinBBBBB.01", "-fluteBBBBB.01"):
        synth_id = next(v[0] for videos in SOLOS_LIKE.values() for k, v in videos.items() if k == video_of(clip_id))
        stem, rate = sf.read(synth_root / stems[synth_id].stems_path, dtype="float64", always_2d=True)
        row = index.set_index("video_id").loc[clip_id]
        audio, audio_rate = sf.read(root / row["audio_path"], dtype="float64")
        assert rate == audio_rate
        # the clip's loudest second (a second of rest would match anywhere)
        offset = max(range(0, len(audio) - rate, rate // 4), key=lambda k: float(np.sum(audio[k:k + rate] ** 2)))
        window = audio[offset:offset + rate]
        reference = stem.sum(axis=1)
        energy = np.sqrt(np.convolve(reference**2, np.ones(len(window)), mode="valid")) + 1e-9
        scores = np.correlate(reference, window, mode="valid") / energy  # normalised: loud passages do not win
        assert (int(np.argmax(scores)) - offset) / rate == pytest.approx(clips[clip_id].start, abs=0.03)

    make_splits(params, root, repo=repo)
    rows = read_splits(DataRoot(root).splits_path)
    assert {r.video_id for r in rows} == set(clips) and not find_leakage(rows)
    split_of_video = defaultdict(set)
    for row in rows:
        split_of_video[video_of(row.video_id)].add(row.split)
    assert all(len(s) == 1 for s in split_of_video.values())  # segments of one video never cross splits

    definition = make_mixtures(params, root)
    mixtures = pd.read_parquet(DataRoot(root).mixtures_path)
    assert definition["benchmark_version"] and set(mixtures["split"]) == {"val", "test"}
    splits = {r.video_id: r.split for r in rows}
    for _, item in mixtures.groupby("item_id"):
        assert all(splits[v] == s for v, s in zip(item["video_id"], item["split"]))
        assert item["video_id"].map(video_of).nunique() == len(item)  # never two clips of one video
        assert item["instrument"].nunique() == len(item)
    # the clips of gone videos remove exactly the items that use them (drawn from the lists, not from what is held)
    held_clips = set(index["video_id"])
    cover = definition["coverage"]
    gone = [row for row in cover["not_held"] if row["track"] == "mixtures"]
    assert gone and all(row["reason"] == "video not held" and row["videos"] and not set(row["videos"].split()) & held_clips
                        for row in gone)
    assert set(mixtures["video_id"]) <= held_clips and not set(mixtures["item_id"]) & {row["item_id"] for row in gone}
    assert {split: counts["items"] for split, counts in cover["tracks"]["mixtures"].items()} == {
        "val": params["mixtures"]["n_val"], "test": params["mixtures"]["n_test"]}


def test_the_video_bootstrap_counts_the_clips_of_one_video_as_that_video():
    from musicbench.harness.scoring import ITEM_COLUMNS
    from musicbench.harness.summaries import summarize_track

    rng = np.random.default_rng(0)

    def items(ids_of_item) -> pd.DataFrame:
        rows = []
        for k, ids in enumerate(ids_of_item):
            for s, video_id in enumerate(ids):
                sdr = float(rng.normal(5, 3))
                rows.append({**dict.fromkeys(ITEM_COLUMNS), "item_id": f"test-{k:03d}", "track": "mixtures", "split": "test",
                             "source_index": s, "video_id": video_id, "instrument": ("oboe", "tuba")[s], "status": "ok",
                             "reason": "", "sdr": sdr, "sdr_mix": 0.0, "nsdr": sdr, "sir": sdr, "sar": sdr})
        return pd.DataFrame(rows)

    # 12 items over 4 videos, each video cut into 6 clips
    pairs = [(f"AAAAAAAAAA{a}.{k % 6 + 1:02d}", f"BBBBBBBBBB{b}.{k % 6 + 1:02d}") for k, (a, b) in enumerate([(0, 1)] * 6 + [(1, 0)] * 6)]
    clipped = items(pairs)
    whole = clipped.assign(video_id=clipped["video_id"].map(video_of))
    independent = clipped.assign(video_id=[f"X{i:010d}" for i in range(len(clipped))])
    ci = summarize_track(clipped)["metrics"]["nsdr"]["ci95"]
    assert ci == summarize_track(whole)["metrics"]["nsdr"]["ci95"]  # the same 4 videos
    assert ci != summarize_track(independent)["metrics"]["nsdr"]["ci95"]


def test_offline_the_clips_of_videos_already_on_disk_are_still_cut_and_listed(tmp_path):
    from tests.test_acquire import _closed_port, _make_mp4

    repo = tmp_path / "repo"
    lists = _write_lists(tmp_path / "lists", {"Oboe": ["oboeAAAAAAA", "oboeBBBBBBB"]},
                         {"Oboe": {"oboeAAAAAAA": [[0, 24]], "oboeBBBBBBB": [[0, 24], [25, 49]]}})
    build_solos_manifest(lists, repo / "manifests" / "solos.csv")
    host = FakeVideoHost()
    host.files["oboeAAAAAAA"] = host.files["oboeBBBBBBB"] = _make_mp4(tmp_path / "a.mp4", 440)
    root = tmp_path / "data"
    params = {"dataset": {"source": "solos", "root": str(root)},
              "download": {"url_template": host.url_template, "sleep": 0.0, "sleep_requests": 0.0, "limit": 1}}
    try:
        first = json.loads(acquire_solos(params, root, repo=repo, show_progress=False).read_text())
    finally:
        host.close()
    assert first["counts"] == {"downloaded": 1, "unavailable": 0, "failed": 0, "not tried": 2}
    (root / "music" / "solos" / "manifest.csv").unlink()
    params["download"].update(url_template=f"http://127.0.0.1:{_closed_port()}/v/{{id}}.mp4", limit=0)
    with pytest.raises(MusicbenchError, match="no network"):
        acquire_solos(params, root, repo=repo, show_progress=False)
    assert [c.video_id for c in read_manifest(root / "music" / "solos" / "manifest.csv")] == ["oboeAAAAAAA.01"]
