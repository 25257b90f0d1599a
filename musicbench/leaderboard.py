"""`musicbench leaderboard`: gather every run under ``runs/`` into the published leaderboard.

`build_leaderboard` reads the run folders written by `musicbench.evaluate.evaluate` (``summary.json``,
``provenance.json``, ``items.parquet``, ``estimates/``, ``heatmaps/``) and writes under the output
folder (default ``leaderboard/``)::

    leaderboard.md            Markdown tables, for READMEs and papers
    leaderboard.json          the whole board (tables, rows, tests, provenance, per-item NSDR)
    leaderboard.parquet       one flat row per run
    metrics.json              DVC metrics keyed by method (`dvc metrics show` / `dvc metrics diff`)
    plots/per_instrument_nsdr.csv   DVC plots data: mean NSDR per method and instrument (bar template)
    index.html                the static site: opens from disk, no server, no network
    assets/                   its stylesheet and scripts (copied from musicbench/site)
    demo/<method>.html        one demo page per method, its audio (WAV) and frames (PNG) in demo/<method>/

Honesty rules:

- Runs are ranked together only when they share the benchmark version, the split and the metric
  version: each such group gets its own table, and the board warns when there is more than one.
- Reference rows (runs whose ``provenance.oracle`` is set: the mixture floor, the IBM/IRM ceilings)
  are shown but never ranked. Label-free methods form the main track; methods that read the
  instrument labels (``uses_labels``) are marked and ranked in their own track.
- Every mean carries its 95% bootstrap CI (from the run's summary) and its median.
- Each method is compared with the table's best baseline by `SIGNIFICANCE_TEST` (`paired_test`).

Every string that comes from a run (names, folder names, options, reasons) is untrusted: it is
escaped for HTML (`html.escape`) and Markdown, reaches the page's scripts only through escaped
attributes (the scripts set ``textContent``, never ``innerHTML``), and file names of demo pages are
sanitised (`safe_slug`) and checked to stay inside the output folder.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd

from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_path, atomic_write_text, ensure_writable_dir, resolve_in_root

BOARD_SCHEMA = 1
ALPHA = 0.05
SIGNIFICANCE_TEST = (
    "Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, zero differences dropped) on per-item "
    "NSDR of the mixtures track (each item the mean over its sources), paired over the items that both "
    "runs scored; p-values Holm-adjusted over all the rows compared in a table (methods and references); "
    "significant when the adjusted p < 0.05"
)
# (key in summary metrics, column title); localization scores are fractions, the rest dB.
BOARD_METRICS: tuple[tuple[str, str], ...] = (
    ("nsdr", "NSDR (dB)"), ("sir", "SIR (dB)"), ("sar", "SAR (dB)"), ("si_sdri", "SI-SDRi (dB)"),
    ("ciou", "cIoU"), ("pointing_hit", "Pointing game"),
)
DUET_METRICS: tuple[tuple[str, str], ...] = (("nsdr", "Duet NSDR (dB)"), ("si_sdri", "Duet SI-SDRi (dB)"))
# summary.json ``localization``: the named variants pooled over sources (key, column title, metrics.json key).
LOCALIZATION_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("ciou_success@0.5", "cIoU success@0.5", "ciou_success_0_5"), ("auc_success", "cIoU AUC", "ciou_auc"),
)
INSTRUMENT_METRICS = ("nsdr", "sdr", "sir", "sar", "si_sdri")
KIND_LABELS = {
    "main": "Main track: label-free audio-visual methods",
    "labels": "Methods that use the instrument labels (ranked separately)",
    "reference": "References: not ranked",
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
SITE_ASSETS = ("leaderboard.css", "leaderboard.js", "demo.js")
DEMO_MARKER = ".musicbench-demo"


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One run folder as read from disk (see `load_run`); `problems` lists what could not be read."""

    folder: str
    path: Path
    summary: dict[str, Any]
    provenance: dict[str, Any]
    items: pd.DataFrame | None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The leaderboard name: summary ``name``, else provenance ``name``, else the folder name."""
        for source in (self.summary, self.provenance):
            value = source.get("name")
            if isinstance(value, str) and value:
                return value
        return self.folder

    @property
    def benchmark_version(self) -> str:
        return str(self.summary.get("benchmark_version") or self.provenance.get("benchmark_version") or "unknown")

    @property
    def split(self) -> str:
        return str(self.summary.get("split") or self.provenance.get("split") or "unknown")

    @property
    def metric_version(self) -> str:
        return str(self.provenance.get("metric_version") or "unknown")

    @property
    def oracle(self) -> str | None:
        value = self.provenance.get("oracle")
        return str(value) if value else None

    @property
    def uses_labels(self) -> bool:
        return bool(self.summary.get("uses_labels", self.provenance.get("uses_labels", False)))

    @property
    def kind(self) -> str:
        """``reference`` (an oracle), ``labels`` (uses instrument labels) or ``main``."""
        if self.oracle:
            return "reference"
        return "labels" if self.uses_labels else "main"


def _read_json(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"no {path.name}")
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name} is unreadable ({type(exc).__name__})")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path.name} is not a JSON object")
        return {}
    return value


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder. Missing or damaged files are listed in ``Run.problems``, never raised.

    items.parquet gets a ``track`` column ("mixtures") when it has none (runs made before duets).
    """
    path = Path(path)
    problems: list[str] = []
    summary = _read_json(path / "summary.json", problems)
    provenance = _read_json(path / "provenance.json", problems)
    items = None
    if (path / "items.parquet").is_file():
        try:
            items = pd.read_parquet(path / "items.parquet")
        except Exception as exc:  # pyarrow raises several types for a damaged file
            problems.append(f"items.parquet is unreadable ({type(exc).__name__})")
        else:
            if "track" not in items.columns:
                items["track"] = "mixtures"
    else:
        problems.append("no items.parquet")
    if summary and provenance and summary.get("benchmark_version") != provenance.get("benchmark_version"):
        problems.append("summary.json and provenance.json name different benchmark versions (summary.json used)")
    return Run(path.name, path, summary, provenance, items, problems)


