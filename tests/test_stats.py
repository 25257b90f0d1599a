"""Uncertainty that respects shared videos, measured by simulation: benchmark-like items (100 mixtures
of 2 of 22 videos) whose scores carry a per-video effect. The video bootstrap's 95% interval covers
the true mean about 95% of the time, the item bootstrap's far less; the paired video test keeps its
size where a test over items as if independent does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from musicbench.stats import (
    holm,
    item_bootstrap_ci,
    paired_video_test,
    video_bootstrap_ci,
    video_bootstrap_weights,
)

N_VIDEOS, N_ITEMS, REPEATS = 22, 100, 300


def _items(rng: np.random.Generator, video_sd: float, item_sd: float = 1.0, noise_sd: float = 2.0):
    """(per-item scores with true mean 0, the videos of each item): each item the mean of 2 sources
    of distinct videos, a source's score = its video's effect + the item's effect + noise."""
    effects = rng.normal(0.0, video_sd, N_VIDEOS)
    pairs = np.array([rng.choice(N_VIDEOS, 2, replace=False) for _ in range(N_ITEMS)])
    sources = effects[pairs] + rng.normal(0.0, item_sd, (N_ITEMS, 1)) + rng.normal(0.0, noise_sd, (N_ITEMS, 2))
    return sources.mean(axis=1), [[f"v{a}", f"v{b}"] for a, b in pairs]


def _coverage(video_sd: float) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    video_hits = item_hits = 0
    for repeat in range(REPEATS):
        scores, videos = _items(rng, video_sd)
        low, high = video_bootstrap_ci(scores, videos, seed=repeat, n_resamples=1000)
        video_hits += low <= 0.0 <= high
        low, high = item_bootstrap_ci(scores, seed=repeat, n_resamples=1000)
        item_hits += low <= 0.0 <= high
    return video_hits / REPEATS, item_hits / REPEATS


def test_video_bootstrap_covers_the_true_mean_where_the_item_bootstrap_does_not():
    video, item = _coverage(video_sd=2.0)
    assert 0.90 <= video <= 0.99, video
    assert item < 0.75, item  # items that share videos are not independent


def test_video_bootstrap_errs_on_the_wide_side_without_video_effects():
    video, item = _coverage(video_sd=0.0)
    assert video >= 0.93 and item >= 0.88, (video, item)


def test_paired_video_test_keeps_its_size_under_video_effects():
    rng = np.random.default_rng(11)
    video_rejections = item_rejections = 0
    repeats = 200
    for repeat in range(repeats):
        differences, videos = _items(rng, video_sd=1.5, item_sd=0.5, noise_sd=1.0)  # method − baseline, true mean 0
        p, _ = paired_video_test(differences, videos, seed=repeat, n_resamples=999)
        video_rejections += p < 0.05
        item_rejections += wilcoxon(differences).pvalue < 0.05
    assert video_rejections / repeats <= 0.08, video_rejections
    assert item_rejections / repeats >= 0.25, item_rejections


def test_paired_video_test_finds_a_real_difference_and_is_seeded():
    rng = np.random.default_rng(3)
    differences, videos = _items(rng, video_sd=0.5, item_sd=0.5, noise_sd=1.0)
    p, (low, high) = paired_video_test(differences + 1.0, videos, seed=1)
    assert p < 0.001 and 0 < low < 1.0 < high
    assert paired_video_test(differences + 1.0, videos, seed=1) == (p, (low, high))


def test_video_bootstrap_weights_are_products_of_video_draw_counts():
    rng = np.random.default_rng(0)
    units = [["a", "b"], ["b"], ["a", "a"], []]
    weights = video_bootstrap_weights(units, 500, rng)
    counts = video_bootstrap_weights([["a"], ["b"]], 500, np.random.default_rng(0))
    assert weights.shape == (500, 4)
    np.testing.assert_array_equal(weights[:, 0], counts[:, 0] * counts[:, 1])
    np.testing.assert_array_equal(weights[:, 1], counts[:, 1])
    np.testing.assert_array_equal(weights[:, 2], counts[:, 0])  # a video counts once per unit
    np.testing.assert_array_equal(weights[:, 3], 1.0)  # a unit without videos is always drawn once
    assert (counts.sum(axis=1) == 2).all()  # as many videos drawn as there are


def test_holm():
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06], abs=1e-12)
