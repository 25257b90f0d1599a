"""Run folders as the leaderboard reads them: `load_run` one folder, `find_runs` every folder under ``runs/``.

A run folder is written by `musicbench.evaluate.evaluate`: ``summary.json``, ``provenance.json``,
``items.parquet``, ``estimates/<item_id>.npy`` and, for methods that localize, ``heatmaps/<item_id>.npy``.
Everything read from it is untrusted: summary.json and provenance.json pass their schema (`SUMMARY`,
`PROVENANCE`: types, finite numbers, known keys only) before the board reads them, or the folder is skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import pandas as pd

from musicbench.errors import MusicbenchError


@dataclass
class Run:
    """One run folder as read from disk (see `load_run`): `problems` lists what could not be read,
    `invalid` is the first problem that keeps it off the board ("" if none)."""

    folder: str
    path: Path
    summary: dict[str, Any]
    provenance: dict[str, Any]
    items: pd.DataFrame | None
    problems: list[str] = field(default_factory=list)
    invalid: str = ""

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


# ------------------------------------------------------------------------------------------ schema
# A check takes a value from a run file and where it sits (``metrics.nsdr.n``) and returns the value
# to keep (objects keep only their known keys), or raises SchemaError on the first problem.
Check = Callable[[Any, str], Any]


class SchemaError(ValueError):
    """The first problem of a run file against its schema, e.g. ``n_scored must be an integer ≥ 0, not a string``."""


def _describe(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"non-finite {value}"
    names = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _fail(where: str, expected: str, value: Any) -> SchemaError:
    return SchemaError(f"{where or 'the document'} must be {expected}, not {_describe(value)}")


def _child(where: str, key: str) -> str:
    key = key if len(key) <= 40 else key[:40] + "…"
    return f"{where}.{key}" if where else key


def _text(value: Any, where: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise _fail(where, "a string", value)
    return value


def _flag(value: Any, where: str) -> bool:
    """A boolean."""
    if not isinstance(value, bool):
        raise _fail(where, "a boolean", value)
    return value


def _integer(value: Any, where: str) -> int:
    """An integer (not a boolean)."""
    if type(value) is not int:
        raise _fail(where, "an integer", value)
    return value


def _count(value: Any, where: str) -> int:
    """An integer ≥ 0."""
    if type(value) is not int or value < 0:
        raise _fail(where, "an integer ≥ 0", value)
    return value


def _number(value: Any, where: str) -> float:
    """A finite number (integer or float, not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, "a finite number", value)
    return value


