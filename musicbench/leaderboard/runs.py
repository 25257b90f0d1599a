"""Run folders as the leaderboard reads them: `load_run` one folder, `find_runs` every folder under ``runs/``.

A run folder is written by `musicbench.evaluate.evaluate`: ``summary.json``, ``provenance.json``,
``items.parquet``, ``inference.parquet``, ``estimates/<item_id>.npy`` and, for methods that localize,
``heatmaps/<item_id>.npy``. Everything read from it is untrusted: a run folder that is a symlink is not
followed; summary.json, provenance.json and items.parquet are opened without following symlinks, must be
regular files of bounded size, and pass their schema (`SUMMARY`, `PROVENANCE`: types, finite numbers,
counts below 2**53, known keys only; `check_items` for items.parquet) before the board reads them, or the
folder is skipped with a warning. The board (`musicbench.leaderboard.board`) then takes every count and
flag it ranks by from items.parquet (re-scored from the estimates where it can), never from summary.json.
Names and folder names pass `musicbench.progress.plain`: no control or bidi-override character reaches
any output.
"""

from __future__ import annotations

import functools
import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import pandas as pd

import musicbench
from musicbench.benchmark import ALL_TRACKS
from musicbench.errors import MusicbenchError
from musicbench.fsutil import MissingFileError, UntrustedFileError, read_regular_file, read_untrusted_parquet, sha256_file
from musicbench.metrics import LOCALIZATION_VARIANTS, VARIANT_SUMMARY_KEYS
from musicbench.progress import plain

# The repository's own baselines: a run is a musicbench baseline when its model file is one of these,
# byte for byte (`Run.is_baseline`). Absent (an installed package without the repository): no baseline.
BASELINES_DIR = Path(musicbench.__file__).resolve().parents[1] / "baselines"
# Counts in run files must stay below 2**53: exact as a JSON number anywhere, and within Parquet's int64.
MAX_COUNT = 2**53
MAX_JSON_BYTES = 16 << 20  # summary.json / provenance.json larger than this are refused
MAX_ITEMS_BYTES = 256 << 20  # items.parquet larger than this is refused
MAX_ITEM_ROWS = 200_000  # items.parquet rows (one per item and source: a real benchmark has some thousands)
MAX_ITEMS_MEMORY = 256 << 20  # items.parquet's known columns, decoded


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

    def __post_init__(self) -> None:
        self.folder = plain(self.folder)  # shown on every output: no control or bidi-override character

    @property
    def name(self) -> str:
        """The leaderboard name: summary ``name``, else provenance ``name``, else the folder name
        (`plain`: control and bidi-override characters shown as U+FFFD)."""
        for source in (self.summary, self.provenance):
            value = source.get("name")
            if isinstance(value, str) and value:
                return plain(value)
        return self.folder

    @property
    def benchmark_version(self) -> str:
        return plain(self.summary.get("benchmark_version") or self.provenance.get("benchmark_version") or "unknown")

    @property
    def split(self) -> str:
        return plain(self.summary.get("split") or self.provenance.get("split") or "unknown")

    @property
    def protocol(self) -> str | None:
        """The paper's test set the run scored (`musicbench.protocols`), None for the main benchmark."""
        value = self.summary.get("protocol") or self.provenance.get("protocol")
        return plain(value) if value else None

    @property
    def metric_version(self) -> str:
        return plain(self.provenance.get("metric_version") or "unknown")

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
    def seed(self) -> int | None:
        """The bootstrap seed the run was summarized with (provenance ``seed``), None when absent or unusable."""
        value = self.provenance.get("seed")
        return value if type(value) is int and 0 <= value < 2**64 else None

    @property
    def is_baseline(self) -> bool:
        """Whether this is one of musicbench's reference methods: provenance ``model_sha256`` is the
        SHA-256 of the file of the same name in the repository's own ``baselines/`` folder
        (`BASELINES_DIR`). A model file in any other folder named ``baselines/`` is not one, and
        oracles are references, not baselines."""
        model_file, claimed = self.provenance.get("model_file"), self.provenance.get("model_sha256")
        if self.oracle or not isinstance(model_file, str) or not isinstance(claimed, str):
            return False
        file_name = PurePath(model_file.replace("\\", "/")).name
        if file_name in ("", ".", ".."):
            return False
        digest = _baseline_sha256(BASELINES_DIR / file_name)
        return digest is not None and digest == claimed.lower()


