"""Planning and writing MUSIC-Synth videos (see the package docstring for the layout)."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from musicbench.benchmark import MANIFEST_NAME, SYNTH_KINDS, SYNTH_SKIPPED_NAME, DataRoot, side_by_side_strips, synth_relpath
from musicbench.concurrency import holds_data_root, worker_pool
from musicbench.config import AudioConfig, check_fields, config_from_params, jobs_option, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_path, atomic_write_text, ensure_writable_dir
from musicbench.instruments import MUSIC_DUET_PAIRS, get_instrument
from musicbench.manifest import ManifestEntry, read_manifest, write_manifest
from musicbench.media import write_video
from musicbench.progress import progress_bar
from musicbench.synth.audio import check_soundfont, default_soundfont, render_part
from musicbench.synth.recording import apply_recording, clean_recording, draw_recording, draw_room
from musicbench.synth.score import Part, duet_parts, ensemble_parts, solo_parts
from musicbench.synth.visual import (
    PlayerFigure,
    add_distractors,
    draw_scene_motion,
    light_and_shake,
    motion_signals,
    random_background,
)

MIXTURE_PEAK = 0.95


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of MUSIC-Synth (params.yaml section `synth`, with the benchmark's `AudioConfig`).

    duration in seconds; width, height in pixels; fps of the video (not the processed frames'
    ``audio.fps``); stems and rendering at ``audio.sample_rate`` Hz.
    """

    audio: AudioConfig
    seed: int = knob(1234, non_negative=True)
    scale: int = knob(1, positive=True)
    solo_per_instrument: int = knob(6, positive=True)
    duets_per_pair: int = knob(2, non_negative=True)
    duration: float = knob(14.0, positive=True)
    width: int = knob(160, positive=True)
    height: int = knob(120, positive=True)
    fps: int = knob(16, positive=True)
    soundfont: str = knob("")
    jobs: int = knob(2, positive=True)
    instruments: tuple[str, ...] = knob(())
    recording: Literal["varied", "clean"] = knob("varied")
    scene: Literal["lively", "still"] = knob("lively")

    def __post_init__(self) -> None:
        check_fields(self, "synth")
        if not self.instruments:
            raise MusicbenchError("params: synth.instruments must list at least one MUSIC instrument")
        for name in self.instruments:
            get_instrument(name, where="params: synth.instruments")
        if len(set(self.instruments)) != len(self.instruments):
            raise MusicbenchError("params: synth.instruments lists an instrument twice")
        if self.width < 64 or self.height < 48 or self.width % 2 or self.height % 2:
            raise MusicbenchError("params: synth.width and synth.height must be even and at least 64 x 48 pixels")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "SynthConfig":
        """Build from a params.yaml mapping; unknown keys in `synth` are an error."""
        return config_from_params(cls, params, "synth", audio=AudioConfig.from_params(params))

    @property
    def soundfont_path(self) -> Path:
        """The soundfont to render with (TimGM6mb.sf2 from pretty_midi when none is set)."""
        return Path(self.soundfont) if self.soundfont else default_soundfont()


@dataclass(frozen=True)
class VideoSpec:
    """One video to generate: its id, kind (solo, duet, or ensemble: 2-5 players side by side in
    URMP's layout, `musicbench.synth.urmp_layout`), instruments (source order) and its length in
    seconds (None: ``synth.duration``; a protocol's videos have the lengths its files list)."""

    video_id: str
    kind: str
    instruments: tuple[str, ...]
    duration: float | None = None


def plan_videos(config: SynthConfig) -> list[VideoSpec]:
    """The videos of a MUSIC-Synth set: solos of every instrument, then duets of the MUSIC pairs."""
    specs = [
        VideoSpec(f"solo_{name}_{k:02d}", "solo", (name,))
        for name in config.instruments
        for k in range(config.solo_per_instrument * config.scale)
    ]
    chosen = set(config.instruments)
    specs += [
        VideoSpec(f"duet_{a}_{b}_{k:02d}", "duet", (a, b))
        for a, b in MUSIC_DUET_PAIRS
        if a in chosen and b in chosen
        for k in range(config.duets_per_pair * config.scale)
    ]
    return specs


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    """The random generator of one video: a function of the set's seed and the id only."""
    key = int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))


