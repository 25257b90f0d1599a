"""provenance.json: what a run's numbers were computed on and with (`provenance`)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from musicbench.benchmark import DataRoot
from musicbench.definition import split_coverage
from musicbench.fsutil import sha256_file
from musicbench.metrics import METRIC_VERSION


def _git_revision() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() if result.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _video_lengths(data: DataRoot, cover: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(samples, frames) of each processed video the coverage names as not held (a video too short
    for some clips is held for the others: `musicbench.definition.split_coverage` says how long)."""
    if not cover.get("videos_not_held"):
        return {}
    index = data.read_index()
    index = index[index["video_id"].isin(list(cover["videos_not_held"]))]
    return {str(row.video_id): (int(row.n_samples), int(row.n_frames)) for row in index.itertuples(index=False)}


def provenance(
    root: str | os.PathLike, model_path: str | os.PathLike | None, *, name: str, split: str, seed: int, device: str,
    options: dict[str, Any], info: dict[str, Any], wall_seconds: float, oracle: str | None = None,
) -> dict[str, Any]:
    """provenance.json: what a number was computed on and with."""
    versions = {}
    for package in ("musicbench", "numpy", "scipy", "torch", "mir_eval", "imageio-ffmpeg"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    data = DataRoot(root)
    definition = data.definition()  # benchmark.json, read once
    fingerprint = definition.get("frames_fingerprint")
    return {
        "name": name, "benchmark_version": str(definition["benchmark_version"]), "protocol": data.protocol,
        "frames_fingerprint": str(fingerprint) if fingerprint else None,
        "coverage": split_coverage(definition["coverage"], split, _video_lengths(data, definition["coverage"])),
        "metric_version": METRIC_VERSION, "split": split,
        "git_revision": _git_revision(), "package_versions": versions, "python": platform.python_version(),
        "seed": seed, "device": device, "options": options, "oracle": oracle,
        "model_file": None if model_path is None else os.fspath(model_path),
        "model_sha256": None if model_path is None else sha256_file(model_path),
        "uses_labels": bool(info.get("uses_labels", False)), "n_parameters": info.get("n_parameters"),
        "confined": info.get("confined"), "confinement": info.get("confinement"), "interpreter": info.get("interpreter"),
        "wall_seconds": wall_seconds, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
