"""`musicbench evaluate` and `validate-model` on a small processed MUSIC-Synth benchmark: real model
subprocesses, real scoring, every failure mode of a model recorded for its item."""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

from musicbench.benchmark import DataRoot, read_index
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.harness.inference import run_inference
from musicbench.harness.scoring import score_run
from musicbench.metrics import bss_eval_sources
from tests.conftest import REPO_ROOT, run_cli

EXAMPLE_MODEL = REPO_ROOT / "baselines" / "motion_energy.py"

# A model whose behaviour on the n-th item is MODES[n]: it tells the items apart by their mixtures
# (`order`), since nothing it writes survives the restarts of its process after a hang or a crash.
# Two items of the small benchmark share a mixture (the 3rd and the 6th): they come in one process,
# before anything restarts it, and are told apart by how often that mixture came.
FLAKY_MODEL = textwrap.dedent('''
    import os, sys, time
    import numpy as np

    MODES = ["ok", "shape", "raise", "silent", "sysexit", "nan", "hang", "exit", "ok"]

    class Flaky:
        def __init__(self, order):
            self.order, self.seen = order.split(","), []

        def separate(self, mixture, frames, sample_rate):
            key = f"{float(mixture.sum()):.6f}"
            positions = [n for n, other in enumerate(self.order) if other == key]
            mode = MODES[positions[self.seen.count(key)]]
            self.seen.append(key)
            estimates = np.stack([mixture / len(frames)] * len(frames)).astype(np.float32)
            if mode == "raise":
                raise RuntimeError("the model broke")
            if mode == "hang":
                time.sleep(600)
            if mode == "exit":
                os._exit(3)
            if mode == "sysexit":
                sys.exit("bye")
            if mode == "nan":
                estimates[0, 100] = np.nan
            if mode == "shape":
                estimates = estimates[:, :-1]
            if mode == "silent":
                estimates[1] = 0.0
            return estimates

    def load_model(order, device="cpu"):
        return Flaky(order)
''')
EXPECTED_REASONS = ["", "shape (2, 65534)", "RuntimeError: the model broke", "silent", "SystemExit: bye", "NaN or inf",
                    "timeout", "died", ""]


