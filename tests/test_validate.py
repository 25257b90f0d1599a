"""`musicbench validate` covers every file the benchmark reads: processed media, the mixture tables,
and the MUSIC-Synth stems and boxes the items use. Each damage is done to a copy of the small benchmark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from musicbench.benchmark import DUET_COLUMNS, DataRoot, read_mixtures
from musicbench.fsutil import write_parquet
from musicbench.process import validate_index
from tests.conftest import REPO_ROOT, run_cli


def _copy(bench_root, tmp_path: Path) -> Path:
    root, _, _ = bench_root
    return Path(shutil.copytree(root, tmp_path / "root", ignore=shutil.ignore_patterns("score_cache")))


def _problems(root: Path) -> set[tuple[str, str, str]]:
    return {(p.video_id, p.path, p.problem) for p in validate_index(DataRoot(root).index_path, root)}


def _duet(root: Path) -> pd.Series:
    return read_mixtures(DataRoot(root).duets_path, DUET_COLUMNS).sort_values("item_id").iloc[0]


def test_an_intact_benchmark_validates(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    assert _problems(root) == set()
    result = run_cli("validate", "--params", REPO_ROOT / "params.yaml", "--root", root)
    assert result.returncode == 0 and "mixture tables and the stems and boxes" in " ".join(result.stderr.split()), result.stderr


def test_a_truncated_stem_is_caught(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    duet = _duet(root)
    stems = root / duet["stems_path"]
    with open(stems, "r+b") as handle:
        handle.truncate(stems.stat().st_size // 2)
    assert _problems(root) == {(duet["video_id"], duet["stems_path"], "changed")}
    result = subprocess.run([sys.executable, "-m", "musicbench", "validate", "--params", str(REPO_ROOT / "params.yaml"),
                             "--root", str(root)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 1 and duet["stems_path"] in result.stderr and "changed" in result.stderr, result.stderr


def test_changed_boxes_and_missing_ground_truth_record_are_caught(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    duet = _duet(root)
    boxes = root / duet["boxes_path"]
    doc = json.loads(boxes.read_text())
    doc["boxes"][0][0][0] += 7
    boxes.write_text(json.dumps(doc))
    assert _problems(root) == {(duet["video_id"], duet["boxes_path"], "changed")}
    truth = DataRoot(root).ground_truth_path
    doc = json.loads(truth.read_text())
    del doc["sha256"][duet["stems_path"]]
    truth.write_text(json.dumps(doc))
    assert _problems(root) == {(duet["video_id"], duet["boxes_path"], "changed"),
                               (duet["video_id"], duet["stems_path"], "unrecorded")}


def test_a_doctored_mixture_table_is_caught(bench_root, tmp_path):
    root = _copy(bench_root, tmp_path)
    data = DataRoot(root)
    table = read_mixtures(data.mixtures_path)
    table.loc[0, "gain"] = table.loc[0, "gain"] * 2
    write_parquet(table, data.mixtures_path)
    problems = validate_index(data.index_path, root)
    assert [(p.path, p.problem) for p in problems] == [("mixtures", "stale")]
    assert "tables fingerprint" in problems[0].detail
