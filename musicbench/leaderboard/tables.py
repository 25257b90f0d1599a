"""The board's flat outputs: the Parquet frame, the DVC metrics (one file per method) and the DVC plots data."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from musicbench.fsutil import atomic_write_text, ensure_writable_dir
from musicbench.leaderboard.board import (
    BOARD_METRICS,
    DUET_METRICS,
    LOCALIZATION_VARIANTS,
    Board,
    MetricBlock,
    Row,
    json_text,
)
from musicbench.leaderboard.slug import safe_slug

INTEGER_COLUMNS = ("rank", "n_parameters", "test_n", "test_n_videos", "n_items", "n_scored", "n_excluded")
PLOTS_COLUMNS = ("method", "instrument", "nsdr", "label")


def _block_columns(prefix: str, block: MetricBlock | None) -> dict[str, Any]:
    low, high = [None, None] if block is None else block.ci95
    return {f"{prefix}_mean": None if block is None else block.headline, f"{prefix}_ci_low": low,
            f"{prefix}_ci_high": high, f"{prefix}_median": None if block is None else block.median}


def _frame_record(row: Row) -> dict[str, Any]:
    record: dict[str, Any] = {
        "rank": row.rank, "name": row.name, "folder": row.folder, "kind": row.kind, "oracle": row.oracle,
        "uses_labels": row.uses_labels, "n_items": row.n_items, "n_scored": row.n_scored, "n_excluded": row.n_excluded,
        "unranked": row.unranked,
    }
    for key, _ in BOARD_METRICS:
        record.update(_block_columns(key, row.metrics.get(key)))
    for key, _, flat in LOCALIZATION_VARIANTS:
        record[flat] = (row.localization or {}).get(key)
    for key, _ in DUET_METRICS:
        record.update(_block_columns(f"duet_{key}", (row.duets or {}).get(key)))
    test = row.test
    record.update({"test_against": test and test.against, "test_n": test and test.n, "test_p": test and test.p,
                   "test_p_holm": test and test.p_holm, "test_median_diff": test and test.median_diff,
                   "test_mean_diff": test and test.mean_diff, "test_ci_low": test and test.ci95[0],
                   "test_ci_high": test and test.ci95[1], "test_n_videos": test and test.n_videos,
                   "test_verdict": test and test.verdict})
    prov = row.provenance
    record.update({"git_revision": prov.git_revision, "date": prov.date, "device": prov.device,
                   "n_parameters": prov.n_parameters, "seconds_per_item": prov.seconds_per_item,
                   "model_sha256": prov.model_sha256, "frames_fingerprint": prov.frames_fingerprint})
    record["options"] = json.dumps(prov.options, sort_keys=True, default=str)
    record["demo"] = row.demo
    return record


def board_frame(board: Board) -> pd.DataFrame:
    """One flat row per run of the board (leaderboard.parquet): table, rank, kind, every metric's mean,
    CI and median, duet metrics, the test against the baseline and the provenance."""
    records = []
    for table in board.tables:
        for row in table.rows:
            records.append({"table": table.id, "benchmark_version": table.benchmark_version, "split": table.split,
                            "metric_version": table.metric_version, **_frame_record(row)})
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        if frame[column].dtype == object and column not in INTEGER_COLUMNS:
            frame[column] = frame[column].astype("string")
    for column in INTEGER_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def method_keys(board: Board) -> dict[tuple[str, str], str]:
    """A unique method name per (table id, run folder) for the DVC metrics and plots: the run's name,
    with the benchmark version (a protocol's name) and folder added on clashes."""
    names: dict[str, int] = {}
    for table in board.tables:
        for row in table.rows:
            names[row.name] = names.get(row.name, 0) + 1
    keys, used = {}, set()
    for table in board.tables:
        for row in table.rows:
            where = table.benchmark_version if table.protocol is None else f"protocol {table.protocol['name']}"
            key = row.name if names[row.name] == 1 else f"{row.name} @ {where}"
            if key in used:
                key = f"{key} ({row.folder})"
            used.add(key)
            keys[(table.id, row.folder)] = key
    return keys


def dvc_metrics(board: Board) -> dict[str, dict[str, Any]]:
    """The DVC metrics by method (`method_keys`), every method with the same keys: rank and the track
    it is ranked in (main, uses labels, reference; with ", protocol NAME" in a protocol's table, whose
    ranks are among its runs only), mean NSDR,
    SIR, SAR, SI-SDRi, cIoU and pointing game, cIoU success@0.5 and AUC, NSDR's median and CI, duet
    NSDR, n_scored and the Holm-adjusted p-value against the baseline (None where not available)."""
    keys = method_keys(board)
    result = {}
    for table in board.tables:
        for row in table.rows:
            # the rank is within the row's track: a label-free and a label-using method can both be 1
            track = {"labels": "uses labels"}.get(row.kind, row.kind)
            entry: dict[str, Any] = {"rank": row.rank,
                                     "track": track if table.protocol is None else f"{track}, protocol {table.protocol['name']}"}
            for key, _ in BOARD_METRICS:
                block = row.metrics.get(key)
                entry[key] = None if block is None else block.mean
            for key, _, flat in LOCALIZATION_VARIANTS:
                entry[flat] = (row.localization or {}).get(key)
            nsdr = row.metrics.get("nsdr")
            entry["nsdr_median"] = None if nsdr is None else nsdr.median
            entry["nsdr_ci_low"], entry["nsdr_ci_high"] = [None, None] if nsdr is None else nsdr.ci95
            duet = (row.duets or {}).get("nsdr")
            entry["duet_nsdr"] = None if duet is None else duet.mean
            entry["n_scored"] = row.n_scored
            entry["p_vs_baseline"] = None if row.test is None else row.test.p_holm
            result[keys[(table.id, row.folder)]] = entry
    return result


def write_dvc_metrics(metrics: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """Write one ``<safe slug of the method>.json`` per method under `folder` (`dvc metrics show`
    prints a row per file) and remove the JSON files of methods that are gone; returns the files."""
    folder = ensure_writable_dir(folder)
    taken: set[str] = set()
    written = []
    for method, entry in metrics.items():
        path = folder / f"{safe_slug(method, taken)}.json"
        atomic_write_text(path, json_text(entry))
        written.append(path)
    for stale in set(folder.glob("*.json")) - set(written):
        stale.unlink()
    return written


def markup_inert(text: str) -> str:
    """`text` with ``<`` and ``>`` shown as ‹ and ›: `dvc plots show` writes plot data into a
    ``<script>`` block as JSON, where a run named ``</script><script>...`` would end the block and run."""
    return text.replace("<", "\u2039").replace(">", "\u203a")


def per_instrument_records(board: Board) -> list[dict[str, Any]]:
    """DVC plots rows: method, instrument, nsdr and label ("method · instrument") for every method
    and instrument of every table (the bar template plots nsdr against label); names `markup_inert`."""
    keys = {place: markup_inert(key) for place, key in method_keys(board).items()}
    records = []
    for table in board.tables:
        for row in table.rows:
            method = keys[(table.id, row.folder)]
            for instrument in table.instruments:
                value = row.per_instrument.get(instrument, {}).get("nsdr")
                if value is not None:
                    records.append({"method": method, "instrument": markup_inert(instrument), "nsdr": round(value, 4),
                                    "label": f"{method} · {markup_inert(instrument)}"})
    return records


def plots_csv(records: list[dict[str, Any]]) -> str:
    """`per_instrument_records` as CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(PLOTS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()
