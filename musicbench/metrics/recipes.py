"""Published scoring recipes, so that a number can sit beside a paper's table.

musicbench's own recipe (the harness, `musicbench.evaluate`): every item is scored on all its
samples, the estimates as the model returned them; every item counts (a failed one is charged the
worst score); the figure is the mean over items.

The Sound of Pixels' recipe (hangzhaomit/Sound-of-Pixels, ``main.py``: ``calc_metrics`` and
``evaluate``; ``utils.istft_reconstruction``), in four steps, each of which can be switched off to
measure it alone (`SopSteps`):

1. ``truncate``: the estimates come from an inverse STFT without a length (256 frames, hop 256:
   `SOP_SAMPLES` = 65280 samples); the references and the mixture are cut to that length;
2. ``clip``: the estimates and the (resynthesised) mixture are clipped to [−1, 1];
3. ``validity``: an item is skipped when any reference or estimate source has Σ|x| ≤ 1e-5 (so a
   silent estimate, which is what a failed item gives, is skipped instead of charged);
4. ``batches``: an item's SDR, SIR, SAR and mixture SDR are means over its sources; the valid items
   of each batch of `SOP_BATCH` (list order, the last batch partial) are averaged, a batch with no
   valid item counts 0.0, and the batch means are averaged with equal weight.

NSDR is the SDR average minus the mixture-SDR average. BSS Eval is `bss_eval_sources` (mir_eval's
``bss_eval_sources(..., False)`` to ~1e-10 dB). Step 3 lets a method gain by failing, which is why
musicbench ranks by its own recipe and reports this one beside it.

DSOL's solo localization recipe (DTaoo/Discriminative-Sounding-Objects-Localization,
``music-exp/tools.py``, ``cal_ciou``; `dsol_solo_ciou`, `dsol_solo_figures`): the map is resized to
`DSOL_SIZE` × `DSOL_SIZE` (``cv2.resize``, bilinear: `resize_bilinear`) and not normalised; the
ground truth is every box in normalised coordinates times `DSOL_SIZE`, each edge truncated by
``int()``; a pixel is predicted where the map exceeds `DSOL_SOLO_THRESHOLD` × its maximum; cIoU is
Σ(pred · gt) / (Σ gt + Σ pred · (1 − gt)); the figures are the success rate at cIoU 0.5 and the
AUC over thresholds 0, 0.05, ..., 1 (``sklearn.metrics.auc``: the trapezoid rule).

DSOL's duet recipe (``music-exp/eval_duet.py``; `dsol_duet_scores`, `dsol_duet_figures`) scores one
map per class: per annotated class of a frame, that class's map against that class's boxes, as
above but at `DSOL_DUET_THRESHOLD` × the maximum, the frame's cIoU the mean over its classes
(success rates at 0.3, DSOL's reported one, and 0.5; AUC); and NSA, per class without a box in the
frame, the share of its map at or below the absolute value `DSOL_SILENT_VALUE`, averaged over those
classes and then over frames (so class maps must lie in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from musicbench.metrics import WORST_SCORES
from musicbench.metrics.localization import AUC_THRESHOLDS, auc_success, ciou_success, resize_bilinear
from musicbench.metrics.separation import bss_eval_sources

#: Samples an estimate keeps in the Sound of Pixels' pipeline: an inverse STFT of 256 frames at hop 256.
SOP_SAMPLES = 65280
#: The evaluation batch of ``scripts/eval_MUSIC.sh`` (``batch_size_per_gpu`` 32, one GPU, ``drop_last=False``).
SOP_BATCH = 32
#: An item is valid when every reference and estimate source has Σ|x| above this.
SOP_VALID_SUM = 1e-5
#: The per-item figures the recipe averages.
SOP_FIGURES = ("sdr", "sir", "sar", "sdr_mix")


@dataclass(frozen=True)
class SopSteps:
    """Which steps of the Sound of Pixels' recipe apply (all, by default; see the module docstring)."""

    truncate: bool = True
    clip: bool = True
    validity: bool = True
    batches: bool = True