def _baseline_sha256(path: Path) -> str | None:
    """The SHA-256 of a regular file (not a symlink) in the baselines folder, None if there is none;
    cached while its size and modification time stay the same."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return _sha256_of(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


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
    """An integer ≥ 0 and below 2**53 (`MAX_COUNT`: exact in JSON, and within Parquet's int64)."""
    if type(value) is not int or value < 0:
        raise _fail(where, "an integer ≥ 0", value)
    if value >= MAX_COUNT:
        raise SchemaError(f"{where or 'the document'} must be below 2**53, not an integer of {len(str(value))} digits")
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


def _list(check: Check, limit: int) -> Check:
    """A list of at most `limit` values, each passing `check`."""
    def checked(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) > limit:
            raise _fail(where, f"a list of at most {limit}", value)
        return [check(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return checked


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
                        "auc_success": _optional(_number), "pointing_game": _optional(_number), "n": _count,
                        **{key: _optional(_number) for key in VARIANT_SUMMARY_KEYS}})
TRACK_FIELDS: dict[str, Check] = {
    "n_items": _count, "n_scored": _count, "n_excluded": _count, "excluded_reasons": _mapping(_count), "complete": _flag,
    "metrics": _mapping(METRIC_BLOCK), "localization": _optional(LOCALIZATION),
    "per_instrument": _mapping(_mapping(_optional(_number))),
}
TRACK_REQUIRED = ("n_items", "n_scored", "metrics")
# summary.json as `musicbench.harness.summaries.summarize` writes it, with the run's name, version, split and labels flag.
# a protocol run's figures by the paper's own recipe (`musicbench.harness.scoring.paper_recipe_scores`)
PAPER_RECIPE = _record({"recipe": _text, **{key: _optional(_number) for key in ("sdr", "sir", "sar", "sdr_mix", "nsdr", "ciou_mean",
                                                                                 "success@0.3", "success@0.5", "auc", "nsa")},
                        "n_items": _count, "n_valid": _count, "n_batches": _count, "n_not_held": _count}, ("recipe",))
SUMMARY = _record({**TRACK_FIELDS, "duets": _optional(_record(TRACK_FIELDS, TRACK_REQUIRED)),
                   "urmp": _optional(_record(TRACK_FIELDS, TRACK_REQUIRED)), "name": _text,
                   "benchmark_version": _text, "split": _text, "uses_labels": _flag,
                   "protocol": _optional(_text), "paper_recipe": _optional(PAPER_RECIPE)}, TRACK_REQUIRED)
# a run's coverage (`musicbench.definition.split_coverage`): per track, the benchmark's items, those held, those not
COVERAGE = _record({"tracks": _mapping(_record({"items": _count, "held": _count, "not_held": _list(_text, MAX_ITEM_ROWS),
                                                "videos_not_held": _list(_text, MAX_ITEM_ROWS),
                                                "videos_short": _mapping(_list(_count, 2))},
                                               ("items", "held", "not_held"))),
                    "tables_fingerprint": _text, "frames": _mapping(_text)}, ("tracks",))
# provenance.json as `musicbench.harness.provenance.provenance` writes it ("created" and "timestamp": dates of older runs).
PROVENANCE = _record({
    "name": _text, "benchmark_version": _text, "metric_version": _text, "split": _text, "protocol": _optional(_text),
    "git_revision": _optional(_text), "package_versions": _mapping(_optional(_text)), "python": _optional(_text),
    "seed": _optional(_integer), "device": _optional(_text), "options": _mapping(_plain_json),
    "oracle": _optional(_text), "model_file": _optional(_text), "model_sha256": _optional(_text),
    "model_object": _optional(_text),  # `evaluate_model`: the in-process model's class
    "uses_labels": _flag, "n_parameters": _optional(_count), "wall_seconds": _optional(_number),
    "confined": _optional(_flag), "confinement": _optional(_text), "interpreter": _optional(_mapping(_optional(_text))),
    "scored_from_files": _optional(_record({"folder": _text, "sha256": _text, "n_files": _count})), "frames_fingerprint": _optional(_text),
    "coverage": _optional(COVERAGE),
    "date": _optional(_text), "created": _optional(_text), "timestamp": _optional(_text), "urmp_version": _optional(_text),
    "urmp_coverage": _optional(_record({"pieces": _count, "held": _count, "not_held": _list(_text, 10_000),
                                        "tables_fingerprint": _text}, ("pieces", "held"))),
})


def _read_json(path: Path, schema: Check, problems: list[str]) -> tuple[dict[str, Any], str]:
    """(the validated document, "") or ({}, its first problem); a missing file is only listed in `problems`."""
    try:
        value = json.loads(read_regular_file(path, max_bytes=MAX_JSON_BYTES, name=path.name).decode("utf-8"))
    except MissingFileError:
        problems.append(f"no {path.name}")
        return {}, ""
    except UntrustedFileError as exc:
        return {}, str(exc)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON, an integer of > 4300 digits
        return {}, f"{path.name} is unreadable ({type(exc).__name__})"
    try:
        return schema(value, ""), ""
    except SchemaError as exc:
        return {}, plain(f"{path.name}: {exc}")
    except RecursionError:
        return {}, f"{path.name} is nested too deeply"


# items.parquet (`musicbench.harness.scoring.ITEM_COLUMNS`): the columns the board reads, and what they must hold.
ITEM_TEXT_COLUMNS = ("item_id", "track", "split", "video_id", "instrument", "status", "reason", "item_key")
ITEM_REQUIRED_COLUMNS = ("item_id", "source_index", "video_id", "instrument", "status")
ITEM_NUMBER_COLUMNS = ("sdr", "sir", "sar", "sdr_mix", "nsdr", "si_sdr", "si_sdri", "ciou", "pointing_hit", "seconds",
                       *LOCALIZATION_VARIANTS)
ITEM_FRACTION_COLUMNS = ("ciou", "pointing_hit", *LOCALIZATION_VARIANTS)  # in [0, 1]
ITEM_KEY = ("track", "item_id", "source_index")  # one row per item of a track and source


def check_items(frame: pd.DataFrame) -> pd.DataFrame:
    """items.parquet as the board reads it, or SchemaError naming the first problem: the columns of
    `ITEM_REQUIRED_COLUMNS` present (``track`` defaults to "mixtures", ``reason`` to ""), text columns
    holding strings, ``track`` one of the benchmark's tracks, ``source_index`` integers ≥ 0, the
    scores numbers (float64; NaN where absent, ±inf allowed for the dB scores, cIoU and pointing in
    [0, 1], seconds finite ≥ 0), one row per (track, item, source), at most `MAX_ITEM_ROWS` rows.
    Other columns are dropped."""
    if len(frame) > MAX_ITEM_ROWS:
        raise SchemaError(f"items.parquet has {len(frame)} rows, at most {MAX_ITEM_ROWS}")
    missing = [column for column in ITEM_REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise SchemaError(f"items.parquet has no {missing[0]!r} column")
    checked = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    defaults = {"track": "mixtures", "reason": "", "split": "", "item_key": ""}
    for column in ITEM_TEXT_COLUMNS:
        values = pd.Series(frame[column].to_numpy(dtype=object) if column in frame.columns else [defaults[column]] * len(frame),
                           index=checked.index, dtype=object)
        text = values.map(lambda value: isinstance(value, str))
        if not text.all():
            bad = values[~text].iloc[0]
            raise SchemaError(f"items.parquet: {column} must hold strings, not "
                              f"{'a missing value' if bad is None or bad is pd.NA else _describe(bad)}")
        checked[column] = values.astype(str)
    unknown = sorted(set(checked["track"]) - set(ALL_TRACKS))
    if unknown:
        raise SchemaError(f"items.parquet: track must be one of {', '.join(ALL_TRACKS)}, not {unknown[0][:40]!r}")
    index = frame["source_index"]
    if not pd.api.types.is_integer_dtype(index) or pd.api.types.is_bool_dtype(index) or index.isna().any():
        raise SchemaError(f"items.parquet: source_index must hold integers, not {index.dtype}")
    if len(index) and (index.min() < 0 or index.max() >= 2**31):
        raise SchemaError("items.parquet: source_index must lie in [0, 2**31)")
    checked["source_index"] = index.to_numpy(dtype="int64")
    for column in ITEM_NUMBER_COLUMNS:
        if column not in frame.columns:
            continue
        numbers = _numbers(frame[column], column)
        present = numbers.dropna()
        if column in ITEM_FRACTION_COLUMNS and not present.between(0.0, 1.0).all():
            raise SchemaError(f"items.parquet: {column} must lie in [0, 1]")
        if column == "seconds" and not (present.between(0.0, float("inf"), inclusive="left")).all():
            raise SchemaError("items.parquet: seconds must be finite and ≥ 0")
        checked[column] = numbers
    repeated = checked.duplicated(list(ITEM_KEY))
    if repeated.any():
        row = checked[repeated].iloc[0]
        raise SchemaError(plain(f"items.parquet: {row['track']} item {row['item_id'][:60]!r} source {row['source_index']} "
                                "has more than one row"))
    return checked


def _numbers(values: pd.Series, column: str) -> pd.Series:
    """A score column as float64 (NaN where absent), or SchemaError: numbers only, no booleans or text
    (a column with no value at all is stored as nulls)."""
    if pd.api.types.is_bool_dtype(values):
        raise SchemaError(f"items.parquet: {column} must hold numbers, not {values.dtype}")
    if pd.api.types.is_numeric_dtype(values):
        return pd.Series(values.to_numpy(dtype="float64", na_value=float("nan")), index=pd.RangeIndex(len(values)))
    objects = values.to_numpy(dtype=object)
    for value in objects:
        if not (value is None or value is pd.NA or (isinstance(value, (int, float)) and not isinstance(value, bool))):
            raise SchemaError(f"items.parquet: {column} must hold numbers, not {_describe(value)}")
    return pd.Series([float("nan") if value is None or value is pd.NA else float(value) for value in objects],
                     index=pd.RangeIndex(len(values)), dtype="float64")


def _read_items(path: Path) -> tuple[pd.DataFrame | None, str]:
    """(items.parquet checked by `check_items`, "") or (None, its first problem)."""
    try:
        frame = read_untrusted_parquet(path, (*ITEM_TEXT_COLUMNS, "source_index", *ITEM_NUMBER_COLUMNS),
                                       max_bytes=MAX_ITEMS_BYTES, max_rows=MAX_ITEM_ROWS, max_memory=MAX_ITEMS_MEMORY,
                                       name=path.name)
    except MissingFileError:
        return None, "no items.parquet"
    except UntrustedFileError as exc:
        return None, str(exc)
    try:
        return check_items(frame), ""
    except SchemaError as exc:
        return None, plain(str(exc))


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder. summary.json and provenance.json are checked against `SUMMARY` and
    `PROVENANCE`, items.parquet by `check_items`: the first problem goes to ``Run.invalid``, and so
    does a run folder that is a symlink, and a summary.json, provenance.json or items.parquet that is
    a symlink, not a regular file or too large (`musicbench.fsutil.read_regular_file`), and a missing items.parquet. A
    missing provenance.json is listed in ``Run.problems``; nothing is raised.

    items.parquet gets a ``track`` column ("mixtures") when it has none (runs made before duets).
    """
    path = Path(path)
    if path.is_symlink():
        return Run(path.name, path, {}, {}, None, [], "the run folder is a symlink (run folders must lie in the runs folder)")
    problems: list[str] = []
    summary, summary_problem = _read_json(path / "summary.json", SUMMARY, problems)
    provenance, provenance_problem = _read_json(path / "provenance.json", PROVENANCE, problems)
    items, items_problem = (None, "") if summary_problem or provenance_problem else _read_items(path / "items.parquet")
    if summary and provenance and summary.get("benchmark_version") != provenance.get("benchmark_version"):
        problems.append("summary.json and provenance.json name different benchmark versions (summary.json used)")
    if summary and provenance and summary.get("protocol") != provenance.get("protocol"):
        problems.append("summary.json and provenance.json name different protocols (summary.json used)")
    return Run(path.name, path, summary, provenance, items, problems, summary_problem or provenance_problem or items_problem)


def find_runs(runs_dir: str | os.PathLike) -> tuple[list[Run], list[str]]:
    """Every run folder directly under `runs_dir` (a folder with a valid summary.json), sorted by folder
    name, and a warning for each folder skipped: a symlink (never followed), no summary.json, or a
    summary.json, provenance.json or items.parquet that is unreadable, not a regular file, or fails its
    schema (the warning names the first problem; see `load_run`). Folders whose name starts with a dot
    are not runs: ``.<name>.tmp-<pid>`` is a run being written (`musicbench.evaluate`). Folder names
    are shown `plain`, made unique where that maps two names to one."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise MusicbenchError(f"no runs folder at {str(runs_dir)!r}; run `musicbench evaluate` first")
    runs, warnings, shown = [], [], set()
    for path in sorted(p for p in runs_dir.iterdir() if (p.is_symlink() or p.is_dir()) and not p.name.startswith(".")):
        folder = plain(path.name)
        if path.is_symlink():
            warnings.append(f"{folder}: skipped, the run folder is a symlink (run folders must lie in the runs folder)")
            continue
        summary = path / "summary.json"
        if not summary.is_symlink() and not summary.exists():
            warnings.append(f"{folder}: skipped, no summary.json (an unfinished run?)")
            continue
        run = load_run(path)
        if run.invalid:
            warnings.append(f"{folder}: skipped, {run.invalid}")
            continue
        while run.folder in shown:  # two names that differ only in unshowable characters
            run.folder += "\ufffd"
        shown.add(run.folder)
        runs.append(run)
    return runs, warnings