@pytest.fixture(scope="module")
def example_run(bench_root, tmp_path_factory):
    """The README's example model evaluated through the real CLI."""
    root, _, _ = bench_root
    out = tmp_path_factory.mktemp("runs") / "motion_energy"
    result = run_cli("evaluate", EXAMPLE_MODEL, "--root", root, "--out", out, "--device", "cpu", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    return root, out, result


def test_example_model_evaluates_end_to_end(example_run):
    root, out, result = example_run
    items = pd.read_parquet(out / "items.parquet")
    summary = json.loads((out / "summary.json").read_text())
    provenance = json.loads((out / "provenance.json").read_text())
    benchmark = json.loads((root / "mixtures" / "benchmark.json").read_text())
    mixtures = items[items["track"] == "mixtures"]
    assert mixtures["item_id"].nunique() == summary["n_items"] == 12 and (mixtures["status"] == "ok").all()
    assert summary["n_scored"] == 12 and summary["n_excluded"] == 0
    for name in ("nsdr", "sdr", "sir", "sar", "si_sdri", "ciou", "pointing_hit"):
        low, high = summary["metrics"][name]["ci95"]
        assert low <= summary["metrics"][name]["mean"] <= high
    # the numbers are the metric engine's on the harness-built items
    item = next(DataRoot(root).iter_items("test", limit=1))
    sdr, _, _ = bss_eval_sources(item.references, np.load(out / "estimates" / f"{item.item_id}.npy"))
    np.testing.assert_allclose(mixtures[mixtures["item_id"] == item.item_id]["sdr"], sdr, atol=1e-9)
    duets = pd.read_parquet(root / "mixtures" / "duets.parquet")
    assert summary["duets"]["n_scored"] == (duets["split"] == "test").sum() == 3
    assert np.isfinite(summary["duets"]["metrics"]["nsdr"]["mean"])
    assert set(summary["per_instrument"]) == {"acoustic_guitar", "cello", "flute", "violin"}
    localization = summary["localization"]
    assert localization["n"] == 24 and localization["ciou_mean"] == pytest.approx(items["ciou"].mean())
    assert 0 <= localization["auc_success"] <= 1 and 0 <= localization["ciou_success@0.5"] <= 1
    assert localization["pointing_game"] == pytest.approx(mixtures["pointing_hit"].mean())
    # the literature's other binarisations, per source and summarised (never ranked)
    from musicbench.metrics import auc_success, ciou_success

    for name, success_at in (("ciou_t05", 0.5), ("dsol_ciou", 0.3)):
        values = items[name].dropna()
        assert len(values) == 24 and values.between(0, 1).all()
        assert localization[f"{name}_mean"] == pytest.approx(values.mean())
        assert localization[f"{name}_success@{success_at}"] == pytest.approx(ciou_success(values, success_at))
        assert localization[f"{name}_auc"] == pytest.approx(auc_success(values))
    assert not items["ciou_t05"].dropna().equals(items["ciou"].dropna())
    assert provenance["benchmark_version"] == benchmark["benchmark_version"] == summary["benchmark_version"]
    assert provenance["device"] == "cpu" and provenance["uses_labels"] is False
    assert len(provenance["model_sha256"]) == 64 and provenance["metric_version"]
    printed = " ".join(result.stdout.split())  # the table wraps at the terminal width
    assert "nsdr" in printed and "duet track (separate_at): 3/3 items scored" in printed


def test_scoring_workers_get_the_same_scores_without_the_pictures(example_run, tmp_path):
    """--jobs 2 sends each worker the item without its frames (only their size is read): the rows,
    localization included, equal one process's; the items themselves keep their frames."""
    from musicbench.harness.scoring import _without_pictures, score_items

    root, out, _ = example_run
    items = DataRoot(root).read_verified_items("test", tracks=("mixtures", "duets"))
    tables = [score_items(out, root, cache_dir=tmp_path / f"cache{jobs}", jobs=jobs, items=items, show_progress=False)
              for jobs in (1, 2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert tables[0]["ciou"].notna().sum() == 24
    light = _without_pictures(items[0])
    assert light.frames.shape[2:] == items[0].frames.shape[2:] and light.frames.size == 0 and items[0].frames.size


def test_motion_alone_separates_a_still_scene_and_not_a_lively_one(example_run, still_bench_root, tmp_path):
    """Where only playing moves (`synth.scene: still`), the reference heuristic (per-bin envelope
    against each video's motion) separates well above the example model, on both tracks, and both
    point at the players; in a lively scene (the default: idling, gestures, light, shake,
    bystanders) motion alone loses that edge: on the same videos and items, both fall."""
    lively_root, example_lively, _ = example_run
    still_root, _, _ = still_bench_root
    model = REPO_ROOT / "baselines" / "sound_follows_motion.py"
    still = {name: evaluate(path, still_root, tmp_path / f"still-{name}", device="cpu")
             for name, path in (("sfm", model), ("example", EXAMPLE_MODEL))}
    lively = {"sfm": evaluate(model, lively_root, tmp_path / "lively-sfm", device="cpu"),
              "example": json.loads((example_lively / "summary.json").read_text())}
    nsdr = lambda run, track=None: (run[track] if track else run)["metrics"]["nsdr"]["mean"]  # noqa: E731
    assert still["sfm"]["n_excluded"] == 0 and still["sfm"]["duets"]["n_excluded"] == 0
    assert nsdr(still["sfm"]) > nsdr(still["example"]) + 0.5 and nsdr(still["example"]) > 0
    assert nsdr(still["sfm"], "duets") > nsdr(still["example"], "duets") + 1.0
    assert still["sfm"]["localization"]["pointing_game"] >= 0.9
    for name in ("sfm", "example"):
        assert nsdr(lively[name]) < nsdr(still[name]) - 0.3, name
    with pytest.raises(MusicbenchError, match="load_model"):  # an option it does not take is an error, not ignored
        run_inference(model, still_root, tmp_path / "typo", options={"raduis": "3"}, limit=1)


def test_oracles_bracket_the_board(bench_root, tmp_path):
    root, _, _ = bench_root
    summaries = {kind: evaluate(None, root, tmp_path / kind, oracle=kind, device="cpu", limit=6)
                 for kind in ("mixture", "ibm", "irm")}
    floor = pd.read_parquet(tmp_path / "mixture" / "items.parquet")
    np.testing.assert_allclose(floor["nsdr"], 0.0, atol=1e-9)  # the mixture as its own estimate
    assert 0 < summaries["mixture"]["metrics"]["ciou"]["mean"] < 1  # the centre prior, scored like a heatmap
    assert summaries["ibm"]["metrics"].get("ciou") is None  # the ceilings say nothing about where
    for kind in ("ibm", "irm"):
        assert summaries[kind]["metrics"]["nsdr"]["mean"] > 10, kind
        assert summaries[kind]["duets"]["metrics"]["nsdr"]["mean"] > 5, kind
    with pytest.raises(MusicbenchError, match="unknown oracle"):
        run_inference(None, root, tmp_path / "bad", oracle="perfect")


def test_every_model_failure_is_recorded_and_the_run_goes_on(bench_root, tmp_path):
    root, _, _ = bench_root
    model = tmp_path / "flaky.py"
    model.write_text(FLAKY_MODEL)
    out = tmp_path / "run"
    order = ",".join(f"{float(item.mixture.sum()):.6f}" for item in DataRoot(root).iter_items("test", len(EXPECTED_REASONS)))
    summary = evaluate(model, root, out, device="cpu", options={"order": order}, timeout=3.0,
                       limit=len(EXPECTED_REASONS))
    inference = pd.read_parquet(out / "inference.parquet")
    assert list(inference["status"]) == ["ok" if not r else "failed" for r in EXPECTED_REASONS]
    for reason, expected in zip(inference["reason"], EXPECTED_REASONS):
        assert expected in reason and ("\n" not in reason)
    items = pd.read_parquet(out / "items.parquet")
    assert items["item_id"].nunique() == len(EXPECTED_REASONS)  # nothing silently dropped
    assert summary["n_items"] == 9 and summary["n_scored"] == 2 and summary["n_excluded"] == 7
    assert sum(summary["excluded_reasons"].values()) == 7
    assert summary["duets"] is None  # no separate_at: n/a on the board


def test_a_model_that_cannot_load_is_one_clear_error(bench_root, tmp_path):
    root, _, _ = bench_root
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy\nraise ImportError('needs a package we do not have')\n")
    result = run_cli("evaluate", broken, "--root", root, "--out", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "loading failed: ImportError: needs a package we do not have" in result.stderr
    missing = run_cli("evaluate", tmp_path / "nowhere.py", "--root", root, "--out", tmp_path / "run2")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    neither = run_cli("evaluate", "--root", root)
    assert neither.returncode == 2 and "either a model file or --oracle" in neither.stderr


def test_scores_are_cached_and_a_submission_can_be_rescored(example_run, tmp_path):
    root, out, _ = example_run
    first = pd.read_parquet(out / "items.parquet")
    # a copy of the submission (estimates + inference record) scored with a fresh cache
    submission = tmp_path / "submission"
    shutil.copytree(out / "estimates", submission / "estimates")
    shutil.copytree(out / "heatmaps", submission / "heatmaps")
    shutil.copy(out / "inference.parquet", submission)
    cache = tmp_path / "cache"
    again = score_run(submission, root, cache_dir=cache)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), first.drop(columns="seconds"))
    # the cache answers with what it holds: an intact entry is read back, not recomputed...
    entries = sorted(cache.glob("*.json"))
    written = {entry: entry.stat().st_mtime_ns for entry in entries}
    pd.testing.assert_frame_equal(score_run(submission, root, cache_dir=cache).drop(columns="seconds"),
                                  first.drop(columns="seconds"))
    assert {entry: entry.stat().st_mtime_ns for entry in entries} == written
    # ...a tampered entry (edited numbers, its signature kept) is detected and recomputed...
    tampered = 0
    for entry in entries:
        doc = json.loads(entry.read_text())
        if "sdr" in doc["value"]:
            doc["value"]["sdr"] = [99.0] * len(doc["value"]["sdr"])
            entry.write_text(json.dumps(doc))
            tampered += 1
    assert tampered == first[first["status"] == "ok"]["item_id"].nunique()
    pd.testing.assert_frame_equal(score_run(submission, root, cache_dir=cache).drop(columns="seconds"),
                                  first.drop(columns="seconds"))
    # ...and a changed estimate has a new hash, so it is scored afresh
    changed = submission / "estimates" / f"{first['item_id'].iloc[0]}.npy"
    np.save(changed, np.load(changed) * 0.5)
    score_run(submission, root, cache_dir=cache)
    assert len(list(cache.glob("*.json"))) == len(entries) + 1


def test_validate_model_passes_the_example_and_explains_failures(bench_root, tmp_path):
    root, _, _ = bench_root
    good = run_cli("validate-model", EXAMPLE_MODEL, "--root", root)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "val-" in good.stdout and "all checks passed" in good.stdout
    wrong = tmp_path / "wrong_shape.py"
    wrong.write_text(textwrap.dedent('''
        import numpy as np
        class Model:
            def separate(self, mixture, frames, sample_rate):
                return np.zeros((len(frames), len(mixture) // 2))
        def load_model(device="cpu"):
            return Model()
    '''))
    bad = run_cli("validate-model", wrong, "--root", tmp_path / "no_benchmark_here")
    assert bad.returncode == 1
    assert "generated" in bad.stdout and "expected (2, 65535)" in bad.stdout


def _dsol_file(root, path, video_ids):
    """MUSIC-Synth's boxes of `video_ids` written in DSOL's format: one annotated frame per second."""
    index = read_index(root / "processed" / "videos.parquet").set_index("video_id")
    document = {}
    for video_id in video_ids:
        doc = json.loads((root / index.loc[video_id, "boxes_path"]).read_text())
        for second in range(int(len(doc["boxes"][0]) / doc["fps"])):
            frame = int((second + 0.5) * doc["fps"])
            document[f"{video_id}_0_1000/frame_{second:03d}/{frame:05d}.jpg"] = {
                "bbox": [{"box": doc["boxes"][0][frame], "category_id": 1}], "wdith": doc["width"], "height": doc["height"]}
    path.write_text(json.dumps(document))
    return path


def test_localization_from_dsol_annotations_for_videos_without_boxes(example_run, tmp_path):
    """Real MUSIC has no boxes of its own: DSOL-format annotations stand in, and score like the truth."""
    root, out, _ = example_run
    copy = tmp_path / "root"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("score_cache"))
    index = pd.read_parquet(copy / "processed" / "videos.parquet")
    boxes = _dsol_file(copy, tmp_path / "solotest.json", list(index[index["kind"] == "solo"]["video_id"]))
    index["boxes_path"] = ""
    index.to_parquet(copy / "processed" / "videos.parquet", index=False)
    shutil.copytree(out, tmp_path / "run", ignore=shutil.ignore_patterns("items.parquet", "summary.json"))
    without = score_run(tmp_path / "run", copy)
    assert without["ciou"].isna().all()
    annotated = score_run(tmp_path / "run", copy, boxes_file=boxes)
    truth = pd.read_parquet(out / "items.parquet")
    mixtures = annotated["track"] == "mixtures"
    assert annotated[mixtures]["ciou"].notna().all()
    # the annotated frame lies within half a second of the clip's centre: boxes nearly the truth's
    assert abs(annotated[mixtures]["ciou"].mean() - truth[truth["track"] == "mixtures"]["ciou"].mean()) < 0.1
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"not a frame key": {}}))
    with pytest.raises(MusicbenchError, match="frame_<sec>"):
        score_run(tmp_path / "run", copy, boxes_file=broken)