def sop_item_scores(reference: ArrayLike, estimate: ArrayLike | None, mixture: ArrayLike,
                    steps: SopSteps = SopSteps()) -> dict[str, float] | None:
    """One item's figures under the recipe: ``{"sdr", "sir", "sar", "sdr_mix"}`` (dB, means over
    sources), or None where the item is skipped (``validity``: a source with Σ|x| ≤ `SOP_VALID_SUM`).
    Without ``validity`` an all-zero estimate source is charged as musicbench charges a failure
    (−inf dB; BSS Eval is undefined for it).

    reference, estimate: ``(n_sources, n_samples)``; mixture ``(n_samples,)``. ``estimate`` None (a
    failed item) stands for the all-zero estimate the reference pipeline would produce.
    """
    reference = np.asarray(reference, dtype=np.float64)
    mixture = np.asarray(mixture, dtype=np.float64)
    estimate = np.zeros_like(reference) if estimate is None else np.asarray(estimate, dtype=np.float64)
    if steps.truncate:
        reference, estimate, mixture = reference[:, :SOP_SAMPLES], estimate[:, :SOP_SAMPLES], mixture[:SOP_SAMPLES]
    if steps.clip:
        estimate, mixture = np.clip(estimate, -1.0, 1.0), np.clip(mixture, -1.0, 1.0)
    valid = bool(np.all(np.abs(reference).sum(axis=-1) > SOP_VALID_SUM) and np.all(np.abs(estimate).sum(axis=-1) > SOP_VALID_SUM))
    if not valid and steps.validity:  # as the reference's `>` tests: a NaN sum is not valid either
        return None
    sdr_mix = float(np.mean(bss_eval_sources(reference, np.broadcast_to(mixture, reference.shape))[0]))
    if not np.all(np.any(estimate != 0, axis=-1)):  # kept although silent: charged as musicbench charges a failure
        return {"sdr": WORST_SCORES["sdr"], "sir": WORST_SCORES["sir"], "sar": WORST_SCORES["sar"], "sdr_mix": sdr_mix}
    sdr, sir, sar = bss_eval_sources(reference, estimate)
    return {"sdr": float(np.mean(sdr)), "sir": float(np.mean(sir)), "sar": float(np.mean(sar)), "sdr_mix": sdr_mix}


def sop_average(values: Sequence[float | None], steps: SopSteps = SopSteps()) -> float:
    """The recipe's average of per-item values in list order (None: a skipped item): with
    ``batches``, the mean of the batch means (batches of `SOP_BATCH`; a batch without a value counts
    0.0); without, the mean of the values. NaN when there is no value at all (without ``batches``)."""
    if not steps.batches:
        kept = [value for value in values if value is not None]
        return float(np.mean(kept)) if kept else float("nan")
    means = []
    for start in range(0, len(values), SOP_BATCH):
        kept = [value for value in values[start : start + SOP_BATCH] if value is not None]
        means.append(float(np.mean(kept)) if kept else 0.0)
    return float(np.mean(means)) if means else float("nan")