def find_runs(runs_dir: str | os.PathLike) -> tuple[list[Run], list[str]]:
    """Every run folder directly under `runs_dir` (a folder with a summary.json), sorted by folder name,
    and warnings for the folders that were skipped (no summary.json, or an unreadable one)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise MusicbenchError(f"no runs folder at {str(runs_dir)!r}; run `musicbench evaluate` first")
    runs, warnings = [], []
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / "summary.json").is_file():
            warnings.append(f"{path.name}: skipped, no summary.json (an unfinished run?)")
            continue
        run = load_run(path)
        if not run.summary:
            warnings.append(f"{path.name}: skipped, {'; '.join(run.problems)}")
            continue
        runs.append(run)
    return runs, warnings


# --------------------------------------------------------------------------------------- statistics


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def per_item_values(items: pd.DataFrame | None, metric: str = "nsdr", track: str = "mixtures") -> pd.Series:
    """Per-item score of `track` (each item the mean over its scored sources), indexed by item_id;
    only items with status ok and a finite value."""
    if items is None or metric not in items.columns or items.empty:
        return pd.Series(dtype=float)
    rows = items[(items["track"] == track) & (items["status"] == "ok")]
    values = pd.to_numeric(rows[metric], errors="coerce").replace([np.inf, -np.inf], np.nan)
    per_item = values.groupby(rows["item_id"]).mean().dropna()
    return per_item.sort_index().astype(float)


def paired_test(method: pd.Series, baseline: pd.Series) -> dict[str, Any]:
    """`SIGNIFICANCE_TEST` of one method against the baseline, on the items both scored.

    Returns n (paired items), mean_diff and median_diff (method − baseline, dB), statistic, p
    (two-sided, None when untestable), direction (+1 method higher, −1 lower, 0 none: the sign of
    the signed-rank sum) and note (why no test was made, else "").
    """
    from scipy.stats import rankdata, wilcoxon

    common = method.index.intersection(baseline.index)
    diff = (method.loc[common] - baseline.loc[common]).to_numpy(dtype=np.float64)
    result: dict[str, Any] = {"n": int(diff.size), "mean_diff": None, "median_diff": None, "statistic": None,
                              "p": None, "direction": 0, "note": ""}
    if diff.size == 0:
        result["note"] = "no item scored by both runs"
        return result
    result["mean_diff"], result["median_diff"] = float(diff.mean()), float(np.median(diff))
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        result.update(p=1.0, note="identical per-item NSDR")
        return result
    ranks = rankdata(np.abs(nonzero))
    signed = float(ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum())
    result["direction"] = int(np.sign(signed))
    test = wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    result["statistic"], result["p"] = float(test.statistic), float(test.pvalue)
    return result


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None), in the input order."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running, m = 0.0, len(order)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def is_baseline(run: Run) -> bool:
    """Whether a run is one of musicbench's reference methods: its model file lies in a
    ``baselines/`` folder (oracles are references, not baselines)."""
    model_file = run.provenance.get("model_file")
    if run.oracle or not isinstance(model_file, str):
        return False
    return "baselines" in PurePath(model_file.replace("\\", "/")).parts[:-1]


# ------------------------------------------------------------------------------------------- naming


def safe_slug(text: str, taken: set[str] | None = None, max_length: int = 48) -> str:
    """A file-name-safe, unique slug for an untrusted name: ASCII letters, digits, ``-``, ``_``.

    Any other character becomes ``-``; a name that changed (or is empty, or is already `taken`,
    compared case-insensitively) gets ``-`` + 8 hex digits of its SHA-256. The slug is added to
    `taken`. It never contains a path separator, never starts with ``.`` or ``-``.
    """
    taken = set() if taken is None else taken
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_text).strip("-_")[:max_length].strip("-_")
    digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()
    if not slug or slug != text or slug.lower() in {t.lower() for t in taken}:
        slug = f"{slug or 'run'}-{digest[:8]}"
        n = 8
        while slug.lower() in {t.lower() for t in taken}:
            n += 2
            slug = f"{slug.rsplit('-', 1)[0]}-{digest[:n]}"
    taken.add(slug)
    return slug


def _inside(base: Path, *parts: str) -> Path:
    """``base / parts`` after checking that it stays inside `base` (parts are slugs, but check anyway)."""
    return resolve_in_root(base, Path(*parts))


# ------------------------------------------------------------------------------------------ the board


def _metric_block(values: Any) -> dict[str, Any] | None:
    if not isinstance(values, dict) or _finite(values.get("mean")) is None:
        return None
    ci = values.get("ci95") if isinstance(values.get("ci95"), (list, tuple)) else [None, None]
    ci = (list(ci) + [None, None])[:2]
    return {"mean": _finite(values.get("mean")), "median": _finite(values.get("median")),
            "ci95": [_finite(ci[0]), _finite(ci[1])], "n": int(values.get("n") or 0)}


def _seconds_per_item(run: Run) -> float | None:
    items = run.items
    if items is not None and "seconds" in items.columns:
        rows = items[(items["track"] == "mixtures") & (items["status"] == "ok")].drop_duplicates("item_id")
        seconds = pd.to_numeric(rows["seconds"], errors="coerce").dropna()
        if len(seconds):
            return float(seconds.mean())
    wall, n = _finite(run.provenance.get("wall_seconds")), run.summary.get("n_items")
    return wall / n if wall is not None and isinstance(n, int) and n > 0 else None


def _run_date(run: Run) -> str | None:
    for key in ("date", "created", "timestamp"):
        value = run.provenance.get(key)
        if isinstance(value, str) and value:
            return value
    for name in ("provenance.json", "summary.json"):
        try:
            mtime = (run.path / name).stat().st_mtime
        except OSError:
            continue
        return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return None


def _per_instrument(run: Run) -> dict[str, dict[str, float]]:
    items = run.items
    if items is not None and "instrument" in items.columns:
        rows = items[(items["track"] == "mixtures") & (items["status"] == "ok")]
        result: dict[str, dict[str, float]] = {}
        for instrument, group in rows.groupby("instrument"):
            means = {}
            for metric in INSTRUMENT_METRICS:
                if metric in group.columns:
                    values = pd.to_numeric(group[metric], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
                    if len(values):
                        means[metric] = float(values.mean())
            result[str(instrument)] = means
        return result
    stored = run.summary.get("per_instrument")
    if not isinstance(stored, dict):
        return {}
    return {str(k): {m: float(v[m]) for m in INSTRUMENT_METRICS if isinstance(v, dict) and _finite(v.get(m)) is not None}
            for k, v in stored.items()}


def _row(run: Run) -> dict[str, Any]:
    summary, prov = run.summary, run.provenance
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    duets = summary.get("duets") if isinstance(summary.get("duets"), dict) else None
    localization = summary.get("localization") if isinstance(summary.get("localization"), dict) else None
    duet_metrics = None
    if duets is not None:
        stored = duets.get("metrics") if isinstance(duets.get("metrics"), dict) else {}
        duet_metrics = {key: _metric_block(stored.get(key)) for key in ("nsdr", "sdr", "sir", "sar", "si_sdri")}
    n_parameters = prov.get("n_parameters")
    revision = prov.get("git_revision")
    return {
        "name": run.name, "folder": run.folder, "kind": run.kind, "rank": None, "oracle": run.oracle,
        "uses_labels": run.uses_labels, "baseline": is_baseline(run),
        "metrics": {key: _metric_block(metrics.get(key)) for key in ("nsdr", "sdr", "sir", "sar", "si_sdr", "si_sdri",
                                                                      "ciou", "pointing_hit")},
        "localization": None if localization is None else {str(k): _finite(v) for k, v in localization.items()},
        "duets": duet_metrics,
        "duet_items": int(duets["n_items"]) if duets is not None and isinstance(duets.get("n_items"), int) else None,
        "n_items": summary.get("n_items"), "n_scored": summary.get("n_scored"), "n_excluded": summary.get("n_excluded"),
        "excluded_reasons": summary.get("excluded_reasons") if isinstance(summary.get("excluded_reasons"), dict) else {},
        "per_instrument": _per_instrument(run),
        "per_item_nsdr": {str(k): float(v) for k, v in per_item_values(run.items).items()},
        "test": None,
        "provenance": {
            "benchmark_version": run.benchmark_version, "metric_version": run.metric_version, "split": run.split,
            "git_revision": str(revision) if revision else None, "date": _run_date(run),
            "device": str(prov["device"]) if prov.get("device") else None,
            "n_parameters": int(n_parameters) if isinstance(n_parameters, (int, float)) and not isinstance(n_parameters, bool) else None,
            "seconds_per_item": _seconds_per_item(run), "wall_seconds": _finite(prov.get("wall_seconds")),
            "model_file": str(prov["model_file"]) if prov.get("model_file") else None,
            "model_sha256": str(prov["model_sha256"]) if prov.get("model_sha256") else None,
            "options": prov.get("options") if isinstance(prov.get("options"), dict) else {},
            "package_versions": prov.get("package_versions") if isinstance(prov.get("package_versions"), dict) else {},
            "seed": prov.get("seed"),
        },
        "problems": list(run.problems),
        "demo": None, "demo_note": "",
    }


def _nsdr_mean(row: dict[str, Any]) -> float | None:
    block = row["metrics"].get("nsdr")
    return None if block is None else block["mean"]


def _sort_and_rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered main track, labels track, references; each by mean NSDR (descending). Main and
    labels rows get competition ranks (ties share a rank) within their track; references none."""
    ordered = []
    for kind in ("main", "labels", "reference"):
        group = [r for r in rows if r["kind"] == kind]
        group.sort(key=lambda r: (_nsdr_mean(r) is None, -(_nsdr_mean(r) or 0.0), r["name"], r["folder"]))
        previous, rank = None, 0
        for position, row in enumerate(group, start=1):
            value = _nsdr_mean(row)
            if kind == "reference" or value is None:
                continue
            if value != previous:
                rank, previous = position, value
            row["rank"] = rank
        ordered += group
    return ordered


