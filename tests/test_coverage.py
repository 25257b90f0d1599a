"""One benchmark identity across data roots that hold different videos: coverage, published
definitions, and runs of partial data roots on one board (issue 30's attrition test)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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
    (lambda doc: doc["mixtures"][0].update(video_id="solo_tuba_99"), "not a clip of the lists' mixtures items"),
    (lambda doc: doc["mixtures"].append({**doc["duets"][0], "source_index": 0, "instrument": "x", "gain": 0.5}),
     "not a clip of the lists' mixtures items"),
    (lambda doc: doc["mixtures"][0].update(start_sample=doc["mixtures"][0]["start_sample"] + 1), "not on the clip grid"),
    (lambda doc: doc.update(mixtures=[], duets=[]), "defines no clips"),
    (lambda doc: doc.update(mixtures=[{}] * 200_001), "more than 200000 objects"),
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
    with pytest.raises(MusicbenchError, match="cannot write the definition to .*--publish a file path"):
        make_mixtures(params, lab, definition=definition, publish=tmp_path)  # a folder: refused before anything changes
    assert {name: (lab / "mixtures" / name).read_bytes() for name in TABLES} == before


@pytest.fixture(scope="module")
def runs(attrition, tmp_path_factory):
    """A run of the same model on each root: full, partial (built from the definition), drawn (holds the louder video)."""
    full, lab, published, *_ = attrition
    runs = tmp_path_factory.mktemp("coverage-runs")
    for name, root in (("full", full), ("partial", published), ("drawn", lab)):
        evaluate(MODEL, root, runs / name, device="cpu", name=name)
    return runs


def _rows(board: dict) -> dict[str, dict]:
    assert len(board["tables"]) == 1
    return {row["name"]: row for row in board["tables"][0]["rows"]}


def test_runs_of_every_data_root_share_one_table_with_their_coverage(attrition, runs, tmp_path):
    """A run on each root, on one board built with the full root: the full run is ranked; the
    partial run is marked with its coverage and tested against the full run on the items both
    scored, re-scored here since the full root holds its items; the run whose data root holds a
    re-encoded video cannot be re-scored here, and is not tested."""
    full, lab, published, _, removed, _, _ = attrition
    rows = _rows(build_leaderboard(runs, tmp_path / "board", full, demo_items=0))
    assert rows["full"]["rank"] == 1
    assert rows["full"]["coverage"] == {"items": 12, "held": 12, "not_held": 0, "not_scored": 0}
    test_items = lambda root: set(_tables(root)[0].query("split == 'test'")["item_id"])  # noqa: E731
    n_held = len(test_items(published))
    partial = rows["partial"]
    assert partial["rank"] is None and partial["rescored"] and not partial["untrusted"] and not partial["frames_differ"]
    assert partial["unranked"] == f"partial coverage: {n_held}/12 items, {12 - n_held} not held by its data root"
    assert partial["test"]["n"] == n_held and partial["test"]["against"] == "full" and partial["test"]["p"] is not None
    drawn = rows["drawn"]
    assert "have other audio here (audio differs" in drawn["untrusted"] and drawn["rank"] is None
    assert drawn["test"]["verdict"] == "not tested"
    assert all(rows["full"]["per_item_nsdr"][item] == value for item, value in partial["per_item_nsdr"].items())
    assert removed[0] not in {v for videos in partial["item_videos"].values() for v in videos}
    # on the partial root's own board the partial run is the baseline (no run is ranked); the full run's
    # items cannot all be re-scored there, so it is not trusted (nor tested) on that board
    own = _rows(build_leaderboard(runs, tmp_path / "own", published, demo_items=0))
    assert own["partial"]["test"]["verdict"] == "baseline" and own["partial"]["unranked"].startswith("partial coverage")
    assert own["full"]["untrusted"].startswith("not re-scored: the data root does not hold")


def _edit(run: Path, items=None, provenance=None) -> None:
    """Edit a run folder as a forger would: items.parquet, provenance.json, and a summary.json recomputed to agree."""
    from musicbench.harness.summaries import summarize

    table = pd.read_parquet(run / "items.parquet")
    if items is not None:
        table = items(table)
        table.to_parquet(run / "items.parquet", index=False)
    doc = json.loads((run / "provenance.json").read_text())
    if provenance is not None:
        provenance(doc)
        (run / "provenance.json").write_text(json.dumps(doc))
    summary = json.loads((run / "summary.json").read_text())
    summary.update(summarize(table, doc["seed"]), name=doc["name"])
    (run / "summary.json").write_text(json.dumps(summary))


def test_a_run_folder_cannot_pass_off_left_out_items_as_not_held(attrition, runs, tmp_path):
    """Items a run leaves out count as not held only where its data root lacked a video they use,
    by the board's own slots: a run that drops the items it does badly on and lists them as not held
    is incomplete and not tested; one that says a video was missing while it scored items using it is
    untrusted; frames that a run's map leaves out are judged by its fingerprint."""
    full, *_ = attrition
    mine = tmp_path / "runs"
    shutil.copytree(runs / "full", mine / "full")
    items = pd.read_parquet(runs / "full" / "items.parquet").query("track == 'mixtures'")
    per_item = items.groupby("item_id")["nsdr"].mean().sort_values()
    worst = list(per_item.index[:4])
    shutil.copytree(runs / "full", mine / "dropped")  # drops its 4 worst items, says they were not held
    _edit(mine / "dropped", items=lambda t: t[~t["item_id"].isin(worst)], provenance=lambda doc: (
        doc.update(name="dropped"), doc["coverage"]["tracks"]["mixtures"].update(not_held=worst, held=8)))
    video = items.loc[items["item_id"] == worst[0], "video_id"].iloc[0]
    shutil.copytree(runs / "full", mine / "liar")  # says a video was missing, yet scored its items
    _edit(mine / "liar", provenance=lambda doc: (
        doc.update(name="liar"), doc["coverage"]["tracks"]["mixtures"].update(videos_not_held=[video])))
    shutil.copytree(runs / "full", mine / "frames")  # a frames map that names no video, and another fingerprint
    _edit(mine / "frames", provenance=lambda doc: (
        doc.update(name="frames", frames_fingerprint="fr-0000000000000000"), doc["coverage"].update(frames={})))
    rows = _rows(build_leaderboard(mine, tmp_path / "board", full, demo_items=0))
    dropped = rows["dropped"]
    assert dropped["unranked"] == "incomplete: scored 8 of the 12 items" and dropped["coverage"]["not_held"] == 0
    assert dropped["test"]["verdict"] == "not tested" and dropped["test"]["p"] is None
    assert "coverage it claims is false" in rows["liar"]["untrusted"] and rows["liar"]["test"]["verdict"] == "not tested"
    assert rows["frames"]["frames_differ"] and not rows["full"]["frames_differ"]


