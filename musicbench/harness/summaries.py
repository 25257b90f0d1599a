"""summary.json: the scored rows of a run summarised per track (`summarize`).

Every item counts: a failed one is charged the worst score of each metric
(`musicbench.metrics.charge_failures`); means and medians come with 95% confidence intervals from the
video bootstrap (`musicbench.stats`). The board recomputes its numbers with these same functions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from musicbench.benchmark import URMP_TRACK
from musicbench.metrics import (
    ITEM_METRICS,
    PER_INSTRUMENT_METRICS,
    VARIANT_SUCCESS_AT,
    auc_success,
    charge_failures,
    ciou_success,
    finite_or_none,
)
from musicbench.stats import video_bootstrap_ci, videos_by_item


def metric_summary(per_item: pd.Series, item_videos: dict[str, list[str]], seed: int) -> dict[str, Any]:
    """One metric over a track's items (`per_item`: item_id → value; failed items already charged):
    ``mean``, ``median`` and ``ci95`` (video bootstrap, `musicbench.stats`) when every value is
    finite, else None (a mean over the finite values only would hide the rest); ``n`` items,
    ``n_failed`` (charged −inf) and ``n_plus_inf`` (a perfect estimate's +inf)."""
    values = per_item.dropna()
    array = values.to_numpy(dtype=np.float64)
    finite = bool(np.isfinite(array).all())
    median = float(np.median(array)) if array.size else float("nan")
    low, high = video_bootstrap_ci(array, [item_videos[i] for i in values.index], seed) if finite else (None, None)
    return {"mean": float(array.mean()) if finite else None, "median": finite_or_none(median), "ci95": [low, high],
            "n": int(array.size), "n_failed": int(np.isneginf(array).sum()), "n_plus_inf": int(np.isposinf(array).sum())}


def summarize_track(items: pd.DataFrame, seed: int = 1234) -> dict[str, Any]:
    """Summary of one track's rows. Every item counts: a failed one is charged the worst score of
    each metric (`charge_failures`), so per metric the mean and median over all items (each item the
    mean of its sources) with the 95% video-bootstrap CI (`metric_summary`); per-instrument means
    over sources; item counts and failure reasons. ``complete`` is False when any item failed."""
    charged = charge_failures(items)
    per_item = charged.groupby("item_id")[list(ITEM_METRICS)].mean(numeric_only=True)
    # clips of one YouTube video (Solos' segments) are one video to the bootstrap
    item_videos = videos_by_item(charged)
    excluded = items[items["status"] != "ok"].drop_duplicates("item_id")
    n_items = int(items["item_id"].nunique())
    summary: dict[str, Any] = {
        "n_items": n_items, "n_scored": n_items - int(len(excluded)), "n_excluded": int(len(excluded)),
        "excluded_reasons": dict(Counter(excluded["reason"])), "complete": len(excluded) == 0,
    }
    summary["metrics"] = {name: metric_summary(per_item[name], item_videos, seed)
                          for name in ITEM_METRICS if name in per_item and per_item[name].notna().any()}
    summary["localization"] = localization_summary(charged)
    per_instrument = charged.groupby("instrument")[list(PER_INSTRUMENT_METRICS)].mean(numeric_only=True)
    summary["per_instrument"] = {name: {k: finite_or_none(v) for k, v in row.items() if not np.isnan(v)}
                                 for name, row in per_instrument.iterrows()}
    return summary


def localization_summary(scored: pd.DataFrame) -> dict[str, float] | None:
    """The named localization variants over every source with a box (None if none; failed items'
    sources charged cIoU 0 and a miss by `charge_failures`):
    ``ciou_mean``, ``ciou_success@0.5`` (LVS / Senocak et al.), ``auc_success`` (thresholds
    0, 0.05, ..., 1, trapezoid), ``pointing_game`` (hit rate), and ``n`` (sources); where the rows
    have them (`VARIANT_SUCCESS_AT`), the same of cIoU with the normalised map ≥ 0.5
    (``ciou_t05_mean``, ``ciou_t05_success@0.5``, ``ciou_t05_auc``) and DSOL's class-aware cIoU
    (``dsol_ciou_mean``, ``dsol_ciou_success@0.3``, DSOL's reported rate, and ``dsol_ciou_auc``)."""
    if "ciou" not in scored or scored["ciou"].notna().sum() == 0:
        return None
    cious = scored["ciou"].dropna().to_numpy(dtype=np.float64)
    summary = {
        "ciou_mean": float(cious.mean()), "ciou_success@0.5": ciou_success(cious, 0.5),
        "auc_success": auc_success(cious), "pointing_game": float(scored["pointing_hit"].dropna().mean()),
        "n": int(cious.size),
    }
    for name, success_at in VARIANT_SUCCESS_AT.items():
        values = scored[name].dropna().to_numpy(dtype=np.float64) if name in scored else np.empty(0)
        if values.size:
            summary.update({f"{name}_mean": float(values.mean()), f"{name}_success@{success_at}": ciou_success(values, success_at),
                            f"{name}_auc": auc_success(values)})
    return summary


def summarize(items: pd.DataFrame, seed: int = 1234) -> dict[str, Any]:
    """summary.json: the mixtures track's summary at the top level (see `summarize_track`), the
    duet track's under ``duets`` (None when the model has no separate_at: "n/a" on the board) and,
    only when the run has real-ensembles items, theirs under ``urmp`` (a piece is one video to the
    bootstrap)."""
    tracks = items["track"] if "track" in items.columns else pd.Series("mixtures", index=items.index)
    summary = summarize_track(items[tracks == "mixtures"], seed)
    duets = items[tracks == "duets"]
    summary["duets"] = summarize_track(duets, seed) if len(duets) else None
    if (tracks == URMP_TRACK).any():
        summary[URMP_TRACK] = summarize_track(items[tracks == URMP_TRACK], seed)
    return summary
