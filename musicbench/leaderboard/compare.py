"""`musicbench compare RUN_A RUN_B [...]`: two or more runs side by side, each against the first.

Per metric, the paired video-bootstrap test of the per-item difference (`musicbench.stats.paired_video_test`,
as the board's test, on the items both runs scored with the same item key): separation (NSDR, SIR,
SAR, SI-SDRi), localization (cIoU and the pointing game, each item the mean over its sources) and
the click-to-hear duet track (NSDR). The p-values are Holm-adjusted over every test of the
comparison. Then the per-instrument mean NSDR difference over matched sources, and the items whose
NSDR differs most either way. `compare_runs` returns a JSON-able dict; `compare_tables` renders it
for people and `compare_svg` draws each run's sorted per-item NSDR differences.

Run folders are untrusted: each is read by `musicbench.leaderboard.runs.load_run` (schema-checked),
and runs of different benchmark versions or splits are refused. Items a run failed are not compared
(a failed item has no score to pair): they are counted, and the comparison says so.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from musicbench.errors import MusicbenchError
from musicbench.leaderboard.board import json_safe
from musicbench.leaderboard.runs import Run, load_run
from musicbench.leaderboard.stats import ALPHA, holm, item_videos, paired_test, per_item_values
from musicbench.progress import plain

#: (metric column of items.parquet, track, label, unit) compared per item
COMPARED = (
    ("nsdr", "mixtures", "NSDR", "dB"), ("sir", "mixtures", "SIR", "dB"), ("sar", "mixtures", "SAR", "dB"),
    ("si_sdri", "mixtures", "SI-SDRi", "dB"), ("ciou", "mixtures", "cIoU", ""),
    ("pointing_hit", "mixtures", "pointing game", ""), ("nsdr", "duets", "duet NSDR", "dB"),
)


def _load(path: str | os.PathLike) -> Run:
    run = load_run(path)
    if run.invalid:
        raise MusicbenchError(f"cannot compare run {str(path)!r}: {run.invalid}")
    if run.items is None:
        raise MusicbenchError(f"cannot compare run {str(path)!r}: it has no items.parquet")
    return run


def _keys(items: pd.DataFrame, track: str) -> pd.Series:
    """item_id → item_key of `track` (empty when the run predates item keys)."""
    if "item_key" not in items.columns:
        return pd.Series(dtype=object)
    rows = items[items["track"] == track]
    return rows.groupby("item_id")["item_key"].first()


def _matched(base: pd.Series, other: pd.Series, base_keys: pd.Series, other_keys: pd.Series) -> list[str]:
    """Items scored by both runs whose item keys agree (or that either run gives no key)."""
    common = base.index.intersection(other.index)
    keep = []
    for item in common:
        a, b = base_keys.get(item), other_keys.get(item)
        if not a or not b or a == b:
            keep.append(str(item))
    return keep


def _failed(items: pd.DataFrame) -> int:
    return int(items.loc[items["status"] != "ok", "item_id"].nunique())


def compare_pair(base: Run, other: Run, seed: int, top: int) -> dict[str, Any]:
    """The comparison of `other` against `base` (see the module docstring), before Holm's adjustment."""
    metrics, matched = [], {}
    for metric, track, label, unit in COMPARED:
        a, b = per_item_values(base.items, metric, track), per_item_values(other.items, metric, track)
        if a.empty and b.empty:
            continue
        items = matched[(metric, track)] = _matched(a, b, _keys(base.items, track), _keys(other.items, track))
        videos = item_videos(base.items, track)
        test = paired_test(b.loc[items], a.loc[items], videos, seed) if items else None
        metrics.append({
            "metric": metric, "track": track, "label": label, "unit": unit, "n": len(items),
            "n_videos": 0 if test is None else test.n_videos,
            "mean_a": float(a.loc[items].mean()) if items else None,
            "mean_b": float(b.loc[items].mean()) if items else None,
            "mean_diff": None if test is None else test.mean_diff,
            "median_diff": None if test is None else test.median_diff,
            "ci95": [None, None] if test is None else list(test.ci95),
            "p": None if test is None else test.p,
            "note": "no item scored by both runs" if test is None else test.note,
        })
    rows = ["item_id", "source_index", "instrument", "nsdr"]
    if not all(set(rows) <= set(items.columns) for items in (base.items, other.items)):
        rows = []  # a run without per-source NSDR (or instruments): no per-instrument differences
    sources = [r[(r["track"] == "mixtures") & (r["status"] == "ok")][rows] if rows else
               pd.DataFrame(columns=["item_id", "source_index", "instrument", "nsdr"]) for r in (base.items, other.items)]
    paired = sources[0].merge(sources[1], on=["item_id", "source_index"], suffixes=("_a", "_b"))
    nsdr_items = next((m for m in metrics if m["metric"] == "nsdr" and m["track"] == "mixtures"), None)
    matched_items = set(matched.get(("nsdr", "mixtures"), []))  # the items of the NSDR test
    paired = paired[paired["item_id"].isin(matched_items)]
    paired = paired.assign(diff=pd.to_numeric(paired["nsdr_b"]) - pd.to_numeric(paired["nsdr_a"]))
    paired = paired[np.isfinite(paired["diff"])]
    per_instrument = {
        str(name): {"n_sources": int(len(group)), "mean_a": float(group["nsdr_a"].mean()),
                    "mean_b": float(group["nsdr_b"].mean()), "mean_diff": float(group["diff"].mean())}
        for name, group in paired.groupby("instrument_a")}
    a_items, b_items = per_item_values(base.items), per_item_values(other.items)
    common = sorted(matched_items)
    diffs = (b_items.loc[common] - a_items.loc[common]).sort_values() if common else pd.Series(dtype=float)
    videos = item_videos(base.items)

    def described(item: str) -> dict[str, Any]:
        return {"item_id": item, "videos": videos.get(item, []), "nsdr_a": float(a_items[item]),
                "nsdr_b": float(b_items[item]), "diff": float(diffs[item])}

    return json_safe({  # NaN and ±inf (absurd scores overflow) become None
        "a": base.name, "b": other.name, "metrics": metrics, "per_instrument": per_instrument,
        "largest_gains": [described(i) for i in diffs.index[::-1][:top] if diffs[i] > 0],
        "largest_losses": [described(i) for i in diffs.index[:top] if diffs[i] < 0],
        "item_differences": [float(v) for v in diffs.to_numpy()],
        "failed_items": {"a": _failed(base.items), "b": _failed(other.items)},
        "n_items_compared": 0 if nsdr_items is None else nsdr_items["n"],
    })


