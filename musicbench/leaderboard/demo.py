"""Demo pages' media: per benchmark item its mixture, ground-truth stems and frames under
``demo/items/<item>/`` (shared by every run's page), and per run and item its estimates and heatmaps
under ``demo/<slug>/<item>/``. Audio is Ogg Vorbis (a tenth of 16-bit WAV; the stream's serial number
is fixed so that a rebuild writes the same bytes), pictures PNG.

`write_demos` writes every page: `shared_media` writes an item's shared files once, `item_media` a
run's files of one item and returns a `DemoItem`, the record that templates/demo.html turns into
markup (`musicbench.leaderboard.pages.render_demo`). A page lists every item the run scored, best
first, with its scores, and can set another run's estimates of the same item beside its own.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.benchmark import TRACKS, DataRoot, EvalItem
from musicbench.errors import MusicbenchError
from musicbench.fsutil import NpyError, atomic_path, atomic_write_text, read_npy
from musicbench.harness.outputs import MAX_HEATMAP_BYTES
from musicbench.leaderboard.board import Board, Row
from musicbench.leaderboard.pages import render_demo
from musicbench.leaderboard.runs import Run
from musicbench.leaderboard.slug import inside, safe_slug

DEMO_MARKER = ".musicbench-demo"
SHARED_DIR = "items"  # demo/items/<item>/: what every run's page of an item shares


@dataclass
class DemoItem:
    """One item on a demo page: its media files as paths relative to the page, and what the page says.

    track "mixtures": `frames` one centre frame per source (its own video); "duets": one frame of the
    duet video and `players_json` the players' boxes and click points (``[{source, box, point}]``).
    `heats` holds a heatmap PNG per source, or nothing when the method does not localize.
    """

    item_id: str
    track: str
    title: str
    width: int
    height: int
    video_ids: list[str]
    source_labels: list[str]
    mixture_wav: str
    source_wavs: list[str]
    frames: list[str]
    heats: list[str]
    players_json: str | None = None
    slug: str = ""  # the item's folder name (in demo/items/ and the runs' folders)
    reference_wavs: list[str] = field(default_factory=list)  # the ground-truth stems, where the benchmark has them
    nsdr: float | None = None  # the item's NSDR (mean over its sources) as the board checked it
    scores: list[str] = field(default_factory=list)  # per source, e.g. "NSDR 5.21 · SIR 8.02 · SAR 12.90 dB"


# ----------------------------------------------------------------------------------------- media


def _colormap(values: np.ndarray) -> np.ndarray:
    """RGBA uint8 heat colours for values in [0, 1] (dark purple → red → yellow), alpha rising with value."""
    anchors = np.array([0.0, 0.35, 0.7, 1.0])
    colors = np.array([[40, 11, 84], [187, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)
    rgb = np.stack([np.interp(values, anchors, colors[:, c]) for c in range(3)], axis=-1)
    alpha = 255 * np.clip(values, 0, 1) ** 0.8 * 0.85
    return np.concatenate([rgb, alpha[..., None]], axis=-1).round().astype(np.uint8)


def write_png(path: Path, array: np.ndarray) -> None:
    """An image ``(h, w, 3)`` or ``(h, w, 4)`` uint8 as a PNG file."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)


def write_heat(path: Path, heatmap: np.ndarray, size: tuple[int, int]) -> None:
    """A heatmap ``(h, w)`` min-max normalised, resized to `size` (width, height), as an RGBA PNG."""
    from PIL import Image

    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    resized = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
    write_png(path, _colormap(np.clip(resized, 0, 1)))


