"""musicbench.metrics.localization on hand-made heatmaps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from musicbench.metrics import (
    MetricInputError,
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


def test_boxes_to_mask():
    mask = boxes_to_mask([[1, 2, 3, 1]], 4, 5)
    expected = np.zeros((4, 5), bool)
    expected[2, 1:4] = True
    np.testing.assert_array_equal(mask, expected)
    # pixel centres decide for fractional boxes; boxes are clipped to the frame; union of boxes
    mask = boxes_to_mask(np.array([[0.4, 0, 1.2, 1], [3, 3, 10, 10]]), 4, 5)
    assert mask[0, 0] and mask[0, 1] and not mask[0, 2]
    assert mask[3, 3:].all() and mask.sum() == 2 + 2
    assert not boxes_to_mask([], 3, 3).any()
    np.testing.assert_array_equal(boxes_to_mask([1, 2, 3, 1], 4, 5), boxes_to_mask([[1, 2, 3, 1]], 4, 5))
    with pytest.raises(MetricInputError):
        boxes_to_mask([[1, 2, 3]], 4, 5)


def test_resize_bilinear_half_pixel_convention():
    small = np.array([[0.0, 1.0], [2.0, 3.0]])
    out = resize_bilinear(small, 4, 4)
    np.testing.assert_allclose(out[0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(out[1], [0.5, 0.75, 1.25, 1.5])
    np.testing.assert_array_equal(resize_bilinear(small, 2, 2), small)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    heat = rng.random((7, 7))
    for size in ((224, 224), (96, 128), (5, 3)):
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(heat)[None, None], size=size, mode="bilinear", align_corners=False
        )[0, 0].numpy()
        np.testing.assert_allclose(resize_bilinear(heat, *size), ref, atol=1e-12)


def test_normalize_heatmap():
    np.testing.assert_allclose(normalize_heatmap([[2.0, 4.0], [3.0, 6.0]]), [[0, 0.5], [0.25, 1.0]])
    np.testing.assert_array_equal(normalize_heatmap(np.full((3, 3), 7.0)), np.zeros((3, 3)))


def test_ciou_known_answers():
    gt = boxes_to_mask([[2, 2, 4, 4]], 8, 8)
    assert ciou(gt.astype(float), gt) == 1.0  # heatmap exactly the box
    assert ciou(1.0 - gt, gt) == 0.0  # inverted
    assert ciou(gt.astype(float) * 5 + 3, gt) == 1.0  # min-max normalisation: scale and offset free
    # a coarse 4x4 map of the box, resized to 8x8: per-axis weights w = [0, .25, .75, 1, 1, .75, .25, 0]
    # (half-pixel bilinear), map = outer(w, w); sorted[32] = 0.1875, so pred = products > 0.1875:
    # 24 pixels, all 16 gt pixels (w >= .75 there) and 8 outside -> 16 / (16 + 8)
    coarse = np.zeros((4, 4))
    coarse[1:3, 1:3] = 1.0
    assert ciou(coarse, gt) == pytest.approx(2 / 3)
    # hand-computed: 4x4 frame, gt = top-left 2x2; t = sorted[8] = 8 so pred = values 9..15 (7 pixels)
    heat = np.array([[15, 14, 0, 1], [13, 2, 3, 4], [12, 11, 10, 9], [5, 6, 7, 8]], float)
    gt4 = boxes_to_mask([[0, 0, 2, 2]], 4, 4)
    # 3 of the 4 gt pixels predicted, 4 predicted outside: 3 / (4 + 4)
    assert ciou(heat, gt4) == pytest.approx(3 / 8)
    # a soft (consensus) gt in [0, 1]
    soft = gt4 * 0.5
    assert ciou(heat, soft) == pytest.approx(1.5 / (2 + 4))
    with pytest.raises(MetricInputError, match="empty"):
        ciou(heat, np.zeros((4, 4)))
    with pytest.raises(MetricInputError):
        ciou(heat, gt4 * 2.0)
    with pytest.raises(MetricInputError):
        ciou(np.full((2, 2), np.nan), gt4)


def test_ciou_at_a_fixed_threshold():
    heat = np.array([[15, 14, 0, 1], [13, 2, 3, 4], [12, 11, 10, 9], [5, 6, 7, 8]], float)
    gt4 = boxes_to_mask([[0, 0, 2, 2]], 4, 4)
    # normalised (x / 15) >= 0.5: values 8..15 (8 pixels), 3 of them in the box: 3 / (4 + 5)
    assert ciou(heat, gt4, threshold=0.5) == pytest.approx(3 / 9)
    assert ciou(heat, gt4, threshold=1.0) == pytest.approx(1 / 4)  # only the maximum
    assert ciou(heat, gt4, threshold=0.5) != ciou(heat, gt4)  # not the median rule (3 / 8)
    assert ciou(np.ones((4, 4)), gt4, threshold=0.5) == 0.0  # a constant map predicts nothing
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(MetricInputError, match="threshold"):
            ciou(heat, gt4, threshold=bad)


def test_success_and_auc():
    assert ciou_success([0.2, 0.5, 0.7]) == pytest.approx(2 / 3)
    assert ciou_success([0.2, 0.5, 0.7], threshold=0.3) == pytest.approx(2 / 3)
    assert auc_success([1.0, 1.0]) == pytest.approx(1.0)
    assert auc_success([0.0]) == pytest.approx(0.025)  # success 1 at t=0 only: one half trapezoid
    assert auc_success([0.5]) == pytest.approx(0.525)  # success 1 up to t=0.5, then 0
    cious = [0.1, 0.33, 0.62, 0.9]
    thresholds = np.arange(21) * 0.05
    rates = [np.mean(np.asarray(cious) >= t) for t in thresholds]
    assert auc_success(cious) == pytest.approx(np.trapezoid(rates, thresholds))
    with pytest.raises(MetricInputError):
        auc_success([])


def test_pointing_game():
    heat = np.zeros((10, 10))
    heat[4, 5] = 1.0
    assert pointing_game(heat, [[4, 3, 3, 3]], (10, 10))  # (row 4, col 5) inside x 4..6, y 3..5
    assert not pointing_game(heat, [[0, 0, 3, 3]], (10, 10))
    assert pointing_game(heat, [[0, 0, 3, 3], [5, 4, 1, 1]], (10, 10))  # any box of the source
    assert not pointing_game(heat, [[7, 4, 2, 2]], (10, 10))  # 2 px to the right
    assert pointing_game(heat, [[7, 4, 2, 2]], (10, 10), tolerance=2)
    assert not pointing_game(np.ones((10, 10)), [[0, 0, 10, 10]], (10, 10))  # constant: points nowhere
    # coarse heatmap resized to a larger frame: peak cell (1, 2) of 4x4 -> frame rows 20..39, cols 40..59
    coarse = np.zeros((4, 4))
    coarse[1, 2] = 1.0
    assert pointing_game(coarse, [[40, 20, 20, 20]], (80, 80))
    assert not pointing_game(coarse, [[0, 0, 40, 80]], (80, 80))


def _dsol_eval_port(pred_map: np.ndarray, boxes_normalised: list, side: int = 224) -> float:
    """music-exp/eval.py's lines for one class: gtmap from normalised boxes on a side×side grid, the
    map resized (bilinear, half-pixel centres as cv2.resize), threshold 0.5·max, strict."""
    gtmap = np.zeros((side, side))
    for box in boxes_normalised:
        box = np.array(box) * side
        gtmap[int(box[1]): int(box[1] + box[3]), int(box[0]): int(box[0] + box[2])] = 1
    predmap = resize_bilinear(pred_map, side, side)
    thresvalue = 0.5 * np.max(predmap)
    return np.sum((predmap > thresvalue) * (gtmap > 0)) / (np.sum(gtmap) + np.sum((predmap > thresvalue) * (gtmap == 0)))


def test_dsol_ciou_is_the_rule_of_dsols_evaluation():
    gt = boxes_to_mask([[2, 2, 4, 4]], 8, 8)
    assert dsol_ciou(gt.astype(float), gt) == 1.0
    heat = np.zeros((8, 8))
    heat[2:6, 2:4] = 1.0  # half of the box
    heat[0, 0] = 0.6  # above half max: predicted too
    assert dsol_ciou(heat, gt) == pytest.approx(8 / 17)
    heat[0, 0] = 0.5  # at half max: not predicted (strict)
    assert dsol_ciou(heat, gt) == pytest.approx(8 / 16)
    assert dsol_ciou(np.ones((8, 8)), gt) == pytest.approx(16 / 64)  # a constant map predicts everything
    assert dsol_ciou(-np.ones((8, 8)), gt) == 0.0
    # raw values, not min-max normalised: a map in [0.4, 1] binarised at 0.5 (0.5·max), not at 0.7
    rng = np.random.default_rng(26)
    for _ in range(20):
        coarse = 0.4 + 0.6 * rng.random((14, 14))  # a sigmoid map of DSOL's 14×14 grid
        x, y = rng.uniform(0, 0.6, 2)
        boxes = [[x, y, rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4)]]
        gtmap = np.zeros((224, 224))
        box = np.array(boxes[0]) * 224
        gtmap[int(box[1]): int(box[1] + box[3]), int(box[0]): int(box[0] + box[2])] = 1
        assert dsol_ciou(coarse, gtmap) == pytest.approx(_dsol_eval_port(coarse, boxes), abs=1e-12)


def test_centre_prior():
    prior = centre_prior(96, 128)
    assert prior.shape == (96, 128) and prior.dtype == np.float32
    assert prior.max() == pytest.approx(np.exp(-(0.5 / 24) ** 2 / 2 - (0.5 / 32) ** 2 / 2))  # the 4 centre pixels
    assert np.allclose(prior, prior[::-1]) and np.allclose(prior, prior[:, ::-1])  # symmetric
    assert prior[48, 95] == pytest.approx(np.exp(-((0.5 / 24) ** 2 + (31.5 / 32) ** 2) / 2))  # ~1 sigma out
    centred = boxes_to_mask([[40, 30, 48, 36]], 96, 128)
    corner = boxes_to_mask([[0, 0, 30, 20]], 96, 128)
    # the median rule switches on about half the frame (fewer with ties), covering the centred box
    assert ciou(prior, centred) == pytest.approx(48 * 36 / (96 * 128 / 2), rel=0.01) and ciou(prior, corner) == 0.0
    assert pointing_game(prior, [[40, 30, 48, 36]], (96, 128)) and not pointing_game(prior, [[0, 0, 30, 20]], (96, 128))
    with pytest.raises(MetricInputError):
        centre_prior(0, 5)