def compare_runs(paths: list[str | os.PathLike], seed: int = 1234, top: int = 5) -> dict[str, Any]:
    """Compare every run of `paths[1:]` against `paths[0]` (run folders); a JSON-able dict with the
    benchmark version, split, seed, each pair's comparison and Holm-adjusted p-values (``p_holm``,
    ``significant`` at 0.05) over every test made."""
    if len(paths) < 2:
        raise MusicbenchError("compare needs at least two run folders: musicbench compare RUN_A RUN_B [...]")
    runs = [_load(path) for path in paths]
    base = runs[0]
    for path, run in zip(paths[1:], runs[1:]):
        if (run.benchmark_version, run.split) != (base.benchmark_version, base.split):
            raise MusicbenchError(
                f"run {str(path)!r} is on benchmark {run.benchmark_version} ({run.split}), run {str(paths[0])!r} on "
                f"{base.benchmark_version} ({base.split}): only runs of one benchmark version and split compare")
    with np.errstate(over="ignore", invalid="ignore"):  # absurd but finite scores overflow: shown as n/a, never raised
        pairs = [compare_pair(base, other, seed, top) for other in runs[1:]]
    tests = [m for pair in pairs for m in pair["metrics"]]
    for test, adjusted in zip(tests, holm([m["p"] for m in tests])):
        test["p_holm"] = adjusted
        test["significant"] = adjusted is not None and adjusted < ALPHA
    return {"benchmark_version": base.benchmark_version, "split": base.split, "seed": seed,
            "test": "paired video bootstrap of the mean per-item difference (B − A), Holm-adjusted over every test shown",
            "runs": [str(Path(p)) for p in paths], "pairs": pairs}


