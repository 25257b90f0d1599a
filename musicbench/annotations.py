"""Ground-truth player boxes for localization from annotation files (real MUSIC has none of its own).

MUSIC-Synth writes its own boxes (every player, every frame; ``synth/boxes/<id>.json``). For real
MUSIC, the published DSOL annotations (Hu et al., NeurIPS 2020; manifests/published/dsol_DTaoo,
``solotest.json`` and ``duettest.json``, MIT licence) give boxes on a few frames of 27 solo and 16
duet test videos. `load_dsol_boxes` reads that format (or any file in it):

    {"<ytid>_<a>_<b>/frame_<sec:03d>/<rawframe:05d>.jpg":
        {"bbox": [{"box": [x, y, w, h], "category_id": c, ...}, ...], "wdith": W, "height": H}, ...}

``box`` is in pixels of the W×H source frame, top-left origin (the key "wdith" is DSOL's spelling;
"width" is accepted too). DSOL kept 4 frames per second and names them by the second they fall in,
so a frame's time is taken as the middle of that second (±0.5 s).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musicbench.errors import MusicbenchError
from musicbench.fsutil import read_text
from musicbench.manifest import validate_video_id

_DSOL_KEY = re.compile(r"(?P<id>.+?)_\d+_\d+/frame_(?P<sec>\d+)/(?P<frame>\d+)\.\w+")


@dataclass(frozen=True)
class AnnotatedFrame:
    """Boxes ``(k, 4)`` ``[x, y, w, h]`` in pixels of a ``(width, height)`` frame at `time` s;
    `key` the file's name for the frame, `frame` its number in the source video (DSOL's 30-fps count),
    `categories` each box's class (DSOL's ``category_id``)."""

    time: float
    width: int
    height: int
    boxes: np.ndarray
    key: str = ""
    frame: int = -1
    categories: tuple[Any, ...] = ()  # each box's ``category_id`` as the file gives it (None where it gives none)


@dataclass
class BoxAnnotations:
    """Annotated frames by video id, each list sorted by time."""

    frames: dict[str, list[AnnotatedFrame]] = field(default_factory=dict)

    def boxes_at(self, video_id: str, time: float, tolerance: float = 1.0) -> AnnotatedFrame | None:
        """The annotated frame of `video_id` nearest to `time` s (within `tolerance` s) that has
        at least one box, else None."""
        candidates = [f for f in self.frames.get(video_id, []) if len(f.boxes) and abs(f.time - time) <= tolerance]
        return min(candidates, key=lambda f: (abs(f.time - time), f.time)) if candidates else None


def load_dsol_boxes(path: str | os.PathLike) -> BoxAnnotations:
    """Read a DSOL-format box file (see the module docstring); a malformed entry is a clear error."""
    try:
        document = json.loads(read_text(path, "box annotations"))
    except (json.JSONDecodeError, RecursionError) as exc:
        why = exc if isinstance(exc, json.JSONDecodeError) else "nested too deep"
        raise MusicbenchError(f"box annotations {os.fspath(path)!r} are not JSON: {why}") from None
    if not isinstance(document, dict):
        raise MusicbenchError(f"box annotations {os.fspath(path)!r}: expected an object keyed by frame path")
    frames: dict[str, list[AnnotatedFrame]] = {}
    for key, entry in document.items():
        where = f"box annotations {os.fspath(path)!r}, entry {key!r}"
        match = _DSOL_KEY.fullmatch(key)
        if match is None or not isinstance(entry, dict):
            raise MusicbenchError(f"{where}: expected '<id>_<a>_<b>/frame_<sec>/<n>.jpg' with an object value")
        try:
            video_id = validate_video_id(match["id"], source="synth")  # any safe id: YouTube's or MUSIC-Synth's
        except MusicbenchError as exc:
            raise MusicbenchError(f"{where}: {exc}") from None
        try:
            width, height = int(entry.get("wdith", entry.get("width"))), int(entry["height"])
            boxes = np.array([b["box"] for b in entry.get("bbox", [])], dtype=np.float64).reshape(-1, 4)
            categories = tuple(b.get("category_id") for b in entry.get("bbox", []))  # read by the protocols that use them
        except (KeyError, TypeError, ValueError) as exc:
            raise MusicbenchError(f"{where}: needs 'wdith' (or 'width'), 'height' and bbox[].box [x, y, w, h] ({exc})") from None
        frames.setdefault(video_id, []).append(AnnotatedFrame(int(match["sec"]) + 0.5, width, height, boxes,
                                                                 key, int(match["frame"]), categories))
    return BoxAnnotations({video: sorted(items, key=lambda f: f.time) for video, items in frames.items()})
