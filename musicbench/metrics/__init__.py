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

from musicbench.metrics.localization import (
    auc_success,
    boxes_to_mask,
    centre_prior,
    ciou,
    ciou_success,
    dsol_iou,
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

__all__ = [
    "METRIC_VERSION",
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
    "dsol_iou",
    "centre_prior",
]