# Splits the mixture evenly: no localize, no separate_at.
EVEN_SPLIT_MODEL = textwrap.dedent('''
    import numpy as np

    class EvenSplit:
        def separate(self, mixture, frames, sample_rate):
            return np.stack([mixture / len(frames)] * len(frames)).astype(np.float32)

    def load_model(device="cpu"):
        return EvenSplit()
''')
# Answers its first item, then hangs: killed mid-run, it leaves a half-written run behind.
HANGS_AFTER_ONE_MODEL = EVEN_SPLIT_MODEL.replace("    def separate(self, mixture, frames, sample_rate):\n", '''\
    calls = 0

    def separate(self, mixture, frames, sample_rate):
        EvenSplit.calls += 1
        if EvenSplit.calls > 1:
            import time
            time.sleep(600)
''')


def _tree(folder):
    """Every file under `folder`: relative path → bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_rerun_into_an_existing_run_is_refused_and_overwrite_replaces_it_whole(bench_root, tmp_path):
    """The stale-heatmaps attack: a model without localize rerun into a localizing model's folder was
    scored on the heatmaps left there (cIoU 0.15, pointing 1.0)."""
    root, _, _ = bench_root
    out = tmp_path / "runs" / "mine"
    evaluate(EXAMPLE_MODEL, root, out, device="cpu", limit=3)
    before = _tree(out)
    assert any(name.startswith("heatmaps/") for name in before)
    model = tmp_path / "even_split.py"
    model.write_text(EVEN_SPLIT_MODEL)
    refused = run_cli("evaluate", model, "--root", root, "--out", out, "--device", "cpu", "--limit", "3")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "already holds a run" in refused.stderr and "--overwrite" in refused.stderr and "--out" in refused.stderr
    assert _tree(out) == before

    summary = evaluate(model, root, out, device="cpu", limit=3, overwrite=True)
    assert not (out / "heatmaps").exists() and "ciou" not in summary["metrics"] and summary["localization"] is None
    assert "pointing_hit" not in summary["metrics"] and summary["duets"] is None
    items = pd.read_parquet(out / "items.parquet")
    assert items["ciou"].isna().all() and items["pointing_hit"].isna().all()
    assert sorted(p.name for p in (out / "estimates").iterdir()) == sorted(f"{i}.npy" for i in items["item_id"].unique())
    assert json.loads((out / "provenance.json").read_text())["model_file"] == str(model)
    assert [p.name for p in out.parent.iterdir()] == ["mine"]  # no temporary folder left


def _processes_naming(text: str) -> list[str]:
    """Command lines of the running processes whose arguments mention `text`."""
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command and int(pid) != os.getpid():
            found.append(command)
    return found


@pytest.mark.parametrize("signum", ["SIGKILL", "SIGTERM"])
def test_a_killed_or_failed_run_keeps_the_old_run_and_leaves_nothing_behind(bench_root, tmp_path, signum):
    """Killing evaluate while the model hung left 3 model processes per run (reparented to PID 1), a
    scratch folder and a half-written run folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from musicbench.leaderboard.runs import find_runs

    root, _, _ = bench_root
    runs = tmp_path / "runs"
    evaluate(None, root, runs / "mine", oracle="mixture", device="cpu", limit=3)
    before = _tree(runs / "mine")
    model = tmp_path / "hangs.py"
    model.write_text(HANGS_AFTER_ONE_MODEL)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "musicbench", "evaluate", str(model), "--root", str(root), "--out", str(runs / "mine"),
         "--device", "cpu", "--overwrite", "--timeout", "600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, "TMPDIR": str(scratch)})
    try:
        deadline = time.monotonic() + 300
        while not list(runs.glob(".mine.tmp-*/estimates/*.npy")):
            assert process.poll() is None and time.monotonic() < deadline, "the hanging run never wrote an estimate"
            time.sleep(0.5)
        assert _processes_naming(str(runs)), "no model process is running"
        assert [p.name for p in runs.glob(".mine.tmp-*")] == [f".mine.tmp-{process.pid}"]  # the half-run
        assert [p.name for p in scratch.iterdir()][0].startswith("musicbench-model-")  # the model's scratch folder
    finally:
        process.send_signal(getattr(signal, signum))  # the harness alone: its model process must follow it
        code = process.wait(timeout=60)
    assert code == (-9 if signum == "SIGKILL" else 143)
    deadline = time.monotonic() + 20
    while (_processes_naming(str(runs)) or list(runs.glob(".*")) or list(scratch.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_naming(str(runs)) == []
    assert sorted(p.name for p in runs.iterdir()) == ["mine"] and list(scratch.iterdir()) == []
    assert _tree(runs / "mine") == before
    found, warnings = find_runs(runs)
    assert [run.folder for run in found] == ["mine"] and found[0].oracle == "mixture" and warnings == []

    broken = tmp_path / "broken.py"
    broken.write_text("raise ImportError('needs a package we do not have')\n")
    with pytest.raises(MusicbenchError, match="loading failed"):
        evaluate(broken, root, runs / "mine", device="cpu", limit=3, overwrite=True)
    assert _tree(runs / "mine") == before
    assert sorted(p.name for p in runs.iterdir()) == ["mine"]  # its own folder removed


def test_a_mistyped_split_names_the_splits_there_are(bench_root, tmp_path):
    root, _, _ = bench_root
    with pytest.raises(MusicbenchError, match=r"unknown split 'valid': the benchmark's items are in the splits val and test; "
                                              r"choose --split test or --split val$"):
        run_inference(None, root, tmp_path / "run", oracle="irm", split="valid", limit=1)
    result = run_cli("evaluate", "--oracle", "irm", "--root", root, "--out", tmp_path / "cli", "--split", "valid")
    assert result.returncode != 0 and "unknown split 'valid'" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


SLOW_LOCALIZER = """
import time

import numpy as np


class SlowLocalizer:
    def separate(self, mixture, frames, sample_rate):
        return np.repeat(mixture[None] / frames.shape[0], frames.shape[0], axis=0)

    def localize(self, mixture, frames, sample_rate):
        time.sleep(0.3)
        return np.ones(frames.shape[:1] + frames.shape[2:4], dtype=np.float32)


def load_model(device="cpu"):
    return SlowLocalizer()
"""


def test_an_items_seconds_count_localize_too(bench_root, tmp_path):
    """The cost of an item is all the model did for it: a model that separates at once and localizes
    in 0.3 s shows at least 0.3 s per item (it showed only separate's time)."""
    root, _, _ = bench_root
    model = tmp_path / "slow_localizer.py"
    model.write_text(SLOW_LOCALIZER)
    run_inference(model, root, tmp_path / "run", limit=2)
    seconds = pd.read_parquet(tmp_path / "run" / "inference.parquet").query("track == 'mixtures'")["seconds"]
    assert len(seconds) == 2 and (seconds >= 0.3).all(), seconds


def test_commands_run_from_any_folder_of_the_project(bench_root, tmp_path):
    """Without --params, a command reads the project's params.yaml (the nearest folder above with
    dvc.yaml), and its relative dataset.root is relative to that file, not to the current folder."""
    root, params, _ = bench_root
    project = tmp_path / "project"
    (project / "models" / "mine").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "dataset": {**params["dataset"], "root": "data"}}))
    (project / "data").symlink_to(root)
    deep = project / "models" / "mine"
    assert "ok: every file listed in" in " ".join(run_cli("validate", cwd=deep).stderr.split())
    # an explicit --params from elsewhere: its dataset.root is still relative to its own folder
    elsewhere = run_cli("validate", "--params", project / "params.yaml", cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr
    # outside any project: the hint names the cause; a root that is not there says so, not "run mixtures"
    outside = run_cli("evaluate", "--oracle", "irm", cwd=tmp_path)
    assert outside.returncode == 2 and "no params.yaml in" in outside.stderr and "--params" in outside.stderr
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "dataset": {**params["dataset"], "root": "gone"}}))
    missing = run_cli("evaluate", "--oracle", "irm", "--out", tmp_path / "run", cwd=deep)
    assert missing.returncode == 2 and f"no data root at '{project / 'gone'}'" in " ".join(missing.stderr.split())


