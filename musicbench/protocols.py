"""The papers' own test sets (protocols), built on a data root beside the main benchmark.

A protocol is the fixed test items of a later MUSIC paper, made exactly as that paper's public code
makes them from the files it published (``manifests/published``, see its PROVENANCE.md): which
videos, how many sources, where each clip lies and how the mixture is normalised. Its items are a
benchmark identity of their own (``benchmark_version``: the SHA-256 of the protocol's item table and
its recipe), and a data root holds the items whose videos it has, as for the main benchmark: the
coverage says which are not held and why.

Files (under ``<root>/protocols/<name>/``, the layout of ``<root>/mixtures/``, so that
`DataRoot(root, protocol=name)` reads, checks and hides a protocol's items with the main benchmark's
machinery)::

    mixtures.parquet   the held items, one row per (item, source): MIXTURE_COLUMNS (split "test")
    duets.parquet      empty (a protocol has no duet track)
    benchmark.json     the identity, its recipe, the protocol, the coverage, the frames fingerprint
    ground_truth.json  SHA-256 of the MUSIC-Synth stems and boxes the items read

Protocols (`PROTOCOLS`). Row k of a protocol's file (from 0) is item ``<name>-<k>``; each entry is
looked up in the paper's list of frame counts at 1 fps; the centre frame is ``count // 2 + 1``, the
centre sample ``int((centre - 0.5) * 11025)``, and the clip the 65534 samples ``[centre - 32767,
centre + 32767)`` (the papers' 65535-sample buffer ends in a sample they never fill); every mixed
source is divided by N (``_mix_n_and_stft``). Each is scored also by the Sound of Pixels' recipe,
which their ``calc_metrics`` and evaluation loops repeat (`musicbench.metrics.recipes`):

- ``iquery-music``, ``iquery-music21``: iQuery (Chen et al., CVPR 2023), JiabenChen/iQuery
  ``code/dataset/music.py`` (test split), ``base.py``, ``main_music.py``: ``testsepmusic.csv`` (250
  pairs; MUSIC-21 ``testsepmusic21.csv``, 587) looked up in ``testmusic.csv`` (``testmusic21.csv``).
- ``ccol``: CCoL (Tian et al., CVPR 2021), YapengTian/CCOL-CVPR21 ``code/dataset/music.py``,
  ``base.py``, ``main_ccol.py``, ``scripts/eval_ccol.sh``: ``test_sep.csv`` (260 rows of 4 videos)
  looked up in ``test.csv``. Only entries 1 and 3 sound: the mixture is their sum over 2, and CCoL
  scores those two; entries 2 and 4 are silent visual objects (zero audio), which its separation
  scores do not depend on in evaluation (no grounding gate), so musicbench checks them and leaves them
  out. CCoL reports raw SDR (``paper_recipe``'s ``sdr``), not NSDR.

- ``sop-val``: The Sound of Pixels (Zhao et al., ECCV 2018), hangzhaomit/Sound-of-Pixels
  ``dataset/music.py`` and ``base.py`` (split val), ``main.py``, ``scripts/eval_MUSIC.sh``. Its val
  list is not public, so the recipe runs on the test solo videos of the data root's split file, in
  its order: item i mixes video i with video ``randint(0, n - 1)`` of Python's ``random`` seeded
  with i (no class check), each clip centred on frame ``count // 2`` of the video's own length in
  8-fps frames (`sop_clip_start`), ``num_mix`` 2. Its identity hashes the split file's items. An
  item that pairs a video with itself mixes one clip twice, for which BSS Eval is undefined: it is
  not held ("one clip twice").

- ``dsol-solo``, ``dsol-duet``: DSOL (Hu et al., NeurIPS 2020),
  DTaoo/Discriminative-Sounding-Objects-Localization ``music-exp/data/MUSIC_dataset.py`` (test
  mode), ``tools.py``, ``eval_duet.py``: localization alone (``task`` "localization", models are
  asked only for maps). Item k is the k-th second with a boxed frame of the videos of
  ``solo_testing.txt`` (``duet_pairs_val.txt``) in ``solotest.json`` (``duettest.json``): the audio
  of that second, one source, and the middle boxed frame of the second, whose boxes (and, for the
  duets, their classes) are the item table's ``annotation`` column (`ANNOTATION_COLUMN`), so they
  join the identity. The duets are scored per class (``class_maps``: `localize_classes`).

Where musicbench differs from a paper's pipeline, it says so: a clip that would need the papers'
zero padding (the video ends before the clip does) is not held ("video too short"); a model gets the
processed frames of its clip (``frames.fps``, the main benchmark's size and crop), from which it may
take the paper's frames (the centre frame and ± 1 s), not the papers' detector crops.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.benchmark import (
    ANNOTATION_COLUMN,
    DataRoot,
    loudness_contour,
    tables_fingerprint,
)
from musicbench.concurrency import holds_data_root
from musicbench.config import AudioConfig
from musicbench.definition import (
    DUET_SLOT_COLUMNS,
    NOT_HELD,
    SAME_CLIP,
    TOO_SHORT,
    BuiltItems,
    built_items,
    coverage,
    decoded_audio,
    identity_of,
    not_held_record,
    pcm_hashes,
)
from musicbench.errors import MusicbenchError
from musicbench.fsutil import sha256_file
from musicbench.metrics import METRIC_VERSION

PROTOCOL_FORMAT = "musicbench protocol 1"
PROTOCOL_SLOT_COLUMNS = ("item_id", "split", "n_sources", "source_index", "video_id", "instrument", "gain",
                         "start_sample", "n_samples")
LOCALIZATION_TASK = "localization"
#: What a protocol's items are scored by besides musicbench's own recipe.
RECIPES = {"sop": "The Sound of Pixels' calc_metrics (truncate to 65280 samples, clip, skip silent, batches of 32)",
           "dsol-solo": "DSOL's tools.py (map and boxes at 224 × 224, map > 0.1 × its maximum, cIoU success at 0.5, AUC)",
           "dsol-duet": "DSOL's eval_duet.py (per class, map > 0.2 × its maximum at 224 × 224, the frame's mean over its "
                        "classes, success at 0.3 and 0.5, AUC; NSA: the share of a silent class's map at or below 0.2)"}
_CSV_ENTRY = re.compile(r"^/(?P<instrument>[a-z_]+)/(?P<id>[A-Za-z0-9_-]{11})\.wav$")


@dataclass(frozen=True)
class Clip:
    """One source of a protocol item: a video, its instrument, and the clip's first sample and length
    (samples at the protocol's `Protocol.sample_rate`; the first sample None where the paper places
    the clip by the video's own length, `Protocol.place`); `annotation`: for a localization
    protocol, the annotated frame its map is scored against (`annotation_text`)."""

    video_id: str
    instrument: str
    start_sample: int | None
    n_samples: int
    annotation: str = ""


@dataclass(frozen=True)
class Protocol:
    """A paper's fixed test set: `items(lists_dir, labels, root)` gives each item's clips in the
    paper's order (from its `files` in the folder of published lists, ``manifests/published``, or
    from the data root's split file), `videos(lists_dir)` each video with its listed length in
    seconds (what an offline fixture renders; None: the protocol lists no lengths), `place` the first
    sample of a clip the paper centres by the video's own length."""

    name: str
    paper: str
    source: str
    files: tuple[str, ...]
    recipe: str
    sample_rate: int
    items: Callable[[Path, dict[str, tuple[str, str]], Path | None], list[list[Clip]]]
    videos: Callable[[Path], dict[str, tuple[str, float]]] | None
    place: Callable[[int, int], int] | None = None  # (video samples, sample rate) → first sample, for clips placed by length
    task: str = "separation"  # or "localization": only `localize` is called and scored (`LOCALIZATION_TASK`)
    class_maps: bool = False  # scored per class: `localize_classes`, a map per `musicbench.instruments.MUSIC_INSTRUMENTS`


MAX_PROTOCOL_FILE_BYTES = 4 << 20  # the published files are tens of kB
# the synth params that choose MUSIC-Synth's own videos, not how a video looks or sounds: a protocol
# whose files list its videos does not depend on them
SYNTH_PLAN_KEYS = ("solo_per_instrument", "duets_per_pair", "duration", "instruments", "scale")


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of the non-empty rows of a published CSV file, or one-line
    MusicbenchError (unreadable, not UTF-8 text, larger than `MAX_PROTOCOL_FILE_BYTES`, or no row)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PROTOCOL_FILE_BYTES + 1)
        if len(raw) > MAX_PROTOCOL_FILE_BYTES:
            raise ValueError(f"larger than {MAX_PROTOCOL_FILE_BYTES >> 20} MiB")
        lines = raw.decode("utf-8").splitlines()
        rows = [(number, row) for number, row in enumerate(csv.reader(lines), start=1) if any(cell.strip() for cell in row)]
    except (OSError, ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        why = getattr(exc, "strerror", None) or ("not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc))
        raise MusicbenchError(f"cannot read protocol file {str(path)!r}: {why}; "
                              "restore it from the repository (manifests/published)") from None
    if not rows:
        raise MusicbenchError(f"protocol file {str(path)!r} has no row; restore it from the repository (manifests/published)")
    return rows


def _entry(cell: str, where: str, labels: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(video id, instrument) of an entry such as ``/flute/kbTy_5o6AB4.wav``, checked against the
    official MUSIC lists (`labels`: video → (kind, instruments))."""
    match = _CSV_ENTRY.match(cell.replace(" ", ""))
    if not match:
        raise MusicbenchError(f"{where}: {cell.strip()[:60]!r} is not an entry like /flute/<YouTube id>.wav; "
                              "restore the file from the repository (manifests/published)")
    video_id, instrument = match.group("id"), match.group("instrument")
    kind, official = labels.get(video_id, ("", ""))
    if kind != "solo" or official != instrument:
        known = f"listed as {kind} {official!r}" if kind else "in no official MUSIC list"
        raise MusicbenchError(f"{where}: video {video_id} ({instrument}) is {known} (manifests/published/"
                              "MUSIC*_videos.json); fix the entry or use the repository's copy of the file")
    return video_id, instrument


def _iquery_counts(path: Path) -> dict[str, int]:
    """``{entry: frame count at 1 fps}`` of iQuery's ``testmusic*.csv`` (rows ``audio, frames, count``)."""
    counts: dict[str, int] = {}
    for number, row in _rows(path):
        try:
            count = int(row[2])
        except (IndexError, ValueError):
            count = -1
        if len(row) != 3 or not 1 <= count <= MAX_FRAME_COUNT:
            raise MusicbenchError(f"{path}:{number}: expected 'audio, frames, count' with a count of 1 to {MAX_FRAME_COUNT} "
                                  "frames; restore the file from the repository (manifests/published)")
        counts.setdefault(row[0].strip(), count)  # the papers' lookup takes the first row naming the entry
    return counts


MAX_FRAME_COUNT = 3600  # frames at 1 fps: an hour; the longest listed MUSIC test video has 931
IQUERY_AUDIO_SAMPLES = 65535  # iQuery's audLen at 11025 Hz
IQUERY_FRAME_RATE = 1.0  # frames per second of its frame folders (scripts/evaluate.sh: --frameRate 1)


def iquery_clip(count: int, sample_rate: int = 11025) -> tuple[int, int]:
    """(first sample, length) of an iQuery test clip of a video with `count` frames at 1 fps: the
    centre frame ``count // 2 + 1`` at ``(centre - 0.5) / fps`` s, and the samples of the reference's
    buffer it fills (``audLen // 2`` each side of the centre sample: 65534)."""
    centre_frame = count // 2 + 1
    centre = int((centre_frame - 0.5) / IQUERY_FRAME_RATE * sample_rate)
    half = IQUERY_AUDIO_SAMPLES // 2
    return centre - half, 2 * half


def _centre_clips(pairs_file: str, counts_file: str, n_entries: int, sounding: tuple[int, ...]) -> tuple[Callable, Callable]:
    """(items, videos) of a protocol whose rows of `n_entries` videos (the paper's ``num_mix``) are
    looked up in a list of frame counts at 1 fps, each clip centred on the video's centre frame
    (`iquery_clip`; iQuery's and CCoL's ``dataset/music.py``): `sounding` are the entries that are
    mixed (CCoL's others are silent visual objects, checked like the rest but not mixed)."""
    def items(lists_dir: Path, labels: dict[str, tuple[str, str]], root: Path | None = None) -> list[list[Clip]]:
        counts = _iquery_counts(lists_dir / counts_file)
        found = []
        for number, row in _rows(lists_dir / pairs_file):
            where = f"{lists_dir / pairs_file}:{number}"
            if len(row) != n_entries:
                raise MusicbenchError(f"{where}: expected {n_entries} entries (the paper's num_mix), found {len(row)}; "
                                      "restore the file from the repository (manifests/published)")
            clips = []
            for cell in row:
                video_id, instrument = _entry(cell, where, labels)
                count = counts.get(cell.replace(" ", ""))
                if count is None:
                    raise MusicbenchError(f"{where}: {cell.strip()!r} has no frame count in {lists_dir / counts_file}; "
                                          "restore both files from the repository (manifests/published)")
                clips.append(Clip(video_id, instrument, *iquery_clip(count)))
            if len({clip.instrument for clip in clips}) < len(clips):
                raise MusicbenchError(f"{where}: two entries of one instrument (the paper's rows mix different ones)")
            clips = [clips[k] for k in sounding]
            found.append(clips)
        return found

    def videos(lists_dir: Path) -> dict[str, tuple[str, float]]:
        out = {}
        for cell, count in _iquery_counts(lists_dir / counts_file).items():
            match = _CSV_ENTRY.match(cell)
            if match:
                out[match.group("id")] = (match.group("instrument"), count / IQUERY_FRAME_RATE)
        return out

    return items, videos


SOP_FRAME_RATE = 8  # frames per second of The Sound of Pixels' frame folders (scripts/eval_MUSIC.sh: --frameRate 8)


def sop_clip_start(n_samples: int, sample_rate: int = 11025) -> int:
    """The first sample of The Sound of Pixels' val clip of a video of `n_samples` samples: its
    length in 8-fps frames ``count``, the centre frame ``count // 2`` at ``(centre - 0.5) / 8`` s
    (``dataset/music.py``), the 65534 samples of the buffer around it (`iquery_clip`'s window)."""
    count = n_samples * SOP_FRAME_RATE // sample_rate
    centre = int((count // 2 - 0.5) / SOP_FRAME_RATE * sample_rate)
    return centre - IQUERY_AUDIO_SAMPLES // 2


def sop_val_items(lists_dir: Path, labels: dict[str, tuple[str, str]], root: Path | None = None) -> list[list[Clip]]:
    """The Sound of Pixels' val items (``dataset/music.py``, split val, ``num_mix`` 2) over the test
    solo videos of the data root's split file, in its order: item i mixes video i with video
    ``randint(0, n - 1)`` of Python's ``random`` seeded with i (no class check: a partner can be of
    the same class, or the same video)."""
    import random

    from musicbench.splits import read_stage_split_rows

    if root is None:
        raise MusicbenchError("protocol sop-val takes its videos from a data root's split file; give the data root")
    listed = [row for row in read_stage_split_rows(root) if row.split == "test" and row.kind == "solo"]
    if not listed:
        raise MusicbenchError(f"the split file of {str(root)!r} has no test solo video; protocol sop-val mixes those")
    half = 2 * (IQUERY_AUDIO_SAMPLES // 2)
    found = []
    for index, first in enumerate(listed):
        partner = listed[random.Random(index).randint(0, len(listed) - 1)]
        found.append([Clip(row.video_id, row.instruments, None, half) for row in (first, partner)])
    return found


_DSOL = "dsol_DTaoo"
_DSOL_LIST_ROW = re.compile(r"^(?P<name>(?P<id>[A-Za-z0-9_-]{11})_\d+_\d+)\.flac\s+(?P=name)\.mp4$")
DSOL_SOLO_FILES = (f"{_DSOL}/solo_testing.txt", f"{_DSOL}/solotest.json")
DSOL_SAMPLE_RATE = 11025  # musicbench's rate (DSOL's log-mels are of 16 kHz audio)


def _dsol_test_videos(path: Path, labels: dict[str, tuple[str, str]], kind: str) -> list[tuple[str, str]]:
    """(video id, instrument) of each row of a DSOL test list (``<id>_<a>_<b>.flac <id>_<a>_<b>.mp4``),
    in its order, checked against the official MUSIC lists (`labels`) to be a `kind` video."""
    found = []
    for number, row in _rows(path):
        match = _DSOL_LIST_ROW.match(",".join(row).strip())
        if match is None:
            raise MusicbenchError(f"{path}:{number}: expected '<id>_<a>_<b>.flac <id>_<a>_<b>.mp4' (one name twice); "
                                  "restore the file from the repository (manifests/published)")
        if any(video == match["id"] for video, _ in found):
            raise MusicbenchError(f"{path}:{number}: video {match['id']} is listed twice; "
                                  "restore the file from the repository (manifests/published)")
        listed, instruments = labels.get(match["id"], ("", ""))
        if listed != kind:
            known = f"listed as {listed} {instruments!r}" if listed else "in no official MUSIC list"
            raise MusicbenchError(f"{path}:{number}: video {match['id']} is {known}, not a {kind} video (manifests/published/"
                                  "MUSIC*_videos.json); use the repository's copy of the file")
        found.append((match["id"], instruments))
    return found


def _dsol_annotations(path: Path) -> Any:
    """The `musicbench.annotations.BoxAnnotations` of a DSOL box file of at most `MAX_PROTOCOL_FILE_BYTES`."""
    from musicbench.annotations import load_dsol_boxes

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MusicbenchError(f"cannot read protocol file {str(path)!r}: {exc.strerror}; "
                              "restore it from the repository (manifests/published)") from None
    if size > MAX_PROTOCOL_FILE_BYTES:
        raise MusicbenchError(f"cannot read protocol file {str(path)!r}: larger than {MAX_PROTOCOL_FILE_BYTES >> 20} MiB; "
                              "restore it from the repository (manifests/published)")
    return load_dsol_boxes(path)


#: DSOL's box classes (``category_id``) as MUSIC instruments: ``eval_duet.py``'s ``duetkeys``.
DSOL_CATEGORIES = {1: "cello", 3: "acoustic_guitar", 8: "saxophone", 10: "trumpet", 11: "violin", 12: "flute", 13: "accordion"}


def annotation_text(frame: Any, with_classes: bool = False) -> str:
    """The ``annotation`` cell of an annotated frame (`musicbench.annotations.AnnotatedFrame`): JSON
    ``{"frame": DSOL's file name, "width", "height": its size in pixels, "boxes": [[x, y, w, h], ...]}``
    and, `with_classes`, ``"classes"``: each box's instrument (`DSOL_CATEGORIES`)."""
    text = {"frame": frame.key, "width": frame.width, "height": frame.height,
            "boxes": [[float(v) for v in box] for box in frame.boxes]}
    if with_classes:
        unknown = [category for category in frame.categories
                   if type(category) is not int or category not in DSOL_CATEGORIES]
        if unknown:
            raise MusicbenchError(f"box annotations, entry {frame.key!r}: category_id {unknown[0]!r} is none of DSOL's "
                                  f"({', '.join(map(str, DSOL_CATEGORIES))}); use the repository's copy of the file")
        text["classes"] = [DSOL_CATEGORIES[category] for category in frame.categories]
    return json.dumps(text, sort_keys=True)


def _check_annotated_frame(frame: Any, path: Path) -> None:
    """MusicbenchError unless an annotated frame of a protocol's box file has a size and boxes of finite
    numbers with a positive width and height (what DSOL's files hold)."""
    boxes = np.asarray(frame.boxes, dtype=np.float64)
    if frame.width <= 0 or frame.height <= 0 or not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= 0):
        raise MusicbenchError(f"{path}, entry {frame.key!r}: a frame needs a positive size and boxes [x, y, w, h] of finite "
                              "numbers with w and h above 0; restore the file from the repository (manifests/published)")


def _dsol_items(files: tuple[str, str], kind: str, with_classes: bool) -> Callable:
    """The items of a DSOL localization test (``music-exp/data/MUSIC_dataset.py``, test mode;
    ``tools.py``, ``eval_duet.py``) from its list of `kind` videos and its box file (`files`): for
    each video in the list's order, one item per second ``s`` that has an annotated frame with a box,
    the audio of ``[s, s + 1)`` s and the map scored against one annotated frame of that second.
    DSOL draws that frame at random (unseeded) among the second's 4; musicbench takes the middle one
    of those with a box (frame 14 of 0, 7, 14 and 21). `with_classes`: each box keeps its class."""
    def items(lists_dir: Path, labels: dict[str, tuple[str, str]], root: Path | None = None) -> list[list[Clip]]:
        annotations = _dsol_annotations(lists_dir / files[1])
        rate = DSOL_SAMPLE_RATE
        found = []
        for video_id, instruments in _dsol_test_videos(lists_dir / files[0], labels, kind):
            by_second: dict[int, list[Any]] = {}
            for frame in annotations.frames.get(video_id, []):
                _check_annotated_frame(frame, lists_dir / files[1])
                if len(frame.boxes):
                    by_second.setdefault(int(frame.time), []).append(frame)
            for second, frames in sorted(by_second.items()):
                frames.sort(key=lambda frame: frame.frame)
                annotation = annotation_text(frames[len(frames) // 2], with_classes)
                found.append([Clip(video_id, instruments, second * rate, rate, annotation)])
        if not found:
            raise MusicbenchError(f"{lists_dir / files[1]} has no box on a frame of the videos of {lists_dir / files[0]}; "
                                  "restore both files from the repository (manifests/published)")
        return found

    def videos(lists_dir: Path) -> dict[str, tuple[str, float]]:
        lengths: dict[str, tuple[str, float]] = {}
        for (clip,) in items(lists_dir, official_labels(lists_dir)):
            end = (clip.start_sample + clip.n_samples) / DSOL_SAMPLE_RATE
            lengths[clip.video_id] = (clip.instrument, max(end, lengths.get(clip.video_id, ("", 0.0))[1]))
        return lengths

    return items, videos


DSOL_DUET_FILES = (f"{_DSOL}/duet_pairs_val.txt", f"{_DSOL}/duettest.json")


_IQUERY_SOURCE = ("JiabenChen/iQuery @ 315fba343ec240b63f8632f0347940efda5b4c51: code/dataset/music.py (test split), "
                  "code/dataset/base.py (_load_audio, _mix_n_and_stft), code/main_music.py (calc_metrics, evaluate), "
                  "code/scripts/evaluate.sh")
_CCOL_SOURCE = ("YapengTian/CCOL-CVPR21 @ 0f9cf3b73995c00f3c6c5d7a5b7d6d9942f3487d: code/dataset/music.py (test split), "
                "code/dataset/base.py (_load_audio, _mix_n_and_stft), code/main_ccol.py (calc_metrics, evaluate), "
                "code/scripts/eval_ccol.sh")
_SOP_SOURCE = ("hangzhaomit/Sound-of-Pixels @ 45350346: dataset/music.py and dataset/base.py (split val), "
               "main.py (calc_metrics, evaluate), scripts/eval_MUSIC.sh")
_DSOL_SOURCE = ("DTaoo/Discriminative-Sounding-Objects-Localization @ 7f40207: music-exp/data/MUSIC_dataset.py (test mode), "
                "music-exp/data/cut_audios.py, cut_videos.py (1-s segments, 4 frames a second), music-exp/tools.py (cal_ciou)")
_IQUERY, _CCOL = "splits_iquery_JiabenChen", "splits_ccol_YapengTian"
PROTOCOLS: dict[str, Protocol] = {
    "iquery-music": Protocol(
        "iquery-music", "iQuery (Chen et al., CVPR 2023), MUSIC: 250 test pairs", _IQUERY_SOURCE,
        (f"{_IQUERY}/testsepmusic.csv", f"{_IQUERY}/testmusic.csv"), "sop", 11025,
        *_centre_clips(f"{_IQUERY}/testsepmusic.csv", f"{_IQUERY}/testmusic.csv", 2, (0, 1))),
    "iquery-music21": Protocol(
        "iquery-music21", "iQuery (Chen et al., CVPR 2023), MUSIC-21: 587 test pairs", _IQUERY_SOURCE,
        (f"{_IQUERY}/testsepmusic21.csv", f"{_IQUERY}/testmusic21.csv"), "sop", 11025,
        *_centre_clips(f"{_IQUERY}/testsepmusic21.csv", f"{_IQUERY}/testmusic21.csv", 2, (0, 1))),
    "ccol": Protocol(
        "ccol", "CCoL (Tian et al., CVPR 2021): 260 test mixtures of 2 sounding and 2 silent objects", _CCOL_SOURCE,
        (f"{_CCOL}/test_sep.csv", f"{_CCOL}/test.csv"), "sop", 11025,
        *_centre_clips(f"{_CCOL}/test_sep.csv", f"{_CCOL}/test.csv", 4, (0, 2))),
    "sop-val": Protocol(
        "sop-val", "The Sound of Pixels (Zhao et al., ECCV 2018): its val recipe on this benchmark's test solo videos",
        _SOP_SOURCE, (), "sop", 11025, sop_val_items, None, sop_clip_start),
    "dsol-solo": Protocol(
        "dsol-solo", "DSOL (Hu et al., NeurIPS 2020): solo sound localization on the annotated frames of 27 test videos",
        _DSOL_SOURCE, DSOL_SOLO_FILES, "dsol-solo", DSOL_SAMPLE_RATE, *_dsol_items(DSOL_SOLO_FILES, "solo", False),
        task=LOCALIZATION_TASK),
    "dsol-duet": Protocol(
        "dsol-duet", "DSOL (Hu et al., NeurIPS 2020): class-aware localization in duets, on the annotated frames of "
        "16 videos", _DSOL_SOURCE.replace("music-exp/tools.py (cal_ciou)", "music-exp/eval_duet.py"), DSOL_DUET_FILES,
        "dsol-duet", DSOL_SAMPLE_RATE, *_dsol_items(DSOL_DUET_FILES, "duet", True), task=LOCALIZATION_TASK, class_maps=True),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`, or MusicbenchError naming the ones there are."""
    if name not in PROTOCOLS:
        raise MusicbenchError(f"unknown protocol {str(name)[:40]!r}: choose one of {', '.join(PROTOCOLS)} "
                              "(`musicbench protocol list`)")
    return PROTOCOLS[name]


def official_labels(lists_dir: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """``{video_id: (kind, instruments)}`` from the official MUSIC lists in `lists_dir`."""
    from musicbench.published_splits import _official_labels

    try:
        return _official_labels(Path(lists_dir))
    except (OSError, ValueError, KeyError) as exc:
        raise MusicbenchError(f"cannot read the official MUSIC lists in {os.fspath(lists_dir)!r} ({type(exc).__name__}); "
                              "pass --lists manifests/published") from None


def protocol_slots(protocol: Protocol, lists_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The protocol's item table (PROTOCOL_SLOT_COLUMNS) from its files in `lists_dir` (or the split
    file of the data root `root`): item ``<name>-<k>`` for row k (from 0; the name keeps estimates of
    one protocol from being scored as another's), each source's gain ``1 / N``
    (the papers divide every source by N); ``start_sample`` -1 where the clip is placed by the
    video's length (`Protocol.place`)."""
    lists_dir = Path(lists_dir)
    records = []
    labels = official_labels(lists_dir)
    for number, clips in enumerate(protocol.items(lists_dir, labels, None if root is None else Path(root))):
        for source_index, clip in enumerate(clips):
            records.append({"item_id": f"{protocol.name}-{number:05d}", "split": "test", "n_sources": len(clips),
                            "source_index": source_index, "video_id": clip.video_id, "instrument": clip.instrument,
                            "gain": 1.0 / len(clips), "n_samples": clip.n_samples,
                            "start_sample": -1 if clip.start_sample is None else clip.start_sample,
                            ANNOTATION_COLUMN: clip.annotation})
    return pd.DataFrame.from_records(records, columns=list(slot_columns(protocol)))


def slot_columns(protocol: Protocol) -> tuple[str, ...]:
    """The columns of `protocol`'s item table: a localization protocol's carry each source's annotated frame."""
    return PROTOCOL_SLOT_COLUMNS + ((ANNOTATION_COLUMN,) if protocol.task == LOCALIZATION_TASK else ())


def protocol_video_specs(name: str, lists_dir: str | os.PathLike, items: int | None = None) -> list[Any]:
    """The MUSIC-Synth videos (`musicbench.synth.generate.VideoSpec`) of an offline fixture of
    protocol `name`: each video of its first `items` items (all: None) under its official YouTube
    id, with the length its files list (with `items`, at most up to the end of the last of those
    items' clips in it, plus 1 s: the items are the same, the rendering shorter), for the
    instruments MUSIC-Synth renders (the others are left out: a data root without them holds fewer
    items, as a lab lacking videos does)."""
    from musicbench.instruments import SYNTH_INSTRUMENTS
    from musicbench.synth.generate import VideoSpec

    protocol = get_protocol(name)
    if protocol.videos is None:
        raise MusicbenchError(f"protocol {name} lists no videos of its own (it draws from the split file): "
                              "generate MUSIC-Synth as usual (`musicbench synth`)")
    lists_dir = Path(lists_dir)
    lengths = protocol.videos(lists_dir)
    wanted: dict[str, str] = {}
    needed: dict[str, float] = {}  # with `items`: up to the end of the last of their clips in a video (+1 s)
    for clips in protocol.items(lists_dir, official_labels(lists_dir))[:items]:
        wanted.update({clip.video_id: clip.instrument for clip in clips})
        for clip in clips:
            end = ((clip.start_sample or 0) + clip.n_samples) / protocol.sample_rate + 1.0
            needed[clip.video_id] = max(needed.get(clip.video_id, 0.0), end)
    if items is None:
        needed = {}
    return [VideoSpec(video_id, "duet" if " " in instruments else "solo", tuple(instruments.split()),
                      min(lengths[video_id][1], needed.get(video_id, float("inf"))))
            for video_id, instruments in sorted(wanted.items()) if set(instruments.split()) <= set(SYNTH_INSTRUMENTS)]


def generate_protocol_videos(params: dict[str, Any], root: str | os.PathLike, name: str, lists_dir: str | os.PathLike,
                             items: int | None = None, jobs: int | None = None, force: bool = False) -> list[Any]:
    """`musicbench synth --protocol`: render an offline fixture of protocol `name`
    (`protocol_video_specs`) under `root`'s synth folder, added to its manifest; the manifest
    entries written. Needs ``dataset.source`` synth (or `force`) and `items` of at least 1."""
    from musicbench.synth import SynthConfig, generate_synth

    if items is not None and items < 1:
        raise MusicbenchError(f"--items must be at least 1 (the videos of the protocol's first N items), got {items}")
    source = (params.get("dataset") or {}).get("source", "synth")
    if source != "synth" and not force:
        raise MusicbenchError(f"dataset.source is {source}: a protocol's MUSIC-Synth fixture goes with dataset.source "
                              "synth (use --force to generate it anyway)")
    specs = protocol_video_specs(name, lists_dir, items)
    manifest = DataRoot(root).manifest_path("synth")
    if manifest.is_file():  # a fixture joins other fixtures, never MUSIC-Synth's own set (whose splits it would enter)
        from musicbench.manifest import read_manifest

        listed = {video for protocol in PROTOCOLS.values() if protocol.videos for video in protocol.videos(Path(lists_dir))}
        own = [entry.video_id for entry in read_manifest(manifest) if entry.video_id not in listed]
        if own:
            raise MusicbenchError(f"{str(manifest)!r} lists MUSIC-Synth's own videos (e.g. {own[0]}); render a protocol's "
                                  "fixture in a data root of its own (--root)")
    return generate_synth(SynthConfig.from_params(params), root, jobs=jobs, specs=specs)


def protocol_recipe(protocol: Protocol, audio: AudioConfig, frame_size: int, crop: str,
                    synth: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a protocol's identity hashes besides its item table: the protocol and its scoring
    recipe, the frames models get (fps, size, crop), the metric version and, for MUSIC-Synth, the
    params of its videos."""
    recipe = {"protocol": protocol.name, "format": PROTOCOL_FORMAT, "recipe": protocol.recipe,
              "sample_rate": audio.sample_rate, "fps": audio.fps, "frame_size": frame_size, "crop": crop,
              "metric_version": METRIC_VERSION}
    if synth is not None:
        recipe["synth"] = synth
    return recipe


def protocol_identity(slots: pd.DataFrame, recipe: dict[str, Any]) -> str:
    """``mb-`` + 16 hex digits of the SHA-256 over the item table (with its annotated frames, where it
    has them) and the recipe (`identity_of`)."""
    return identity_of([(slots, PROTOCOL_SLOT_COLUMNS + ((ANNOTATION_COLUMN,) if ANNOTATION_COLUMN in slots else ()))], recipe)


def build_protocol_items(slots: pd.DataFrame, index: pd.DataFrame, root: str | os.PathLike,
                         audio: AudioConfig, place: Callable[[int, int], int] | None = None) -> BuiltItems:
    """The protocol items the data root at `root` holds (its processed-video `index`): an item is
    held when every video is processed and holds its clip, audio and frames (the frame of the
    clip's start, ``round(start / sample_rate * fps)``, and ``floor(n_samples / sample_rate * fps)``
    frames). A slot's start -1 is placed by the video's length (`place`). A localization protocol's
    held items keep each source's annotated frame (`ANNOTATION_COLUMN`)."""
    root = Path(root)
    pcm, decoded = pcm_hashes(root), decoded_audio(root)
    videos = index.set_index("video_id", drop=False)
    annotated = ANNOTATION_COLUMN in slots
    records, not_held = [], []
    for item_id, item in slots.groupby("item_id", sort=True):
        held, reasons = [], []
        for slot in item.sort_values("source_index").itertuples(index=False):
            start, length = int(slot.start_sample), int(slot.n_samples)
            if slot.video_id not in videos.index:
                reasons.append((slot.video_id, NOT_HELD))
                continue
            video = videos.loc[slot.video_id]
            if start < 0 and place is not None:
                start = place(int(video["n_samples"]), audio.sample_rate)
            start_frame = int(round(start / audio.sample_rate * audio.fps))
            n_frames = int(np.floor(length / audio.sample_rate * audio.fps))
            if start < 0 or start + length > int(video["n_samples"]) or start_frame + n_frames > int(video["n_frames"]):
                reasons.append((slot.video_id, TOO_SHORT))
                continue
            samples = decoded(video["audio_path"])
            held.append({"item_id": item_id, "split": slot.split, "n_sources": int(slot.n_sources),
                         "source_index": int(slot.source_index), "video_id": slot.video_id, "instrument": slot.instrument,
                         "start_sample": start, "n_samples": length, "start_frame": start_frame, "n_frames": n_frames,
                         "gain": float(slot.gain), "audio_path": video["audio_path"], "audio_sha256": video["audio_sha256"],
                         "audio_pcm_sha256": pcm(video["audio_path"]),
                         "clip_loudness_db": loudness_contour(samples[start:start + length]),
                         "frames_path": video["frames_path"], "frames_sha256": video["frames_sha256"],
                         **({ANNOTATION_COLUMN: slot.annotation} if annotated else {})})
        clips = [(row["video_id"], row["start_sample"]) for row in held]
        if not reasons and len(set(clips)) < len(clips):  # The Sound of Pixels may pair a video with itself
            reasons = [(video, SAME_CLIP) for video, _ in clips]
        if reasons:
            not_held.append(not_held_record(item_id, "mixtures", item["split"].iloc[0], reasons, list(item["video_id"])))
        else:
            records += held
    return built_items(records, [], not_held, (ANNOTATION_COLUMN,) if annotated else ())


def protocol_document(protocol: Protocol, identity: str, recipe: dict[str, Any], built: BuiltItems,
                      cover: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """A protocol's benchmark.json: the identity and recipe, the protocol (name, paper, source code,
    its files' SHA-256, the scoring recipe), the coverage, the frames fingerprint and counts."""
    from musicbench.mixtures import frames_fingerprint

    mixtures = built.mixtures
    return {
        "benchmark_version": identity, "recipe": recipe, "coverage": cover, "definition": None,
        "protocol": {"name": protocol.name, "paper": protocol.paper, "source": protocol.source, "files": files,
                     "recipe": protocol.recipe, "recipe_text": RECIPES[protocol.recipe], "task": protocol.task},
        "frames_fingerprint": frames_fingerprint(mixtures, built.duets), "sample_rate": protocol.sample_rate,
        "items": {"val": 0, "test": int(mixtures["item_id"].nunique())}, "duet_items": {"val": 0, "test": 0},
        "videos": int(mixtures["video_id"].nunique()),
    }


@holds_data_root("protocol", "root")
def build_protocol(params: dict[str, Any], root: str | os.PathLike, name: str,
                   lists_dir: str | os.PathLike = "manifests/published") -> dict[str, Any]:
    """Write ``<root>/protocols/<name>/`` (module docstring) from the protocol's files in
    `lists_dir` and the processed index; return its benchmark.json. Everything is checked and
    built before anything is written; the folder is replaced at once."""
    from musicbench.mixtures import synth_recipe, write_items_folder
    from musicbench.process import ProcessConfig

    protocol = get_protocol(name)
    audio = AudioConfig.from_params(params)
    if audio.sample_rate != protocol.sample_rate:
        raise MusicbenchError(f"protocol {name} needs audio at {protocol.sample_rate} Hz, params.yaml's audio.sample_rate "
                              f"is {audio.sample_rate}; process the videos at {protocol.sample_rate} Hz")
    frames = ProcessConfig.from_params(params)
    slots = protocol_slots(protocol, lists_dir, root)
    synth = synth_recipe(params)
    if synth is not None and protocol.videos is not None:  # its videos are the listed ones, whatever MUSIC-Synth's plan
        synth = {key: value for key, value in synth.items() if key not in SYNTH_PLAN_KEYS}
    recipe = protocol_recipe(protocol, audio, frames.size, frames.crop, synth)
    identity = protocol_identity(slots, recipe)
    data = DataRoot(root, protocol=name)
    built = build_protocol_items(slots, data.read_index(), data.root, audio, protocol.place)
    tables = tables_fingerprint(built.mixtures, built.duets)
    cover = coverage(slots, pd.DataFrame(columns=list(DUET_SLOT_COLUMNS)), built, tables)
    files = ({relative: sha256_file(Path(lists_dir) / relative) for relative in protocol.files} if protocol.files
             else {"splits/splits.csv": sha256_file(data.splits_path)})  # drawn from the data root's split file
    document = protocol_document(protocol, identity, recipe, built, cover, files)
    document["protocol"]["train_videos"] = train_videos(data.root, built.mixtures)
    ground_truth = data.ground_truth_document(built.mixtures, built.duets, tables)
    write_items_folder(data, built, ground_truth, document)
    if protocol.task == LOCALIZATION_TASK:  # its boxes came from a public file: every later model run hides that copy
        from musicbench.hidden import register_copy

        register_copy(data.root, (Path(lists_dir) / protocol.files[-1]).parent, f"protocol {name} annotations")
    return document


def train_videos(root: str | os.PathLike, mixtures: pd.DataFrame) -> list[str]:
    """The videos of held protocol items that the data root's split file puts in its train split
    (a model trained on this data root has heard them; none without a split file)."""
    from musicbench.benchmark import SPLITS_RELPATH
    from musicbench.splits import read_splits

    path = Path(root) / SPLITS_RELPATH
    if not path.is_file():
        return []
    train = {row.video_id for row in read_splits(path) if row.split == "train"}
    return sorted(set(mixtures["video_id"]) & train)


def protocol_root(root: str | os.PathLike, name: str | None, split: str = "test") -> DataRoot:
    """The data root at `root` seen through protocol `name` (None: the main benchmark), checked to be
    built there (a protocol has test items only: `split` must be "test"): what `musicbench evaluate
    --protocol` and friends pass on as their data root."""
    if name is None:
        return DataRoot(root)
    get_protocol(name)
    if split != "test":
        raise MusicbenchError(f"protocol {name} has test items only; drop --split {str(split)[:20]} (or give --split test)")
    data = DataRoot(root, protocol=name)
    if not data.has_definition():
        raise MusicbenchError(f"protocol {name} is not built in the data root {os.fspath(root)!r}; "
                              f"run `musicbench protocol build {name}`")
    return checked_view(data)


def checked_view(view: DataRoot) -> DataRoot:
    """`view` (a data root seen through a protocol) once its benchmark.json is that protocol's, else
    MusicbenchError (a folder copied or moved under another protocol's name)."""
    document = view.definition()
    named = (document.get("protocol") or {}).get("name") if isinstance(document.get("protocol"), dict) else None
    recipe = document["recipe"] if isinstance(document["recipe"], dict) else {}
    order = [row.get("item_id") for row in document["coverage"].get("not_held", []) if isinstance(row, dict)]
    if view.mixtures_path.is_file():
        from musicbench.benchmark import read_mixtures

        order += list(read_mixtures(view.mixtures_path, hint=f"run {view.build_command}")["item_id"].drop_duplicates())
    if named != view.protocol or recipe.get("protocol") != view.protocol or not isinstance(document["protocol"].get("recipe"), str) \
            or not all(isinstance(item, str) and item.startswith(f"{view.protocol}-") for item in order):
        raise MusicbenchError(f"{str(view.definition_path)!r} is not the definition of protocol {view.protocol}; "
                              f"run `musicbench protocol build {view.protocol}`")
    return view


def protocol_views(root: str | os.PathLike) -> list[DataRoot]:
    """The data root at `root` seen through each protocol built there (a benchmark.json under
    ``protocols/<name>/`` of a known protocol), by name."""
    views = [DataRoot(root, protocol=name) for name in PROTOCOLS]
    return [view for view in views if view.has_definition()]
