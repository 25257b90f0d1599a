"""Demo pages' media: per run and benchmark item, its audio (WAV) and frames and heatmaps (PNG) under ``demo/<slug>/``.

`write_demos` writes every page: `item_media` writes one item's files and returns a `DemoItem`, the
record that templates/demo.html turns into markup (`musicbench.leaderboard.pages.render_demo`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.benchmark import TRACKS, DataRoot, EvalItem
from musicbench.errors import MusicbenchError
from musicbench.evaluate import MAX_HEATMAP_BYTES
from musicbench.fsutil import NpyError, atomic_path, atomic_write_text, read_npy
from musicbench.leaderboard.board import Board, Row
from musicbench.leaderboard.pages import render_demo
from musicbench.leaderboard.runs import Run
from musicbench.leaderboard.slug import inside, safe_slug

DEMO_MARKER = ".musicbench-demo"


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


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Mono audio ``(n_samples,)`` clipped to [-1, 1] as a 16-bit WAV file."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate, subtype="PCM_16", format="WAV")


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


def item_media(run: Run, item: EvalItem, media: Path, media_href: str, track: str) -> DemoItem | None:
    """Write one item's media under ``media/<item slug>/``: the mixture and each estimated source
    (one gain per item), the centre frame(s) and the heatmaps; None when the run has no usable
    estimates for it (or a duet player has no position)."""
    outputs = load_outputs(run, item)
    players = duet_players(item) if track == "duets" else None
    if outputs is None or (track == "duets" and players is None):
        return None
    estimates, heatmaps = outputs
    item_slug = safe_slug(item.item_id)
    folder = inside(media, item_slug)
    folder.mkdir(parents=True, exist_ok=True)
    href = f"{media_href}/{item_slug}"
    n_sources = estimates.shape[0]
    peak = max(float(np.abs(item.mixture).max()), float(np.abs(estimates).max()), 1e-9)
    gain = min(1.0, 0.95 / peak)  # one gain per item: the sources keep their levels relative to the mixture
    write_wav(folder / "mixture.wav", item.mixture * gain, item.sample_rate)
    for k in range(n_sources):
        write_wav(folder / f"source-{k}.wav", estimates[k] * gain, item.sample_rate)
    centre = item.frames.shape[1] // 2
    height, width = item.frames.shape[2:4]
    pictures = range(n_sources) if track == "mixtures" else range(1)
    for k in pictures:
        write_png(folder / f"frame-{k}.png", item.frames[k, centre])
    if heatmaps is not None:
        for k in range(n_sources):
            write_heat(folder / f"heat-{k}.png", heatmaps[k], (width, height))
    instruments = [str(i) for i in item.instruments]
    if track == "mixtures":
        title = f"{str(item.split).capitalize()} mixture {item.item_id}: " + " + ".join(instruments)
    else:
        title = f"Duet {item.item_id}: " + " + ".join(instruments)
    return DemoItem(
        item_id=str(item.item_id), track=track, title=title, width=width, height=height,
        video_ids=[str(v) for v in item.video_ids],
        source_labels=[f"Source {k + 1}: {instruments[k] if k < len(instruments) else '?'}" for k in range(n_sources)],
        mixture_wav=f"{href}/mixture.wav", source_wavs=[f"{href}/source-{k}.wav" for k in range(n_sources)],
        frames=[f"{href}/frame-{k}.png" for k in pictures],
        heats=[] if heatmaps is None else [f"{href}/heat-{k}.png" for k in range(n_sources)],
        players_json=None if players is None else json.dumps(players),
    )


# ----------------------------------------------------------------------------------------- pages


class _ItemCache:
    """Benchmark items loaded once for every demo page, their files checked first
    (`DataRoot.verify_items`; `problems` holds the failed checks by split and track: no demo page
    is written then); none where the data root cannot provide them."""

    def __init__(self, root: Path, wanted: int):
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


def write_demo(run: Run, row: Row, cache: _ItemCache, demo_dir: Path, slug: str, n_items: int) -> str | None:
    """Write ``demo/<slug>.html`` and its media under ``demo/<slug>/`` for one run: its first `n_items`
    scored test-mixture items and duet items (when it has any). Returns the page's path relative to
    the output folder, or None (with ``row.demo_note`` saying why)."""
    media = inside(demo_dir, slug)
    items: dict[str, list[DemoItem]] = {track: [] for track in TRACKS}
    for track in TRACKS:
        if track == "duets" and (run.items is None or not (run.items["track"] == "duets").any()):
            continue
        benchmark_items = cache.get(run.split, track)
        if (run.split, track) in cache.problems:
            row.demo_note = f"demo pages skipped: {cache.problems[(run.split, track)]}"
            return None
        for item in benchmark_items:
            if len(items[track]) >= n_items:
                break
            demo_item = item_media(run, item, media, slug, track)
            if demo_item is not None:
                items[track].append(demo_item)
    if not items["mixtures"] and not items["duets"]:
        row.demo_note = "no estimates of this run match the benchmark items under the data root"
        return None
    atomic_write_text(inside(demo_dir, f"{slug}.html"), render_demo(row, items["mixtures"], items["duets"]))
    return f"demo/{slug}.html"


def reset_demo_dir(demo_dir: Path) -> None:
    """Empty a demo folder written by an earlier build (it holds our marker file); never anything else."""
    if demo_dir.is_dir() and (demo_dir / DEMO_MARKER).is_file():
        shutil.rmtree(demo_dir)
    elif demo_dir.exists() and any(demo_dir.iterdir()):
        raise MusicbenchError(f"{str(demo_dir)!r} exists and was not written by `musicbench leaderboard`; "
                              "move it away or choose another --out")
    demo_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(demo_dir / DEMO_MARKER, "written by musicbench leaderboard; emptied on every build\n")


def write_demos(board: Board, runs: list[Run], root: str | os.PathLike | None, out_dir: Path, n_items: int = 3) -> None:
    """Write a demo page per run of the current benchmark version (needs the data root for the items'
    audio and frames); set each row's ``demo`` (relative path) or ``demo_note``."""
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
    cache = _ItemCache(root, n_items + 2)
    taken: set[str] = {"assets", "index"}
    for row in rows:
        if row.provenance.benchmark_version != version:
            row.demo_note = f"run on benchmark version {row.provenance.benchmark_version}, the data root holds {version}"
            continue
        if n_items <= 0:
            row.demo_note = "demo pages turned off"
            continue
        if row.oracle:
            row.demo_note = "an oracle has no demo page: its estimates are the references, nearly, and are never published"
            continue
        slug = safe_slug(row.folder, taken)
        row.demo = write_demo(by_folder[row.folder], row, cache, demo_dir, slug, n_items)
