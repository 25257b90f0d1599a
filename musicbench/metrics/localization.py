"""Sound-source localization metrics on heatmaps: cIoU, success rates, AUC, pointing game, DSOL IoU.

Definitions differ across papers, so every variant is named after its source. Shared conventions:

* a heatmap is a 2-D float array ``(h, w)`` (any resolution; larger = more likely sounding);
* it is resized to the frame ``(H, W)`` by :func:`resize_bilinear` (bilinear with half-pixel
  centres and edge clamping, the ``cv2.resize(..., INTER_LINEAR)`` / ``torch`` ``align_corners=
  False`` convention used by the LVS evaluation code), then min-max normalised to [0, 1]
  (:func:`normalize_heatmap`, a constant map becomes all zeros);
* boxes are ``[x, y, w, h]`` in pixels with a top-left origin (DSOL's annotation format); the
  pixel in row ``r``, column ``c`` belongs to a box when its centre ``(c + .5, r + .5)`` lies in
  ``[x, x + w) × [y, y + h)`` (for integer boxes: ``mask[y:y+h, x:x+w]``), see
  :func:`boxes_to_mask`;
* inputs that cannot be scored (wrong shapes, non-finite values, empty ground truth) raise
  :class:`~musicbench.metrics.separation.MetricInputError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from musicbench.metrics.separation import MetricInputError, NonFiniteInputError

#: cIoU thresholds of the AUC: 0, 0.05, ..., 1.0 (computed as 0.05·i, as LVS does).
AUC_THRESHOLDS = tuple(0.05 * i for i in range(21))

__all__ = [
    "AUC_THRESHOLDS",
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


def _heatmap(heatmap: ArrayLike) -> NDArray[np.float64]:
    h = np.asarray(heatmap, dtype=np.float64)
    if h.ndim != 2 or h.size == 0:
        raise MetricInputError(f"heatmap must have shape (h, w), got {h.shape}")
    if not np.all(np.isfinite(h)):
        raise NonFiniteInputError("heatmap holds NaN or inf values")
    return h


def _frame_size(frame_size: Sequence[int]) -> tuple[int, int]:
    if len(frame_size) != 2 or min(int(frame_size[0]), int(frame_size[1])) <= 0:
        raise MetricInputError(f"frame size must be (H, W) with positive sizes, got {tuple(frame_size)}")
    return int(frame_size[0]), int(frame_size[1])


def _axis_weights(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def resize_bilinear(heatmap: ArrayLike, height: int, width: int) -> NDArray[np.float64]:
    """Resize a 2-D map to ``(height, width)`` by bilinear interpolation, float64.

    Half-pixel centres: output pixel ``i`` samples input coordinate ``(i + 0.5)·h_in/h_out − 0.5``,
    clamped to the input's edges; no antialiasing (``cv2.INTER_LINEAR`` on float input,
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``).
    """
    h = _heatmap(heatmap)
    height, width = _frame_size((height, width))
    r0, r1, wr = _axis_weights(h.shape[0], height)
    c0, c1, wc = _axis_weights(h.shape[1], width)
    top = h[r0][:, c0] * (1 - wc) + h[r0][:, c1] * wc
    bottom = h[r1][:, c0] * (1 - wc) + h[r1][:, c1] * wc
    return top * (1 - wr)[:, None] + bottom * wr[:, None]


def normalize_heatmap(heatmap: ArrayLike) -> NDArray[np.float64]:
    """Min-max normalise to [0, 1]: ``(x − min) / (max − min)``; a constant map gives all zeros."""
    h = _heatmap(heatmap)
    lo, hi = h.min(), h.max()
    if hi == lo:
        return np.zeros_like(h)
    return (h - lo) / (hi - lo)


def _frame_heatmap(heatmap: ArrayLike, height: int, width: int) -> NDArray[np.float64]:
    return normalize_heatmap(resize_bilinear(heatmap, height, width))


def _boxes(boxes: ArrayLike) -> NDArray[np.float64]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    b = np.atleast_2d(b)
    if b.ndim != 2 or b.shape[1] != 4:
        raise MetricInputError(f"boxes must be [x, y, w, h] rows, shape (k, 4); got {np.shape(boxes)}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 2:] < 0):
        raise MetricInputError("boxes must be finite with non-negative width and height")
    return b


def boxes_to_mask(boxes: ArrayLike, height: int, width: int) -> NDArray[np.bool_]:
    """Binary mask ``(height, width)`` of the union of boxes ``[x, y, w, h]`` (pixels, top-left origin).

    A pixel (row ``r``, column ``c``) is inside a box when its centre ``(c + 0.5, r + 0.5)`` lies
    in ``[x, x + w) × [y, y + h)``; boxes are clipped to the frame. ``boxes`` has shape (k, 4) or
    (4,); an empty list gives an all-False mask.
    """
    height, width = _frame_size((height, width))
    mask = np.zeros((height, width), dtype=bool)
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    for x, y, w, h in _boxes(boxes):
        in_c = (cols >= x) & (cols < x + w)
        in_r = (rows >= y) & (rows < y + h)
        mask |= in_r[:, None] & in_c[None, :]
    return mask


def _gt_mask(gt_mask: ArrayLike) -> NDArray[np.float64]:
    gt = np.asarray(gt_mask, dtype=np.float64)
    if gt.ndim != 2 or gt.size == 0:
        raise MetricInputError(f"gt_mask must have shape (H, W), got {gt.shape}")
    if not np.all(np.isfinite(gt)) or np.any(gt < 0) or np.any(gt > 1):
        raise MetricInputError("gt_mask values must lie in [0, 1]")
    if not np.any(gt > 0):
        raise MetricInputError("gt_mask is empty (no sounding-source pixel): cIoU/IoU is undefined")
    return gt


def ciou(heatmap: ArrayLike, gt_mask: ArrayLike, threshold: float | None = None) -> float:
    """Consensus IoU (Senocak et al., CVPR 2018), binarised as in LVS (Chen et al., CVPR 2021).

    The heatmap is resized to ``gt_mask``'s frame size and min-max normalised; the prediction is
    ``pred = map > t`` with ``t = sort(map.ravel())[H·W // 2]`` (LVS's median rule: the upper
    median, strict inequality, so at most half the pixels are on); then

        cIoU = Σ(pred · gt) / (Σ gt + Σ pred · [gt = 0]).

    With a fixed `threshold` instead, ``pred = map ≥ threshold`` on the normalised map (the rule of
    evaluators that binarise at 0.5; Senocak et al.'s repository has no evaluation script, so this
    variant is named by its rule): any share of the pixels may be on (a constant map, all zeros
    once normalised, predicts nothing).

    Parameters
    ----------
    heatmap : array_like, shape (h, w)
    gt_mask : array_like, shape (H, W)
        Ground truth in [0, 1]: binary (e.g. :func:`boxes_to_mask`) or a soft consensus map
        (Senocak's annotator average); it must have at least one non-zero pixel.
    threshold : float in (0, 1], optional
        A fixed binarisation threshold on the normalised map; None: the median rule.

    Returns
    -------
    float in [0, 1]
    """
    gt = _gt_mask(gt_mask)
    m = _frame_heatmap(heatmap, *gt.shape)
    if threshold is None:
        pred = (m > np.sort(m, axis=None)[m.size // 2]).astype(np.float64)
    elif 0.0 < threshold <= 1.0:
        pred = (m >= threshold).astype(np.float64)
    else:
        raise MetricInputError(f"cIoU threshold must lie in (0, 1], got {threshold!r}")
    return float(np.sum(pred * gt) / (np.sum(gt) + np.sum(pred * (gt == 0))))


def ciou_success(cious: ArrayLike, threshold: float = 0.5) -> float:
    """Success rate: fraction of cIoUs ``>= threshold`` (LVS; "cIoU" in most tables is this at 0.5)."""
    c = np.asarray(cious, dtype=np.float64).ravel()
    if c.size == 0:
        raise MetricInputError("no cIoU values to summarise")
    if not np.all(np.isfinite(c)):
        raise NonFiniteInputError("cIoU values hold NaN or inf")
    return float(np.mean(c >= threshold))


def auc_success(cious: ArrayLike) -> float:
    """Area under the success-rate curve (LVS): success rates at thresholds 0, 0.05, ..., 1.0.

    21 points (thresholds computed as 0.05·i, as LVS does), integrated by the trapezoid rule over
    [0, 1] (LVS uses ``sklearn.metrics.auc``, the same rule). A list of all-1 cIoUs gives 1.0.
    """
    rates = [ciou_success(cious, t) for t in AUC_THRESHOLDS]
    x = np.asarray(AUC_THRESHOLDS)
    y = np.asarray(rates)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def pointing_game(heatmap: ArrayLike, boxes: ArrayLike, frame_size: Sequence[int], tolerance: float = 0.0) -> bool:
    """Pointing game hit (Zhang et al., ECCV 2016, "Top-down neural attention by excitation backprop").

    The heatmap is resized to ``frame_size = (H, W)``; the hit is whether its maximum pixel (the
    first in row-major order on ties) lies within ``tolerance`` pixels (Euclidean, between pixel
    indices) of a pixel of any box of the sounding source. Zhang et al. used a 15-pixel tolerance;
    the default here is 0 (the maximum must fall inside a box). A constant heatmap points nowhere:
    a miss.

    Parameters
    ----------
    heatmap : array_like, shape (h, w)
    boxes : array_like, shape (k, 4) or (4,)
        ``[x, y, w, h]`` in pixels of the sounding source's boxes (see :func:`boxes_to_mask`).
    frame_size : (H, W)
    tolerance : float, pixels
    """
    height, width = _frame_size(frame_size)
    m = resize_bilinear(heatmap, height, width)
    if m.max() == m.min():
        return False
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    mask = boxes_to_mask(boxes, height, width)
    if tolerance <= 0:
        return bool(mask[r, c])
    rr, cc = np.nonzero(mask)
    return bool(np.any((rr - r) ** 2 + (cc - c) ** 2 <= tolerance**2))


def dsol_ciou(heatmap: ArrayLike, gt_mask: ArrayLike, relative_threshold: float = 0.5) -> float:
    """Class-aware cIoU as DSOL's evaluation computes it (Hu et al., NeurIPS 2020;
    DTaoo/Discriminative-Sounding-Objects-Localization, ``music-exp/eval.py``).

    The class's map is resized to ``gt_mask``'s frame (bilinear, :func:`resize_bilinear`) and
    *not* normalised; ``pred = map > relative_threshold · max(map)`` (strict, on the raw values,
    which DSOL's sigmoid maps keep in (0, 1)); then Σ(pred · [gt > 0]) / (Σ gt + Σ pred · [gt = 0]),
    which is the IoU of ``pred`` and the boxes for a binary ``gt_mask``. A constant positive map
    predicts every pixel; a map whose maximum is ≤ 0 predicts none (0). DSOL averages it over a
    frame's sounding classes and reports the success rate at 0.3 (:func:`ciou_success` with
    ``threshold=0.3``) and the AUC (:func:`auc_success`).
    """
    gt = _gt_mask(gt_mask)
    m = resize_bilinear(heatmap, *gt.shape)
    pred = m > relative_threshold * m.max()
    return float(np.sum(pred * (gt > 0)) / (np.sum(gt) + np.sum(pred * (gt == 0))))


def centre_prior(height: int, width: int) -> NDArray[np.float32]:
    """The centre-prior reference heatmap ``(height, width)``: a Gaussian at the frame centre.

    ``exp(-((r - rc)² / sy² + (c - cc)² / sx²) / 2)`` with ``rc = (height - 1) / 2``,
    ``cc = (width - 1) / 2``, ``sy = height / 4``, ``sx = width / 4``: it uses neither sound nor
    pixels, so a localizer must beat it to show that it localizes (players are often centred).
    """
    if height < 1 or width < 1:
        raise MetricInputError(f"centre_prior needs a frame of at least 1 x 1 pixels, got {height} x {width}")
    rows = ((np.arange(height) - (height - 1) / 2) / (height / 4)) ** 2
    cols = ((np.arange(width) - (width - 1) / 2) / (width / 4)) ** 2
    return np.exp(-(rows[:, None] + cols[None, :]) / 2).astype(np.float32)