OPTIONED_MODEL = """
import numpy as np
from helpers import share  # a module beside the model file


class Split:
    def __init__(self, weight):
        self.weight = weight

    def separate(self, mixture, frames, sample_rate):
        return share(mixture, frames.shape[0]) * self.weight


def load_model(device="cpu", weight="1.0"{catch_all}):
    return Split(float(weight))
"""


@pytest.mark.parametrize("catch_all", ["", ", **rest"])
def test_options_must_be_parameters_of_load_model(bench_root, tmp_path, catch_all):
    """A misspelt --option is refused before any item runs; a **kwargs catch-all takes it, with a note."""
    root, _, _ = bench_root
    (tmp_path / "helpers.py").write_text("import numpy as np\n\ndef share(mixture, n):\n"
                                         "    return np.repeat(mixture[None] / n, n, axis=0)\n")
    model = tmp_path / "optioned.py"
    model.write_text(OPTIONED_MODEL.replace("{catch_all}", catch_all))
    result = run_cli("evaluate", model, "--root", root, "--out", tmp_path / "run", "--limit", "1", "--option", "weigth=0.5")
    text = " ".join(result.stderr.split())
    if catch_all:
        assert result.returncode == 0, text
        assert "note: option(s) weigth are not parameters of load_model" in text
        assert json.loads((tmp_path / "run" / "model.json").read_text())["undeclared_options"] == ["weigth"]
    else:
        assert result.returncode == 2 and "load_model has no parameter 'weigth'; it takes device, weight" in text
        assert not (tmp_path / "run").exists() and "Traceback" not in text
    good = run_cli("evaluate", model, "--root", root, "--out", tmp_path / "good", "--limit", "1", "--option", "weight=0.5")
    assert good.returncode == 0 and "note:" not in good.stderr, good.stderr