def test_estimates_exported_from_another_data_root_are_not_scored_as_this_ones(attrition, tmp_path):
    """The export route carries each item's key: estimates made from the drawn lab root (whose
    louder video gives other items) are refused, item by item, when scored against the full root."""
    from musicbench.export import export_items, score_estimates

    full, lab, *_ = attrition
    export_items(lab, tmp_path / "export", limit=3)
    estimates = tmp_path / "estimates"
    result = subprocess.run([sys.executable, tmp_path / "export" / "run_model.py", MODEL, tmp_path / "export", estimates],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    score_estimates(estimates, full, tmp_path / "run", name="exported", limit=12)
    scored = pd.read_parquet(tmp_path / "run" / "inference.parquet").set_index("item_id")
    exported = set(pd.read_csv(tmp_path / "export" / "items.csv")["item_id"])
    lab_keys, full_keys = item_keys(*_tables(lab)), item_keys(*_tables(full))
    other = [item for item in exported if lab_keys[item] != full_keys[item]]
    same = [item for item in exported if lab_keys[item] == full_keys[item]]
    assert other and same
    assert all(scored.loc[other, "reason"].str.startswith("exported from a data root whose item has other audio"))
    assert (scored.loc[same, "status"] == "ok").all()


def test_a_cached_score_is_never_reused_for_other_samples_under_the_same_key(attrition, runs, tmp_path):
    """A video re-encoded with its polarity flipped keeps every loudness contour, so the same items
    and keys; scores of the same estimates against it come from the new samples, cache or not."""
    from musicbench.harness.scoring import score_items

    full, _, _, params, _, _, _ = attrition
    flipped = tmp_path / "flipped"
    shutil.copytree(full, flipped, ignore=shutil.ignore_patterns(".musicbench.lock"))  # with its score cache
    video = _tables(full)[0].query("split == 'test'")["video_id"].iloc[0]
    source = flipped / "synth" / "videos" / f"{video}.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(source), "-c:v", "copy", "-af", "pan=mono|c0=-1*c0", "-c:a", "aac",
                    str(source.with_name("flipped.mp4"))], check=True)
    source.with_name("flipped.mp4").replace(source)
    _rebuild(flipped, params)
    assert item_keys(*_tables(flipped)) == item_keys(*_tables(full))  # the same items by their keys
    cached = score_items(runs / "full", flipped, split="test", show_progress=False)
    fresh = score_items(runs / "full", flipped, split="test", show_progress=False, cache_dir=tmp_path / "fresh-cache")
    before = pd.read_parquet(runs / "full" / "items.parquet")
    assert cached["sdr"].equals(fresh["sdr"]) and not cached["sdr"].equals(before["sdr"])
