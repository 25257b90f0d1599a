"""The board's statistics: per-item NSDR of a run, its items' videos, and the paired test against a baseline.

The test resamples videos, not items (`musicbench.stats.paired_video_test`): the items of a benchmark
share videos, so treating them as independent would call too many differences significant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from musicbench.stats import TEST_RESAMPLES, holm, paired_video_test, videos_by_item

__all__ = ["ALPHA", "SIGNIFICANCE_TEST", "PairedTest", "finite_values", "holm", "item_videos", "paired_test", "per_item_values"]

ALPHA = 0.05
SIGNIFICANCE_TEST = (
    "paired video bootstrap of the mean per-item NSDR difference on the mixtures track (each item the mean "
    f"over its sources; {TEST_RESAMPLES} resamples of the test videos with replacement, each item weighted by "
    "the product of its videos' draw counts, since items share videos), over the items that both runs scored; "
    "two-sided p from the percentile interval, Holm-adjusted over all the rows compared in a table (methods "
    "and references); significant when the adjusted p < 0.05"
)


@dataclass
class PairedTest:
    """`paired_test` of a method against the baseline: n paired items on n_videos videos, mean_diff
    and median_diff (method − baseline, dB) with the 95% video-bootstrap interval of the mean
    difference (ci95), p (two-sided, None when untestable), direction (+1 method higher, −1 lower,
    0 none: the sign of the mean difference) and note (why no test was made, else "")."""

    n: int
    n_videos: int = 0
    mean_diff: float | None = None
    median_diff: float | None = None
    ci95: list[float | None] = field(default_factory=lambda: [None, None])
    p: float | None = None
    direction: int = 0
    note: str = ""


def finite_values(values: pd.Series) -> pd.Series:
    """`values` as floats with anything non-numeric or ±inf turned into NaN."""
    return pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan)


def _track_rows(items: pd.DataFrame | None, metric: str, track: str) -> pd.DataFrame:
    if items is None or metric not in items.columns or items.empty:
        return pd.DataFrame(columns=["item_id", "video_id", "status", metric])
    return items[(items["track"] == track) & (items["status"] == "ok")]


def per_item_values(items: pd.DataFrame | None, metric: str = "nsdr", track: str = "mixtures") -> pd.Series:
    """Per-item score of `track` (each item the mean over its scored sources), indexed by item_id;
    only items with status ok and a finite value."""
    rows = _track_rows(items, metric, track)
    per_item = finite_values(rows[metric]).groupby(rows["item_id"]).mean().dropna()
    return per_item.sort_index().astype(float)


def item_videos(items: pd.DataFrame | None, track: str = "mixtures") -> dict[str, list[str]]:
    """item_id → the videos of its sources (sorted, distinct; a Solos clip counts as its YouTube video,
    `musicbench.manifest.video_of`), for the items of `track` with status ok."""
    return videos_by_item(_track_rows(items, "video_id", track))


def paired_test(method: pd.Series, baseline: pd.Series, videos: dict[str, list[str]], seed: int) -> PairedTest:
    """`SIGNIFICANCE_TEST` of one method's per-item scores against the baseline's (both indexed by
    item_id), on the items both scored; `videos` maps each item to its videos."""
    common = method.index.intersection(baseline.index)
    diff = (method.loc[common] - baseline.loc[common]).to_numpy(dtype=np.float64)
    if diff.size == 0:
        return PairedTest(n=0, note="no item scored by both runs")
    unit_videos = [videos.get(str(item), [str(item)]) for item in common]
    result = PairedTest(n=int(diff.size), n_videos=len({v for vs in unit_videos for v in vs}),
                        mean_diff=float(diff.mean()), median_diff=float(np.median(diff)))
    if not np.any(diff):
        result.p, result.note = 1.0, "identical per-item NSDR"
        return result
    result.direction = int(np.sign(diff.mean()))
    result.p, (low, high) = paired_video_test(diff, unit_videos, seed)
    result.ci95 = [low, high]
    return result