def _choose_baseline(rows: list[dict[str, Any]], requested: str | None) -> tuple[dict | None, str]:
    candidates = [r for r in rows if r["kind"] != "reference" and _nsdr_mean(r) is not None and r["per_item_nsdr"]]
    if requested is not None:
        chosen = [r for r in rows if requested in (r["name"], r["folder"]) and r["per_item_nsdr"]]
        if chosen:
            return chosen[0], "the baseline requested with --baseline"
    baselines = [r for r in candidates if r["baseline"]]
    if baselines:
        best = max(baselines, key=lambda r: (r["kind"] == "main", _nsdr_mean(r), r["name"]))
        track = "label-free " if best["kind"] == "main" else ""
        return best, f"the best {track}musicbench baseline (model file in baselines/) by mean NSDR"
    if candidates:
        best = max(candidates, key=lambda r: (r["kind"] == "main", _nsdr_mean(r), r["name"]))
        return best, "no musicbench baseline in this table: the best-ranked method instead"
    return None, "no ranked method with per-item scores in this table"


def _add_tests(rows: list[dict[str, Any]], baseline: dict[str, Any] | None) -> None:
    if baseline is None:
        return
    reference = pd.Series(baseline["per_item_nsdr"], dtype=float)
    tested = []
    for row in rows:
        if row is baseline:
            row["test"] = {"against": baseline["name"], "verdict": "baseline", "n": len(reference), "p": None,
                           "p_holm": None, "mean_diff": None, "median_diff": None, "statistic": None,
                           "direction": 0, "note": "the baseline of this table"}
            continue
        result = paired_test(pd.Series(row["per_item_nsdr"], dtype=float), reference)
        result["against"] = baseline["name"]
        row["test"] = result
        tested.append(row)
    adjusted = holm([r["test"]["p"] for r in tested])
    for row, p_holm in zip(tested, adjusted):
        test = row["test"]
        test["p_holm"] = p_holm
        if p_holm is None:
            test["verdict"] = "not tested"
        elif p_holm < ALPHA and test["direction"] != 0:
            test["verdict"] = "better" if test["direction"] > 0 else "worse"
        else:
            test["verdict"] = "no significant difference"


def make_board(runs: list[Run], current_version: str | None = None, baseline: str | None = None,
               warnings: list[str] | None = None) -> dict[str, Any]:
    """The leaderboard as one JSON-able dict: a table per (benchmark version, split, metric version),
    the current benchmark version's first (`current_version`, else the version with most runs).

    Each table: benchmark_version, split, metric_version, current, warnings, baseline (name, why),
    instruments and rows (see `_row`), ranked by `_sort_and_rank`, each tested by `paired_test`.
    """
    warnings = list(warnings or [])
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.benchmark_version, run.split, run.metric_version), []).append(run)
    counts: dict[str, int] = {}
    for (version, _, _), members in groups.items():
        counts[version] = counts.get(version, 0) + len(members)
    if current_version is None and counts:
        current_version = max(counts, key=lambda v: (counts[v], v))
    versions = sorted(counts)
    if len(versions) > 1:
        warnings.insert(0, f"Runs on {len(versions)} benchmark versions ({', '.join(versions)}): each version is "
                           "ranked in its own table; numbers from different tables are not comparable.")
    if len(groups) > len(versions):
        warnings.insert(0, "Runs on different splits or metric versions: each combination is ranked in its own table.")
    tables = []
    keys = sorted(groups, key=lambda k: (k[0] != current_version, k[1] != "test", -counts[k[0]], k))
    for number, key in enumerate(keys, start=1):
        version, split, metric_version = key
        members = groups[key]
        rows = _sort_and_rank([_row(run) for run in members])
        table_warnings = []
        if version != current_version:
            table_warnings.append(f"Benchmark version {version} is not the current one ({current_version}): these runs "
                                  "were scored on other items and are ranked only among themselves.")
        for row in rows:
            for problem in row["problems"]:
                table_warnings.append(f"{row['name']} ({row['folder']}): {problem}")
        chosen, why = _choose_baseline(rows, baseline)
        _add_tests(rows, chosen)
        instruments = sorted({name for row in rows for name in row["per_instrument"]})
        tables.append({
            "id": f"table-{number}", "benchmark_version": version, "split": split, "metric_version": metric_version,
            "current": version == current_version, "warnings": table_warnings,
            "baseline": None if chosen is None else {"name": chosen["name"], "folder": chosen["folder"], "why": why},
            "instruments": instruments, "rows": rows,
        })
    return {
        "schema": BOARD_SCHEMA, "title": "musicbench leaderboard", "current_benchmark_version": current_version,
        "significance_test": {"description": SIGNIFICANCE_TEST, "alpha": ALPHA, "test": "wilcoxon signed-rank",
                              "correction": "holm", "metric": "nsdr", "track": "mixtures"},
        "warnings": warnings, "tables": tables,
    }


# ----------------------------------------------------------------------------------- flat outputs