def _number(value: Any, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def compare_tables(result: dict[str, Any]) -> list[Table]:
    """Rich tables of `compare_runs`' result: per pair, the tests, the per-instrument differences and
    the items that differ most."""
    tables = []
    for pair in result["pairs"]:
        a, b = plain(pair["a"]), plain(pair["b"])
        title = (f"{b} against {a} · {result['benchmark_version']} · {result['split']} · "
                 f"{pair['n_items_compared']} items · failed: {pair['failed_items']['a']} ({a}), {pair['failed_items']['b']} ({b})")
        tests = Table(title=title)
        for column in ("metric", "track", a, b, "B − A", "95% CI", "p (Holm)", "verdict", "n items"):
            tests.add_column(column, justify="left" if column in ("metric", "track", "verdict") else "right")
        for m in pair["metrics"]:
            digits = 2 if m["unit"] else 3
            verdict = ("n/a" if m["p_holm"] is None else
                       ("better" if (m["mean_diff"] or 0) > 0 else "worse") if m["significant"] else "n.s.")
            low, high = m["ci95"]
            tests.add_row(m["label"], m["track"], _number(m["mean_a"], digits), _number(m["mean_b"], digits),
                          _number(m["mean_diff"], digits, True),
                          f"[{_number(low, digits, True)}, {_number(high, digits, True)}]",
                          "n/a" if m["p_holm"] is None else f"{m['p_holm']:.3f}", verdict, str(m["n"]))
        tables.append(tests)
        instruments = Table(title=f"NSDR per instrument (dB), mean over matched sources: {b} − {a}")
        for column in ("instrument", a, b, "B − A", "sources"):
            instruments.add_column(column, justify="left" if column == "instrument" else "right")
        for name, row in sorted(pair["per_instrument"].items(),
                                key=lambda kv: -math.inf if kv[1]["mean_diff"] is None else -kv[1]["mean_diff"]):
            instruments.add_row(plain(name), _number(row["mean_a"]), _number(row["mean_b"]),
                                _number(row["mean_diff"], signed=True), str(row["n_sources"]))
        tables.append(instruments)
        items = Table(title=f"items whose NSDR differs most (dB): {b} − {a}")
        for column in ("item", "videos", a, b, "B − A"):
            items.add_column(column, justify="right" if column in (a, b, "B − A") else "left")
        for row in [*pair["largest_gains"], *pair["largest_losses"]]:
            items.add_row(plain(row["item_id"]), plain(", ".join(row["videos"])), _number(row["nsdr_a"]),
                          _number(row["nsdr_b"]), _number(row["diff"], signed=True))
        tables.append(items)
    return tables


def compare_svg(result: dict[str, Any], width: int = 720, lane_height: int = 160) -> str:
    """An SVG of each pair's per-item NSDR differences (B − A), sorted, one bar per item, with the
    zero line and the mean difference."""
    pairs = result["pairs"]
    values = [v for pair in pairs for v in pair["item_differences"] if v is not None] or [0.0]
    bound = max(1.0, float(np.ceil(max(abs(min(values)), abs(max(values))))))
    left, right, top_pad = 60, 20, 34
    height = top_pad + lane_height * len(pairs) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'font-family="sans-serif" font-size="12">',
             f'<title>Per-item NSDR difference, {html.escape(result["benchmark_version"])} {html.escape(result["split"])}</title>']
    for lane, pair in enumerate(pairs):
        y0 = top_pad + lane * lane_height
        mid, scale = y0 + 8 + lane_height / 2, (lane_height / 2 - 22) / bound
        diffs = [v for v in pair["item_differences"] if v is not None]  # json_safe: non-finite ones are None
        parts.append(f'<text x="{left}" y="{y0 - 6:.1f}" font-weight="bold">{html.escape(pair["b"])} − '
                     f'{html.escape(pair["a"])}: per-item NSDR difference (dB), {len(diffs)} items, sorted</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="#555"/>')
        for tick in (-bound, bound):
            y = mid - tick * scale
            parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:+.0f}</text>')
        parts.append(f'<text x="{left - 6}" y="{mid + 4:.1f}" text-anchor="end">0</text>')
        step = (width - left - right) / max(len(diffs), 1)
        for i, value in enumerate(diffs):
            y, h = (mid - value * scale, value * scale) if value > 0 else (mid, abs(value) * scale)
            colour = "#2b7bb9" if value > 0 else "#c0504d"
            parts.append(f'<rect x="{left + i * step:.2f}" y="{y:.2f}" width="{max(step - 0.5, 0.5):.2f}" height="{h:.2f}" '
                         f'fill="{colour}"><title>{value:+.2f} dB</title></rect>')
        if diffs:
            mean = float(np.mean(diffs))
            y = mid - mean * scale
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#000" '
                         f'stroke-dasharray="4 3"/><text x="{width - right}" y="{y - 4:.1f}" text-anchor="end">'
                         f'mean {mean:+.2f} dB</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
