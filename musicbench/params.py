"""Reading params.yaml, the single source of every pipeline knob, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from musicbench.errors import MusicbenchError

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    """Load a params YAML file as a nested dict; raise MusicbenchError if missing or malformed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MusicbenchError(f"cannot read params file {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:  # PyYAML's text spans lines: keep the problem and its position
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise MusicbenchError(f"params file {str(path)!r} is not valid YAML{where}: {problem}; fix that line") from None
    if not isinstance(data, dict):
        raise MusicbenchError(f"params file {str(path)!r} must hold a mapping of sections")
    return data


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the mapping `params[name]`, or raise MusicbenchError naming the missing section."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise MusicbenchError(f"params: section {name!r} is missing or not a mapping")
    return value


def positive(value: Any, name: str, kind: type = float) -> Any:
    """Return `value` as `kind` if it is a number > 0, else raise MusicbenchError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise MusicbenchError(f"params: {name} must be a positive {kind.__name__}, got {value!r}")
    if value <= 0:
        raise MusicbenchError(f"params: {name} must be positive, got {value!r}")
    return kind(value)


def data_root(params: dict[str, Any]) -> Path:
    """The data root, `dataset.root` (default ``data``); manifest paths are relative to it."""
    dataset = params.get("dataset") or {}
    return Path(dataset.get("root") or "data")
