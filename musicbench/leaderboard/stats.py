"""The board's statistics: per-item NSDR of a run, the paired Wilcoxon test against a baseline, Holm's correction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05
SIGNIFICANCE_TEST = (
    "Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, zero differences dropped) on per-item "
    "NSDR of the mixtures track (each item the mean over its sources), paired over the items that both "
    "runs scored; p-values Holm-adjusted over all the rows compared in a table (methods and references); "
    "significant when the adjusted p < 0.05"
)


@dataclass
class PairedTest:
    """`paired_test` of a method against the baseline: n paired items, mean_diff and median_diff
    (method − baseline, dB), the signed-rank statistic, p (two-sided, None when untestable),
    direction (+1 method higher, −1 lower, 0 none: the sign of the signed-rank sum) and note (why
    no test was made, else "")."""

    n: int
    mean_diff: float | None = None
    median_diff: float | None = None
    statistic: float | None = None
    p: float | None = None
    direction: int = 0
    note: str = ""


def finite_values(values: pd.Series) -> pd.Series:
    """`values` as floats with anything non-numeric or ±inf turned into NaN."""
    return pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan)


def per_item_values(items: pd.DataFrame | None, metric: str = "nsdr", track: str = "mixtures") -> pd.Series:
    """Per-item score of `track` (each item the mean over its scored sources), indexed by item_id;
    only items with status ok and a finite value."""
    if items is None or metric not in items.columns or items.empty:
        return pd.Series(dtype=float)
    rows = items[(items["track"] == track) & (items["status"] == "ok")]
    per_item = finite_values(rows[metric]).groupby(rows["item_id"]).mean().dropna()
    return per_item.sort_index().astype(float)


def paired_test(method: pd.Series, baseline: pd.Series) -> PairedTest:
    """`SIGNIFICANCE_TEST` of one method's per-item scores against the baseline's (both indexed by
    item_id), on the items both scored."""
    from scipy.stats import rankdata, wilcoxon

    common = method.index.intersection(baseline.index)
    diff = (method.loc[common] - baseline.loc[common]).to_numpy(dtype=np.float64)
    if diff.size == 0:
        return PairedTest(n=0, note="no item scored by both runs")
    result = PairedTest(n=int(diff.size), mean_diff=float(diff.mean()), median_diff=float(np.median(diff)))
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        result.p, result.note = 1.0, "identical per-item NSDR"
        return result
    ranks = rankdata(np.abs(nonzero))
    signed = float(ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum())
    result.direction = int(np.sign(signed))
    test = wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    result.statistic, result.p = float(test.statistic), float(test.pvalue)
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