def test_a_model_object_is_evaluated_in_process_like_a_model_file(example_run, bench_root, tmp_path):
    """`evaluate_model` (a training loop's route): the same items, scores and run folder as the
    model file through the harness, with provenance saying it ran in-process, unconfined."""
    import importlib.util

    from musicbench.evaluate import evaluate_model
    from musicbench.leaderboard.runs import load_run

    root = tmp_path / "root"  # the harness renews the score cache's key after an unconfined model
    shutil.copytree(bench_root[0], root)
    spec = importlib.util.spec_from_file_location("motion_energy_in_process", EXAMPLE_MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = evaluate_model(module.load_model(), root, tmp_path / "run", split="test", name="motion in-process")
    by_file = pd.read_parquet(example_run[1] / "items.parquet").sort_values(["item_id", "source_index"])
    in_process = pd.read_parquet(tmp_path / "run" / "items.parquet").sort_values(["item_id", "source_index"])
    for column in ("item_id", "nsdr", "sir", "sar", "ciou", "pointing_hit", "item_key"):
        assert in_process[column].reset_index(drop=True).equals(by_file[column].reset_index(drop=True)), column
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["confined"] is False and provenance["confinement"].startswith("in-process, unconfined")
    assert provenance["model_object"] == "MotionEnergySplit" and summary["name"] == "motion in-process"
    run = load_run(tmp_path / "run")
    assert not run.invalid, run.invalid

    class Broken:
        def separate(self, mixture, frames, sample_rate):
            raise ValueError("no")

    broken = evaluate_model(Broken(), root, tmp_path / "broken", split="val", limit=2)
    reasons = pd.read_parquet(tmp_path / "broken" / "inference.parquet")["reason"]
    assert broken["n_scored"] == 0 and reasons.str.startswith("ValueError: no").all()


def test_a_run_reads_and_decodes_each_item_once(bench_root, tmp_path, monkeypatch):
    """Inference and scoring share the items: a run reads and decodes each track's items once (it
    read them twice, once to run the model and once to score it), with the same scores."""
    root = tmp_path / "root"
    shutil.copytree(bench_root[0], root)
    reads: list[tuple[str, str]] = []
    real = DataRoot.iter_items

    def counted(self, split="test", limit=None, track="mixtures", *args, **kwargs):
        reads.append((split, track))
        return real(self, split, limit, track, *args, **kwargs)

    monkeypatch.setattr(DataRoot, "iter_items", counted)
    summary = evaluate(EXAMPLE_MODEL, root, tmp_path / "run", device="cpu")
    assert sorted(reads) == [("test", "duets"), ("test", "mixtures")]
    first = pd.read_parquet(tmp_path / "run" / "items.parquet")
    reads.clear()
    rescored = score_run(tmp_path / "run", root, cache_dir=tmp_path / "fresh-cache")  # read from disk, scored afresh
    assert sorted(reads) == [("test", "duets"), ("test", "mixtures")]
    for column in ("nsdr", "sir", "sar", "ciou", "pointing_hit"):
        assert rescored[column].reset_index(drop=True).equals(first[column].reset_index(drop=True)), column
    assert summary["n_scored"] == first.query("track == 'mixtures'")["item_id"].nunique()


def test_the_cpu_device_is_chosen_without_importing_torch():
    """Importing torch costs about a second of every evaluation's start: `--device cpu` (and `auto`
    on a machine without a GPU driver) never import it."""
    import subprocess
    import sys

    from musicbench.device import gpu_driver_present

    code = ("import sys; from musicbench.device import resolve_device; "
            "print(resolve_device('cpu'), resolve_device('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "cpu" and out[2] == str(gpu_driver_present())  # torch only where a GPU could be
    if not gpu_driver_present():
        assert out[1] == "cpu"


def test_an_in_process_model_returns_what_the_model_process_may(bench_root, tmp_path):
    """The in-process route refuses what the model process refuses (integer PCM, complex values):
    the same model cannot score differently by route."""
    from musicbench.evaluate import evaluate_model

    root = tmp_path / "root"
    shutil.copytree(bench_root[0], root)

    class Integers:
        def __init__(self, dtype):
            self.dtype = dtype

        def separate(self, mixture, frames, sample_rate):
            return np.repeat(mixture[None] * 1000, frames.shape[0], axis=0).astype(self.dtype)

    for dtype, words in ((np.int16, "return floats"), (np.complex64, "not an array of numbers")):
        evaluate_model(Integers(dtype), root, tmp_path / f"run-{np.dtype(dtype).name}", split="val", limit=1)
        reasons = pd.read_parquet(tmp_path / f"run-{np.dtype(dtype).name}" / "inference.parquet")["reason"]
        assert reasons.str.contains(words).all(), reasons.tolist()
