"""DSOL's solo localization test as a protocol (`musicbench.protocols`, ``dsol-solo``): its items
checked against a port of DSOL's test loader, its recipe against a port of ``tools.py``, and the
whole route run for real on an offline MUSIC-Synth fixture under the official ids: build, a confined
model that only localizes, the centre-prior oracle, export / run_model.py / score, the board ranked
by cIoU, and the coverage of a video a data root holds only in part."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.harness.oracles import oracle_outputs
from musicbench.harness.scoring import item_boxes
from musicbench.leaderboard import build_leaderboard
from musicbench.metrics.localization import resize_bilinear
from musicbench.metrics.recipes import dsol_solo_ciou, dsol_solo_figures
from musicbench.protocols import build_protocol, get_protocol, protocol_root, protocol_slots, protocol_video_specs
from tests.conftest import REPO_ROOT, run_cli
from tests.test_protocols import LISTS, fixture_params, make_fixture

DSOL = LISTS / "dsol_DTaoo"
MOTION_ENERGY = REPO_ROOT / "baselines" / "motion_energy.py"
N_ITEMS = 6  # the fixture: the first video of solo_testing.txt, rendered for its first 6 annotated seconds (+1 s)


@pytest.fixture(scope="module")
def dsol_root(tmp_path_factory):
    """The first video of DSOL's solo test under its official id, 7 s long, with dsol-solo built."""
    root = make_fixture(tmp_path_factory.mktemp("dsol_root"), protocol_video_specs("dsol-solo", LISTS, N_ITEMS))
    build_protocol(fixture_params(), root, "dsol-solo", LISTS)
    return root


# ------------------------------------------------------------------------------- DSOL's code, ported