def render_stems(spec: VideoSpec, config: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Compose, render and record the sources of a video: float32 ``(n_sources, n_samples)`` twice,
    the recorded stems (the ground truth) and the dry performances at the same scale (what the
    players' motion follows).

    Each recorded source is brought to its own RMS level (-20 dBFS ± 3 dB); all are scaled
    together if their sum would peak above 0.95. The recording chain (`musicbench.synth.recording`)
    draws from its own generator, so `rng` sees the same draws with either ``synth.recording``.
    """
    stems, dry, _ = render_performance(spec, config, rng)
    return stems, dry


def render_performance(spec: VideoSpec, config: SynthConfig,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[Part]]:
    """`render_stems` and the score each player performed (kind solo, duet or ensemble of 2-5)."""
    instruments = [get_instrument(name) for name in spec.instruments]
    if spec.kind == "solo":
        parts = solo_parts(rng, instruments[0], config.duration)
    elif spec.kind == "duet":
        parts = duet_parts(rng, instruments[0], instruments[1], config.duration)
    else:
        parts = ensemble_parts(rng, instruments, config.duration)
    if config.recording == "clean":
        recordings = [clean_recording(i) for i in instruments]
    else:
        chain_rng = video_rng(config.seed, f"{spec.video_id}/recording")  # apart from the score and pictures
        room = draw_room(chain_rng)
        recordings = [draw_recording(chain_rng, i, room) for i in instruments]
    dry = np.stack([
        render_part(p, config.duration, config.audio.sample_rate, config.soundfont_path, r.program, r.tuning_cents)
        for p, r in zip(parts, recordings)
    ]).astype(np.float64)
    stems = np.stack([apply_recording(d, r, config.audio.sample_rate) for d, r in zip(dry, recordings)])
    for i, stem in enumerate(stems):
        rms = np.sqrt(np.mean(stem**2))
        if rms == 0:
            raise MusicbenchError(f"video {spec.video_id}: source {spec.instruments[i]} rendered silent; check synth.soundfont")
        gain = 10 ** ((-20 + rng.uniform(-3, 3)) / 20) / rms
        stems[i] *= gain
        dry[i] *= gain
    peak = np.abs(stems.sum(axis=0)).max()
    if peak > MIXTURE_PEAK:
        stems *= MIXTURE_PEAK / peak
        dry *= MIXTURE_PEAK / peak
    return stems.astype(np.float32), dry.astype(np.float32), parts


def _place_players(rng: np.random.Generator, spec: VideoSpec, config: SynthConfig) -> list[PlayerFigure]:
    width, height = config.width, config.height
    if spec.kind == "solo":
        slots = [(rng.uniform(0.3, 0.7) * width, rng.uniform(0.6, 0.78))]
        max_width = 0.9 * width
    elif spec.kind == "ensemble":  # URMP's layout: player k of N in the k-th of N equal vertical strips
        n = len(spec.instruments)
        slots = [((k + 0.5) * width / n, rng.uniform(0.55, 0.7)) for k in range(n)]
        max_width = (width / n - 4) / 1.25  # room for the sway and the instrument within the strip
    else:
        left, right = rng.uniform(0.2, 0.3) * width, rng.uniform(0.7, 0.8) * width
        slots = [(left, rng.uniform(0.5, 0.64)), (right, rng.uniform(0.5, 0.64))]
        if rng.random() < 0.5:
            slots.reverse()
        max_width = 0.46 * width
    figures = []
    for name, (centre_x, relative_height) in zip(spec.instruments, slots):
        figure = PlayerFigure.random(rng, name, relative_height * height, centre_x, rng.uniform(0.88, 0.97) * height)
        if figure.width > max_width:
            shrink = max_width / figure.width
            figure.width *= shrink
            figure.y += figure.height * (1 - shrink)
            figure.height *= shrink
        if spec.kind == "ensemble":  # stays inside its strip
            strip = width / len(spec.instruments)
            low = np.floor(centre_x / strip) * strip
            figure.x = float(np.clip(figure.x, low + 0.1 * figure.width + 2, low + strip - 1.1 * figure.width - 2))
        figure.x = float(np.clip(figure.x, 0.04 * figure.width + 1, width - 1.04 * figure.width - 1))
        figure.y = float(np.clip(figure.y, 0.12 * figure.height + 1, height - figure.height - 1))
        figures.append(figure)
    return figures


def render_frames(
    spec: VideoSpec, config: SynthConfig, performances: np.ndarray, rng: np.random.Generator
) -> tuple[list[np.ndarray], np.ndarray]:
    """Draw the video: frames uint8 ``(height, width, 3)`` and boxes ``(n_sources, n_frames, 4)``.

    Each player moves with their own dry performance ``(n_sources, n_samples)``, not its reverberation;
    in a lively scene (``synth.scene``, not for URMP-layout ensembles) also without sounding
    (`musicbench.synth.visual.draw_scene_motion`: idling, gestures, a bystander), seen under the
    scene's light and through its shaking camera (the boxes move with the picture).
    """
    n_frames = int(round(config.duration * config.fps))
    background = add_distractors(rng, random_background(rng, config.width, config.height))
    figures = _place_players(rng, spec, config)
    signals = [motion_signals(dry, config.audio.sample_rate, config.fps, n_frames) for dry in performances]
    scene = None
    if config.scene == "lively" and spec.kind != "ensemble":  # its own generator: the audio and the rest stay as drawn
        scene = draw_scene_motion(video_rng(config.seed, f"{spec.video_id}/scene"), figures,
                                  [envelope for envelope, _, _ in signals], config.fps, config.width, config.height)
    boxes = np.zeros((len(figures), n_frames, 4), dtype=np.int32)
    frames = []
    strips = side_by_side_strips(config.width, len(figures)) if spec.kind == "ensemble" else None
    size = (config.width, config.height)
    for i in range(n_frames):
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        if scene is not None and scene.bystander is not None:
            dx, dy, gesture = scene.bystander_motion[i]
            scene.bystander.draw(draw, i, config.fps, 0.0, 0.0, float(gesture), size, (float(dx), -float(dy)))
        for k, (figure, (envelope, onset, action)) in enumerate(zip(figures, signals)):
            offset = (0.0, 0.0) if scene is None else (float(scene.idle[k, i, 0]), float(scene.idle[k, i, 1]))
            if strips is None:
                boxes[k, i] = figure.draw(draw, i, config.fps, float(envelope[i]), float(onset[i]), float(action[i]),
                                          size, offset)
                continue
            # URMP: each player filmed alone, the pictures put side by side (player k in strip k)
            layer = Image.fromarray(background)
            box = figure.draw(ImageDraw.Draw(layer), i, config.fps, float(envelope[i]), float(onset[i]),
                              float(action[i]), size)
            x0, x1 = strips[k]
            image.paste(layer.crop((x0, 0, x1, config.height)), (x0, 0))
            left, right = min(max(box[0], x0), x1), min(max(box[0] + box[2], x0), x1)
            boxes[k, i] = [left, box[1], right - left, box[3]]
        frame = np.asarray(image)
        if scene is not None:
            frame = light_and_shake(frame, float(scene.light[i]), (scene.shake[i, 0], scene.shake[i, 1]))
            boxes[:, i] = _shifted(boxes[:, i], int(scene.shake[i, 0]), int(scene.shake[i, 1]), size)
        frames.append(frame)
    return frames, boxes


def _shifted(boxes: np.ndarray, dx: int, dy: int, size: tuple[int, int]) -> np.ndarray:
    """Boxes ``(n, 4)`` [x, y, w, h] moved by (dx, dy) pixels with the picture, clipped to it."""
    x0 = np.clip(boxes[:, 0] + dx, 0, size[0])
    y0 = np.clip(boxes[:, 1] + dy, 0, size[1])
    x1 = np.clip(boxes[:, 0] + boxes[:, 2] + dx, 0, size[0])
    y1 = np.clip(boxes[:, 1] + boxes[:, 3] + dy, 0, size[1])
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def generate_video(spec: VideoSpec, config: SynthConfig, data_root: str | os.PathLike) -> ManifestEntry:
    """Generate one video with its stems and boxes under `data_root`'s synth folder; return its manifest entry.

    Each file is written under a temporary name and renamed when complete.
    """
    data_root = Path(data_root)
    if spec.duration is not None:
        config = replace(config, duration=float(spec.duration))
    rng = video_rng(config.seed, spec.video_id)
    stems, performances = render_stems(spec, config, rng)
    frames, boxes = render_frames(spec, config, performances, rng)
    stems_rel, boxes_rel, video_rel = (synth_relpath(kind, spec.video_id) for kind in ("stems", "boxes", "videos"))
    with atomic_path(data_root / stems_rel) as tmp:
        sf.write(tmp, stems.T, config.audio.sample_rate, subtype="PCM_24", format="FLAC")
    boxes_doc = {
        "video_id": spec.video_id, "fps": config.fps, "width": config.width, "height": config.height,
        "instruments": list(spec.instruments), "format": "[x, y, w, h] pixels, top-left origin, per frame",
        "boxes": boxes.tolist(),
    }
    atomic_write_text(data_root / boxes_rel, json.dumps(boxes_doc, separators=(",", ":")))
    with atomic_path(data_root / video_rel) as tmp:
        write_video(tmp, frames, config.fps, config.width, config.height, stems.sum(axis=0), config.audio.sample_rate)
    return ManifestEntry(
        video_id=spec.video_id, kind=spec.kind, instruments=spec.instruments, subset="MUSIC-Synth",
        source="synth", duration=float(config.duration), video_path=video_rel, stems_path=stems_rel,
        boxes_path=boxes_rel,
    )


@holds_data_root("synth", "data_root")
def generate_synth(config: SynthConfig, data_root: str | os.PathLike, jobs: int | None = None,
                   specs: list[VideoSpec] | None = None) -> list[ManifestEntry]:
    """Generate the whole MUSIC-Synth set under `data_root`/synth and write its manifest
    (`specs`: these videos instead of the set `plan_videos` plans, e.g. a protocol's,
    `musicbench.protocols.protocol_video_specs`, added to the manifest there: its other entries are kept).

    Checks every parameter, the soundfont and the output folder before writing anything.
    Returns the manifest entries in plan order.
    """
    check_soundfont(config.soundfont_path, config.audio.sample_rate)
    synth_dir = ensure_writable_dir(DataRoot(data_root).synth_dir)
    for sub in SYNTH_KINDS:
        ensure_writable_dir(synth_dir / sub)
    added = specs is not None
    specs = plan_videos(config) if specs is None else specs
    jobs = jobs_option(jobs, config.jobs)
    entries: dict[str, ManifestEntry] = {}
    with progress_bar("MUSIC-Synth videos", total=len(specs)) as advance:
        if jobs == 1:
            for spec in specs:
                entries[spec.video_id] = generate_video(spec, config, data_root)
                advance()
        else:
            with worker_pool(jobs) as pool:
                futures = {pool.submit(generate_video, spec, config, data_root): spec for spec in specs}
                for future in as_completed(futures):
                    entry = future.result()
                    entries[entry.video_id] = entry
                    advance()
    ordered = [entries[spec.video_id] for spec in specs]
    kept = []
    if added and (synth_dir / MANIFEST_NAME).is_file():  # the set already generated here stays in the manifest
        kept = [entry for entry in read_manifest(synth_dir / MANIFEST_NAME) if entry.video_id not in entries]
    write_manifest(kept + ordered, synth_dir / MANIFEST_NAME)
    return ordered


def synth_stage(params: dict[str, Any], data_root: str | os.PathLike, jobs: int | None = None,
                force: bool = False) -> list[ManifestEntry] | None:
    """The DVC stage `synth`: generate MUSIC-Synth when ``dataset.source`` is synth (or `force`).

    With ``dataset.source: music`` the pipeline processes the downloaded videos instead: nothing is
    generated, only ``synth/skipped.json`` says why, and None is returned.
    """
    source = (params.get("dataset") or {}).get("source", "synth")
    if source == "synth" or force:
        return generate_synth(SynthConfig.from_params(params), data_root, jobs=jobs)
    if source not in ("music", "solos"):
        raise MusicbenchError(f"params: dataset.source must be 'synth', 'music' or 'solos', got {source!r}")
    synth_dir = ensure_writable_dir(DataRoot(data_root).synth_dir)
    atomic_write_text(synth_dir / SYNTH_SKIPPED_NAME, json.dumps(
        {"skipped": True, "reason": f"dataset.source is {source}: the pipeline processes the downloaded "
                                    + ("MUSIC videos" if source == "music" else "Solos clips")}) + "\n")
    return None