_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
OGG_SERIAL = 0x6D627331  # "mbs1": every demo stream's serial number (libsndfile draws a random one)


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, no initial or final XOR),
    through zlib's reflected CRC-32 of the bit-reversed bytes."""
    raw = zlib.crc32(page.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def with_ogg_serial(data: bytes, serial: int = OGG_SERIAL) -> bytes:
    """An Ogg file's bytes with every page's stream serial number set to `serial` (checksums redone)."""
    out, position = bytearray(data), 0
    while position < len(out):
        if out[position:position + 4] != b"OggS" or position + 27 > len(out):
            raise ValueError(f"not an Ogg page at byte {position}")
        n_segments = out[position + 26]
        size = 27 + n_segments + sum(out[position + 27:position + 27 + n_segments])
        out[position + 14:position + 18] = struct.pack("<I", serial)
        out[position + 22:position + 26] = bytes(4)
        out[position + 22:position + 26] = struct.pack("<I", _ogg_crc(bytes(out[position:position + size])))
        position += size
    return bytes(out)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Mono audio ``(n_samples,)`` clipped to [-1, 1] as Ogg Vorbis, the same bytes for the same samples."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate, format="OGG", subtype="VORBIS")
    with atomic_path(path) as tmp:
        tmp.write_bytes(with_ogg_serial(buffer.getvalue()))


def load_outputs(run: Run, item: EvalItem) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A run's estimates ``(n_sources, n_samples)`` of `item` and its heatmaps ``(n_sources, h, w)``
    (None when missing or unusable); None when the estimates are missing or unusable.

    Run folders are untrusted: both files are read by `read_npy` (regular files only, the header
    checked against the file's length and a size cap before anything is allocated)."""
    n_sources, n_samples = item.references.shape
    try:
        estimates = read_npy(run.path / "estimates" / f"{item.item_id}.npy", max_bytes=n_sources * n_samples * 8, ndim=2)
    except NpyError:
        return None
    if estimates.shape != (n_sources, n_samples) or not np.all(np.isfinite(estimates)):
        return None
    heat_path = run.path / "heatmaps" / f"{item.item_id}.npy"
    if not os.path.lexists(heat_path):
        return estimates, None
    try:
        heatmaps = read_npy(heat_path, max_bytes=n_sources * MAX_HEATMAP_BYTES, ndim=3)
    except NpyError:
        return estimates, None
    if heatmaps.shape[0] != n_sources or not np.all(np.isfinite(heatmaps)):
        return estimates, None
    return estimates, heatmaps


def duet_players(item: EvalItem) -> list[dict[str, Any]] | None:
    """A duet's players: per source its box ``[x, y, w, h]`` (frame pixels) and click point (the
    item's point, else the box centre); None when a player has neither."""
    players = []
    for k in range(item.references.shape[0]):
        box = item.boxes[k] if k < len(item.boxes) else None
        point = item.points[k] if k < len(getattr(item, "points", [])) else None
        if box is not None:
            box = [round(float(v), 2) for v in box]
        if point is None and box is not None:
            point = (box[0] + box[2] / 2, box[1] + box[3] / 2)
        if point is None:
            return None
        players.append({"source": k, "box": box, "point": [round(float(v), 2) for v in point]})
    return players


@dataclass
class SharedMedia:
    """An item's files shared by every run's page (hrefs relative to the demo folder) and the one
    gain its audio is played at (so every run's estimates keep their level against the mixture)."""

    mixture: str
    references: list[str]
    frames: list[str]
    gain: float


def item_slug(item: EvalItem) -> str:
    """The folder name of an item's media: its track and id as a slug (item ids are safe already)."""
    return safe_slug(f"{item.track}-{item.item_id}")


def shared_media(item: EvalItem, demo_dir: Path, track: str) -> SharedMedia:
    """Write ``demo/items/<item>/``: the mixture, the ground-truth stems (the references the scores
    are computed against) and the centre frame of each source's video (one frame for a duet)."""
    slug = item_slug(item)
    folder = inside(demo_dir, SHARED_DIR, slug)
    href = f"{SHARED_DIR}/{slug}"
    peak = max(float(np.abs(item.mixture).max()), float(np.abs(item.references).max()), 1e-9)
    gain = min(1.0, 0.95 / peak)
    n_sources = item.references.shape[0]
    pictures = range(n_sources) if track == "mixtures" else range(1)
    media = SharedMedia(f"{href}/mixture.ogg", [f"{href}/reference-{k}.ogg" for k in range(n_sources)],
                        [f"{href}/frame-{k}.png" for k in pictures], gain)
    if (folder / "mixture.ogg").is_file():  # written for an earlier run's page of this build
        return media
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_sources):
        write_audio(folder / f"reference-{k}.ogg", item.references[k] * gain, item.sample_rate)
    centre = item.frames.shape[1] // 2
    for k in pictures:
        write_png(folder / f"frame-{k}.png", item.frames[k, centre])
    write_audio(folder / "mixture.ogg", item.mixture * gain, item.sample_rate)  # last: marks the folder complete
    return media


def source_scores(run: Run, row: Row, item: EvalItem) -> list[str]:
    """Per source of `item`, its NSDR, SIR and SAR (and cIoU) as the run's items.parquet gives them,
    only where the board found that file true to the run's estimates (else nothing)."""
    items = run.items
    if row.untrusted or items is None or not {"item_id", "track", "source_index", "status"} <= set(items.columns):
        return []
    rows = items[(items["item_id"] == item.item_id) & (items["track"] == item.track) & (items["status"] == "ok")]
    shown = []
    for k in range(item.references.shape[0]):
        found = rows[rows["source_index"] == k]
        if found.empty:
            return []
        values = found.iloc[0]
        parts = [f"{name} {float(values[key]):.2f}" for key, name in (("nsdr", "NSDR"), ("sir", "SIR"), ("sar", "SAR"))
                 if key in values and np.isfinite(float(values[key]))]
        text = " · ".join(parts) + " dB" if parts else "no score"
        if "ciou" in values and np.isfinite(float(values["ciou"])):
            text += f" · cIoU {float(values['ciou']):.3f}"
        shown.append(text)
    return shown


def item_media(run: Run, row: Row, item: EvalItem, demo_dir: Path, slug: str, track: str) -> DemoItem | None:
    """Write one run's files of one item under ``demo/<slug>/<item>/`` (its estimated sources at the
    item's gain, its heatmaps) and the item's shared files; None when the run has no usable
    estimates for it (or a duet player has no position)."""
    outputs = load_outputs(run, item)
    players = duet_players(item) if track == "duets" else None
    if outputs is None or (track == "duets" and players is None):
        return None
    estimates, heatmaps = outputs
    shared = shared_media(item, demo_dir, track)
    own = item_slug(item)
    folder = inside(demo_dir, slug, own)
    folder.mkdir(parents=True, exist_ok=True)
    href = f"{slug}/{own}"
    n_sources = estimates.shape[0]
    for k in range(n_sources):
        write_audio(folder / f"source-{k}.ogg", estimates[k] * shared.gain, item.sample_rate)
    height, width = item.frames.shape[2:4]
    if heatmaps is not None:
        for k in range(n_sources):
            write_heat(folder / f"heat-{k}.png", heatmaps[k], (width, height))
    instruments = [str(i) for i in item.instruments]
    if track == "mixtures":
        title = f"{str(item.split).capitalize()} mixture {item.item_id}: " + " + ".join(instruments)
    else:
        title = f"Duet {item.item_id}: " + " + ".join(instruments)
    nsdr = row.per_item_nsdr.get(str(item.item_id)) if track == "mixtures" else None
    return DemoItem(
        item_id=str(item.item_id), track=track, title=title, width=width, height=height,
        video_ids=[str(v) for v in item.video_ids],
        source_labels=[f"Source {k + 1}: {instruments[k] if k < len(instruments) else '?'}" for k in range(n_sources)],
        mixture_wav=shared.mixture, source_wavs=[f"{href}/source-{k}.ogg" for k in range(n_sources)],
        frames=shared.frames, heats=[] if heatmaps is None else [f"{href}/heat-{k}.png" for k in range(n_sources)],
        players_json=None if players is None else json.dumps(players), slug=own, reference_wavs=shared.references,
        nsdr=nsdr, scores=source_scores(run, row, item),
    )


# ----------------------------------------------------------------------------------------- pages


class _ItemCache:
    """Benchmark items loaded once for every demo page, their files checked first
    (`DataRoot.verify_items`; `problems` holds the failed checks by split and track: no demo page
    is written then); none where the data root cannot provide them."""

    def __init__(self, root: Path, wanted: int | None):
        self.data, self.wanted = DataRoot(root), wanted
        self.loaded: dict[tuple[str, str], list[EvalItem]] = {}
        self.problems: dict[tuple[str, str], str] = {}

    def get(self, split: str, track: str) -> list[EvalItem]:
        if (split, track) not in self.loaded:
            self.loaded[(split, track)] = []
            try:
                self.data.verify_items(split, self.wanted, track)
            except MusicbenchError as exc:
                self.problems[(split, track)] = str(exc)
                return []
            try:
                self.loaded[(split, track)] = list(self.data.iter_items(split, self.wanted, track=track))
            except (MusicbenchError, OSError):
                pass
        return self.loaded[(split, track)]


def demo_items(run: Run, row: Row, cache: _ItemCache, demo_dir: Path, slug: str,
               n_items: int | None) -> dict[str, list[DemoItem]] | None:
    """Write one run's media: every scored test-mixture item (at most `n_items`, None: all) and its
    duet items, the mixtures best first by the board's per-item NSDR. None (with ``row.demo_note``
    saying why) when there is nothing to show."""
    items: dict[str, list[DemoItem]] = {track: [] for track in TRACKS}
    for track in TRACKS:
        if track == "duets" and (run.items is None or not (run.items["track"] == "duets").any()):
            continue
        benchmark_items = cache.get(run.split, track)
        if (run.split, track) in cache.problems:
            row.demo_note = f"demo pages skipped: {cache.problems[(run.split, track)]}"
            return None
        for item in benchmark_items:
            if n_items is not None and len(items[track]) >= n_items:
                break
            demo_item = item_media(run, row, item, demo_dir, slug, track)
            if demo_item is not None:
                items[track].append(demo_item)
    if not items["mixtures"] and not items["duets"]:
        row.demo_note = "no estimates of this run match the benchmark items under the data root"
        return None
    items["mixtures"].sort(key=lambda item: -math.inf if item.nsdr is None else -item.nsdr)
    return items


def reset_demo_dir(demo_dir: Path) -> None:
    """Empty a demo folder written by an earlier build (it holds our marker file); never anything else."""
    if demo_dir.is_dir() and (demo_dir / DEMO_MARKER).is_file():
        shutil.rmtree(demo_dir)
    elif demo_dir.exists() and any(demo_dir.iterdir()):
        raise MusicbenchError(f"{str(demo_dir)!r} exists and was not written by `musicbench leaderboard`; "
                              "move it away or choose another --out")
    demo_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(demo_dir / DEMO_MARKER, "written by musicbench leaderboard; emptied on every build\n")


def write_demos(board: Board, runs: list[Run], root: str | os.PathLike | None, out_dir: Path,
                n_items: int | None = None) -> None:
    """Write a demo page per run of the current benchmark version (needs the data root for the items'
    audio and frames) with `n_items` test mixtures (None: all) and its duets; set each row's ``demo``
    (relative path) or ``demo_note``. Each page can set the other pages' estimates beside its own."""
    demo_dir = out_dir / "demo"
    reset_demo_dir(demo_dir)
    rows = [row for table in board.tables for row in table.rows]
    if root is None:
        for row in rows:
            row.demo_note = "demo pages need the data root (--root)"
        return
    root = Path(root)
    version = DataRoot(root).version()
    by_folder = {run.folder: run for run in runs}
    cache = _ItemCache(root, None if n_items is None else n_items + 2)
    taken: set[str] = {"assets", "index", SHARED_DIR}
    pages: list[tuple[Row, str, dict[str, list[DemoItem]]]] = []
    for row in rows:
        if by_folder[row.folder].protocol:
            row.demo_note = f"a run on protocol {by_folder[row.folder].protocol}: demo pages show the main benchmark's items"
            continue
        if row.provenance.benchmark_version != version:
            row.demo_note = f"run on benchmark version {row.provenance.benchmark_version}, the data root holds {version}"
            continue
        if n_items is not None and n_items <= 0:
            row.demo_note = "demo pages turned off"
            continue
        if row.oracle:
            row.demo_note = "an oracle has no demo page: its estimates are the references, nearly, and are never published"
            continue
        slug = safe_slug(row.folder, taken)
        items = demo_items(by_folder[row.folder], row, cache, demo_dir, slug, n_items)
        if items is not None:
            pages.append((row, slug, items))
    for row, slug, items in pages:
        others = [{"name": other.name, "slug": other_slug,
                   "items": {item.slug: item.nsdr for track in TRACKS for item in other_items[track]}}
                  for other, other_slug, other_items in pages if other_slug != slug]
        atomic_write_text(inside(demo_dir, f"{slug}.html"), render_demo(row, items["mixtures"], items["duets"], others))
        row.demo = f"demo/{slug}.html"
