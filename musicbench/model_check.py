"""`musicbench validate-model`: run a model file on two tiny items and check what it returns.

Like HEAR's validator: before a long evaluation, a researcher learns in seconds whether the file
loads, which methods it offers, and whether each returns the right shape and dtype, finite values,
no silent source, within the time limit. The items are the first two validation items of the
benchmark when one is built under the data root, else two generated ones (tones and moving
squares) with the benchmark's shapes, so a model can be checked before `dvc repro` has run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.benchmark import DataRoot, EvalItem
from musicbench.config import AudioConfig
from musicbench.errors import MusicbenchError
from musicbench.harness.outputs import check_estimates, check_heatmaps, check_item_maps
from musicbench.harness.scoring import ScoreCache
from musicbench.hidden import check_other_names, hidden_paths
from musicbench.instruments import MUSIC_INSTRUMENTS
from musicbench.model_runner import LOAD_TIMEOUT, ModelRunner

FRAME_SIZE = 112  # pixels, the side of the generated items' frames


@dataclass
class Check:
    """One line of the report: what was checked, "pass" | "warn" | "fail", and the detail."""

    name: str
    status: str
    detail: str


def generated_items(audio: AudioConfig, n_items: int = 2, n_sources: int = 2, seed: int = 0) -> list[EvalItem]:
    """Tiny stand-in items with the benchmark's shapes: each source a harmonic tone (float32
    ``(audio.clip_samples,)`` at ``audio.sample_rate`` Hz) and a square moving in its own video
    (uint8 ``(ceil(clip seconds * audio.fps), 112, 112, 3)``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(audio.clip_samples) / audio.sample_rate
    n_frames = int(np.ceil(audio.clip_samples / audio.sample_rate * audio.fps))
    items = []
    for i in range(n_items):
        references, frames = [], []
        for _ in range(n_sources):
            f0 = rng.uniform(110, 880)
            tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5)) * 0.1
            references.append(tone * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)))
            video = np.full((n_frames, FRAME_SIZE, FRAME_SIZE, 3), 40, dtype=np.uint8)
            for k in range(n_frames):
                x = int(20 + 60 * (0.5 + 0.5 * np.sin(k / 3 + rng.uniform(0, 6))))
                video[k, 40:72, x:x + 32] = rng.integers(120, 255, size=3, dtype=np.uint8)
            frames.append(video)
        references_array = np.stack(references).astype(np.float32)
        boxes = [np.array([20.0, 40.0, 92.0, 32.0])] * n_sources
        items.append(EvalItem(f"generated-{i}", "val", [f"generated_{k}" for k in range(n_sources)],
                              ["violin", "flute", "cello", "trumpet"][:n_sources], references_array.sum(axis=0),
                              references_array, np.stack(frames), audio.sample_rate, boxes))
    return items


def check_items(root: str | os.PathLike | None, audio: AudioConfig) -> tuple[list[EvalItem], str]:
    """The two items to check with (generated ones with `audio`'s shapes when no benchmark is built
    under `root`), and where they come from."""
    if root is not None:
        try:
            items = list(DataRoot(root).iter_items("val", limit=2))
            if len(items) == 2:
                return items, f"the first two val items of the benchmark under {os.fspath(root)}"
        except MusicbenchError:
            pass
    return generated_items(audio), "two generated items (no benchmark built under the data root yet)"


