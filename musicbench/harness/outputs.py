"""What a model's outputs must be, and how a run folder holds them.

`check_estimates` and `check_heatmaps` are the one check of a model's estimates ``(n_sources,
n_samples)`` and heatmaps ``(n_sources, h, w)``: whatever the model process, an in-process model or an
estimate folder hands back, and again whatever scoring reads from a run folder (run folders are
untrusted). A run folder holds them as ``estimates/<item_id>.npy`` and ``heatmaps/<item_id>.npy``
(`_save_npy`; a heatmap at most `MAX_HEATMAP_BYTES` a source) beside ``inference.parquet``
(`INFERENCE_COLUMNS`: status and reason per item), written by `musicbench.harness.inference` and
`musicbench.export` and read by `musicbench.harness.scoring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from musicbench.fsutil import atomic_path

INFERENCE_COLUMNS = ("item_id", "track", "status", "reason", "seconds", "localized")
MAX_HEATMAP_BYTES = 64 << 20  # of one source's heatmap in a run folder or an estimate folder


def check_estimates(estimates: Any, n_sources: int, n_samples: int) -> tuple[np.ndarray | None, str]:
    """Validate a model's output: (float32 array, "") or (None, reason)."""
    try:
        array = np.asarray(estimates, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, f"estimates are not a numeric array ({exc})"
    if array.shape != (n_sources, n_samples):
        return None, f"estimates have shape {array.shape}, expected ({n_sources}, {n_samples})"
    if not np.all(np.isfinite(array)):
        return None, "estimates contain NaN or inf"
    silent = [k for k in range(n_sources) if not np.any(array[k])]
    if silent:
        return None, f"estimate of source {silent[0]} is silent (all zeros)"
    return array, ""


HEATMAP_SCALE = 4  # a heatmap may be at most this many times the frame's height and width


def check_heatmaps(heatmaps: Any, n_sources: int, frame_size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Validate localization output ``(n_sources, h, w)`` for frames of `frame_size` (height, width):
    h and w at most `HEATMAP_SCALE` times the frame's (scoring resizes a heatmap to the frame):
    (float32 array, "") or (None, reason)."""
    try:
        array = np.asarray(heatmaps, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, f"heatmaps are not a numeric array ({exc})"
    if array.ndim != 3 or array.shape[0] != n_sources or min(array.shape[1:]) < 1:
        return None, f"heatmaps have shape {array.shape}, expected ({n_sources}, h, w)"
    if array.shape[1] > HEATMAP_SCALE * frame_size[0] or array.shape[2] > HEATMAP_SCALE * frame_size[1]:
        return None, (f"heatmaps have shape {array.shape}: more than {HEATMAP_SCALE} times the frames' "
                      f"{frame_size[0]}x{frame_size[1]} pixels")
    if not np.all(np.isfinite(array)):
        return None, "heatmaps contain NaN or inf"
    return array, ""


def item_map_count(item: Any) -> int:
    """How many maps an item's localization has: one per source, or for an item scored per class
    (``class_boxes``, DSOL's duets) one per MUSIC instrument (`musicbench.instruments.MUSIC_INSTRUMENTS`)."""
    from musicbench.instruments import MUSIC_INSTRUMENTS

    return len(MUSIC_INSTRUMENTS) if getattr(item, "class_boxes", None) is not None else int(item.references.shape[0])


def check_item_maps(heatmaps: Any, item: Any) -> tuple[np.ndarray | None, str]:
    """`check_heatmaps` for `item` (`item_map_count` maps at its frames' size); a class-aware item's
    maps must also lie in [0, 1] (DSOL's NSA thresholds them at an absolute 0.2)."""
    array, reason = check_heatmaps(heatmaps, item_map_count(item), item.frames.shape[2:4])
    if array is not None and getattr(item, "class_boxes", None) is not None and (array.min() < 0 or array.max() > 1):
        return None, f"class maps hold values in [{array.min():.3g}, {array.max():.3g}]: each must lie in [0, 1]"
    return array, reason


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