def board_frame(board: dict[str, Any]) -> pd.DataFrame:
    """One flat row per run of the board (the Parquet file): table, rank, kind, every metric's mean,
    CI and median, duet metrics, the test against the baseline and the provenance."""
    records = []
    for table in board["tables"]:
        for row in table["rows"]:
            record: dict[str, Any] = {
                "table": table["id"], "benchmark_version": table["benchmark_version"], "split": table["split"],
                "metric_version": table["metric_version"], "rank": row["rank"], "name": row["name"],
                "folder": row["folder"], "kind": row["kind"], "oracle": row["oracle"], "uses_labels": row["uses_labels"],
                "n_items": row["n_items"], "n_scored": row["n_scored"], "n_excluded": row["n_excluded"],
            }
            for key, _ in BOARD_METRICS:
                block = row["metrics"].get(key) or {}
                record[f"{key}_mean"] = block.get("mean")
                record[f"{key}_ci_low"], record[f"{key}_ci_high"] = (block.get("ci95") or [None, None])
                record[f"{key}_median"] = block.get("median")
            for key, _, flat in LOCALIZATION_VARIANTS:
                record[flat] = (row["localization"] or {}).get(key)
            for key, _ in DUET_METRICS:
                block = (row["duets"] or {}).get(key) or {}
                record[f"duet_{key}_mean"] = block.get("mean")
                record[f"duet_{key}_ci_low"], record[f"duet_{key}_ci_high"] = (block.get("ci95") or [None, None])
                record[f"duet_{key}_median"] = block.get("median")
            test = row["test"] or {}
            record.update({"test_against": test.get("against"), "test_n": test.get("n"), "test_p": test.get("p"),
                           "test_p_holm": test.get("p_holm"), "test_median_diff": test.get("median_diff"),
                           "test_verdict": test.get("verdict")})
            prov = row["provenance"]
            record.update({key: prov[key] for key in ("git_revision", "date", "device", "n_parameters",
                                                      "seconds_per_item", "model_sha256")})
            record["options"] = json.dumps(prov["options"], sort_keys=True, default=str)
            record["demo"] = row["demo"]
            records.append(record)
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        if frame[column].dtype == object and column not in ("rank", "n_parameters", "test_n", "n_items", "n_scored", "n_excluded"):
            frame[column] = frame[column].astype("string")
    for column in ("rank", "n_parameters", "test_n", "n_items", "n_scored", "n_excluded"):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def _metric_keys(board: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Unique keys for metrics.json: the name, with the benchmark version (and folder) on clashes."""
    names: dict[str, int] = {}
    for table in board["tables"]:
        for row in table["rows"]:
            names[row["name"]] = names.get(row["name"], 0) + 1
    keys, used = {}, set()
    for table in board["tables"]:
        for row in table["rows"]:
            key = row["name"] if names[row["name"]] == 1 else f"{row['name']} @ {table['benchmark_version']}"
            if key in used:
                key = f"{key} ({row['folder']})"
            used.add(key)
            keys[(table["id"], row["folder"])] = key
    return keys


def dvc_metrics(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """metrics.json for DVC, keyed by method: mean NSDR, SIR, SAR, SI-SDRi, cIoU and pointing game
    (with NSDR's median and CI), cIoU success@0.5 and AUC, duet NSDR, rank, n_scored and the
    Holm-adjusted p-value against the baseline."""
    keys = _metric_keys(board)
    result = {}
    for table in board["tables"]:
        for row in table["rows"]:
            entry: dict[str, Any] = {"rank": row["rank"]}
            for key, _ in BOARD_METRICS:
                block = row["metrics"].get(key)
                entry[key] = None if block is None else block["mean"]
            for key, _, flat in LOCALIZATION_VARIANTS:
                entry[flat] = (row["localization"] or {}).get(key)
            nsdr = row["metrics"].get("nsdr") or {}
            entry["nsdr_median"] = nsdr.get("median")
            entry["nsdr_ci_low"], entry["nsdr_ci_high"] = nsdr.get("ci95") or [None, None]
            duet = (row["duets"] or {}).get("nsdr")
            entry["duet_nsdr"] = None if duet is None else duet["mean"]
            entry["n_scored"] = row["n_scored"]
            entry["p_vs_baseline"] = (row["test"] or {}).get("p_holm")
            result[keys[(table["id"], row["folder"])]] = entry
    return result


def per_instrument_records(board: dict[str, Any]) -> list[dict[str, Any]]:
    """DVC plots rows: method, instrument, nsdr and label ("method · instrument") for every method
    and instrument of every table (the bar template plots nsdr against label)."""
    keys = _metric_keys(board)
    records = []
    for table in board["tables"]:
        for row in table["rows"]:
            method = keys[(table["id"], row["folder"])]
            for instrument in table["instruments"]:
                value = row["per_instrument"].get(instrument, {}).get("nsdr")
                if value is not None:
                    records.append({"method": method, "instrument": instrument, "nsdr": round(value, 4),
                                    "label": f"{method} · {instrument}"})
    return records


# ----------------------------------------------------------------------------------------- markdown


def _md(text: Any) -> str:
    """Escape an untrusted string for a Markdown table cell: Markdown syntax and HTML both inert."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    text = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", text)
    return html.escape(text, quote=False)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _fmt_block(block: dict[str, Any] | None, digits: int = 2) -> str:
    if block is None:
        return "n/a"
    low, high = block["ci95"]
    ci = f" [{_fmt(low, digits)}, {_fmt(high, digits)}]" if low is not None and high is not None else ""
    return f"{_fmt(block['mean'], digits)}{ci}"


def _digits(key: str) -> int:
    return 3 if key in ("ciou", "pointing_hit") else 2


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _test_text(test: dict[str, Any] | None) -> str:
    if not test:
        return "n/a"
    if test["verdict"] == "baseline":
        return "baseline"
    if test.get("p") is None:
        return f"not tested ({test.get('note') or 'no p-value'})"
    arrow = {"better": "better", "worse": "worse"}.get(test["verdict"], "n.s.")
    return f"{arrow}: median Δ {test['median_diff']:+.2f} dB, p = {_fmt_p(test['p_holm'])} (n = {test['n']})"


def _kind_text(row: dict[str, Any]) -> str:
    if row["kind"] == "reference":
        return f"reference ({row['oracle']})"
    return "uses labels" if row["kind"] == "labels" else "main"


def render_markdown(board: dict[str, Any]) -> str:
    """leaderboard.md: per table the ranking (mean [95% CI] and median), the per-instrument NSDR and
    the provenance; every run string escaped."""
    out = [f"# {board['title']}", ""]
    out.append("Mean over items with its 95% bootstrap confidence interval, then the median. Reference rows "
               "(oracles) are not ranked; methods that use instrument labels are ranked separately from the "
               "main (label-free) track.")
    out += ["", f"Significance: {SIGNIFICANCE_TEST}.", ""]
    for warning in board["warnings"]:
        out += [f"> **Warning:** {_md(warning)}", ""]
    for table in board["tables"]:
        out.append(f"## Benchmark version `{_md(table['benchmark_version'])}` · split {_md(table['split'])} · "
                   f"metric version {_md(table['metric_version'])}" + ("" if table["current"] else " (not current)"))
        out.append("")
        for warning in table["warnings"]:
            out += [f"> **Warning:** {_md(warning)}", ""]
        if table["baseline"]:
            out += [f"Baseline of the tests: {_md(table['baseline']['name'])} ({_md(table['baseline']['why'])}).", ""]
        header = ["Rank", "Method", "Track"]
        for key, title in BOARD_METRICS:
            header += [title, "median"]
        header += [title for _, title, _ in LOCALIZATION_VARIANTS]
        header += [title for _, title in DUET_METRICS] + ["vs baseline (Wilcoxon, Holm)", "Items scored"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---:", ":---", ":---"] + ["---:"] * (len(header) - 3)) + "|")
        for row in table["rows"]:
            cells = ["—" if row["rank"] is None else str(row["rank"]), _md(row["name"]), _kind_text(row)]
            for key, _ in BOARD_METRICS:
                block = row["metrics"].get(key)
                cells += [_fmt_block(block, _digits(key)), "n/a" if block is None else _fmt(block["median"], _digits(key))]
            for key, _, _ in LOCALIZATION_VARIANTS:
                cells.append(_fmt((row["localization"] or {}).get(key), 3))
            for key, _ in DUET_METRICS:
                cells.append("n/a" if row["duets"] is None else _fmt_block(row["duets"].get(key)))
            cells += [_md(_test_text(row["test"])), f"{row['n_scored']}/{row['n_items']}"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        if table["instruments"]:
            out += ["Mean NSDR (dB) per instrument:", ""]
            out.append("| Method | " + " | ".join(_md(i) for i in table["instruments"]) + " |")
            out.append("|:---|" + "---:|" * len(table["instruments"]))
            for row in table["rows"]:
                values = [_fmt(row["per_instrument"].get(i, {}).get("nsdr")) for i in table["instruments"]]
                out.append(f"| {_md(row['name'])} | " + " | ".join(values) + " |")
            out.append("")
        out += ["Provenance:", "", "| Method | Benchmark version | Git revision | Date | Device | Parameters | s / item |",
                "|:---|:---|:---|:---|:---|---:|---:|"]
        for row in table["rows"]:
            prov = row["provenance"]
            out.append("| " + " | ".join([
                _md(row["name"]), _md(prov["benchmark_version"]), _md((prov["git_revision"] or "unknown")[:12]),
                _md(prov["date"] or "unknown"), _md(prov["device"] or "unknown"),
                "n/a" if prov["n_parameters"] is None else f"{prov['n_parameters']:,}",
                _fmt(prov["seconds_per_item"], 3)]) + " |")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ SVG


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    return [round(start + i * step, 10) for i in range(int((high - start) / step + 1e-9) + 1)]


def _range(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low, high = (min(finite + [0.0]), max(finite + [0.0])) if finite else (-1.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = 0.05 * (high - low)
    return low - pad, high + pad


def svg_per_instrument(table: dict[str, Any], colors: dict[str, str]) -> str:
    """Inline SVG: grouped horizontal bars of mean NSDR per instrument, one bar per method."""
    rows = [r for r in table["rows"] if r["per_instrument"]]
    instruments = table["instruments"]
    if not rows or not instruments:
        return '<p class="na">No per-instrument scores.</p>'
    values = [r["per_instrument"].get(i, {}).get("nsdr") for r in rows for i in instruments]
    low, high = _range(values)
    left, width, bar, gap = 130, 520, 11, 10
    group = bar * len(rows) + gap
    top = 20
    height = top + group * len(instruments) + 30 + 16 * len(rows)
    x = lambda v: left + (v - low) / (high - low) * width  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot per-instrument" role="img" '
             f'viewBox="0 0 {left + width + 70} {height}" width="{left + width + 70}" height="{height}">',
             f"<title>Mean NSDR per instrument (dB), {_e(table['benchmark_version'])}</title>"]
    for tick in _ticks(low, high):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{top + group * len(instruments)}" '
                     f'stroke="#e3e6eb"/><text x="{x(tick):.1f}" y="{top - 7}" text-anchor="middle">{tick:g}</text>')
    for i, instrument in enumerate(instruments):
        y0 = top + i * group
        parts.append(f'<text x="{left - 6}" y="{y0 + group / 2:.1f}" text-anchor="end" dominant-baseline="middle">'
                     f"{_e(instrument)}</text>")
        for j, row in enumerate(rows):
            value = row["per_instrument"].get(instrument, {}).get("nsdr")
            if value is None:
                continue
            x0, x1 = sorted((x(0.0), x(value)))
            parts.append(f'<rect x="{x0:.1f}" y="{y0 + j * bar:.1f}" width="{max(x1 - x0, 0.5):.1f}" height="{bar - 2}" '
                         f'fill="{colors[row["folder"]]}"><title>{_e(row["name"])} · {_e(instrument)}: '
                         f"{value:.2f} dB</title></rect>")
    parts.append(f'<line x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="{top - 4}" y2="{top + group * len(instruments)}" stroke="#333"/>')
    legend_y = top + group * len(instruments) + 22
    for j, row in enumerate(rows):
        y = legend_y + 16 * j
        parts.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{colors[row["folder"]]}"/>'
                     f'<text x="{left + 16}" y="{y}">{_e(row["name"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_distribution(table: dict[str, Any], colors: dict[str, str]) -> str:
    """Inline SVG: per method the per-item NSDR (dots), its quartile box, median and range."""
    rows = [r for r in table["rows"] if r["per_item_nsdr"]]
    if not rows:
        return '<p class="na">No per-item scores.</p>'
    low, high = _range([v for r in rows for v in r["per_item_nsdr"].values()])
    left, width, lane = 180, 520, 26
    top = 22
    height = top + lane * len(rows) + 24
    x = lambda v: left + (v - low) / (high - low) * width  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot distribution" role="img" '
             f'viewBox="0 0 {left + width + 20} {height}" width="{left + width + 20}" height="{height}">',
             f"<title>Per-item NSDR (dB), {_e(table['benchmark_version'])}</title>"]
    for tick in _ticks(low, high):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{top + lane * len(rows)}" '
                     f'stroke="#e3e6eb"/><text x="{x(tick):.1f}" y="{top - 8}" text-anchor="middle">{tick:g}</text>')
    for j, row in enumerate(rows):
        values = np.array(sorted(row["per_item_nsdr"].values()))
        q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        yc = top + j * lane + lane / 2
        color = colors[row["folder"]]
        label = row["name"] if len(row["name"]) <= 28 else row["name"][:27] + "…"
        parts.append(f'<text x="{left - 8}" y="{yc:.1f}" text-anchor="end" dominant-baseline="middle">{_e(label)}'
                     f"<title>{_e(row['name'])}</title></text>")
        parts.append(f'<line x1="{x(values[0]):.1f}" x2="{x(values[-1]):.1f}" y1="{yc:.1f}" y2="{yc:.1f}" stroke="{color}"/>')
        parts.append(f'<rect x="{x(q1):.1f}" y="{yc - 7:.1f}" width="{max(x(q3) - x(q1), 0.5):.1f}" height="14" '
                     f'fill="{color}" fill-opacity="0.25" stroke="{color}"/>')
        parts.append(f'<line x1="{x(median):.1f}" x2="{x(median):.1f}" y1="{yc - 8:.1f}" y2="{yc + 8:.1f}" '
                     f'stroke="{color}" stroke-width="2.5"><title>median {median:.2f} dB</title></line>')
        for k, value in enumerate(values):
            jitter = ((k * 7919) % 11 - 5) * 1.1
            parts.append(f'<circle cx="{x(value):.1f}" cy="{yc + jitter:.1f}" r="2" fill="{color}" fill-opacity="0.7"/>')
    parts.append(f'<line x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="{top - 4}" y2="{top + lane * len(rows)}" stroke="#333"/>')
    parts.append(f'<text x="{left + width / 2}" y="{height - 4}" text-anchor="middle">NSDR per item (dB)</text></svg>')
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- HTML

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "base-uri 'none'; form-action 'none'")


