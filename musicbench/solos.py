"""Solos (Montesinos, Slizovskaia, Haro, MMSP 2020) as a source: its lists as a manifest of clips, and their acquisition.

The published lists (manifests/published/solos_juanfmontesinos, from the authors' ``solos``
package 0.4.1): ``solos_ids.json`` maps each of the 13 classes (URMP's) to YouTube ids;
``solos_timestamps.json`` maps class and id to the segments to keep, ``[first_frame, last_frame]``
pairs counted on the video re-encoded at 25 fps. Every segment becomes one manifest row
(`build_solos_manifest`, committed as ``manifests/solos.csv``):

- ``video_id``: the clip id ``<youtube id>.NN``, NN the segment's 1-based number in the list
  (`musicbench.manifest.video_of` gives the YouTube id back);
- ``kind`` solo, ``instruments`` the class's canonical name (`musicbench.instruments`: DoubleBass
  is ``double_bass``), ``subset`` Solos, ``source`` youtube;
- ``start = first_frame / 25`` and ``end = (last_frame + 1) / 25`` seconds (the last frame kept);
- ``video_path`` ``music/solos/clips/<clip id>.mp4``.

Rows keep the lists' order (classes and ids as in ``solos_ids.json``, segments in order): a rebuild is
byte-identical. Ids with no segment (10 in 0.4.1) have no row.

Acquisition (`acquire_solos`, the `acquire` stage with ``dataset.source: solos``): the whole YouTube
videos are fetched by `musicbench.acquire.download_videos` into real MUSIC's download cache (one
availability row per video, ``music/raw/<id>.mp4``; an id beginning with '-' only ever goes into a
full URL), then every clip is cut from its video with ffmpeg (`musicbench.acquire.trim_video`).
Each clip's state (downloaded, or its video's unavailable / failed, or a failed cut) is kept in
``music/solos/availability.parquet``; ``music/solos/manifest.csv`` lists the clips on disk for
`musicbench process`. A clip whose file still hashes as recorded and whose bounds are unchanged is
not cut again.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from musicbench.acquire import (
    STATUSES,
    AvailabilityRow,
    DownloadConfig,
    availability_counts,
    download_videos,
    read_availability,
    select_entries,
    trim_video,
    write_availability,
    write_downloaded_manifest,
)
from musicbench.benchmark import MUSIC_AVAILABILITY_RELPATH, SOLOS_REPORT_RELPATH, DataRoot, music_video_relpath, solos_clip_relpath
from musicbench.concurrency import holds_data_root
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, ensure_writable_dir, resolve_in_root, sha256_file
from musicbench.instruments import canonical_instrument
from musicbench.manifest import ManifestEntry, read_manifest, validate_video_id, video_of, write_manifest
from musicbench.media import probe
from musicbench.progress import progress_bar
from musicbench.splits import SOLOS_MANIFEST

SOLOS_FPS = 25
SOLOS_SUBSET = "Solos"
IDS_NAME, TIMESTAMPS_NAME = "solos_ids.json", "solos_timestamps.json"
CLIP_AVAILABILITY_NAME = "availability.parquet"
SHORT_CLIP_TOLERANCE = 1.0  # s: a cut clip shorter than its segment by more than this is refused


def clip_id(video_id: str, number: int) -> str:
    """The id of segment `number` (1-based, at most 99) of a YouTube video: ``<id>.NN``."""
    if not 1 <= number <= 99:
        raise MusicbenchError(f"video {video_id}: segment number {number} outside 1..99")
    return f"{validate_video_id(video_id)}.{number:02d}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MusicbenchError(
            f"cannot read Solos list {str(path)!r}: {exc.strerror}; pass the folder holding {IDS_NAME} and "
            f"{TIMESTAMPS_NAME} (manifests/published/solos_juanfmontesinos) with --lists"
        ) from None
    except json.JSONDecodeError as exc:
        raise MusicbenchError(f"Solos list {str(path)!r} is not valid JSON: {exc}") from None


def _segments(value: Any, where: str) -> list[tuple[int, int]]:
    if not isinstance(value, list):
        raise MusicbenchError(f"{where}: segments must be a list of [first_frame, last_frame] pairs")
    pairs = []
    for pair in value:
        ok = isinstance(pair, list) and len(pair) == 2 and all(isinstance(f, int) and not isinstance(f, bool) for f in pair)
        if not ok or not 0 <= pair[0] < pair[1]:
            raise MusicbenchError(f"{where}: segment {pair!r} must be [first_frame, last_frame] with 0 <= first < last")
        pairs.append((pair[0], pair[1]))
    return pairs


def load_solos_lists(lists_dir: str | os.PathLike) -> list[ManifestEntry]:
    """One clip entry per segment of the Solos lists in `lists_dir` (see the module docstring)."""
    lists_dir = Path(lists_dir)
    ids_path, stamps_path = lists_dir / IDS_NAME, lists_dir / TIMESTAMPS_NAME
    ids, stamps = _read_json(ids_path), _read_json(stamps_path)
    if not isinstance(ids, dict) or not isinstance(stamps, dict):
        raise MusicbenchError(f"Solos lists in {str(lists_dir)!r} must each hold a mapping of class -> videos")
    entries: list[ManifestEntry] = []
    class_of: dict[str, str] = {}
    for label, videos in ids.items():
        where = f"{ids_path}, class {label!r}"
        instrument = canonical_instrument(label, where)
        class_stamps = stamps.get(label, {})
        if not isinstance(videos, list) or not isinstance(class_stamps, dict):
            raise MusicbenchError(f"{where}: must be a list of YouTube ids (and a mapping of id -> segments in {TIMESTAMPS_NAME})")
        for video_id in videos:
            try:
                validate_video_id(video_id)
            except MusicbenchError as exc:
                raise MusicbenchError(f"{where}: {exc}") from None
            if video_id in class_of:
                raise MusicbenchError(f"{where}: video {video_id} is also listed under {class_of[video_id]!r}")
            class_of[video_id] = label
            segments = _segments(class_stamps.get(video_id, []), f"{stamps_path}, {label!r} {video_id}")
            for number, (first, last) in enumerate(segments, start=1):
                clip = clip_id(video_id, number)
                entries.append(ManifestEntry(
                    video_id=clip, kind="solo", instruments=(instrument,), subset=SOLOS_SUBSET, source="youtube",
                    start=first / SOLOS_FPS, end=(last + 1) / SOLOS_FPS, video_path=solos_clip_relpath(clip),
                ))
    for label, class_stamps in stamps.items():
        unlisted = sorted(set(class_stamps) - set(ids.get(label) or [])) if isinstance(class_stamps, dict) else []
        if unlisted:
            raise MusicbenchError(f"{stamps_path}: {len(unlisted)} id(s) of class {label!r} (e.g. {unlisted[0]}) "
                                  f"are not in {IDS_NAME}; use the two files of one release")
    return entries


def build_solos_manifest(lists_dir: str | os.PathLike, out_path: str | os.PathLike = SOLOS_MANIFEST) -> Path:
    """Write the Solos clip manifest (validated, atomic, byte-identical on rebuild) to `out_path`."""
    out_path = Path(out_path)
    write_manifest(load_solos_lists(lists_dir), out_path)
    return out_path


# --------------------------------------------------------------------------------------- acquisition


def video_entries(clips: Sequence[ManifestEntry]) -> list[ManifestEntry]:
    """The whole YouTube videos the clips come from, in first-seen order: what `download_videos` fetches
    (untrimmed, linked at ``music/videos/<id>.mp4`` as a MUSIC video would be)."""
    videos: dict[str, ManifestEntry] = {}
    for clip in clips:
        video = video_of(clip.video_id)
        if video not in videos:
            videos[video] = replace(clip, video_id=video, start=None, end=None, duration=None,
                                    video_path=music_video_relpath(validate_video_id(video)))
    return list(videos.values())


def _cut_one(clip: ManifestEntry, root: Path, video_row: AvailabilityRow | None,
             previous: AvailabilityRow | None) -> AvailabilityRow | None:
    """The new availability row of one clip, None while its video was not tried; never raises for a bad clip."""
    if video_row is None:
        return None
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    base = dict(video_id=clip.video_id, kind=clip.kind, instruments=" ".join(clip.instruments), subsets=clip.subset,
                video_path=solos_clip_relpath(clip.video_id), trim_start=clip.start, trim_end=clip.end, updated=now)
    if video_row.status != "downloaded":
        return AvailabilityRow(status=video_row.status, reason=f"video {video_of(clip.video_id)}: {video_row.reason}", **base)
    raw = resolve_in_root(root, video_row.raw_path)
    out = resolve_in_root(root, solos_clip_relpath(clip.video_id))  # from the clip id, never the manifest's path
    base.update(raw_path=video_row.raw_path)
    current = (previous is not None and previous.status == "downloaded" and out.is_file()
               and (previous.trim_start, previous.trim_end) == (clip.start, clip.end)
               and out.stat().st_size == previous.size_bytes and sha256_file(out) == previous.sha256)
    if current:
        return previous
    try:
        trim_video(raw, out, clip.start, clip.end)
        duration = probe(out).duration
        expected = (clip.end or 0.0) - (clip.start or 0.0)
        if clip.end is not None and (duration or 0.0) < expected - SHORT_CLIP_TOLERANCE:
            out.unlink()
            raise MusicbenchError(f"the video ends before the segment: {duration or 0.0:.2f} of {expected:.2f} s cut; "
                                  "is this the video the list was made from?")
    except (MusicbenchError, OSError) as exc:
        return AvailabilityRow(status="failed", reason=f"cut: {exc}", **base)
    return AvailabilityRow(status="downloaded", sha256=sha256_file(out), size_bytes=out.stat().st_size,
                           duration=duration, **base)


def cut_clips(clips: Sequence[ManifestEntry], data_root: str | os.PathLike, jobs: int = 2,
              show_progress: bool = True) -> dict[str, AvailabilityRow]:
    """Cut every clip from its downloaded video; return and save the clips' availability rows.

    A clip inherits its video's state (unavailable, failed; no row while its video was not tried);
    a failed cut (ffmpeg's error, or a clip shorter than its segment by more than
    `SHORT_CLIP_TOLERANCE`: the video ends early) is a ``failed`` row and never stops the others. Rows are saved in
    ``music/solos/availability.parquet`` (every row of earlier runs kept).
    """
    root = Path(data_root).resolve()
    videos = read_availability(resolve_in_root(root, MUSIC_AVAILABILITY_RELPATH))
    report_path = ensure_writable_dir(DataRoot(root).source_dir("solos")) / CLIP_AVAILABILITY_NAME
    report = read_availability(report_path)
    rows: dict[str, AvailabilityRow] = {}
    try:
        with progress_bar("cut clips", len(clips), show=show_progress) as advance, ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_cut_one, clip, root, videos.get(video_of(clip.video_id)), report.get(clip.video_id))
                       for clip in clips]
            for future in futures:
                row = future.result()
                if row is not None:
                    rows[row.video_id] = report[row.video_id] = row
                advance(1)
    finally:  # Ctrl-C: the clips cut so far are recorded (each file was written atomically)
        if report:
            write_availability(report_path, report)
    return rows


@holds_data_root("acquire", "data_root")
def acquire_solos(params: dict[str, Any], data_root: str | os.PathLike, repo: str | os.PathLike = ".",
                  show_progress: bool = True) -> Path:
    """The `acquire` stage for ``dataset.source: solos``: fetch the videos of ``manifests/solos.csv``
    (under `repo`), cut the clips, write ``music/solos/manifest.csv`` and the report; return its path.

    The ``download`` section applies as for MUSIC (jobs, sleep, filters; ``limit`` counts videos).
    When the download stops the run (offline, YouTube's bot check), the videos already on disk are
    still cut and listed before its one-line error is raised.
    """
    root = Path(data_root)
    config = DownloadConfig.from_params(params)
    manifest = Path(repo) / SOLOS_MANIFEST
    clips = read_manifest(manifest)
    for clip in clips:  # a clip goes where its id says; a row naming another file is refused before any download
        if clip.video_path not in ("", solos_clip_relpath(clip.video_id)):
            raise MusicbenchError(f"clip {clip.video_id}: video_path {clip.video_path!r} is not "
                                  f"{solos_clip_relpath(clip.video_id)!r}; fix {str(manifest)!r} or rebuild it")
    videos = video_entries(clips)
    try:
        download_videos(videos, root, config, show_progress=show_progress)
        stopped = None
    except MusicbenchError as exc:  # offline or stopped by YouTube: still cut what is on disk, then say so
        stopped = exc
    chosen = {entry.video_id for entry, _ in select_entries(videos, config)}
    wanted = [clip for clip in clips if video_of(clip.video_id) in chosen]
    rows = cut_clips(wanted, root, jobs=config.jobs, show_progress=show_progress)
    write_downloaded_manifest(wanted, rows, DataRoot(root).manifest_path("solos"), solos_clip_relpath)
    counts = availability_counts(wanted, rows)
    totals: Counter = Counter()
    for counter in counts.values():
        totals.update(counter)
    report_path = resolve_in_root(root, SOLOS_REPORT_RELPATH)
    atomic_write_text(report_path, json.dumps({
        "source": "solos", "skipped": False, "manifests": [SOLOS_MANIFEST], "videos": len(chosen),
        "counts": {name: totals.get(name, 0) for name in (*STATUSES, "not tried")},
        "per_instrument": {label: {name: c.get(name, 0) for name in (*STATUSES, "not tried")} for label, c in counts.items()},
    }, indent=2, sort_keys=True) + "\n")
    if stopped is not None:
        raise stopped
    return report_path
