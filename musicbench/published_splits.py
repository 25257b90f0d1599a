"""The split lists that later MUSIC papers published, converted to musicbench split files.

Named sets (files in manifests/published, see its PROVENANCE.md):

- ``ccol``: Tian et al., CCoL (CVPR 2021) — splits_ccol_YapengTian/{train,val,test}.csv, solo.
- ``iquery_music``: Chen et al., iQuery (CVPR 2023) — splits_iquery_JiabenChen/{train,test}music.csv.
- ``iquery_music21``: the same for MUSIC-21 — {train,test}music21.csv.
- ``dsol``: Hu et al., DSOL (NeurIPS 2020) — dsol_DTaoo/solo_{training_1,training_2,validation,testing}.txt
  and duet_pairs_{train,val}.txt; instruments looked up in the official MUSIC lists.

Rows are kept as published, leaks included: `musicbench.splits.find_leakage` reports them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from musicbench.errors import MusicbenchError
from musicbench.instruments import canonical_instrument
from musicbench.manifest import validate_video_id
from musicbench.splits import SplitRow

PUBLISHED_SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    "ccol": {"train": ("splits_ccol_YapengTian/train.csv",), "val": ("splits_ccol_YapengTian/val.csv",),
             "test": ("splits_ccol_YapengTian/test.csv",)},
    "iquery_music": {"train": ("splits_iquery_JiabenChen/trainmusic.csv",),
                     "test": ("splits_iquery_JiabenChen/testmusic.csv",)},
    "iquery_music21": {"train": ("splits_iquery_JiabenChen/trainmusic21.csv",),
                       "test": ("splits_iquery_JiabenChen/testmusic21.csv",)},
    "dsol": {"train": ("dsol_DTaoo/solo_training_1.txt", "dsol_DTaoo/solo_training_2.txt", "dsol_DTaoo/duet_pairs_train.txt"),
             "val": ("dsol_DTaoo/solo_validation.txt", "dsol_DTaoo/duet_pairs_val.txt"),
             "test": ("dsol_DTaoo/solo_testing.txt",)},
}

_CSV_ROW = re.compile(r"^/(?P<instrument>[a-z_]+)/(?P<id>[A-Za-z0-9_-]{11})\.wav,")
_DSOL_ROW = re.compile(r"^(?P<id>[A-Za-z0-9_-]{11})_\d+_\d+\.flac\s")


def _official_labels(lists_dir: Path) -> dict[str, tuple[str, str]]:
    """``{video_id: (kind, instruments)}`` from the official MUSIC json lists."""
    labels: dict[str, tuple[str, str]] = {}
    for name, kind in (("MUSIC21_solo_videos.json", "solo"), ("MUSIC_solo_videos.json", "solo"), ("MUSIC_duet_videos.json", "duet")):
        data = json.loads((lists_dir / name).read_text())
        for key, ids in data["videos"].items():
            for video_id in ids:
                labels[video_id] = (kind, key)
    return labels


def load_published_splits(name: str, lists_dir: str | os.PathLike) -> list[SplitRow]:
    """Rows of the published split set `name` (see PUBLISHED_SPLITS), as published."""
    if name not in PUBLISHED_SPLITS:
        raise MusicbenchError(f"unknown published split set {name!r}; choose from {', '.join(PUBLISHED_SPLITS)}")
    lists_dir = Path(lists_dir)
    labels = _official_labels(lists_dir)
    rows = []
    for split, files in PUBLISHED_SPLITS[name].items():
        for relative in files:
            path = lists_dir / relative
            try:
                lines = path.read_text().splitlines()
            except OSError as exc:
                raise MusicbenchError(f"cannot read published split list {str(path)!r}: {exc.strerror}") from None
            for line_no, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                match = _CSV_ROW.match(line) or _DSOL_ROW.match(line + " ")
                if not match:
                    raise MusicbenchError(f"{path}:{line_no}: unrecognised row {line[:60]!r}")
                video_id = validate_video_id(match.group("id"))
                kind, instruments = labels.get(video_id, ("solo", match.groupdict().get("instrument") or ""))
                if not instruments:
                    raise MusicbenchError(f"{path}:{line_no}: video {video_id} is in no official MUSIC list")
                instruments = " ".join(canonical_instrument(label, f"{path}:{line_no}") for label in instruments.split())
                rows.append(SplitRow(split, kind, instruments, video_id))
    return sorted(set(rows), key=lambda r: (("train", "val", "test").index(r.split), r.kind, r.instruments, r.video_id))