def _page(title: str, body: str, asset_prefix: str, scripts: tuple[str, ...]) -> str:
    tags = "".join(f'<script src="{_e(asset_prefix + name)}" defer></script>' for name in scripts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{_e(title)}</title>\n"
        f'<link rel="stylesheet" href="{_e(asset_prefix)}leaderboard.css">\n{tags}\n</head>\n<body>\n{body}\n</body>\n</html>\n'
    )


def _cell(text: str, value: Any = None, cls: str = "", title: str = "") -> str:
    attrs = f' data-value="{_e("" if value is None else value)}"'
    if cls:
        attrs += f' class="{_e(cls)}"'
    if title:
        attrs += f' title="{_e(title)}"'
    return f"<td{attrs}>{text}</td>"


def _block_cell(block: dict[str, Any] | None, digits: int) -> str:
    if block is None:
        return _cell('<span class="na">n/a</span>')
    low, high = block["ci95"]
    ci = (f' <span class="ci">[{_fmt(low, digits)}, {_fmt(high, digits)}]</span>'
          if low is not None and high is not None else "")
    return _cell(f"{_fmt(block['mean'], digits)}{ci}", block["mean"], title=f"mean over {block['n']} items, 95% bootstrap CI")


def _name_cell(row: dict[str, Any]) -> str:
    badges = ""
    if row["kind"] == "reference":
        badges += f'<span class="badge reference">reference · {_e(row["oracle"])}</span>'
    elif row["kind"] == "labels":
        badges += '<span class="badge labels">uses labels</span>'
    if row["baseline"]:
        badges += '<span class="badge">baseline</span>'
    folder = "" if row["folder"] == row["name"] else f' <span class="muted mono">runs/{_e(row["folder"])}</span>'
    return (f'<td class="name" data-value="{_e(row["name"])}"><span class="method-name">{_e(row["name"])}</span>'
            f"{badges}{folder}</td>")


