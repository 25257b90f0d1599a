"""Verified reads: every benchmark file evaluate, score_run, the duet track and the demo pages read is
checked against its recorded SHA-256 first. Each attack runs on a copy of the small benchmark."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from musicbench.benchmark import DataRoot, read_mixtures
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.fsutil import write_parquet
from musicbench.harness.inference import run_inference
from musicbench.harness.scoring import score_run
from musicbench.leaderboard import build_leaderboard
from tests.conftest import REPO_ROOT, run_cli


def _copy(bench_root, tmp_path: Path) -> Path:
    """A copy of the shared benchmark that a test may damage."""
    root, _, _ = bench_root
    return Path(shutil.copytree(root, tmp_path / "root", ignore=shutil.ignore_patterns("score_cache")))


def _first_clip(root: Path) -> pd.Series:
    """The mixture-table row of source 0 of the first test item."""
    table = read_mixtures(DataRoot(root).mixtures_path)
    return table[table["split"] == "test"].sort_values(["item_id", "source_index"]).iloc[0]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_an_intact_root_verifies_and_records_its_ground_truth(bench_root):
    root, _, _ = bench_root
    data = DataRoot(root)
    for split in ("val", "test"):
        for track in ("mixtures", "duets"):
            data.verify_items(split, None, track)
    recorded = data.read_ground_truth()
    duets = read_mixtures(data.duets_path, ("stems_path", "boxes_path"))
    assert set(duets["stems_path"]) | set(duets["boxes_path"]) <= set(recorded)
    assert all(path.startswith("synth/") and len(sha) == 64 for path, sha in recorded.items())


def test_a_swapped_processed_flac_stops_the_run(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    clip = _first_clip(root)
    other = read_mixtures(DataRoot(root).mixtures_path).query("video_id != @clip.video_id").iloc[0]
    shutil.copy(root / other["audio_path"], root / clip["audio_path"])  # another valid FLAC, same length
    assert next(DataRoot(root).iter_items("test", 1)).item_id == clip["item_id"]  # it decodes: scored silently before
    with pytest.raises(MusicbenchError, match=rf"{clip['audio_path']}.*sha256 differs.*`musicbench validate`"):
        evaluate(None, root, tmp_path / "run", oracle="irm", device="cpu", limit=2)
    assert not (tmp_path / "run" / "items.parquet").exists()


def test_a_truncated_flac_is_one_line_not_a_traceback(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    audio = root / _first_clip(root)["audio_path"]
    audio.write_bytes(audio.read_bytes()[: audio.stat().st_size // 2])
    result = run_cli("evaluate", "--oracle", "irm", "--root", root, "--out", tmp_path / "run", "--limit", "2",
                     "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and audio.name in lines[0] and "musicbench validate" in lines[0], result.stderr


def test_a_modified_frame_archive_stops_scoring(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    evaluate(None, root, tmp_path / "run", oracle="mixture", device="cpu", limit=2)  # intact: scores
    frames = root / _first_clip(root)["frames_path"]
    _flip_byte(frames, frames.stat().st_size // 2)  # still a tar of the same size
    with pytest.raises(MusicbenchError, match=rf"{frames.name}.*`musicbench validate`"):
        score_run(tmp_path / "run", root, limit=2)


def test_a_modified_mixture_table_stops_the_run(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    data = DataRoot(root)
    table = read_mixtures(data.mixtures_path)
    table.loc[0, "gain"] = table.loc[0, "gain"] * 2  # a louder reference, same benchmark.json
    write_parquet(table, data.mixtures_path)
    with pytest.raises(MusicbenchError, match=r"tables fingerprint .*`musicbench validate`"):
        run_inference(None, root, tmp_path / "run", oracle="irm", limit=2)


@pytest.mark.parametrize("column", ["stems_path", "boxes_path"])
def test_modified_duet_stems_or_boxes_stop_the_run(bench_root, tmp_path, column):
    root = _copy(bench_root, tmp_path)
    duets = read_mixtures(DataRoot(root).duets_path, ("split", column))
    path = root / duets[duets["split"] == "test"].sort_values(column).iloc[0][column]
    if column == "boxes_path":  # every player one pixel to the right: valid JSON, wrong truth
        doc = json.loads(path.read_text())
        doc["boxes"] = [[[b[0] + 1, *b[1:]] for b in player] for player in doc["boxes"]]
        path.write_text(json.dumps(doc))
    else:
        _flip_byte(path, path.stat().st_size - 100)
    with pytest.raises(MusicbenchError, match=rf"{path.name}.*`musicbench validate`"):
        run_inference(None, root, tmp_path / "run", oracle="irm")


def test_the_board_skips_demo_pages_of_a_damaged_root(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    runs = tmp_path / "runs"
    evaluate(REPO_ROOT / "baselines" / "motion_energy.py", root, runs / "motion_energy", device="cpu", limit=2)
    audio = root / _first_clip(root)["audio_path"]
    audio.write_bytes(audio.read_bytes()[:1000])
    board = build_leaderboard(runs, tmp_path / "board", root, demo_items=1)
    rows = [row for table in board["tables"] for row in table["rows"]]
    assert rows and all(row["demo"] is None for row in rows)
    assert all("demo pages skipped" in row["demo_note"] and "musicbench validate" in row["demo_note"] for row in rows)
    assert (tmp_path / "board" / "index.html").is_file()


def test_a_forged_cache_entry_is_recomputed(bench_root, tmp_path):
    """A poisoned score cache: every entry rewritten with wrong numbers and a signature made
    without the cache's secret. The published numbers are the true ones."""
    root = _copy(bench_root, tmp_path)
    evaluate(None, root, tmp_path / "run", oracle="irm", device="cpu", limit=2)
    truth = pd.read_parquet(tmp_path / "run" / "items.parquet")
    for entry in DataRoot(root).score_cache_dir.glob("*.json"):
        doc = json.loads(entry.read_text())
        doc["value"] = {name: [99.0] * len(values) for name, values in doc["value"].items()}
        doc["hmac"] = "0" * 64
        entry.write_text(json.dumps(doc))
    again = score_run(tmp_path / "run", root, limit=2, oracle="irm")
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), truth.drop(columns="seconds"))
