"""Acquisition of real MUSIC videos from YouTube with yt-dlp, and their trimming.

Every manifest row ends in one of three states, kept in an availability report (Parquet,
``<root>/music/availability.parquet``, one row per video id):

- ``downloaded``: the raw file ``music/raw/<id>.mp4`` is complete (its SHA-256 and size are
  recorded) and ``music/videos/<id>.mp4`` holds the trimmed video (or a hardlink/copy of the
  raw file when the manifest gives no start/end);
- ``unavailable``: YouTube (or the server) says the video is gone: private, deleted, blocked,
  copyright, HTTP 404/410. yt-dlp's reason is kept; later runs skip it unless asked to retry;
- ``failed``: a transient problem (network, throttling, interrupted transfer); retried next run.

yt-dlp is driven through its Python API with full URLs (an id beginning with ``-`` is never an
option); partial downloads are ``.part`` files under ``music/raw/.parts/`` that yt-dlp resumes with
HTTP Range requests. Ids are untrusted: each is validated and every path stays inside the root.
Where a file goes comes from the id alone, never from a manifest's path: a YouTube row whose
``video_path`` is not ``music/videos/<id>.mp4`` (or empty) is refused before anything is fetched,
and nothing is written outside ``<root>/music``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musicbench.benchmark import (
    MUSIC_AVAILABILITY_RELPATH,
    MUSIC_MANIFEST_RELPATH,
    MUSIC_PARTS_DIR,
    MUSIC_REPORT_RELPATH,
    music_video_relpath,
)
from musicbench.concurrency import hold_data_root
from musicbench.config import check_fields, config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import (
    atomic_path,
    atomic_write_text,
    ensure_writable_dir,
    read_parquet,
    resolve_in_root,
    sha256_file,
    write_parquet,
)
from musicbench.manifest import ManifestEntry, read_manifests, validate_entry, validate_video_id, video_of
from musicbench.media import ffmpeg_exe, probe
from musicbench.music_lists import raw_relpath
from musicbench.progress import progress_bar

DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={id}"
# Smallest video stream of at least 224 px height (sorted by ascending resolution), H.264 first,
# plus the best AAC audio; fall back to any video+audio, then to a single combined file that is not
# audio only (a file of unknown codecs, as a plain web server serves it, is allowed). On YouTube's
# format lists (tests/test_acquire.py) this picks 240p or 360p H.264 plus AAC itag 140.
DEFAULT_FORMAT = "bv[height>=224][vcodec^=avc1]+ba[acodec^=mp4a]/bv[height>=224]+ba/b[height>=224]/b[vcodec!=?none]"
DEFAULT_FORMAT_SORT: tuple[str, ...] = ("+res", "vcodec:h264", "acodec:aac")
STATUSES = ("downloaded", "unavailable", "failed")

OFFLINE_HINT = (
    "downloading real MUSIC needs network access to YouTube; to run the benchmark offline on the embedded "
    "dataset instead, set `dataset.source: synth` in params.yaml (MUSIC-Synth, `musicbench synth`)"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadConfig:
    """How to fetch videos. Times in seconds.

    url_template: URL of a video with ``{id}`` for its id; jobs: videos fetched in parallel;
    retries: extra attempts per video on transient errors, waiting ``backoff * 2**k`` before the
    k-th; sleep: minimum gap between the starts of two videos (all workers together; 12 s keeps a
    session under YouTube's ~300 videos/hour); sleep_requests: gap between yt-dlp's requests
    while it reads a video page; format / format_sort: yt-dlp format selection; cookies: a
    Netscape cookies file passed to yt-dlp; proxy: proxy URL passed to yt-dlp; socket_timeout:
    seconds before a stalled connection fails; retry_unavailable: try again videos recorded as
    unavailable; limit: at most this many videos (0 = all); instruments / subsets: keep only
    videos with one of these instruments / in one of these subsets (empty = all); js_runtimes:
    JavaScript runtimes yt-dlp may use for YouTube's challenges (it needs one, plus the
    ``yt-dlp-ejs`` scripts, to see YouTube's formats).
    """

    url_template: str = knob(DEFAULT_URL_TEMPLATE)
    jobs: int = knob(2, positive=True)
    retries: int = knob(3, non_negative=True)
    backoff: float = knob(2.0, non_negative=True)
    sleep: float = knob(12.0, non_negative=True)
    sleep_requests: float = knob(1.25, non_negative=True)
    format: str = knob(DEFAULT_FORMAT)
    format_sort: tuple[str, ...] = knob(DEFAULT_FORMAT_SORT)
    cookies: str = knob("")
    proxy: str = knob("")
    socket_timeout: float = knob(30.0, non_negative=True)
    retry_unavailable: bool = knob(False)
    limit: int = knob(0, non_negative=True)
    instruments: tuple[str, ...] = knob(())
    subsets: tuple[str, ...] = knob(())
    js_runtimes: tuple[str, ...] = knob(("deno", "node"))

    def __post_init__(self) -> None:
        check_fields(self, "download")
        check_url_template(self.url_template)
        if not self.format.strip():
            raise MusicbenchError("download.format must be a non-empty yt-dlp format selector")
        if self.cookies and not Path(self.cookies).is_file():
            raise MusicbenchError(f"cookies file {self.cookies!r} not found; export one from a browser or leave it empty")

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> "DownloadConfig":
        """Build from the ``download:`` section of params.yaml (may be left out: the defaults);
        `overrides` that are not None win."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return config_from_params(cls, params, "download", optional=True, ignore=("manifests",), **given)


def check_url_template(template: str) -> str:
    """Return `template` if it is an http(s) URL with exactly the placeholder ``{id}``."""
    try:
        url = template.format(id="AAAAAAAAAAA")
    except (KeyError, IndexError, ValueError, AttributeError):
        raise MusicbenchError(
            f"URL template {template!r} must contain '{{id}}' and no other {{...}} placeholder"
        ) from None
    parts = urlsplit(url)
    if "{id}" not in template or parts.scheme not in ("http", "https") or not parts.hostname:
        raise MusicbenchError(f"URL template {template!r} must be an http(s) URL containing '{{id}}'")
    return template


def video_url(template: str, video_id: str) -> str:
    """Full URL of a video (never a bare id, so an id beginning with '-' is never an option)."""
    return template.format(id=validate_video_id(video_id))


# --------------------------------------------------------------------------- availability report


@dataclass(frozen=True)
class AvailabilityRow:
    """The state of one video. Sizes in bytes, times in seconds, `updated` an ISO UTC time."""

    video_id: str
    status: str
    reason: str = ""
    kind: str = ""
    instruments: str = ""
    subsets: str = ""
    raw_path: str = ""
    video_path: str = ""
    sha256: str = ""
    size_bytes: int = 0
    duration: float | None = None
    trim_start: float | None = None
    trim_end: float | None = None
    attempts: int = 0
    updated: str = ""


REPORT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AvailabilityRow))
_FLOAT_COLUMNS = ("duration", "trim_start", "trim_end")
_INT_COLUMNS = ("size_bytes", "attempts")