def _test_cell(test: dict[str, Any] | None) -> str:
    if not test:
        return _cell('<span class="na">n/a</span>')
    if test["verdict"] == "baseline":
        return _cell("baseline", None, title="the baseline of this table's tests")
    if test.get("p") is None:
        return _cell('<span class="na">not tested</span>', None, title=str(test.get("note") or ""))
    cls = {"better": "better", "worse": "worse"}.get(test["verdict"], "")
    word = {"better": "better ▲", "worse": "worse ▼"}.get(test["verdict"], "n.s.")
    text = (f'<span class="{cls}">{_e(word)}</span> Δ̃ {test["median_diff"]:+.2f} dB, '
            f"p = {_e(_fmt_p(test['p_holm']))} <span class=\"ci\">(n = {test['n']})</span>")
    title = (f"Wilcoxon signed-rank vs {test['against']}: median difference {test['median_diff']:+.3f} dB, "
             f"mean difference {test['mean_diff']:+.3f} dB, p = {_fmt_p(test['p'])}, Holm-adjusted p = "
             f"{_fmt_p(test['p_holm'])}, {test['n']} paired items")
    return _cell(text, test["median_diff"], title=title)


def _ranking_table(table: dict[str, Any]) -> str:
    head = ['<th data-type="number" data-first="ascending"><button type="button">Rank</button></th>',
            '<th class="text" data-type="text"><button type="button">Method</button></th>']
    for key, title in BOARD_METRICS:
        sort = ' aria-sort="descending"' if key == "nsdr" else ""
        head.append(f'<th data-key="{key}"{sort}><button type="button">{_e(title)}</button>'
                    f'<br><span class="ci">mean [95% CI]</span></th>')
        head.append(f'<th data-key="{key}_median"><button type="button">median</button></th>')
    for key, title, flat in LOCALIZATION_VARIANTS:
        head.append(f'<th data-key="{flat}"><button type="button">{_e(title)}</button>'
                    f'<br><span class="ci">over sources</span></th>')
    for key, title in DUET_METRICS:
        head.append(f'<th data-key="duet_{key}"><button type="button">{_e(title)}</button>'
                    f'<br><span class="ci">mean [95% CI]</span></th>')
    head += ['<th data-key="test"><button type="button">vs baseline</button><br><span class="ci">Wilcoxon, Holm</span></th>',
             '<th data-key="items"><button type="button">Items</button></th>',
             '<th class="text">Demo</th>']
    n_columns = len(head)
    bodies = []
    for kind in ("main", "labels", "reference"):
        rows = [r for r in table["rows"] if r["kind"] == kind]
        if not rows:
            continue
        lines = [f'<tbody data-group="{kind}"><tr class="group-label"><th colspan="{n_columns}">{_e(KIND_LABELS[kind])}</th></tr>']
        for row in rows:
            cells = [_cell("—" if row["rank"] is None else str(row["rank"]), row["rank"]), _name_cell(row)]
            for key, _ in BOARD_METRICS:
                block = row["metrics"].get(key)
                cells.append(_block_cell(block, _digits(key)))
                cells.append(_cell("n/a", None, "na") if block is None
                             else _cell(_fmt(block["median"], _digits(key)), block["median"]))
            for key, _, _ in LOCALIZATION_VARIANTS:
                value = (row["localization"] or {}).get(key)
                n_boxes = (row["localization"] or {}).get("n")
                cells.append(_cell(_fmt(value, 3), value, "" if value is not None else "na",
                                   title=f"pooled over {n_boxes:g} sources with a box" if value is not None and n_boxes else ""))
            for key, _ in DUET_METRICS:
                cells.append(_cell('<span class="na">n/a</span>', None, title="no separate_at: no duet track")
                             if row["duets"] is None else _block_cell(row["duets"].get(key), 2))
            cells.append(_test_cell(row["test"]))
            excluded = ", ".join(f"{count} {reason}" for reason, count in row["excluded_reasons"].items())
            cells.append(_cell(f"{row['n_scored']}/{row['n_items']}", row["n_scored"],
                               title=f"excluded: {excluded}" if excluded else "no item excluded"))
            if row["demo"]:
                cells.append(f'<td class="text"><a class="demo-link" href="{_e(row["demo"])}">demo</a></td>')
            else:
                cells.append(f'<td class="text na" title="{_e(row["demo_note"])}">—</td>')
            lines.append(f'<tr class="row" data-kind="{kind}" data-folder="{_e(row["folder"])}">' + "".join(cells) + "</tr>")
        lines.append("</tbody>")
        bodies.append("".join(lines))
    return (f'<div class="scroll"><table class="ranking sortable" id="{_e(table["id"])}-ranking">'
            f'<thead><tr>{"".join(head)}</tr></thead>{"".join(bodies)}</table></div>')


