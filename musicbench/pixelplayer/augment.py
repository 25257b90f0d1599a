"""Player transplant: a label-free training augmentation aimed at local PixelPlayer visual features.

Trained from scratch on a few videos per instrument, the visual net can tell a video's instrument
from its backdrop as well as from its player (each video has its own), and its per-pixel maps then
light the backdrop. Transplanting each training video's player onto another training video's
backdrop leaves the player as the only part of the picture that goes with the sound (what it did
on MUSIC-Synth: `docs/baselines.md`, "Localization and click-to-hear").

No labels and no boxes are used: the player's region in a frame is where the video moves around
that frame (MUSIC players move while they play; the backdrop does not). On MUSIC-Synth's val
items this motion box covers 98% of the annotated player box (IoU 0.74).

Frames are uint8 ``(H, W, 3)``; a box is ``(top, bottom, left, right)`` in pixels, bottom and right
exclusive.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: frames before and after a frame whose differences from it find the moving region (at 8 fps: ±0.25 s)
MOTION_SPAN = 2
#: a pixel moves when its smoothed difference exceeds this fraction of the frame's largest
MOTION_THRESHOLD = 0.2
#: side of the square box filter smoothing the differences, pixels
MOTION_SMOOTHING = 5

Box = tuple[int, int, int, int]


def moving_box(before: np.ndarray, frame: np.ndarray, after: np.ndarray) -> Box | None:
    """Bounding box of what moves around `frame`: uint8 ``(H, W, 3)`` frames `before` and `after` it.

    The larger of the two absolute differences from `frame` (mean over colour), smoothed by a
    ``MOTION_SMOOTHING``-pixel box filter, above ``MOTION_THRESHOLD`` of its maximum; None when
    nothing moves.
    """
    current = frame.astype(np.float32)
    difference = np.maximum(np.abs(current - before).mean(axis=-1), np.abs(after - current).mean(axis=-1))
    difference = ndimage.uniform_filter(difference, MOTION_SMOOTHING)
    peak = float(difference.max())
    if peak <= 1.0:  # under one grey level: a still picture
        return None
    rows, columns = np.nonzero(difference > MOTION_THRESHOLD * peak)
    return int(rows.min()), int(rows.max()) + 1, int(columns.min()), int(columns.max()) + 1


def union_box(first: Box | None, second: Box | None) -> Box | None:
    """The smallest box holding both (None counts as empty)."""
    if first is None or second is None:
        return first or second
    return min(first[0], second[0]), max(first[1], second[1]), min(first[2], second[2]), max(first[3], second[3])


def transplant(frames: np.ndarray, player_boxes: list[Box | None], host: np.ndarray,
               host_boxes: list[Box | None]) -> np.ndarray:
    """Paste each frame's player onto the host video's frame, over the host's own player.

    frames, host: uint8 ``(T, H, W, 3)`` of two videos (same frame size); player_boxes, host_boxes:
    the `moving_box` of each frame. Frame t of the result is host frame t with the union of both
    boxes taken from frame t, so the host's player is covered and the player is whole. A frame whose
    player box is None is kept as it is.
    """
    out = host.copy()
    for t, (box, host_box) in enumerate(zip(player_boxes, host_boxes, strict=True)):
        if box is None:
            out[t] = frames[t]
            continue
        top, bottom, left, right = union_box(box, host_box)
        out[t, top:bottom, left:right] = frames[t, top:bottom, left:right]
    return out