def read_availability(path: str | os.PathLike) -> dict[str, AvailabilityRow]:
    """Rows of an availability report by video id; empty if the file does not exist yet."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        return {}
    frame = read_parquet(path, ("video_id", "status"), "availability report", "move it aside to start a new one")
    rows: dict[str, AvailabilityRow] = {}
    for record in frame.to_dict("records"):
        values: dict[str, Any] = {}
        for name in REPORT_COLUMNS:
            value = record.get(name)
            if name in _FLOAT_COLUMNS:
                value = None if value is None or pd.isna(value) else float(value)
            elif name in _INT_COLUMNS:
                value = 0 if value is None or pd.isna(value) else int(value)
            else:
                value = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
            values[name] = value
        rows[values["video_id"]] = AvailabilityRow(**values)
    return rows


def write_availability(path: str | os.PathLike, rows: dict[str, AvailabilityRow]) -> None:
    """Write all rows (sorted by id) atomically as Parquet (snappy, with pandas metadata)."""
    import pandas as pd
    import pyarrow as pa

    records = [asdict(rows[key]) for key in sorted(rows)]
    frame = pd.DataFrame.from_records(records, columns=list(REPORT_COLUMNS))
    for name in _FLOAT_COLUMNS:
        frame[name] = frame[name].astype("float64")
    for name in _INT_COLUMNS:
        frame[name] = frame[name].astype("int64")
    for name in set(REPORT_COLUMNS) - set(_FLOAT_COLUMNS) - set(_INT_COLUMNS):
        frame[name] = frame[name].astype("string")
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), path, compression="snappy", statistics=True)


def instrument_label(entry_instruments: str | Sequence[str]) -> str:
    """'flute' for a solo, 'flute+violin' for a duet."""
    parts = entry_instruments.split() if isinstance(entry_instruments, str) else list(entry_instruments)
    return "+".join(parts)


def availability_counts(
    entries: Iterable[ManifestEntry], rows: dict[str, AvailabilityRow]
) -> dict[str, Counter]:
    """Per instrument label: counts of downloaded / unavailable / failed / 'not tried'."""
    counts: dict[str, Counter] = {}
    seen: set[str] = set()
    for entry in entries:
        if entry.video_id in seen:
            continue
        seen.add(entry.video_id)
        row = rows.get(entry.video_id)
        counts.setdefault(instrument_label(entry.instruments), Counter())[row.status if row else "not tried"] += 1
    return dict(sorted(counts.items()))


def availability_table(counts: dict[str, Counter], title: str = "MUSIC availability"):
    """A rich Table of `availability_counts`, with a total row."""
    from rich.table import Table

    columns = (*STATUSES, "not tried")
    table = Table(title=title)
    table.add_column("instrument")
    for name in (*columns, "total"):
        table.add_column(name, justify="right")
    total: Counter = Counter()
    for label, counter in counts.items():
        total.update(counter)
        table.add_row(label, *(str(counter.get(c, 0)) for c in columns), str(sum(counter.values())))
    table.add_row("all", *(str(total.get(c, 0)) for c in columns), str(sum(total.values())), style="bold")
    return table


# --------------------------------------------------------------------------- error classification

_UNAVAILABLE_MARKERS = (
    "private video", "video is private", "video unavailable", "video is unavailable", "has been removed",
    "no longer available", "account associated with this video has been terminated", "copyright",
    "not available in your country", "blocked it", "blocked in your country", "who has blocked",
    "members-only", "join this channel", "does not exist", "this video has been deleted",
    "violating youtube", "terms of service", "sign in to confirm your age", "inappropriate for some users",
    "this live event will begin", "premieres in", "video is not available",
)
_BOT_MARKERS = ("confirm you're not a bot", "confirm you’re not a bot", "http error 429", "too many requests")
_OFFLINE_MARKERS = (
    "connection refused", "name or service not known", "temporary failure in name resolution",
    "nodename nor servname", "network is unreachable", "no route to host", "failed to resolve",
    "getaddrinfo failed", "unable to connect to proxy",
)


@dataclass(frozen=True)
class Outcome:
    """What a failed attempt means: status, yt-dlp's reason, and whether to stop the whole run."""

    status: str
    reason: str
    retry_now: bool
    stop_run: str = ""  # non-empty: the message ending the run (offline, rate-limited)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is seen for seen in chain):
            continue
        chain.append(item)
        exc_info = getattr(item, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        for name in ("cause", "reason", "__cause__", "__context__"):
            stack.append(getattr(item, name, None))
    return chain


def _clean_reason(message: str) -> str:
    text = " ".join(message.replace("ERROR: ", "", 1).split())
    return text[:500]


def classify_error(exc: BaseException) -> Outcome:
    """Map a yt-dlp error to unavailable (permanent), failed (transient) or a run-stopping failure."""
    from yt_dlp.networking.exceptions import HTTPError as YtHTTPError
    from yt_dlp.utils import GeoRestrictedError

    chain = _exception_chain(exc)
    reason = _clean_reason(str(getattr(exc, "msg", None) or exc))
    text = " ".join(str(e) for e in chain).lower()
    statuses = [e.status for e in chain if isinstance(e, YtHTTPError)]
    if any(marker in text for marker in _BOT_MARKERS) or 429 in statuses:
        return Outcome("failed", reason, retry_now=False, stop_run=(
            f"YouTube is rate-limiting this session ({reason}); wait an hour or pass a cookies file "
            "(--cookies), raise download.sleep, and rerun: finished videos are kept"
        ))
    if any(s in (404, 410, 451) for s in statuses) or any(isinstance(e, GeoRestrictedError) for e in chain):
        return Outcome("unavailable", reason, retry_now=False)
    if any(marker in text for marker in _UNAVAILABLE_MARKERS):
        return Outcome("unavailable", reason, retry_now=False)
    if "requested format is not available" in text or "only images are available" in text:
        return Outcome("failed", reason + (
            " (no format of the video fits download.format: the default needs video of at least 224 px, or one"
            " file with video; when yt-dlp sees only storyboards or audio on YouTube, it needs a JavaScript runtime"
            " such as deno >= 2.3 and the yt-dlp-ejs scripts to see the formats)"
        ), retry_now=False)
    offline = any(isinstance(e, (ConnectionRefusedError, socket.gaierror)) for e in chain) or any(
        marker in text for marker in _OFFLINE_MARKERS
    )
    if offline:
        detail = next((m for m in _OFFLINE_MARKERS if m in text), "connection failed")
        return Outcome("failed", reason, retry_now=True, stop_run=f"network unreachable during the run ({detail}); {OFFLINE_HINT}")
    return Outcome("failed", reason, retry_now=True)


# --------------------------------------------------------------------------- network check


def check_network(url_template: str, proxy: str = "", timeout: float = 5.0) -> None:
    """Open (and close) a TCP connection to the video host, or the proxy; raise one clear error if offline.

    `timeout` in seconds. Done once per run so that having no network gives one message, fast.
    """
    target = urlsplit(proxy if proxy else video_url(url_template, "AAAAAAAAAAA"))
    host = target.hostname or ""
    port = target.port or {"https": 443, "http": 80}.get(target.scheme, 1080)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise MusicbenchError(f"no network: cannot resolve {host!r} ({exc.strerror or exc}); {OFFLINE_HINT}") from None
    except OSError as exc:
        what = f"proxy {host}:{port}" if proxy else f"{host}:{port}"
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise MusicbenchError(f"no network: cannot connect to {what} ({detail}); {OFFLINE_HINT}") from None


# --------------------------------------------------------------------------- trimming


def trim_video(raw_path: str | os.PathLike, out_path: str | os.PathLike, start: float | None, end: float | None) -> None:
    """Cut [start, end) seconds of `raw_path` into `out_path` (H.264/AAC mp4, frame-accurate), atomically.

    With neither start nor end, `out_path` becomes a hardlink of `raw_path` (a copy where links
    are impossible). `raw_path` is never modified.
    """
    raw_path, out_path = Path(raw_path), Path(out_path)
    if start is None and end is None:
        with atomic_path(out_path) as tmp:
            tmp.unlink()
            try:
                os.link(raw_path, tmp)
            except OSError:
                shutil.copyfile(raw_path, tmp)
        return
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if start is not None:
        command += ["-ss", repr(float(start))]
    command += ["-i", os.fspath(raw_path.resolve())]
    if end is not None:
        command += ["-t", repr(float(end) - float(start or 0.0))]
    command += [
        "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4",
    ]
    with atomic_path(out_path, suffix=".mp4") as tmp:
        result = subprocess.run([*command, os.fspath(tmp.resolve())], capture_output=True, text=True, errors="replace")
        if result.returncode != 0:
            last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
            raise MusicbenchError(f"ffmpeg could not trim {os.fspath(raw_path)!r} to [{start}, {end}] s: {last}")
        info = probe(tmp)
        if not info.has_video or not info.duration:
            raise MusicbenchError(
                f"trimming {os.fspath(raw_path)!r} to [{start}, {end}] s gave no video: is start beyond the video's end?"
            )


# --------------------------------------------------------------------------- downloading


class _Pacer:
    """Spaces the starts of requests by at least `interval` seconds across threads."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            stop.wait(start - now)


class _YtdlpLogger:
    """Sends yt-dlp's messages to the logging module instead of the terminal."""

    def __init__(self, video_id: str) -> None:
        self._prefix = f"[{video_id}] "

    def debug(self, msg: str) -> None:
        log.debug(self._prefix + msg)

    def info(self, msg: str) -> None:
        log.debug(self._prefix + msg)

    def warning(self, msg: str) -> None:
        log.info(self._prefix + msg)

    def error(self, msg: str) -> None:
        log.info(self._prefix + msg)


def _ytdlp_options(video_id: str, raw_dir: Path, parts_dir: Path, config: DownloadConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "format": config.format,
        "format_sort": list(config.format_sort),
        "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "ffmpeg_location": ffmpeg_exe(),
        # A fixed file name from the validated id; folders go through `paths`, which are not templates.
        "outtmpl": {"default": f"{video_id}.%(ext)s"},
        "paths": {"home": os.fspath(raw_dir), "temp": os.fspath(parts_dir)},
        "continuedl": True,
        "nopart": False,
        "overwrites": False,
        "noplaylist": True,
        # one attempt per call: `_process` retries (download.retries, download.backoff) after
        # classifying the error, and the next attempt resumes the .part file
        "retries": 0,
        "fragment_retries": 0,
        "file_access_retries": 0,
        "extractor_retries": 0,
        "socket_timeout": config.socket_timeout,
        "sleep_interval_requests": config.sleep_requests,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "logger": _YtdlpLogger(video_id),
        "cachedir": False,
        "updatetime": False,
        "writethumbnail": False,
        "writesubtitles": False,
    }
    if config.cookies:
        options["cookiefile"] = config.cookies
    if config.proxy:
        options["proxy"] = config.proxy
    if config.js_runtimes:
        options["js_runtimes"] = {name: {} for name in config.js_runtimes}
    return options


def _fetch(video_id: str, raw_path: Path, parts_dir: Path, config: DownloadConfig) -> None:
    """One yt-dlp attempt; raises yt-dlp's DownloadError (or MusicbenchError) on failure."""
    from yt_dlp import YoutubeDL

    with YoutubeDL(_ytdlp_options(video_id, raw_path.parent, parts_dir, config)) as ydl:
        info = ydl.extract_info(video_url(config.url_template, video_id), download=True)
    final = [Path(d["filepath"]) for d in (info or {}).get("requested_downloads") or [] if d.get("filepath")]
    if not raw_path.is_file():
        got = ", ".join(p.name for p in final) or "nothing"
        raise MusicbenchError(f"yt-dlp produced {got} instead of {raw_path.name}")


@dataclass
class _Job:
    entry: ManifestEntry
    subsets: str
    previous: AvailabilityRow | None
    raw_state: str  # see _raw_state


def _row(job: _Job, status: str, **values: Any) -> AvailabilityRow:
    entry = job.entry
    fixed: dict[str, Any] = dict(
        video_id=entry.video_id, status=status, kind=entry.kind, instruments=" ".join(entry.instruments),
        subsets=job.subsets, raw_path=raw_relpath(entry.video_id), video_path=music_video_relpath(entry.video_id),
        trim_start=entry.start, trim_end=entry.end,
        updated=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    )
    return AvailabilityRow(**{**fixed, **values})


def _raw_state(raw_path: Path, previous: AvailabilityRow | None) -> str:
    """'verified' (matches the report's checksum), 'corrupt' (does not), 'unrecorded' or 'missing'."""
    if not raw_path.is_file():
        return "missing"
    if previous is None or previous.status != "downloaded" or not previous.sha256:
        return "unrecorded"
    if raw_path.stat().st_size == previous.size_bytes and sha256_file(raw_path) == previous.sha256:
        return "verified"
    return "corrupt"


def _video_is_current(video_path: Path, raw_path: Path, entry: ManifestEntry, previous: AvailabilityRow | None) -> bool:
    if previous is None or previous.status != "downloaded" or not video_path.is_file():
        return False
    if (previous.trim_start, previous.trim_end) != (entry.start, entry.end):
        return False
    if entry.start is None and entry.end is None:
        return video_path.stat().st_size == raw_path.stat().st_size
    return True


def _process(job: _Job, root: Path, config: DownloadConfig, pacer: _Pacer, stop: threading.Event) -> tuple[AvailabilityRow | None, str]:
    """Download (if needed), verify and trim one video.

    Returns its new report row (None when the run stopped before trying it) and, when the whole
    run must stop (offline, rate-limited), the message saying why.
    """
    entry = job.entry
    base_attempts = job.previous.attempts if job.previous else 0
    try:
        raw_path = resolve_in_root(root, raw_relpath(entry.video_id))
        video_path = resolve_in_root(root, music_video_relpath(entry.video_id))  # from the id, never the manifest
        parts_dir = resolve_in_root(root, MUSIC_PARTS_DIR)
    except MusicbenchError as exc:  # e.g. a symlink loop where the video goes: this video fails, the others go on
        return _row(job, "failed", reason=str(exc), attempts=base_attempts), ""
    attempts = 0
    if job.raw_state == "corrupt":
        raw_path.unlink()  # differs from the recorded checksum: fetch it again
    if job.raw_state in ("corrupt", "missing"):
        for attempt in range(config.retries + 1):
            pacer.wait(stop)
            if stop.is_set():
                if not attempts:
                    return None, ""
                return _row(job, "failed", reason="run stopped", attempts=base_attempts + attempts), ""
            attempts += 1
            try:
                _fetch(entry.video_id, raw_path, parts_dir, config)
                break
            except MusicbenchError as exc:
                outcome = Outcome("failed", str(exc), retry_now=True)
            except Exception as exc:  # yt-dlp's DownloadError and anything it lets through
                outcome = classify_error(exc)
            if outcome.stop_run or not outcome.retry_now or attempt == config.retries:
                if outcome.stop_run:
                    stop.set()  # at once, so that this worker's next video does not start
                row = _row(job, outcome.status, reason=outcome.reason, attempts=base_attempts + attempts)
                return row, outcome.stop_run
            stop.wait(config.backoff * 2**attempt)
    if job.raw_state == "verified":
        assert job.previous is not None
        done = dict(sha256=job.previous.sha256, size_bytes=job.previous.size_bytes,
                    duration=job.previous.duration, attempts=base_attempts)
    else:  # freshly downloaded, or a complete file left by an earlier run without a report row
        try:
            info = probe(raw_path)
        except MusicbenchError as exc:
            return _row(job, "failed", reason=f"downloaded file unreadable: {exc}", attempts=base_attempts + attempts), ""
        if not info.has_video:
            return _row(job, "failed", reason="downloaded file has no video stream", attempts=base_attempts + attempts), ""
        done = dict(sha256=sha256_file(raw_path), size_bytes=raw_path.stat().st_size,
                    duration=info.duration, attempts=base_attempts + attempts)
    previous = job.previous if job.raw_state == "verified" else None
    if not _video_is_current(video_path, raw_path, entry, previous):
        try:
            trim_video(raw_path, video_path, entry.start, entry.end)
        except (MusicbenchError, OSError) as exc:
            return _row(job, "failed", reason=f"trim: {exc}", **done, trim_start=None, trim_end=None), ""
    return _row(job, "downloaded", **done), ""


@dataclass
class DownloadSummary:
    """Result of a run: rows of this run, the merged report's path, and counts per status."""

    report_path: Path
    rows: dict[str, AvailabilityRow] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    skipped_unavailable: int = 0


def select_entries(entries: Iterable[ManifestEntry], config: DownloadConfig) -> list[tuple[ManifestEntry, str]]:
    """Validate entries, merge duplicates across manifests, apply the instrument/subset filters.

    Returns (entry, subsets) pairs in manifest order; `subsets` lists every subset naming the id.
    The limit is applied later, after videos already settled are set aside.
    """
    chosen: dict[str, ManifestEntry] = {}
    subsets: dict[str, list[str]] = {}
    for entry in entries:
        validate_entry(entry, where=f"manifest row {entry.video_id!r}")
        if entry.source != "youtube":
            raise MusicbenchError(f"video {entry.video_id}: source {entry.source!r} cannot be downloaded (only youtube)")
        if video_of(entry.video_id) != entry.video_id:
            raise MusicbenchError(f"row {entry.video_id} is a clip of video {video_of(entry.video_id)}: clip manifests (Solos) "
                                  "are fetched and cut by `musicbench acquire` with dataset.source: solos")
        destination = music_video_relpath(entry.video_id)
        if entry.video_path not in ("", destination):
            raise MusicbenchError(
                f"video {entry.video_id}: video_path {entry.video_path!r} is not {destination!r}; downloads go to "
                "music/raw/<id>.mp4 and music/videos/<id>.mp4 only: fix the manifest or rebuild it (`musicbench manifest build`)"
            )
        known = chosen.get(entry.video_id)
        if known is not None:
            if (known.start, known.end, known.instruments) != (entry.start, entry.end, entry.instruments):
                raise MusicbenchError(
                    f"video {entry.video_id} appears in two manifests with different instruments or trim; make them agree"
                )
        else:
            chosen[entry.video_id] = entry
        if entry.subset not in subsets.setdefault(entry.video_id, []):
            subsets[entry.video_id].append(entry.subset)
    result = []
    for video_id, entry in chosen.items():
        if config.instruments and not set(entry.instruments) & set(config.instruments):
            continue
        if config.subsets and not set(subsets[video_id]) & set(config.subsets):
            continue
        result.append((entry, " ".join(subsets[video_id])))
    return result


def download_videos(
    entries: Iterable[ManifestEntry], data_root: str | os.PathLike, config: DownloadConfig,
    show_progress: bool = True, check_online: bool = True,
) -> DownloadSummary:
    """Fetch, verify and trim the videos of `entries` under `data_root`; update the availability report.

    Videos already verified are not fetched again; unavailable ones are skipped unless
    `config.retry_unavailable`. The report (``<root>/music/availability.parquet``) is rewritten
    atomically after every video, keeping every row of earlier runs. Raises MusicbenchError once,
    after saving the report, if the network is unreachable or YouTube stops the session.
    """
    selected = select_entries(list(entries), config)  # validates every id before anything is written
    with hold_data_root(data_root, "download"):
        root = ensure_writable_dir(data_root).resolve()
        report_path = resolve_in_root(root, MUSIC_AVAILABILITY_RELPATH)
        ensure_writable_dir(resolve_in_root(root, MUSIC_PARTS_DIR))
        report = read_availability(report_path)
        summary = DownloadSummary(report_path=report_path)

        jobs: list[_Job] = []
        to_fetch = 0
        for entry, subsets in selected:
            previous = report.get(entry.video_id)
            if previous is not None and previous.status == "unavailable" and not config.retry_unavailable:
                summary.skipped_unavailable += 1
                continue
            try:
                raw_state = _raw_state(resolve_in_root(root, raw_relpath(entry.video_id)), previous)
            except MusicbenchError as exc:  # e.g. music/raw/<id>.mp4 is a symlink loop: this video fails, the others go on
                row = _row(_Job(entry, subsets, previous, "missing"), "failed", reason=str(exc),
                           attempts=previous.attempts if previous else 0)
                summary.rows[row.video_id] = report[row.video_id] = row
                summary.counts[row.status] += 1
                continue
            if raw_state != "verified":
                if config.limit and to_fetch >= config.limit:
                    continue  # the limit counts videos still to fetch
                to_fetch += 1
            jobs.append(_Job(entry, subsets, previous, raw_state))
        needs_network = [job for job in jobs if job.raw_state in ("missing", "corrupt")]
        if needs_network and check_online:
            check_network(config.url_template, config.proxy, timeout=min(5.0, config.socket_timeout or 5.0))

        stop = threading.Event()
        stop_message = ""
        pacer = _Pacer(config.sleep)
        try:
            with (
                progress_bar("download", len(jobs), show=show_progress, with_status=True) as advance,
                ThreadPoolExecutor(max_workers=config.jobs) as pool,
            ):
                futures = {pool.submit(_process, job, root, config, pacer, stop): job for job in jobs}
                try:
                    for future in as_completed(futures):
                        row, message = future.result()
                        if message and not stop_message:
                            stop_message = message
                            stop.set()
                        if row is not None:
                            summary.rows[row.video_id] = row
                            summary.counts[row.status] += 1
                            report[row.video_id] = row
                            write_availability(report_path, report)
                        advance(1, " ".join(f"{name} {summary.counts.get(name, 0)}" for name in STATUSES))
                except BaseException:
                    stop.set()  # Ctrl-C: start nothing more; running attempts keep their .part files
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            if report or report_path.exists():
                write_availability(report_path, report)
        if stop_message:
            raise MusicbenchError(stop_message)
        return summary


def manifest_paths_from_params(params: dict[str, Any]) -> list[Path]:
    """The manifests listed under ``download.manifests`` (default: MUSIC-11 solo and duet)."""
    section = params.get("download") or {}
    paths = section.get("manifests") if isinstance(section, dict) else None
    if paths is None:
        paths = ["manifests/music_solo.csv", "manifests/music_duet.csv"]
    if isinstance(paths, str) or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise MusicbenchError("params: download.manifests must be a list of manifest CSV paths")
    return [Path(p) for p in paths]


def write_downloaded_manifest(
    entries: Sequence[ManifestEntry], rows: dict[str, AvailabilityRow], path: str | os.PathLike,
    destination: Callable[[str], str] = music_video_relpath,
) -> list[ManifestEntry]:
    """Write the manifest of the videos on disk, the input of the processing stage.

    Only ``downloaded`` videos are listed, each once (an id named by several manifests keeps its
    first row); their ``video_path`` is ``destination(id)`` (the file named by the id alone:
    ``music/videos/<id>.mp4``, Solos' ``music/solos/clips/<id>.mp4``) and holds the trimmed clip, so
    start/end are cleared (the trim times stay in the committed manifests and the availability
    report): processing must not cut them a second time.
    """
    from dataclasses import replace

    from musicbench.manifest import write_manifest

    first = {e.video_id: e for e in reversed(entries)}  # an id in MUSIC-11 and MUSIC-21: listed once, as first named
    on_disk = [replace(e, start=None, end=None, duration=None, video_path=destination(e.video_id)) for e in entries
               if first[e.video_id] is e and e.video_id in rows and rows[e.video_id].status == "downloaded"]
    write_manifest(sorted(on_disk, key=lambda e: e.video_id), path)
    return on_disk


def acquire_music(params: dict[str, Any], data_root: str | os.PathLike | None = None, show_progress: bool = True) -> Path:
    """The DVC stage: download and trim real MUSIC when ``dataset.source == "music"`` (Solos' clips
    when ``"solos"``: `musicbench.solos.acquire_solos`, whose report path is returned).

    With ``dataset.source == "synth"`` nothing touches the network; only a report saying the stage
    was skipped is written. Returns the path of ``<root>/music/acquire_report.json``.
    """
    dataset = params.get("dataset") or {}
    source = dataset.get("source", "synth") if isinstance(dataset, dict) else "synth"
    root = Path(data_root if data_root is not None else (dataset.get("root", "data") if isinstance(dataset, dict) else "data"))
    with hold_data_root(root, "acquire"):
        report_path = resolve_in_root(ensure_writable_dir(root), MUSIC_REPORT_RELPATH)
        if source == "synth":
            atomic_write_text(report_path, json.dumps({
                "source": "synth", "skipped": True,
                "reason": "dataset.source is synth: real MUSIC is not downloaded (set dataset.source: music to fetch it)",
            }, indent=2, sort_keys=True) + "\n")
            return report_path
        if source == "solos":
            from musicbench.solos import acquire_solos

            return acquire_solos(params, root, show_progress=show_progress)
        if source != "music":
            raise MusicbenchError(f"params: dataset.source must be 'synth', 'music' or 'solos', got {source!r}")
        config = DownloadConfig.from_params(params)
        manifests = manifest_paths_from_params(params)
        entries = read_manifests(manifests, repeats=True)
        download_videos(entries, root, config, show_progress=show_progress)
        rows = read_availability(resolve_in_root(root, MUSIC_AVAILABILITY_RELPATH))
        write_downloaded_manifest(entries, rows, resolve_in_root(root, MUSIC_MANIFEST_RELPATH))
        counts = availability_counts([entry for entry, _ in select_entries(entries, config)], rows)
        totals: Counter = Counter()
        for counter in counts.values():
            totals.update(counter)
        atomic_write_text(report_path, json.dumps({
            "source": "music", "skipped": False, "manifests": [m.as_posix() for m in manifests],
            "counts": {name: totals.get(name, 0) for name in (*STATUSES, "not tried")},
            "per_instrument": {label: {name: c.get(name, 0) for name in (*STATUSES, "not tried")} for label, c in counts.items()},
        }, indent=2, sort_keys=True) + "\n")
        return report_path


def download_from_params(
    params: dict[str, Any], data_root: str | os.PathLike | None = None,
    manifests: Sequence[str | os.PathLike] | None = None, show_progress: bool = True, **overrides: Any,
):
    """`musicbench download`: fetch the videos of `manifests` (default ``download.manifests``).

    `overrides` replace keys of the ``download:`` section (None = keep). Returns a rich Table of
    availability per instrument over the selected videos (the limit aside).
    """
    dataset = params.get("dataset") or {}
    root = Path(data_root if data_root is not None else (dataset.get("root", "data") if isinstance(dataset, dict) else "data"))
    config = DownloadConfig.from_params(params, **overrides)
    paths = [Path(p) for p in manifests] if manifests else manifest_paths_from_params(params)
    entries = read_manifests(paths, repeats=True)
    summary = download_videos(entries, root, config, show_progress=show_progress)
    rows = read_availability(summary.report_path)
    return availability_table(availability_counts([entry for entry, _ in select_entries(entries, config)], rows))

