"""Uncertainty that respects shared videos: the video bootstrap, the paired video bootstrap test, Holm.

Benchmark items are not independent: the 100 test mixtures of the default benchmark reuse about 22
test videos, each in 6 to 16 items, and a video that is easy (or hard) to separate lifts (or sinks)
every item it is in. Resampling items as if independent then gives intervals that are too narrow
(they cover the true mean far less often than they claim).

The unit of resampling here is the video. One bootstrap resample draws as many videos as there are,
with replacement; a unit of analysis (an item, or one source of an item) enters with the weight
``prod_v count(v)`` over the distinct videos ``v`` it depends on (for a mixture item its sources'
videos, for a duet the one video): the pigeonhole bootstrap for crossed designs (Owen, "The
pigeonhole bootstrap", Annals of Applied Statistics 2007). The statistic of a resample is the
weighted mean. It errs on the wide side when the videos hardly matter and is close to nominal when
they do (tests/test_stats.py measures both against the item bootstrap by simulation).

The paired test of two runs resamples the per-item differences (method − baseline) in the same way;
its two-sided p-value is the one of the percentile interval of the mean difference (the interval
excludes 0 at level 1 − α exactly when p < α).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from musicbench.manifest import video_of

CI_LEVEL = 0.95
CI_RESAMPLES = 2000  # resamples of a confidence interval
TEST_RESAMPLES = 9999  # resamples of a paired test (the smallest p it can give is 2 / 10000)
BOOTSTRAP_DESCRIPTION = (
    "95% percentile bootstrap over videos (items share videos: videos are drawn with replacement and "
    "each item weighted by the product of its videos' draw counts, the pigeonhole bootstrap)"
)


def videos_by_item(rows: pd.DataFrame) -> dict[str, list[str]]:
    """item_id → the distinct videos (sorted) of an items table's rows (``item_id``, ``video_id``): the
    units the bootstrap resamples. A Solos clip ``<id>.NN`` counts as its YouTube video (`video_of`)."""
    return {str(item): sorted({video_of(str(video)) for video in group}) for item, group in rows.groupby("item_id")["video_id"]}


def video_bootstrap_weights(unit_videos: Sequence[Sequence[str]], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n_units)`` weights of the video bootstrap: per resample, the videos named in
    `unit_videos` drawn with replacement (as many as there are), each unit weighted by the product of
    the draw counts of its distinct videos."""
    names = sorted({video for videos in unit_videos for video in videos})
    if not names:
        return np.ones((n_resamples, len(unit_videos)))
    position = {name: i for i, name in enumerate(names)}
    counts = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=n_resamples).astype(np.float64)
    counts = np.concatenate([counts, np.ones((n_resamples, 1))], axis=1)  # the last column: "no video", weight 1
    width = max((len(set(videos)) for videos in unit_videos), default=1) or 1
    columns = np.full((len(unit_videos), width), len(names))
    for unit, videos in enumerate(unit_videos):
        distinct = sorted({position[video] for video in videos})
        columns[unit, :len(distinct)] = distinct
    return counts[:, columns].prod(axis=2)


def video_bootstrap_means(values: np.ndarray, unit_videos: Sequence[Sequence[str]], seed: int,
                          n_resamples: int = CI_RESAMPLES) -> np.ndarray:
    """Weighted means of `values` ``(n_units,)`` over the video bootstrap's resamples (resamples that
    drew none of the units' videos are left out)."""
    values = np.asarray(values, dtype=np.float64)
    if len(unit_videos) != values.size:
        raise ValueError(f"{values.size} values but {len(unit_videos)} lists of videos")
    weights = video_bootstrap_weights(unit_videos, n_resamples, np.random.default_rng(seed))
    totals = weights.sum(axis=1)
    keep = totals > 0
    return (weights[keep] @ values) / totals[keep]


def video_bootstrap_ci(values: np.ndarray, unit_videos: Sequence[Sequence[str]], seed: int,
                       n_resamples: int = CI_RESAMPLES, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean of `values` ``(n_units,)`` by the video bootstrap (NaN, NaN
    when there is no value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    means = video_bootstrap_means(values, unit_videos, seed, n_resamples)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def item_bootstrap_ci(values: np.ndarray, seed: int, n_resamples: int = CI_RESAMPLES,
                      level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean resampling units as if independent (what the board did
    before; kept to measure the video bootstrap against, in tests and bench/)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_video_test(differences: np.ndarray, unit_videos: Sequence[Sequence[str]], seed: int,
                      n_resamples: int = TEST_RESAMPLES, level: float = CI_LEVEL) -> tuple[float, tuple[float, float]]:
    """Two-sided p-value that the mean of the paired `differences` ``(n_units,)`` is 0, and the
    percentile interval of that mean, both by the video bootstrap: p is the smallest ``1 − level`` at
    which the interval excludes 0, ``2 min(#{mean* <= 0} + 1, #{mean* >= 0} + 1) / (n + 1)``, at most 1."""
    means = video_bootstrap_means(differences, unit_videos, seed, n_resamples)
    below, above = int((means <= 0).sum()) + 1, int((means >= 0).sum()) + 1
    p = min(1.0, 2.0 * min(below, above) / (means.size + 1))
    alpha = (1 - level) / 2
    return p, (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None), in the input order."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running, m = 0.0, len(order)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
