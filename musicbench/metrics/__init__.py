"""Metric engine: pure functions for separation (BSS Eval v3, NSDR, SI-SDR) and localization.

``METRIC_VERSION`` names the numbers these functions produce. Scores are cached by
(estimate hash, metric version), so the bump rule is:

* bump it whenever any function here can return a different number for the same input beyond
  float64 rounding (a changed definition, default, threshold, resize rule, filter length, input
  policy that turns an error into a score or back) — old cached scores are then recomputed;
* do not bump it for speed-ups or refactors whose outputs stay within 1e-9 dB (separation) or
  bit-identical (localization) on the test suite, nor for new functions that leave the existing
  ones unchanged.

Format ``"<major>.<minor>"``: major for a changed definition of a reported metric, minor for
anything else that changes numbers.
"""

import math
from typing import Any

import numpy as np
import pandas as pd

from musicbench.metrics.localization import (
    auc_success,
    boxes_to_mask,
    centre_prior,
    ciou,
    ciou_success,
    dsol_ciou,
    normalize_heatmap,
    pointing_game,
    resize_bilinear,
)
from musicbench.metrics.separation import (
    FILTER_LENGTH,
    MetricInputError,
    NonFiniteInputError,
    SilentSourceError,
    bss_eval_sources,
    bss_eval_sources_batch,
    mixture_sdr,
    nsdr,
    sdr_sources,
    sdr_sources_batch,
    si_sdr,
    si_sdr_improvement,
)

METRIC_VERSION = "1.1"  # 1.1: structured (Schur) factorisation; differs from 1.0 by up to 3.3e-8 dB

# The per-source scores of items.parquet and summary.json: separation in dB, localization as fractions.
SEPARATION_METRICS = ("nsdr", "sdr", "sir", "sar", "si_sdr", "si_sdri")
LOCALIZATION_METRICS = ("ciou", "pointing_hit")
ITEM_METRICS = SEPARATION_METRICS + LOCALIZATION_METRICS
# The separation scores averaged per instrument (summary.json ``per_instrument``, the board's duet blocks).
PER_INSTRUMENT_METRICS = ("nsdr", "sdr", "sir", "sar", "si_sdri")
# What a failed item (no estimate, or one the metrics refuse) is charged: a score no better than any
# the method could have reached, so that failing never raises a mean, a median or a rank: the lower
# bound of each metric (−inf dB for separation, 0 for the localization fractions).
# The literature's other binarisations of a source's map, per source in items.parquet and summarised in
# summary.json's localization block only (never ranked): cIoU of the normalised map ≥ 0.5
# (`ciou` with ``threshold=0.5``) and DSOL's class-aware cIoU (`dsol_ciou`).
LOCALIZATION_VARIANTS = ("ciou_t05", "dsol_ciou")
# The cIoU at which each variant's success rate is reported (DSOL reports 0.3).
VARIANT_SUCCESS_AT = {"ciou_t05": 0.5, "dsol_ciou": 0.3}
# summary.json's localization keys of the variants: mean, success rate and AUC of each.
VARIANT_SUMMARY_KEYS = tuple(key for name, at in VARIANT_SUCCESS_AT.items()
                             for key in (f"{name}_mean", f"{name}_success@{at}", f"{name}_auc"))
WORST_SCORES = {**{name: float("-inf") for name in SEPARATION_METRICS},
                **{name: 0.0 for name in LOCALIZATION_METRICS + LOCALIZATION_VARIANTS}}


def scores_keeping_plus_inf(values: np.ndarray) -> list[float | None]:
    """Per-source scores ``(n_sources,)`` as floats for items.parquet: finite values and +inf (a
    perfect estimate) kept, NaN and -inf become None."""
    return [float(v) if np.isfinite(v) else (float("inf") if v > 0 else None) for v in values]


def finite_or_none(value: Any) -> float | None:
    """`value` as a float when it is a finite number; None for anything else (NaN, ±inf, text, None)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None

__all__ = [
    "METRIC_VERSION",
    "SEPARATION_METRICS",
    "LOCALIZATION_METRICS",
    "LOCALIZATION_VARIANTS",
    "VARIANT_SUCCESS_AT",
    "VARIANT_SUMMARY_KEYS",
    "ITEM_METRICS",
    "PER_INSTRUMENT_METRICS",
    "WORST_SCORES",
    "charge_failures",
    "scores_keeping_plus_inf",
    "finite_or_none",
    "FILTER_LENGTH",
    "MetricInputError",
    "NonFiniteInputError",
    "SilentSourceError",
    "bss_eval_sources",
    "bss_eval_sources_batch",
    "sdr_sources",
    "sdr_sources_batch",
    "mixture_sdr",
    "nsdr",
    "si_sdr",
    "si_sdr_improvement",
    "resize_bilinear",
    "normalize_heatmap",
    "boxes_to_mask",
    "ciou",
    "ciou_success",
    "auc_success",
    "pointing_game",
    "dsol_ciou",
    "centre_prior",
]


def charge_failures(items: pd.DataFrame) -> pd.DataFrame:
    """`items` (items.parquet rows: status and per-source scores) with every row of a failed item
    (status not ok) charged `WORST_SCORES` for each metric the run reports at all (−inf dB for
    separation, 0 for cIoU and pointing): failing on chosen items can then never raise a mean, a
    median, a per-instrument mean or a rank."""
    charged = items.copy()
    failed = charged["status"] != "ok"
    for name, worst in WORST_SCORES.items():
        if name in charged.columns:
            values = pd.to_numeric(charged[name], errors="coerce").astype(np.float64)
            reported = values[~failed].notna().any()
            charged[name] = values.where(~failed, worst if reported else np.nan)
    return charged