def validate_model(
    model_path: str | os.PathLike, audio: AudioConfig, root: str | os.PathLike | None = None,
    options: dict[str, Any] | None = None, timeout: float = 60.0, load_timeout: float = LOAD_TIMEOUT,
    confine: bool = True, python: str | os.PathLike | None = None, hide: tuple[str | os.PathLike, ...] = (),
) -> tuple[list[Check], str]:
    """Load the model in a subprocess and call each of its methods on two items (the benchmark's
    under `root`, else generated ones with `audio`'s sample rate, clip length and frame rate).

    Returns the checks and a line saying which items were used. A failing check means
    `musicbench evaluate` would record the items as failed (or refuse the model). The model process
    is confined as in `musicbench evaluate` (`musicbench.hidden`; `hide`: more paths it must not see).
    """
    from musicbench.model_runner import ModelRunner

    path = Path(model_path)
    if not path.is_file():
        raise MusicbenchError(f"model file {str(path)!r} does not exist")
    items, source = check_items(root, audio)
    checks: list[Check] = []
    # the model sees nothing of the benchmark, as in `musicbench evaluate`
    hidden = list(map(Path, hide))
    if root is not None:
        found = hidden_paths(root, model_path=path, extra=hide)
        if confine:
            check_other_names(found)
        hidden = found.paths
    if root is not None and not confine:  # an unconfined model could read the score cache's key: renew it
        ScoreCache.renew_secret(DataRoot(root).score_cache_dir)
    with ModelRunner(path, {"device": "cpu", **(options or {})}, timeout, load_timeout, hide_paths=hidden,
                     confine=confine, python=python) as runner:
        if runner.load_error:
            return [Check("load_model", "fail", runner.load_error)], source
        info = runner.info
        checks.append(Check("confinement", "pass" if info["confined"] else "warn", info["confinement"]))
        checks.append(Check("interpreter", "pass", ", ".join(f"{key} {value or 'absent'}" for key, value in info["interpreter"].items())))
        checks.append(Check("load_model", "pass", f"uses_labels={info['uses_labels']}, "
                            f"parameters={info['n_parameters'] if info['n_parameters'] is not None else 'n/a'}"))
        maps_only = not info["has_separate"] and (info["has_localize"] or info["has_localize_classes"])
        if not info["has_separate"] and not maps_only:
            checks.append(Check("separate", "fail", "the model has no separate(mixture, frames, sample_rate) method"))
            return checks, source
        if maps_only:
            checks.append(Check("separate", "warn", "not offered: only the localization protocols can score this model "
                                "(dsol-solo with localize, dsol-duet with localize_classes)"))
        for item in items:
            for method in ("separate", "localize", "separate_at", "localize_classes"):
                if info[f"has_{method}"]:
                    checks.append(_check_call(runner, item, method, info, timeout))
        for method in ("localize", "separate_at", "localize_classes"):
            if not info[f"has_{method}"]:
                checks.append(Check(method, "warn", "not offered (optional): the board shows n/a for it"
                                    if method != "localize_classes" else "not offered (optional): protocol dsol-duet needs it"))
    return checks, source


def _check_call(runner: ModelRunner, item: EvalItem, method: str, info: dict[str, Any], timeout: float) -> Check:
    name = f"{method} on {item.item_id}"
    n_sources, n_samples = item.references.shape
    if method == "separate_at":
        points = [(float(b[0] + b[2] / 2), float(b[1] + b[3] / 2)) for b in item.boxes[:2]]
        result = runner.call(method, mixture=item.mixture, frames=item.frames[0], points=points)
        checked = check_estimates(result.value, len(points), n_samples) if result.ok else (None, result.reason)
    elif method == "localize_classes":  # as DSOL's duets ask: one video, a map per MUSIC instrument
        one_video = replace(item, frames=item.frames[:1], class_boxes={})
        result = runner.call(method, mixture=item.mixture, frames=one_video.frames, sample_rate=item.sample_rate,
                             classes=list(MUSIC_INSTRUMENTS))
        checked = check_item_maps(result.value, one_video) if result.ok else (None, result.reason)
    else:
        kwargs: dict[str, Any] = {"mixture": item.mixture, "frames": item.frames, "sample_rate": item.sample_rate}
        if method == "separate" and info.get("uses_labels"):
            kwargs["labels"] = list(item.instruments)
        result = runner.call(method, **kwargs)
        if not result.ok:
            checked = None, result.reason
        elif method == "separate":
            checked = check_estimates(result.value, n_sources, n_samples)
        else:
            checked = check_heatmaps(result.value, n_sources, item.frames.shape[2:4])
    array, reason = checked
    if array is None:
        return Check(name, "fail", reason)
    dtype = getattr(result.value, "dtype", type(result.value).__name__)
    detail = f"shape {tuple(array.shape)}, dtype {dtype}, {result.seconds:.2f} s"
    if result.seconds > timeout / 2:
        return Check(name, "warn", f"{detail}: more than half the {timeout:g} s per-item limit (--timeout)")
    return Check(name, "pass", detail)