def sop_figures(scored: Sequence[dict[str, float] | None], steps: SopSteps = SopSteps()) -> dict[str, float | int]:
    """The recipe's figures from per-item scores in list order (`sop_item_scores`, None: skipped):
    ``sdr``, ``sir``, ``sar``, ``sdr_mix`` and ``nsdr`` (dB) averaged as `steps` say (`sop_average`),
    ``n_items``, ``n_valid`` and ``n_batches``."""
    figures: dict[str, float | int] = {
        name: sop_average([None if item is None else item[name] for item in scored], steps) for name in SOP_FIGURES}
    figures["nsdr"] = figures["sdr"] - figures["sdr_mix"]
    figures.update(n_items=len(scored), n_valid=sum(item is not None for item in scored),
                   n_batches=-(-len(scored) // SOP_BATCH) if steps.batches else 0)
    return figures


def sop_recipe(items: Iterable[tuple[ArrayLike, ArrayLike | None, ArrayLike]], steps: SopSteps = SopSteps()
               ) -> dict[str, float | int]:
    """The Sound of Pixels' figures (`sop_figures`) of items given in list order as ``(reference,
    estimate or None, mixture)``."""
    return sop_figures([sop_item_scores(reference, estimate, mixture, steps) for reference, estimate, mixture in items],
                       steps)


#: The side of the square DSOL's evaluation resizes maps and boxes to.
DSOL_SIZE = 224
#: DSOL's solo test predicts a pixel where the map exceeds this fraction of its maximum.
DSOL_SOLO_THRESHOLD = 0.1
#: DSOL's duet test predicts a pixel of a class's map where it exceeds this fraction of its maximum.
DSOL_DUET_THRESHOLD = 0.2
#: NSA (DSOL's duets): a pixel of a silent class's map is silent where its value is at most this.
DSOL_SILENT_VALUE = 0.2


def dsol_grid_ciou(heatmap: ArrayLike, boxes: ArrayLike, frame_size: Sequence[int], relative_threshold: float) -> float:
    """cIoU of one map as DSOL's evaluation computes it: map resized to `DSOL_SIZE`² (not
    normalised), pixels above `relative_threshold` × its maximum, boxes ``(k, 4)`` in pixels of a
    frame of `frame_size` ``(H, W)`` normalised by it and cut to the grid by ``int()``."""
    height, width = int(frame_size[0]), int(frame_size[1])
    gt = np.zeros((DSOL_SIZE, DSOL_SIZE))
    for box in np.atleast_2d(np.asarray(boxes, dtype=np.float64)):
        x, y, w, h = np.array([box[0] / width, box[1] / height, box[2] / width, box[3] / height]) * DSOL_SIZE
        gt[int(y):int(y + h), int(x):int(x + w)] = 1
    predicted = resize_bilinear(heatmap, DSOL_SIZE, DSOL_SIZE)
    predicted = predicted > relative_threshold * np.max(predicted)
    union = np.sum(gt) + np.sum(predicted * (gt == 0))
    return float(np.sum(predicted * (gt > 0)) / union) if union else 0.0  # DSOL's 0 / 0 (a box under one pixel) is NaN


def dsol_solo_ciou(heatmap: ArrayLike, boxes: ArrayLike, frame_size: Sequence[int]) -> float:
    """cIoU of one map by DSOL's ``cal_ciou`` (module docstring): `heatmap` ``(h, w)``, `boxes`
    ``(k, 4)`` ``[x, y, w, h]`` in pixels of a frame of `frame_size` ``(H, W)`` (normalised by it, as
    DSOL's ``normbox``)."""
    return dsol_grid_ciou(heatmap, boxes, frame_size, DSOL_SOLO_THRESHOLD)


def dsol_solo_figures(cious: Sequence[float]) -> dict[str, float | int]:
    """DSOL's solo figures of per-item cIoUs (`dsol_solo_ciou`; a failed item's counted as 0):
    ``ciou_mean``, ``success@0.5`` (DSOL's reported cIoU) and ``auc``, over ``n_items``."""
    if not len(cious):
        return {"ciou_mean": float("nan"), "success@0.5": float("nan"), "auc": float("nan"), "n_items": 0}
    return {"ciou_mean": float(np.mean(cious)), "success@0.5": ciou_success(cious, AUC_THRESHOLDS[10]),
            "auc": auc_success(cious), "n_items": len(cious)}


def dsol_duet_scores(maps: ArrayLike, class_boxes: dict[int, ArrayLike], frame_size: Sequence[int]) -> tuple[float, float]:
    """One frame's figures by DSOL's ``eval_duet.py``: (class-aware cIoU, NSA). `maps` ``(n_classes,
    h, w)`` one per class; `class_boxes` the annotated classes' boxes ``(k, 4)`` in pixels of a frame
    of `frame_size`, by map index. The cIoU is the mean over the annotated classes of each class's
    map against its boxes (`dsol_grid_ciou` at `DSOL_DUET_THRESHOLD`); the NSA the mean over the other
    classes of the share of the map (at 224²) at or below `DSOL_SILENT_VALUE`."""
    maps = np.asarray(maps, dtype=np.float64)
    cious = [dsol_grid_ciou(maps[index], boxes, frame_size, DSOL_DUET_THRESHOLD) for index, boxes in sorted(class_boxes.items())]
    silent = [float(np.mean(resize_bilinear(maps[index], DSOL_SIZE, DSOL_SIZE) <= DSOL_SILENT_VALUE))
              for index in range(maps.shape[0]) if index not in class_boxes]
    return float(np.mean(cious)), float(np.mean(silent)) if silent else float("nan")


def dsol_duet_figures(cious: Sequence[float], silent: Sequence[float]) -> dict[str, float | int]:
    """DSOL's duet figures of per-frame class-aware cIoUs and NSAs (`dsol_duet_scores`; a failed item
    counts 0 in both): ``ciou_mean``, ``success@0.3`` (DSOL's reported rate), ``success@0.5``, ``auc``
    and ``nsa``, over ``n_items``."""
    if not len(cious):
        return {"ciou_mean": float("nan"), "success@0.3": float("nan"), "success@0.5": float("nan"), "auc": float("nan"),
                "nsa": float("nan"), "n_items": 0}
    # eval_duet.py prints results[6] and results[10]: success at 0.05 · 6 (0.30000000000000004) and 0.05 · 10
    return {"ciou_mean": float(np.mean(cious)), "success@0.3": ciou_success(cious, AUC_THRESHOLDS[6]),
            "success@0.5": ciou_success(cious, AUC_THRESHOLDS[10]), "auc": auc_success(cious),
            "nsa": float(np.nanmean(silent)) if np.isfinite(silent).any() else float("nan"), "n_items": len(cious)}
