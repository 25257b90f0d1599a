"""One benchmark identity across data roots that hold different videos: coverage, published
definitions, and runs of partial data roots on one board (issue 30's attrition test)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from musicbench.benchmark import DUET_COLUMNS, DataRoot, item_keys, read_mixtures
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.leaderboard import build_leaderboard
from musicbench.media import ffmpeg_exe
from musicbench.mixtures import make_mixtures
from musicbench.process import ProcessConfig, process_manifest
from musicbench.splits import make_splits, read_splits
from tests.conftest import REPO_ROOT, run_cli

MODEL = REPO_ROOT / "baselines" / "motion_energy.py"
TABLES = ("mixtures.parquet", "duets.parquet", "benchmark.json", "ground_truth.json")


def _tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_mixtures(root / "mixtures" / "mixtures.parquet"), read_mixtures(root / "mixtures" / "duets.parquet", DUET_COLUMNS)


def _rebuild(root: Path, params: dict, definition: Path | None = None) -> dict:
    process_manifest(root / "synth" / "manifest.csv", root, ProcessConfig.from_params(params))
    make_splits(params, root, repo=REPO_ROOT)
    return make_mixtures(params, root, definition=definition)


def _louder(video: Path) -> None:
    """Re-encode a video with its audio 2 dB louder (real ffmpeg): another recording of the same video."""
    out = video.with_name("louder.mp4")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-c:v", "copy", "-af", "volume=2dB", "-c:a", "aac",
                    str(out)], check=True)
    out.replace(video)


@pytest.fixture(scope="module")
def attrition(bench_root, tmp_path_factory):
    """(full root, lab root drawn by itself, lab root built from the full root's published
    definition, params, removed videos, re-encoded video, published definition): the lab never
    obtained a quarter of the test solo videos (one of four) and one duet video, and holds one more
    video re-encoded 2 dB louder."""
    root, params, _ = bench_root
    work = tmp_path_factory.mktemp("attrition")
    full = work / "full"
    shutil.copytree(root, full, ignore=shutil.ignore_patterns("score_cache", ".musicbench.lock"))
    definition = work / "definition.json"
    make_mixtures(params, full, publish=definition)
    rows = read_splits(full / "splits" / "splits.csv")
    solo_tests = sorted(r.video_id for r in rows if r.split == "test" and r.kind == "solo")
    duet_tests = sorted(r.video_id for r in rows if r.split == "test" and r.kind == "duet")
    removed, reencoded = [solo_tests[0], duet_tests[0]], solo_tests[1]
    lab = work / "lab"
    shutil.copytree(full / "synth", lab / "synth")
    for video in removed:
        (lab / "synth" / "videos" / f"{video}.mp4").unlink()
    _louder(lab / "synth" / "videos" / f"{reencoded}.mp4")
    _rebuild(lab, params)
    published = work / "lab-published"
    shutil.copytree(lab, published)
    make_mixtures(params, published, definition=definition)
    return full, lab, published, params, removed, reencoded, definition


def test_a_missing_video_removes_exactly_its_items_and_the_identity_stays(attrition):
    full, lab, published, _, removed, reencoded, _ = attrition
    ours, theirs = DataRoot(full).definition(), DataRoot(lab).definition()
    assert theirs["benchmark_version"] == ours["benchmark_version"] and theirs["recipe"] == ours["recipe"]
    assert ours["coverage"]["not_held"] == [] and ours["coverage"]["tables_fingerprint"] != theirs["coverage"]["tables_fingerprint"]
    mixtures, duets = _tables(full)
    lab_mixtures, lab_duets = _tables(lab)
    uses = set(mixtures.loc[mixtures["video_id"].isin(removed), "item_id"]) | set(duets.loc[duets["video_id"].isin(removed), "item_id"])
    assert uses and {row["item_id"] for row in theirs["coverage"]["not_held"]} == uses
    assert {row["reason"] for row in theirs["coverage"]["not_held"]} == {"video not held"}
    assert set(theirs["coverage"]["videos_not_held"]) == set(removed)
    assert set(lab_mixtures["item_id"]) | set(lab_duets["item_id"]) == (set(mixtures["item_id"]) | set(duets["item_id"])) - uses
    # every other item is the same clip in both tables, except the re-encoded video's: other audio, another key
    full_keys, lab_keys = item_keys(mixtures, duets), item_keys(lab_mixtures, lab_duets)
    louder = set(mixtures.loc[mixtures["video_id"] == reencoded, "item_id"]) - uses
    assert louder and {item for item in lab_keys if lab_keys[item] != full_keys[item]} == louder
    columns = ["item_id", "source_index", "video_id", "start_sample", "start_frame", "gain", "clip_loudness_db", "frames_sha256"]
    same = lambda table: table[~table["item_id"].isin(louder)][columns].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(same(lab_mixtures), same(mixtures[~mixtures["item_id"].isin(uses)]))
    # built from the published definition, the re-encoded clips are flagged and not held; the rest are the full root's rows
    cover = DataRoot(published).definition()["coverage"]
    assert {row["item_id"]: row["reason"] for row in cover["not_held"]} == {
        **dict.fromkeys(uses, "video not held"), **dict.fromkeys(louder, "audio differs")}
    held, _ = _tables(published)
    pd.testing.assert_frame_equal(held[columns].reset_index(drop=True),
                                  mixtures[~mixtures["item_id"].isin(uses | louder)][columns].reset_index(drop=True))


def test_adding_a_video_back_restores_its_items_byte_for_byte(attrition, tmp_path):
    full, lab, _, params, removed, reencoded, _ = attrition
    back = tmp_path / "back"
    shutil.copytree(lab, back, ignore=shutil.ignore_patterns("score_cache", ".musicbench.lock"))
    for video in (*removed, reencoded):  # the lab obtains the missing videos and the original recording
        shutil.copy(full / "synth" / "videos" / f"{video}.mp4", back / "synth" / "videos" / f"{video}.mp4")
    _rebuild(back, params)
    for name in TABLES:
        assert (back / "mixtures" / name).read_bytes() == (full / "mixtures" / name).read_bytes(), name


def test_the_cli_prints_coverage_and_publishes(attrition, tmp_path):
    _, lab, _, _, removed, _, definition = attrition
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps(attrition[3]))
    work = tmp_path / "lab"
    shutil.copytree(lab, work, ignore=shutil.ignore_patterns("score_cache", ".musicbench.lock"))
    result = run_cli("mixtures", "--params", params, "--root", work, "--definition", definition, "--publish", tmp_path / "mine.json")
    assert result.returncode == 0, result.stderr
    text = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert "built from the definition definition.json" in text
    line = text[text.index(" test: "):text.index(" test duets: ")]
    assert "missing" in line and "video not held: " + removed[0] in line and "audio differs" in line
    mine = json.loads((tmp_path / "mine.json").read_text())
    assert mine["benchmark_version"] == DataRoot(work).version() and len(mine["mixtures"]) == len(_tables(work)[0])


@pytest.mark.parametrize(("change", "message"), [
    (lambda doc: doc.update(format="something else"), "not a musicbench definition"),
    (lambda doc: doc["recipe"].update(clip_samples=1000), "another recipe (clip_samples differ)"),
    (lambda doc: doc.update(benchmark_version="mb-0000000000000000"), "defines benchmark 'mb-0000000000000000'"),
    (lambda doc: doc["mixtures"][0].update(video_id="solo_tuba_99"), "not a clip of the lists' items"),
    (lambda doc: doc["mixtures"].append(dict(doc["mixtures"][0])), "listed twice"),
    (lambda doc: doc["mixtures"][0].update(gain=0.75), "instrument or gain differ"),
    (lambda doc: doc["mixtures"][0].update(start_sample=-5), "start_sample must be an integer"),
    (lambda doc: doc["duets"][0].pop("clip_loudness_db"), "must be an object with"),
    (lambda doc: doc.update(mixtures="all"), "mixtures must be a list"),
])
def test_a_bad_definition_is_one_line_and_changes_nothing(attrition, tmp_path, change, message):
    full, lab, _, params, _, _, definition = attrition
    doc = json.loads(definition.read_text())
    change(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    before = {name: (lab / "mixtures" / name).read_bytes() for name in TABLES}
    with pytest.raises(MusicbenchError, match="definition .*bad.json") as error:
        make_mixtures(params, lab, definition=bad)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert {name: (lab / "mixtures" / name).read_bytes() for name in TABLES} == before
    bad.write_bytes(b"\xff{")
    with pytest.raises(MusicbenchError, match="not JSON"):
        make_mixtures(params, lab, definition=bad)


def test_runs_of_every_data_root_share_one_table_with_their_coverage(attrition, tmp_path):
    """A run on each root, on one board built with the full root: the full run is ranked; the
    partial run is marked with its coverage and tested against the full run on the items both
    scored, re-scored here since the full root holds its items; the run whose data root holds a
    re-encoded video compares only the items of the same audio, and cannot be re-scored here."""
    full, lab, published, _, removed, _, _ = attrition
    runs = tmp_path / "runs"
    for name, root in (("full", full), ("partial", published), ("drawn", lab)):
        evaluate(MODEL, root, runs / name, device="cpu", name=name)
    board = build_leaderboard(runs, tmp_path / "board", full, demo_items=0)
    assert len(board["tables"]) == 1
    table = board["tables"][0]
    rows = {row["name"]: row for row in table["rows"]}
    assert rows["full"]["rank"] == 1 and rows["full"]["coverage"] == {"items": 12, "held": 12, "not_held": 0}
    test_items = lambda root: set(_tables(root)[0].query("split == 'test'")["item_id"])  # noqa: E731
    n_held, n_lab = len(test_items(published)), len(test_items(lab))
    partial = rows["partial"]
    assert partial["rank"] is None and partial["rescored"] and not partial["untrusted"] and not partial["frames_differ"]
    assert partial["unranked"] == f"partial coverage: {n_held}/12 items, {12 - n_held} not held by its data root"
    assert partial["test"]["n"] == n_held and partial["test"]["against"] == "full"
    drawn = rows["drawn"]
    assert "have other audio here (audio differs" in drawn["untrusted"] and drawn["rank"] is None
    assert drawn["coverage"]["not_held"] == 12 - n_lab
    assert drawn["test"]["n"] == n_held and "not compared" in drawn["test"]["note"]
    for name in ("full", "partial"):  # the per-item scores of the common items agree
        assert set(rows[name]["per_item_nsdr"]) >= set(partial["per_item_nsdr"])
    assert all(rows["full"]["per_item_nsdr"][item] == value for item, value in partial["per_item_nsdr"].items())
    assert removed[0] not in {v for videos in partial["item_videos"].values() for v in videos}