def _plain_json(value: Any, where: str) -> Any:
    """Any JSON value whose numbers are all finite (``1e999`` and ``NaN`` parse as non-finite floats)."""
    if isinstance(value, dict):
        return {key: _plain_json(item, _child(where, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float):
        return _number(value, where)
    return value


def _optional(check: Check) -> Check:
    """`check`, or null."""
    return lambda value, where: None if value is None else check(value, where)


def _pair(check: Check) -> Check:
    """A list of two values, each passing `check`."""
    def checked(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(where, "a list of two", value)
        return [check(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return checked


def _mapping(check: Check) -> Check:
    """An object whose every value passes `check` (any keys)."""
    def checked(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        return {key: check(item, _child(where, key)) for key, item in value.items()}
    return checked


def _record(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object with the `required` keys; its known keys (`fields`) checked, unknown keys dropped."""
    def checked(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        for key in required:
            if key not in value:
                raise SchemaError(f"{where or 'the document'} has no {key!r}")
        return {key: check(value[key], _child(where, key)) for key, check in fields.items() if key in value}
    return checked


# mean and median are None when not finite (an item failed: −inf; an item at +inf), n_failed and n_plus_inf say which.
METRIC_BLOCK = _record({"mean": _optional(_number), "median": _optional(_number), "ci95": _pair(_optional(_number)),
                        "n": _count, "n_failed": _count, "n_plus_inf": _count}, required=("mean",))
LOCALIZATION = _record({"ciou_mean": _optional(_number), "ciou_success@0.5": _optional(_number),
                        "auc_success": _optional(_number), "pointing_game": _optional(_number), "n": _count})
TRACK_FIELDS: dict[str, Check] = {
    "n_items": _count, "n_scored": _count, "n_excluded": _count, "excluded_reasons": _mapping(_count), "complete": _flag,
    "metrics": _mapping(METRIC_BLOCK), "localization": _optional(LOCALIZATION),
    "per_instrument": _mapping(_mapping(_optional(_number))),
}
TRACK_REQUIRED = ("n_items", "n_scored", "metrics")
# summary.json as `musicbench.evaluate.summarize` writes it, with the run's name, version, split and labels flag.
SUMMARY = _record({**TRACK_FIELDS, "duets": _optional(_record(TRACK_FIELDS, TRACK_REQUIRED)),
                   "urmp": _optional(_record(TRACK_FIELDS, TRACK_REQUIRED)), "name": _text,
                   "benchmark_version": _text, "split": _text, "uses_labels": _flag}, TRACK_REQUIRED)
# provenance.json as `musicbench.evaluate.provenance` writes it ("created" and "timestamp": dates of older runs).
PROVENANCE = _record({
    "name": _text, "benchmark_version": _text, "metric_version": _text, "split": _text,
    "git_revision": _optional(_text), "package_versions": _mapping(_optional(_text)), "python": _optional(_text),
    "seed": _optional(_integer), "device": _optional(_text), "options": _mapping(_plain_json),
    "oracle": _optional(_text), "model_file": _optional(_text), "model_sha256": _optional(_text),
    "uses_labels": _flag, "n_parameters": _optional(_count), "wall_seconds": _optional(_number),
    "confined": _optional(_flag), "confinement": _optional(_text), "interpreter": _optional(_mapping(_optional(_text))),
    "scored_from_files": _optional(_record({"folder": _text, "sha256": _text, "n_files": _count})), "frames_fingerprint": _optional(_text),
    "date": _optional(_text), "created": _optional(_text), "timestamp": _optional(_text), "urmp_version": _optional(_text),
})


def _read_json(path: Path, schema: Check, problems: list[str]) -> tuple[dict[str, Any], str]:
    """(the validated document, "") or ({}, its first problem); a missing file is only listed in `problems`."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"no {path.name}")
        return {}, ""
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"{path.name} is unreadable ({type(exc).__name__})"
    try:
        return schema(value, ""), ""
    except SchemaError as exc:
        return {}, f"{path.name}: {exc}"


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder. summary.json and provenance.json are checked against `SUMMARY` and
    `PROVENANCE`: the first problem goes to ``Run.invalid``. Missing or damaged files are listed in
    ``Run.problems``; nothing is raised.

    items.parquet gets a ``track`` column ("mixtures") when it has none (runs made before duets).
    """
    path = Path(path)
    problems: list[str] = []
    summary, summary_problem = _read_json(path / "summary.json", SUMMARY, problems)
    provenance, provenance_problem = _read_json(path / "provenance.json", PROVENANCE, problems)
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
    return Run(path.name, path, summary, provenance, items, problems, summary_problem or provenance_problem)


def find_runs(runs_dir: str | os.PathLike) -> tuple[list[Run], list[str]]:
    """Every run folder directly under `runs_dir` (a folder with a valid summary.json), sorted by folder
    name, and a warning for each folder skipped: no summary.json, or a summary.json or provenance.json
    that is unreadable or fails its schema (the warning names the first problem). Folders whose name
    starts with a dot are not runs: ``.<name>.tmp-<pid>`` is a run being written (`musicbench.evaluate`)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise MusicbenchError(f"no runs folder at {str(runs_dir)!r}; run `musicbench evaluate` first")
    runs, warnings = [], []
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / "summary.json").is_file():
            warnings.append(f"{path.name}: skipped, no summary.json (an unfinished run?)")
            continue
        run = load_run(path)
        if run.invalid:
            warnings.append(f"{path.name}: skipped, {run.invalid}")
            continue
        runs.append(run)
    return runs, warnings