def _instrument_table(table: dict[str, Any]) -> str:
    if not table["instruments"]:
        return '<p class="na">No per-instrument scores.</p>'
    head = '<th class="text" data-type="text"><button type="button">Method</button></th>' + "".join(
        f'<th><button type="button">{_e(i)}</button></th>' for i in table["instruments"])
    lines = []
    for row in table["rows"]:
        cells = [_name_cell(row)]
        for instrument in table["instruments"]:
            value = row["per_instrument"].get(instrument, {}).get("nsdr")
            cells.append(_cell(_fmt(value), value, "" if value is not None else "na"))
        lines.append(f'<tr class="row" data-kind="{row["kind"]}">' + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="per-instrument sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table></div>')


def _provenance_table(table: dict[str, Any]) -> str:
    head = "".join(f'<th class="text" data-type="text"><button type="button">{t}</button></th>' for t in
                   ("Method", "Benchmark version", "Git revision", "Date", "Device"))
    head += '<th><button type="button">Parameters</button></th><th><button type="button">s / item</button></th>'
    head += '<th class="text">Model, options, packages</th>'
    lines = []
    for row in table["rows"]:
        prov = row["provenance"]
        revision = prov["git_revision"] or "unknown"
        details = json.dumps({"model_file": prov["model_file"], "model_sha256": prov["model_sha256"],
                              "options": prov["options"], "package_versions": prov["package_versions"],
                              "metric_version": prov["metric_version"], "seed": prov["seed"],
                              "wall_seconds": prov["wall_seconds"]}, indent=1, sort_keys=True, default=str)
        cells = [_name_cell(row), _cell(f'<span class="mono">{_e(prov["benchmark_version"])}</span>', prov["benchmark_version"]),
                 _cell(f'<span class="mono">{_e(revision[:12])}</span>', revision, title=revision),
                 _cell(_e(prov["date"] or "unknown"), prov["date"]), _cell(_e(prov["device"] or "unknown"), prov["device"]),
                 _cell("n/a" if prov["n_parameters"] is None else f"{prov['n_parameters']:,}", prov["n_parameters"]),
                 _cell(_fmt(prov["seconds_per_item"], 3), prov["seconds_per_item"]),
                 f'<td class="text"><details><summary>details</summary><pre class="options">{_e(details)}</pre></details></td>']
        lines.append(f'<tr class="row" data-kind="{row["kind"]}">' + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="provenance sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table></div>')


def _colors(table: dict[str, Any]) -> dict[str, str]:
    return {row["folder"]: PALETTE[i % len(PALETTE)] for i, row in enumerate(table["rows"])}


def render_index(board: dict[str, Any]) -> str:
    """index.html: per table the sortable ranking, per-instrument table and bars, the NSDR
    distribution and the provenance; assets from ``assets/``; no network access."""
    body = [f"<header><h1>{_e(board['title'])}</h1>",
            '<p class="note">Audio-visual music source separation on the MUSIC benchmark (The Sound of Pixels '
            "protocol). Each score is the mean over the benchmark's fixed test items (each item the mean over its "
            "sources) with its 95% bootstrap confidence interval, then the median. Click a column header to sort. "
            "Reference rows (the mixture floor and the ideal-mask ceilings) are shown but not ranked; methods that "
            "use the instrument labels are ranked apart from the label-free main track.</p>",
            f'<p class="note"><strong>Significance:</strong> {_e(SIGNIFICANCE_TEST)}. "better ▲"/"worse ▼": '
            "significantly higher/lower NSDR than the baseline; n.s.: no significant difference; Δ̃: median "
            "per-item difference.</p></header>"]
    for warning in board["warnings"]:
        body.append(f'<div class="warning board-warning" role="alert">⚠ {_e(warning)}</div>')
    for table in board["tables"]:
        colors = _colors(table)
        body.append(f'<section class="board" id="{_e(table["id"])}" data-version="{_e(table["benchmark_version"])}">')
        body.append(f'<h2>Benchmark version <span class="mono">{_e(table["benchmark_version"])}</span> · split '
                    f'{_e(table["split"])} · metric version {_e(table["metric_version"])}'
                    + ("" if table["current"] else ' <span class="badge">not current</span>') + "</h2>")
        for warning in table["warnings"]:
            body.append(f'<div class="warning table-warning" role="alert">⚠ {_e(warning)}</div>')
        if table["baseline"]:
            body.append(f'<p class="note">Baseline of the tests: <strong>{_e(table["baseline"]["name"])}</strong> '
                        f'({_e(table["baseline"]["why"])}).</p>')
        body.append(_ranking_table(table))
        body.append("<h3>Per-instrument NSDR (dB)</h3>")
        body.append(_instrument_table(table))
        body.append(svg_per_instrument(table, colors))
        body.append("<h3>NSDR distribution over items</h3>")
        body.append(svg_distribution(table, colors))
        body.append("<h3>Provenance</h3>")
        body.append(_provenance_table(table))
        body.append("</section>")
    body.append('<footer class="note"><p>Machine-readable: <a href="leaderboard.json">leaderboard.json</a>, '
                '<a href="leaderboard.parquet">leaderboard.parquet</a>, <a href="leaderboard.md">leaderboard.md</a>. '
                "Generated by <code>musicbench leaderboard</code>.</p></footer>")
    return _page(board["title"], "\n".join(body), "assets/", ("leaderboard.js",))


# ---------------------------------------------------------------------------------------------- demo


def _colormap(values: np.ndarray) -> np.ndarray:
    """RGBA uint8 heat colours for values in [0, 1] (dark purple → red → yellow), alpha rising with value."""
    anchors = np.array([0.0, 0.35, 0.7, 1.0])
    colors = np.array([[40, 11, 84], [187, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)
    rgb = np.stack([np.interp(values, anchors, colors[:, c]) for c in range(3)], axis=-1)
    alpha = 255 * np.clip(values, 0, 1) ** 0.8 * 0.85
    return np.concatenate([rgb, alpha[..., None]], axis=-1).round().astype(np.uint8)


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)


def _write_heat(path: Path, heatmap: np.ndarray, size: tuple[int, int]) -> None:
    """A heatmap ``(h, w)`` min-max normalised, resized to `size` (width, height), as an RGBA PNG."""
    from PIL import Image

    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    resized = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
    _write_png(path, _colormap(np.clip(resized, 0, 1)))


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate, subtype="PCM_16", format="WAV")


class _ItemCache:
    """Benchmark items (via `musicbench.benchmark.DataRoot.iter_items`) loaded once for every demo page."""

    def __init__(self, root: Path, wanted: int):
        self.root, self.wanted, self.loaded = root, wanted, {}

    def get(self, split: str, track: str) -> list:
        key = (split, track)
        if key not in self.loaded:
            from musicbench.benchmark import DataRoot

            try:
                self.loaded[key] = list(DataRoot(self.root).iter_items(split, self.wanted, track=track))
            except (MusicbenchError, TypeError, OSError):  # TypeError: a harness without duet items
                self.loaded[key] = []
        return self.loaded[key]


def _demo_item(run: Run, item: Any, media: Path, media_href: str, track: str) -> str | None:
    """Write one item's media (mixture, per-source estimates, frames, heatmaps) under `media`; return
    its HTML section, or None when the run has no usable estimates for it."""
    estimates_path = run.path / "estimates" / f"{item.item_id}.npy"
    try:
        estimates = np.load(estimates_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    n_sources, n_samples = item.references.shape
    if estimates.shape != (n_sources, n_samples) or not np.all(np.isfinite(estimates)):
        return None
    heatmaps = None
    heat_path = run.path / "heatmaps" / f"{item.item_id}.npy"
    if heat_path.is_file():
        try:
            heatmaps = np.load(heat_path, allow_pickle=False)
        except (OSError, ValueError):
            heatmaps = None
        if heatmaps is not None and (heatmaps.ndim != 3 or heatmaps.shape[0] != n_sources or not np.all(np.isfinite(heatmaps))):
            heatmaps = None
    item_slug = safe_slug(item.item_id)
    folder = _inside(media, item_slug)
    folder.mkdir(parents=True, exist_ok=True)
    href = f"{media_href}/{item_slug}"
    peak = max(float(np.abs(item.mixture).max()), float(np.abs(estimates).max()), 1e-9)
    gain = min(1.0, 0.95 / peak)  # one gain per item: the sources keep their levels relative to the mixture
    _write_wav(folder / "mixture.wav", item.mixture * gain, item.sample_rate)
    for k in range(n_sources):
        _write_wav(folder / f"source-{k}.wav", estimates[k] * gain, item.sample_rate)
    n_frames = item.frames.shape[1]
    height, width = item.frames.shape[2:4]
    instruments = [str(i) for i in item.instruments]
    figures = []
    if track == "mixtures":
        title = f"{str(item.split).capitalize()} mixture {item.item_id}: " + " + ".join(instruments)
        for k in range(n_sources):
            _write_png(folder / f"frame-{k}.png", item.frames[k, n_frames // 2])
            heat = ""
            if heatmaps is not None:
                _write_heat(folder / f"heat-{k}.png", heatmaps[k], (width, height))
                heat = f'<img class="heat" src="{_e(href)}/heat-{k}.png" alt="">'
            figures.append(
                f'<figure class="frame" data-source="{k}" data-width="{width}" data-height="{height}">'
                f'<img class="picture" src="{_e(href)}/frame-{k}.png" alt="centre frame of source {k + 1}" '
                f'width="{width}" height="{height}">{heat}'
                f"<figcaption>video {k + 1}: {_e(item.video_ids[k])}</figcaption></figure>")
    else:
        title = f"Duet {item.item_id}: " + " + ".join(instruments)
        _write_png(folder / "frame-0.png", item.frames[0, n_frames // 2])
        players, overlays = [], ""
        for k in range(n_sources):
            box = item.boxes[k] if k < len(item.boxes) else None
            point = item.points[k] if k < len(getattr(item, "points", [])) else None
            if box is not None:
                box = [round(float(v), 2) for v in box]
            if point is None and box is not None:
                point = (box[0] + box[2] / 2, box[1] + box[3] / 2)
            players.append({"source": k, "box": box, "point": None if point is None else [round(float(v), 2) for v in point]})
            if heatmaps is not None:
                _write_heat(folder / f"heat-{k}.png", heatmaps[k], (width, height))
                overlays += f'<img class="heat" data-source="{k}" src="{_e(href)}/heat-{k}.png" alt="" hidden>'
        if any(p["point"] is None for p in players):
            return None
        figures.append(
            f'<figure class="frame" data-players="{_e(json.dumps(players))}" data-width="{width}" data-height="{height}">'
            f'<img class="picture" src="{_e(href)}/frame-0.png" alt="centre frame of the duet video" '
            f'width="{width}" height="{height}">{overlays}'
            f"<figcaption>duet video {_e(item.video_ids[0])}: click a player</figcaption></figure>")
    sources = []
    for k in range(n_sources):
        label = f"Source {k + 1}: {instruments[k] if k < len(instruments) else '?'}"
        sources.append(
            f'<li class="player" data-source="{k}"><span class="label">{_e(label)}</span>'
            f'<audio class="source" controls preload="auto" src="{_e(href)}/source-{k}.wav"></audio>'
            f'<label>volume <input class="volume" type="range" min="0" max="1" step="0.01" value="1" '
            f'data-source="{k}"> <output>100%</output></label></li>')
    heat_toggle = ('<label><input class="show-heat" type="checkbox" checked> show the localization heatmap</label>'
                   if heatmaps is not None else '<span class="na">no localization heatmap from this method</span>')
    return (
        f'<section class="demo-item" data-item="{_e(item.item_id)}" data-track="{_e(track)}">'
        f"<h2>{_e(title)}</h2>"
        f'<div class="frames">{"".join(figures)}</div>'
        f'<p class="selected" aria-live="polite">Click a player to hear the sound this method assigns there.</p>'
        f'<div class="mixture-row"><span>Mixture (for comparison)</span>'
        f'<audio class="mixture" controls preload="auto" src="{_e(href)}/mixture.wav"></audio></div>'
        f'<ul class="players">{"".join(sources)}</ul>'
        f'<p><button type="button" class="play-all">Play all sources (remix with the sliders)</button> '
        f'<button type="button" class="play-mixture">Play the mixture</button> '
        f'<button type="button" class="stop">Stop</button> {heat_toggle}</p></section>'
    )


def write_demo(run: Run, row: dict[str, Any], cache: _ItemCache, demo_dir: Path, slug: str, n_items: int) -> str | None:
    """Write ``demo/<slug>.html`` and its media under ``demo/<slug>/`` for one run: its first `n_items`
    scored test-mixture items and duet items (when it has any). Returns the page's path relative to
    the output folder, or None (with ``row["demo_note"]`` saying why)."""
    media = _inside(demo_dir, slug)
    sections = {"mixtures": [], "duets": []}
    for track in ("mixtures", "duets"):
        if track == "duets" and (run.items is None or not (run.items["track"] == "duets").any()):
            continue
        for item in cache.get(run.split, track):
            if len(sections[track]) >= n_items:
                break
            html_section = _demo_item(run, item, media, slug, track)
            if html_section is not None:
                sections[track].append(html_section)
    if not sections["mixtures"] and not sections["duets"]:
        row["demo_note"] = "no estimates of this run match the benchmark items under the data root"
        return None
    name = row["name"]
    intro = (f'<p><a href="../index.html">← back to the leaderboard</a></p><h1>Demo: <span class="method-name">'
             f"{_e(name)}</span></h1>"
             '<p class="note">After the demo of The Sound of Pixels: click a player (a point in a video frame) to '
             "hear the sound this method assigns there, i.e. its estimate of the source whose player is under the "
             "click. Each source has a volume slider; play all sources together to remix them, and play the "
             "mixture for comparison. The heatmap over a frame is the method's localization, when it gives one.</p>")
    if row["kind"] != "main":
        intro += f'<p class="note">{_e(_kind_text(row))}</p>'
    body = [intro]
    if sections["mixtures"]:
        body.append("<h2>Test mixtures</h2>")
        body += sections["mixtures"]
    if sections["duets"]:
        body.append("<h2>Duets: two players in one video</h2>")
        body += sections["duets"]
    page = _inside(demo_dir, f"{slug}.html")
    atomic_write_text(page, _page(f"Demo: {name}", "\n".join(body), "../assets/", ("demo.js",)))
    return f"demo/{slug}.html"


def _reset_demo_dir(demo_dir: Path) -> None:
    """Empty a demo folder written by an earlier build (it holds our marker file); never anything else."""
    if demo_dir.is_dir() and (demo_dir / DEMO_MARKER).is_file():
        shutil.rmtree(demo_dir)
    elif demo_dir.exists() and any(demo_dir.iterdir()):
        raise MusicbenchError(f"{str(demo_dir)!r} exists and was not written by `musicbench leaderboard`; "
                              "move it away or choose another --out")
    demo_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(demo_dir / DEMO_MARKER, "written by musicbench leaderboard; emptied on every build\n")


def write_demos(board: dict[str, Any], runs: list[Run], root: str | os.PathLike | None, out_dir: Path,
                n_items: int = 3) -> None:
    """Write a demo page per run of the current benchmark version (needs the data root for the items'
    audio and frames); set each row's ``demo`` (relative path) or ``demo_note``."""
    demo_dir = out_dir / "demo"
    _reset_demo_dir(demo_dir)
    by_folder = {run.folder: run for run in runs}
    if root is None:
        for table in board["tables"]:
            for row in table["rows"]:
                row["demo_note"] = "demo pages need the data root (--root)"
        return
    from musicbench.benchmark import DataRoot

    root = Path(root)
    version = DataRoot(root).version()
    cache = _ItemCache(root, n_items + 2)
    taken: set[str] = {"assets", "index"}
    for table in board["tables"]:
        for row in table["rows"]:
            if row["provenance"]["benchmark_version"] != version:
                row["demo_note"] = f"run on benchmark version {row['provenance']['benchmark_version']}, the data root holds {version}"
                continue
            if n_items <= 0:
                row["demo_note"] = "demo pages turned off"
                continue
            slug = safe_slug(row["folder"], taken)
            row["demo"] = write_demo(by_folder[row["folder"]], row, cache, demo_dir, slug, n_items)


# ------------------------------------------------------------------------------------------- writing


def _copy_assets(out_dir: Path) -> None:
    assets = ensure_writable_dir(out_dir / "assets")
    site = resources.files("musicbench") / "site"
    for name in SITE_ASSETS:
        atomic_write_text(assets / name, (site / name).read_text(encoding="utf-8"))


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and ±inf become None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _json_text(value: Any) -> str:
    return json.dumps(_clean(value), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False, default=str) + "\n"


def _plots_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", "instrument", "nsdr", "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def build_leaderboard(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, root: str | os.PathLike | None = None,
                      *, demo_items: int = 3, baseline: str | None = None) -> dict[str, Any]:
    """Gather every run under `runs_dir` and write the leaderboard under `out_dir` (see the module
    docstring for the files). `root` is the data root: it names the current benchmark version and
    provides the items' audio and frames for the demo pages (without it: no demo pages).
    `demo_items` test mixtures (and as many duets) per demo page; `baseline` names the run that the
    significance tests compare against (default: the best musicbench baseline of each table).
    Returns the board (`make_board`, with each row's demo link)."""
    runs, warnings = find_runs(runs_dir)
    if not runs:
        raise MusicbenchError(f"no run under {str(runs_dir)!r} (a run folder holds summary.json); "
                              "run `musicbench evaluate` first")
    current = None
    from musicbench.benchmark import DataRoot

    if root is not None and not DataRoot(root).has_definition():
        warnings.append(f"No benchmark definition under the data root {str(root)!r}: no demo pages were written "
                        "(run `musicbench mixtures`, or give --root).")
        root = None
    if root is not None:
        current = DataRoot(root).version()
    board = make_board(runs, current, baseline, warnings)
    out = ensure_writable_dir(out_dir)
    _copy_assets(out)
    write_demos(board, runs, root, out, demo_items)
    atomic_write_text(out / "leaderboard.json", _json_text(board))
    atomic_write_text(out / "leaderboard.md", render_markdown(board))
    from musicbench.fsutil import write_parquet

    write_parquet(board_frame(board), out / "leaderboard.parquet")
    atomic_write_text(out / "metrics.json", _json_text(dvc_metrics(board)))
    atomic_write_text(ensure_writable_dir(out / "plots") / "per_instrument_nsdr.csv", _plots_csv(per_instrument_records(board)))
    atomic_write_text(out / "index.html", render_index(board))
    return board
