"""Run folders as the leaderboard reads them: `load_run` one folder, `find_runs` every folder under ``runs/``.

A run folder is written by `musicbench.evaluate.evaluate`: ``summary.json``, ``provenance.json``,
``items.parquet``, ``estimates/<item_id>.npy`` and, for methods that localize, ``heatmaps/<item_id>.npy``.
Every string read from it is untrusted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import pandas as pd

from musicbench.errors import MusicbenchError


@dataclass
class Run:
    """One run folder as read from disk (see `load_run`); `problems` lists what could not be read."""

    folder: str
    path: Path
    summary: dict[str, Any]
    provenance: dict[str, Any]
    items: pd.DataFrame | None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The leaderboard name: summary ``name``, else provenance ``name``, else the folder name."""
        for source in (self.summary, self.provenance):
            value = source.get("name")
            if isinstance(value, str) and value:
                return value
        return self.folder

    @property
    def benchmark_version(self) -> str:
        return str(self.summary.get("benchmark_version") or self.provenance.get("benchmark_version") or "unknown")

    @property
    def split(self) -> str:
        return str(self.summary.get("split") or self.provenance.get("split") or "unknown")

    @property
    def metric_version(self) -> str:
        return str(self.provenance.get("metric_version") or "unknown")

    @property
    def oracle(self) -> str | None:
        value = self.provenance.get("oracle")
        return str(value) if value else None

    @property
    def uses_labels(self) -> bool:
        return bool(self.summary.get("uses_labels", self.provenance.get("uses_labels", False)))

    @property
    def kind(self) -> str:
        """``reference`` (an oracle), ``labels`` (uses instrument labels) or ``main``."""
        if self.oracle:
            return "reference"
        return "labels" if self.uses_labels else "main"

    @property
    def is_baseline(self) -> bool:
        """Whether this is one of musicbench's reference methods: its model file lies in a
        ``baselines/`` folder (oracles are references, not baselines)."""
        model_file = self.provenance.get("model_file")
        if self.oracle or not isinstance(model_file, str):
            return False
        return "baselines" in PurePath(model_file.replace("\\", "/")).parts[:-1]


def _read_json(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"no {path.name}")
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name} is unreadable ({type(exc).__name__})")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path.name} is not a JSON object")
        return {}
    return value


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder. Missing or damaged files are listed in ``Run.problems``, never raised.

    items.parquet gets a ``track`` column ("mixtures") when it has none (runs made before duets).
    """
    path = Path(path)
    problems: list[str] = []
    summary = _read_json(path / "summary.json", problems)
    provenance = _read_json(path / "provenance.json", problems)
    items = None
    if (path / "items.parquet").is_file():
        try:
            items = pd.read_parquet(path / "items.parquet")
        except Exception as exc:  # pyarrow raises several types for a damaged file
            problems.append(f"items.parquet is unreadable ({type(exc).__name__})")
        else:
            if "track" not in items.columns:
                items["track"] = "mixtures"
    else:
        problems.append("no items.parquet")
    if summary and provenance and summary.get("benchmark_version") != provenance.get("benchmark_version"):
        problems.append("summary.json and provenance.json name different benchmark versions (summary.json used)")
    return Run(path.name, path, summary, provenance, items, problems)


def find_runs(runs_dir: str | os.PathLike) -> tuple[list[Run], list[str]]:
    """Every run folder directly under `runs_dir` (a folder with a summary.json), sorted by folder name,
    and warnings for the folders that were skipped (no summary.json, or an unreadable one)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise MusicbenchError(f"no runs folder at {str(runs_dir)!r}; run `musicbench evaluate` first")
    runs, warnings = [], []
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / "summary.json").is_file():
            warnings.append(f"{path.name}: skipped, no summary.json (an unfinished run?)")
            continue
        run = load_run(path)
        if not run.summary:
            warnings.append(f"{path.name}: skipped, {'; '.join(run.problems)}")
            continue
        runs.append(run)
    return runs, warnings