def reference_solo_items() -> list[tuple[str, int, str, list]]:
    """The test items of ``music-exp/data/MUSIC_dataset.py`` (mode test) over ``solo_testing.txt``:
    per video in its order, one per second folder ``frame_<s>`` that holds an annotated frame with a
    box (``tools.py`` skips frames without one), as (video id, second, the annotated frame
    musicbench scores: the middle of the second's frames with a box, its boxes)."""
    truth = json.loads((DSOL / "solotest.json").read_text())
    folders = _frame_folders(truth)
    found = []
    for line in (DSOL / "solo_testing.txt").read_text().splitlines():
        audio, _video = line.split()
        folder = audio[:-5]  # `audio[:-5]`: the name without ".flac"
        for second in sorted(int(name[len("frame_"):]) for name in folders.get(folder, {})):
            frames = sorted(key for key in folders[folder][f"frame_{second:03d}"] if truth[key]["bbox"])
            if frames:
                chosen = frames[len(frames) // 2]
                found.append((folder.rsplit("_", 2)[0], second, chosen, [box["box"] for box in truth[chosen]["bbox"]]))
    return found


def _frame_folders(truth: dict) -> dict[str, dict[str, list[str]]]:
    """The keys of a DSOL box file by video folder and second folder (``<folder>/frame_<s>/<n>.jpg``)."""
    folders: dict[str, dict[str, list[str]]] = {}
    for key in truth:
        folder, second, _ = key.split("/")
        folders.setdefault(folder, {}).setdefault(second, []).append(key)
    return folders


def reference_cal_ciou(predicted: np.ndarray, normboxes: list) -> float:
    """``tools.py``'s ``cal_ciou`` for one frame: ``cv2.resize`` of the map to 224² (bilinear with
    half-pixel centres: `resize_bilinear`), threshold 0.1 × max, the boxes ``normbox * 224`` cut by int()."""
    gtmap = np.zeros((224, 224))
    for box in normboxes:
        box = np.array(box) * 224
        gtmap[int(box[1]): int(box[1] + box[3]), int(box[0]): int(box[0] + box[2])] = 1
    predmap = resize_bilinear(predicted, 224, 224)
    thres = 0.1 * np.max(predmap)
    return np.sum((predmap > thres) * (gtmap > 0)) / (np.sum(gtmap) + np.sum((predmap > thres) * (gtmap == 0)))


def reference_figures(cious: list[float]) -> tuple[float, float]:
    """``tools.py``'s AUC (``sklearn.metrics.auc``: trapezoids) and ``results[10]`` (success at 0.5)."""
    results = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
    x = [0.05 * i for i in range(21)]
    return float(np.trapezoid(results, x)), float(results[10])


def test_dsol_solo_items_are_dsols_annotated_seconds():
    slots = protocol_slots(get_protocol("dsol-solo"), LISTS)
    expected = reference_solo_items()
    assert slots["item_id"].nunique() == len(expected) == 3134  # of 3368 annotated seconds: those with a box
    assert len(set(v for v, *_ in expected)) == 27
    for number, (video, second, frame, boxes) in enumerate(expected):
        slot = slots.iloc[number]
        assert slot["item_id"] == f"dsol-solo-{number:05d}" and slot["video_id"] == video
        assert (slot["start_sample"], slot["n_samples"], slot["gain"]) == (second * 11025, 11025, 1.0)  # cut_audios.py: [s, s+1)
        annotation = json.loads(slot["annotation"])
        assert annotation["frame"] == frame and annotation["boxes"] == boxes
    assert json.loads(slots.iloc[0]["annotation"])["frame"].endswith("frame_000/00014.jpg")  # of 0, 7, 14, 21: the middle


def test_dsol_solo_recipe_is_tools_py():
    rng = np.random.default_rng(28)
    cious = []
    for _ in range(40):
        height, width = rng.integers(60, 200, 2)
        predicted = rng.random((14, 14)) ** 3  # a sigmoid map of DSOL's 14 × 14 grid, peaked
        boxes = np.array([[rng.uniform(0, width / 2), rng.uniform(0, height / 2), rng.uniform(4, width / 2),
                           rng.uniform(4, height / 2)] for _ in range(rng.integers(1, 3))])
        normboxes = [[b[0] / width, b[1] / height, b[2] / width, b[3] / height] for b in boxes]
        value = dsol_solo_ciou(predicted, boxes, (height, width))
        assert value == pytest.approx(reference_cal_ciou(predicted, normboxes), abs=1e-12)
        cious.append(value)
    figures = dsol_solo_figures(cious)
    auc, success = reference_figures(cious)
    assert figures["auc"] == pytest.approx(auc, abs=1e-12) and figures["success@0.5"] == success
    assert figures["n_items"] == 40 and figures["ciou_mean"] == pytest.approx(np.mean(cious))
    exact = np.zeros((224, 224))
    exact[50:100, 60:120] = 0.7  # a map at DSOL's size that is the box: cIoU 1
    assert dsol_solo_ciou(exact, [[60, 50, 60, 50]], (224, 224)) == 1.0


# ------------------------------------------------------------------------------- end to end

def test_dsol_solo_runs_end_to_end(dsol_root, tmp_path):
    view = protocol_root(dsol_root, "dsol-solo")
    held = pd.read_parquet(dsol_root / "protocols" / "dsol-solo" / "mixtures.parquet")
    assert list(held["item_id"]) == [f"dsol-solo-{k:05d}" for k in range(N_ITEMS + 1)]  # 7 s hold seconds 0..6
    items = view.read_verified_items("test")
    assert [box.shape for box in item_boxes(items[0])] == [(1, 4)] and items[0].frames.shape[:2] == (1, 8)

    runs = tmp_path / "runs"
    result = run_cli("evaluate", MOTION_ENERGY, "--protocol", "dsol-solo", "--root", dsol_root, "--out", runs / "motion",
                     cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads((runs / "motion" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"ciou", "pointing_hit"} and summary["n_scored"] == N_ITEMS + 1
    assert not (runs / "motion" / "estimates").exists()  # only the maps are asked for and kept
    maps = {item.item_id: np.load(runs / "motion" / "heatmaps" / f"{item.item_id}.npy") for item in items}
    cious = [reference_cal_ciou(maps[item.item_id][0], _normboxes(item)) for item in items]
    recipe = summary["paper_recipe"]
    assert recipe["recipe"] == "dsol-solo" and recipe["n_items"] == N_ITEMS + 1
    assert recipe["ciou_mean"] == pytest.approx(np.mean(cious), abs=1e-12)
    assert (recipe["auc"], recipe["success@0.5"]) == pytest.approx(reference_figures(cious), abs=1e-12)
    assert recipe["n_not_held"] == 3134 - (N_ITEMS + 1)

    centre = evaluate(None, view, runs / "centre", oracle="mixture")  # the centre prior: the floor
    prior = oracle_outputs(items[0], "mixture")[1][0]
    assert centre["paper_recipe"]["n_items"] == N_ITEMS + 1
    assert centre["paper_recipe"]["ciou_mean"] == pytest.approx(
        np.mean([reference_cal_ciou(prior, _normboxes(item)) for item in items]), abs=1e-12)
    with pytest.raises(MusicbenchError, match="scores localization alone; oracle ibm only separates"):
        evaluate(None, view, runs / "ibm", oracle="ibm")
    separator = tmp_path / "separator.py"
    separator.write_text(textwrap.dedent("""
        import numpy as np

        class Separator:
            def separate(self, mixture, frames, sample_rate):
                return np.repeat(mixture[None], frames.shape[0], axis=0)

        def load_model(device="cpu"):
            return Separator()
    """))
    with pytest.raises(MusicbenchError, match=r"has no localize\(mixture, frames, sample_rate\) method"):
        evaluate(separator, view, runs / "separator", device="cpu")
    assert not (runs / "separator").exists()

    # the copy of DSOL's boxes the protocol was built from is hidden from the model (a public file, not a reference)
    peeking = tmp_path / "peeking.py"
    peeking.write_text(textwrap.dedent(f"""
        import numpy as np

        class Peeking:
            def localize(self, mixture, frames, sample_rate):
                try:
                    seen = open({str(DSOL / "solotest.json")!r}, "rb").read()
                except OSError:
                    seen = b""
                if seen:
                    raise RuntimeError("read DSOL's boxes")
                return np.ones((1, 4, 4), dtype=np.float32)

        def load_model(device="cpu"):
            return Peeking()
    """))
    result = run_cli("evaluate", peeking, "--protocol", "dsol-solo", "--root", dsol_root, "--out", runs / "peeking",
                     "--limit", "1", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads((runs / "peeking" / "summary.json").read_text())["n_excluded"] == 0
    shutil.rmtree(runs / "peeking")

    # a model that fails one item: charged cIoU 0 by both recipes, and unranked
    flaky = tmp_path / "flaky.py"
    flaky.write_text(MOTION_ENERGY.read_text() + textwrap.dedent("""

        class _Flaky(MotionEnergySplit):
            calls = 0

            def localize(self, mixture, frames, sample_rate):
                type(self).calls += 1
                if type(self).calls == 2:
                    raise RuntimeError("no map this time")
                return super().localize(mixture, frames, sample_rate)

        def load_model(device="cpu"):
            return _Flaky()
    """))
    flaky_summary = evaluate(flaky, view, runs / "flaky", device="cpu")
    assert flaky_summary["n_excluded"] == 1
    inference = pd.read_parquet(runs / "flaky" / "inference.parquet")
    assert list(inference["item_id"]) == [item.item_id for item in items]  # in item order, whatever order the calls took
    failed = int(np.flatnonzero(inference["status"] != "ok")[0])  # the second call: an item of a secret order
    assert flaky_summary["metrics"]["ciou"]["mean"] == pytest.approx((sum(_ciou_column(runs / "motion")) -
                                                                       _ciou_column(runs / "motion")[failed]) / (N_ITEMS + 1))
    assert flaky_summary["paper_recipe"]["ciou_mean"] == pytest.approx((sum(cious) - cious[failed]) / (N_ITEMS + 1),
                                                                       abs=1e-12)

    # export, run_model.py anywhere, score: the same numbers as evaluate
    exported, estimates = tmp_path / "export", tmp_path / "estimates"
    result = run_cli("export", exported, "--protocol", "dsol-solo", "--root", dsol_root, "--runs", runs, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert set(pd.read_csv(exported / "items.csv")["track"]) == {"localization"}
    ran = subprocess.run([sys.executable, exported / "run_model.py", MOTION_ENERGY, exported, estimates], capture_output=True,
                         text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.name for p in (estimates / "dsol-solo-00000").iterdir()) == ["heatmap0.npy"]
    result = run_cli("score", estimates, "--name", "motion from files", "--protocol", "dsol-solo", "--root", dsol_root,
                     "--out", runs / "from-files", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert _ciou_column(runs / "from-files") == _ciou_column(runs / "motion")
    assert json.loads((runs / "from-files" / "summary.json").read_text())["paper_recipe"] == recipe

    # the bench's DSOL solo column is the harness's paper recipe; its first column the run's own cIoU
    ran = subprocess.run([sys.executable, REPO_ROOT / "bench" / "bench_dsol_recipe.py", "--root", dsol_root, "--runs", runs,
                          "--protocol", "dsol-solo", "--json", tmp_path / "bench.json"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert ran.returncode == 0, ran.stderr
    benched = json.loads((tmp_path / "bench.json").read_text())["runs"]
    assert benched["motion"]["+ 224² grid (DSOL solo)"]["mean"] == pytest.approx(recipe["ciou_mean"], abs=1e-12)
    assert benched["motion"]["musicbench (median rule)"]["mean"] == pytest.approx(np.mean(_ciou_column(runs / "motion")))
    assert "flaky" in benched and benched["flaky"]["+ 224² grid (DSOL solo)"]["mean"] < recipe["ciou_mean"]

    # the board: a table of its own, ranked by cIoU, DSOL's figures beside it
    board = build_leaderboard(runs, tmp_path / "board", dsol_root)
    (table,) = board["tables"]
    assert table["protocol"]["task"] == "localization" and table["protocol"]["scoring"] == "dsol-solo"
    rows = {row["folder"]: row for row in table["rows"]}
    assert all(row["rank_metric"] == "ciou" and not row["untrusted"] for row in rows.values()), \
        {name: row["problems"] for name, row in rows.items()}
    assert rows["motion"]["unranked"].startswith("partial coverage")  # 7 of 3134 items held: never ranked
    assert rows["flaky"]["unranked"].startswith("incomplete: 1 of 7 items failed")
    assert rows["motion"]["paper_recipe"] == recipe and rows["centre"]["paper_recipe"] == centre["paper_recipe"]
    assert rows["motion"]["test"]["verdict"] == "baseline" and rows["motion"]["test"]["unit"] == ""
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "Protocol dsol-solo" in markdown and "mean cIoU" in markdown and "| cIoU mean | cIoU success@0.5 | cIoU AUC |" in markdown
    assert "NSDR (dB) | median" not in markdown.split("## Protocol dsol-solo")[1]


def _normboxes(item) -> list:
    """The item's boxes, normalised by its frame size (DSOL's ``normbox``, on the frames models get)."""
    height, width = item.frames.shape[2:4]
    return [[b[0] / width, b[1] / height, b[2] / width, b[3] / height] for b in item_boxes(item)[0]]


def _ciou_column(run: Path) -> list[float]:
    table = pd.read_parquet(run / "items.parquet").sort_values("item_id")
    return [0.0 if pd.isna(value) else float(value) for value in table["ciou"]]


def test_a_video_held_in_part_explains_only_its_later_items(dsol_root, tmp_path):
    """A data root whose copy of the video is 4 s long holds seconds 0..3 only; its run stays trusted
    on the board of the 7-s data root, and cannot use the claim to leave out an item it held."""
    shorter = tmp_path / "shorter"
    shutil.copytree(dsol_root, shorter, ignore=shutil.ignore_patterns("score_cache", "protocols"))
    trim_processed(shorter, "eBoCeQtoFtM", 4)
    short_doc = build_protocol(fixture_params(), shorter, "dsol-solo", LISTS)
    assert short_doc["benchmark_version"] == json.loads(
        (dsol_root / "protocols" / "dsol-solo" / "benchmark.json").read_text())["benchmark_version"]
    runs = tmp_path / "runs"
    evaluate(None, protocol_root(shorter, "dsol-solo"), runs / "short-centre", oracle="mixture")
    coverage = json.loads((runs / "short-centre" / "provenance.json").read_text())["coverage"]
    claim, claim_frames = coverage["tracks"]["mixtures"], coverage["frames"]["eBoCeQtoFtM"]
    assert claim["videos_short"] == {"eBoCeQtoFtM": [4 * 11025, 32]} and claim["held"] == 4

    board = build_leaderboard(runs, tmp_path / "board", dsol_root)
    row = board["tables"][0]["rows"][0]
    assert not row["untrusted"], row["problems"]
    assert row["coverage"] == {"items": 3134, "held": 4, "not_held": 3130, "not_scored": 0}

    # a claim shorter than what the run scored is false; so is one whose frames are the board's own copy's;
    # an item it held and left out is not explained
    provenance = runs / "short-centre" / "provenance.json"
    document = json.loads(provenance.read_text())
    frames = document["coverage"]["frames"]
    frames["eBoCeQtoFtM"] = json.loads((dsol_root / "protocols" / "dsol-solo" / "benchmark.json").read_text()
                                       )["coverage"]["frames"]["test"]["eBoCeQtoFtM"]
    provenance.write_text(json.dumps({**document, "coverage": {**document["coverage"], "frames": frames}}))
    row = build_leaderboard(runs, tmp_path / "board1", dsol_root)["tables"][0]["rows"][0]
    assert "its copy of eBoCeQtoFtM held only 44100 samples, yet its frames are this data root's" in row["untrusted"]
    document = json.loads(provenance.read_text())
    document["coverage"]["frames"]["eBoCeQtoFtM"] = claim_frames
    document["coverage"]["tracks"]["mixtures"]["videos_short"]["eBoCeQtoFtM"] = [2 * 11025, 16]
    provenance.write_text(json.dumps(document))
    row = build_leaderboard(runs, tmp_path / "board2", dsol_root)["tables"][0]["rows"][0]
    assert "held only 22050 samples of eBoCeQtoFtM, yet the run scored dsol-solo-00002" in row["untrusted"]
    document["coverage"]["tracks"]["mixtures"]["videos_short"]["eBoCeQtoFtM"] = [4 * 11025, 32]
    provenance.write_text(json.dumps(document))
    inference = pd.read_parquet(runs / "short-centre" / "inference.parquet")
    inference[inference["item_id"] != "dsol-solo-00001"].to_parquet(runs / "short-centre" / "inference.parquet")
    items = pd.read_parquet(runs / "short-centre" / "items.parquet")
    items[items["item_id"] != "dsol-solo-00001"].to_parquet(runs / "short-centre" / "items.parquet")
    row = build_leaderboard(runs, tmp_path / "board3", dsol_root)["tables"][0]["rows"][0]
    assert row["coverage"]["not_scored"] == 1 and not row["rank"]


def _refused(root: Path, lists: Path, message: str) -> None:
    """`musicbench protocol build dsol-solo` from `lists` stops with one line holding `message`."""
    with pytest.raises(MusicbenchError) as refused:
        build_protocol(fixture_params(), root, "dsol-solo", lists)
    assert message in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def trim_processed(root: Path, video_id: str, seconds: int) -> None:
    """Make the data root's processed copy of `video_id` a copy `seconds` long: its audio and frame
    archive cut there, the index updated (what a lab whose download ends there would hold)."""
    import tarfile

    import soundfile as sf

    from musicbench.fsutil import sha256_file

    index = pd.read_parquet(root / "processed" / "videos.parquet")
    row = index.index[index["video_id"] == video_id][0]
    audio, frames = root / index.loc[row, "audio_path"], root / index.loc[row, "frames_path"]
    samples, rate = sf.read(audio, dtype="int16")
    sf.write(audio, samples[:seconds * rate], rate, subtype="PCM_16")
    n_frames = int(seconds * index.loc[row, "fps"])
    with tarfile.open(frames) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive.getmembers()[:n_frames]]
    with tarfile.open(frames, "w") as archive:
        for member, data in members:
            archive.addfile(member, io.BytesIO(data))
    index.loc[row, ["n_samples", "n_frames", "duration"]] = [seconds * rate, n_frames, float(seconds)]
    index.loc[row, ["audio_bytes", "audio_sha256"]] = [audio.stat().st_size, sha256_file(audio)]
    index.loc[row, ["frames_bytes", "frames_sha256"]] = [frames.stat().st_size, sha256_file(frames)]
    index.to_parquet(root / "processed" / "videos.parquet")


def test_bad_dsol_files_are_one_line_errors(dsol_root, tmp_path):
    from musicbench.annotations import load_dsol_boxes

    # a box file for --boxes may name its classes as it likes; only the duet protocol reads DSOL's category ids
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"abcdefghijk_0_9/frame_001/00031.jpg": {
        "bbox": [{"box": [1, 2, 3, 4], "category_id": "violin"}], "wdith": 64, "height": 48}}))
    assert load_dsol_boxes(named).frames["abcdefghijk"][0].categories == ("violin",)
    built = (dsol_root / "protocols" / "dsol-solo" / "benchmark.json").read_text()
    lists = tmp_path / "lists"
    shutil.copytree(LISTS, lists)
    testing = lists / "dsol_DTaoo" / "solo_testing.txt"
    original = testing.read_text()
    first = original.splitlines()[0]
    for text, message in [
        (original.replace("eBoCeQtoFtM_0_1000.flac", "eBoCeQtoFtM_0_1000.wav", 1), "expected '<id>_<a>_<b>.flac"),
        (original.replace("eBoCeQtoFtM_0_1000.mp4", "eBoCeQtoFtM_5_9.mp4", 1), "(one name twice)"),  # DSOL asserts they match
        (f"{first}\n{original}", "video eBoCeQtoFtM is listed twice"),
        ("aaaaaaaaaaa_0_1000.flac aaaaaaaaaaa_0_1000.mp4\n", "video aaaaaaaaaaa is in no official MUSIC list"),
        ("", "has no row"),
    ]:
        testing.write_text(text)
        _refused(dsol_root, lists, message)
    testing.write_text(original)
    boxes_file = lists / "dsol_DTaoo" / "solotest.json"
    truth = json.loads(boxes_file.read_text())
    key = "eBoCeQtoFtM_0_1000/frame_000/00014.jpg"
    for text, message in [
        ('{"eBoCeQtoFtM_0_1000/frame_000/x.jpg": {}}', "expected '<id>_<a>_<b>/frame_<sec>/<n>.jpg'"),
        ("{}", "has no box on a frame of the videos of"),
        (json.dumps({**truth, key: {**truth[key], "bbox": [{"box": [1, 2, float("nan"), 4], "category_id": 10}]}}),
         "boxes [x, y, w, h] of finite numbers with w and h above 0"),
        (json.dumps({**truth, key: {**truth[key], "bbox": [{"box": [1, 2, 0, 4], "category_id": 10}]}}), "w and h above 0"),
        (json.dumps({**truth, key: {**truth[key], "wdith": 0}}), "a frame needs a positive size"),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ]:
        boxes_file.write_text(text)
        _refused(dsol_root, lists, message)
    boxes_file.write_bytes(b"\xff\xfe{}")
    result = run_cli("protocol", "build", "dsol-solo", "--root", dsol_root, "--lists", lists, cwd=REPO_ROOT)
    assert result.returncode != 0 and "not UTF-8 text" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (dsol_root / "protocols" / "dsol-solo" / "benchmark.json").read_text() == built  # the build stays as it was
    table = dsol_root / "protocols" / "dsol-solo" / "mixtures.parquet"
    saved = table.read_bytes()
    try:
        rows = pd.read_parquet(table)
        rows.loc[0, "annotation"] = rows.loc[0, "annotation"].replace("99.0", "9.0")  # a box moved after the build
        rows.to_parquet(table)
        with pytest.raises(MusicbenchError, match="tables fingerprint"):
            DataRoot(dsol_root, protocol="dsol-solo").read_verified_items("test")
    finally:
        table.write_bytes(saved)


# ------------------------------------------------------------------------------- DSOL's duets, per class

DUETKEYS = {13: "accordion", 3: "acoustic_guitar", 1: "cello", 12: "flute", 8: "saxophone", 10: "trumpet", 11: "violin"}
KEYLIST = sorted(["flute", "acoustic_guitar", "accordion", "xylophone", "erhu", "tuba", "saxophone", "cello", "violin",
                  "clarinet", "trumpet"])  # eval_duet.py's keylist, sorted as it sorts it
CLASS_MODEL = textwrap.dedent("""
    import numpy as np

    class ClassMaps:
        def localize_classes(self, mixture, frames, sample_rate, classes):
            motion = frames[0].astype(np.float32).std(axis=(0, 3))
            motion = (motion - motion.min()) / (np.ptp(motion) + 1e-9)
            return np.stack([motion * (k + 1) / len(classes) for k, _ in enumerate(classes)])

    def load_model(device="cpu"):
        return ClassMaps()
""")


@pytest.fixture(scope="module")
def duet_root(tmp_path_factory):
    """The first duet of DSOL's duet test (XbOYpwFkn7o, flute and violin) under its id, with dsol-duet built."""
    root = make_fixture(tmp_path_factory.mktemp("duet_root"), protocol_video_specs("dsol-duet", LISTS, 3))
    build_protocol(fixture_params(), root, "dsol-duet", LISTS)
    return root


def reference_duet_frame(maps: np.ndarray, boxes: dict, thres: float = 0.2) -> tuple[float, float]:
    """``eval_duet.py``'s lines for one frame, with the identity correspondence (``corr``: map k is
    class k of the sorted keylist): the mean over annotated classes of the cIoU of the class's map
    (224², > 0.2 × max) against its normalised boxes, and the NSA (share ≤ 0.2 over the other maps)."""
    nosound = []
    for idx in range(len(maps)):
        if idx in boxes:
            continue
        predmap = resize_bilinear(maps[idx], 224, 224)
        nosound.append(np.sum(predmap <= 0.2) / (224 * 224))
    ciou = []
    for idx in boxes:
        gtmap = np.zeros((224, 224))
        for box in boxes[idx]:
            box = np.array(box) * 224
            gtmap[int(box[1]): int(box[1] + box[3]), int(box[0]): int(box[0] + box[2])] = 1
        predmap = resize_bilinear(maps[idx], 224, 224)
        thresvalue = thres * np.max(predmap)
        ciou.append(np.sum((predmap > thresvalue) * (gtmap > 0)) / (np.sum(gtmap) + np.sum((predmap > thresvalue) * (gtmap == 0))))
    return float(np.mean(ciou)), float(np.mean(nosound))


def test_dsol_duet_items_and_recipe_are_eval_duets():
    from musicbench.metrics.recipes import dsol_duet_figures, dsol_duet_scores

    slots = protocol_slots(get_protocol("dsol-duet"), LISTS)
    truth = json.loads((DSOL / "duettest.json").read_text())
    folders = _frame_folders(truth)
    expected = 0
    for line in (DSOL / "duet_pairs_val.txt").read_text().splitlines():
        folder = line.split()[0][:-5]
        for second in sorted(int(name[len("frame_"):]) for name in folders.get(folder, {})):
            frames = sorted(key for key in folders[folder][f"frame_{second:03d}"] if truth[key]["bbox"])
            if frames:
                slot = slots.iloc[expected]
                annotation = json.loads(slot["annotation"])
                chosen = truth[frames[len(frames) // 2]]["bbox"]
                assert slot["video_id"] == folder.rsplit("_", 2)[0] and slot["start_sample"] == second * 11025
                assert annotation["classes"] == [DUETKEYS[box["category_id"]] for box in chosen]
                assert annotation["boxes"] == [box["box"] for box in chosen]
                expected += 1
    assert slots["item_id"].nunique() == expected == 2660 and set(slots["instrument"]) >= {"flute violin"}

    rng = np.random.default_rng(2020)
    cious, silent = [], []
    for _ in range(30):
        maps = rng.random((11, 14, 14)) ** 2  # DSOL's class maps: in [0, 1]
        classes = rng.choice(11, size=rng.integers(1, 3), replace=False)
        boxes = {int(c): [[rng.uniform(0, 0.5), rng.uniform(0, 0.5), rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5)]
                          for _ in range(rng.integers(1, 3))] for c in classes}
        pixels = {c: np.array(b) * [160, 120, 160, 120] for c, b in boxes.items()}  # a 160 × 120 frame
        value, quiet = dsol_duet_scores(maps, pixels, (120, 160))
        reference = reference_duet_frame(maps, boxes)
        assert (value, quiet) == pytest.approx(reference, abs=1e-12)
        cious.append(value)
        silent.append(quiet)
    figures = dsol_duet_figures(cious, silent)
    results = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
    assert (figures["success@0.3"], figures["success@0.5"]) == (results[6], results[10])  # eval_duet.py's print
    assert figures["auc"] == pytest.approx(np.trapezoid(results, [0.05 * i for i in range(21)]), abs=1e-12)
    assert figures["nsa"] == pytest.approx(np.mean(silent), abs=1e-12)


def test_dsol_duet_runs_end_to_end(duet_root, tmp_path):
    view = protocol_root(duet_root, "dsol-duet")
    items = view.read_verified_items("test")
    assert items and all(set(item.class_boxes) == {"flute", "violin"} for item in items[:1])
    model = tmp_path / "class_maps.py"
    model.write_text(CLASS_MODEL)
    runs = tmp_path / "runs"
    result = run_cli("evaluate", model, "--protocol", "dsol-duet", "--root", duet_root, "--out", runs / "maps", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads((runs / "maps" / "summary.json").read_text())
    maps = {item.item_id: np.load(runs / "maps" / "heatmaps" / f"{item.item_id}.npy") for item in items}
    assert all(value.shape[0] == 11 for value in maps.values())
    frames = [reference_duet_frame(maps[item.item_id], {KEYLIST.index(name): [_normalised(box, item) for box in boxes]
                                                      for name, boxes in item.class_boxes.items()}) for item in items]
    recipe = summary["paper_recipe"]
    assert recipe["recipe"] == "dsol-duet" and recipe["n_items"] == len(items)
    assert recipe["ciou_mean"] == pytest.approx(np.mean([c for c, _ in frames]), abs=1e-12)
    assert recipe["nsa"] == pytest.approx(np.mean([n for _, n in frames]), abs=1e-12)
    # musicbench's cIoU of an item: the mean over its annotated classes of each class map's (LVS median rule)
    from musicbench.metrics.localization import boxes_to_mask, ciou

    first = items[0]
    height, width = first.frames.shape[2:4]
    mine = np.mean([ciou(maps[first.item_id][KEYLIST.index(name)], boxes_to_mask(boxes, height, width))
                    for name, boxes in first.class_boxes.items()])
    rows = pd.read_parquet(runs / "maps" / "items.parquet").set_index("item_id")
    assert rows.loc[first.item_id, "ciou"] == pytest.approx(mine, abs=1e-12)

    # maps outside [0, 1] fail their items (NSA's absolute threshold needs them there); localize alone is refused
    loud = tmp_path / "loud.py"
    loud.write_text(CLASS_MODEL.replace("(k + 1) / len(classes)", "(k + 1)"))
    loud_summary = evaluate(loud, view, runs / "loud", device="cpu")
    assert loud_summary["n_excluded"] == len(items)
    assert "each must lie in [0, 1]" in next(iter(loud_summary["excluded_reasons"]))
    assert loud_summary["paper_recipe"]["ciou_mean"] == 0.0 and loud_summary["paper_recipe"]["nsa"] == 0.0
    with pytest.raises(MusicbenchError, match=r"has no localize_classes\(mixture, frames, sample_rate, classes\)"):
        evaluate(MOTION_ENERGY, view, runs / "solo-api", device="cpu")

    # export, run_model.py, score: the same
    exported, estimates = tmp_path / "export", tmp_path / "estimates"
    assert run_cli("export", exported, "--protocol", "dsol-duet", "--root", duet_root, "--runs", runs,
                   cwd=REPO_ROOT).returncode == 0
    assert json.loads((exported / "classes.json").read_text()) == KEYLIST
    ran = subprocess.run([sys.executable, exported / "run_model.py", model, exported, estimates], capture_output=True,
                         text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    from musicbench.export import read_item_estimates

    extra = estimates / items[0].item_id / "heatmap11.npy"  # one map more than the 11 classes: not this layout
    shutil.copyfile(estimates / items[0].item_id / "heatmap0.npy", extra)
    assert "has heatmap11.npy: an item of this protocol has 11 maps" in read_item_estimates(estimates, items[0], True).reason
    extra.unlink()
    result = run_cli("score", estimates, "--name", "from files", "--protocol", "dsol-duet", "--root", duet_root,
                     "--out", runs / "from-files", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert _ciou_column(runs / "from-files") == _ciou_column(runs / "maps")
    assert json.loads((runs / "from-files" / "summary.json").read_text())["paper_recipe"] == recipe

    board = build_leaderboard(runs, tmp_path / "board", duet_root)
    (table,) = board["tables"]
    assert table["protocol"]["scoring"] == "dsol-duet" and table["protocol"]["task"] == "localization"
    rows = {row["folder"]: row for row in table["rows"]}
    assert not rows["maps"]["untrusted"] and rows["maps"]["paper_recipe"] == recipe, rows["maps"]["problems"]
    assert rows["loud"]["rank"] is None and rows["loud"]["unranked"]  # every item failed: no map to re-score
    assert "| class cIoU mean | success@0.3 | success@0.5 | AUC | NSA |" in (tmp_path / "board" / "leaderboard.md").read_text()


def _normalised(box: np.ndarray, item) -> list[float]:
    height, width = item.frames.shape[2:4]
    return [box[0] / width, box[1] / height, box[2] / width, box[3] / height]
