"""params.yaml, the single source of every pipeline knob, and the typed configs built from it.

`load_params` reads the file. Each params.yaml section has a frozen dataclass (`AudioConfig` here,
the others beside the code that uses them); its fields' type hints say what a value must be, and
`knob` declares a field's default, its checks and, for a value that lives in another section, its
params.yaml key. `config_from_params` builds such a dataclass from a loaded params.yaml and
`check_fields` (called by every config's ``__post_init__``) checks and normalises the values, so a
config built by hand is checked the same way. A bad value is a one-line MusicbenchError naming
its key, e.g. ``params: mixtures.n_val must be a positive int, got 0; fix it in params.yaml``.

Supported hints: ``int`` (integral floats are accepted), ``float`` (ints and numeric strings are
accepted: YAML 1.1 reads ``1e-4`` as a string), ``str``, ``bool``, ``Literal[...]`` choices,
``tuple[T, ...]`` and ``tuple[T, T]`` (from lists; a comma-separated string for strings) and a
config dataclass (passed as an instance, never read from the section).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from musicbench.errors import MusicbenchError

DEFAULT_PARAMS = Path("params.yaml")
Config = TypeVar("Config")


#: the files that make a folder a musicbench project (where `find_params` stops)
PROJECT_FILES = ("params.yaml", "dvc.yaml")
#: params.yaml keys that hold paths: a relative one is relative to the params file's folder
#: (``*`` stands for any profile block)
PATH_KEYS = ("dataset.root", "splits.file", "synth.soundfont", "download.manifests", "download.cookies",
             "pixelplayer.*.pretrained")


def _writable_by_anyone(folder: Path) -> bool:
    try:
        return bool(folder.stat().st_mode & 0o002)
    except OSError:
        return True


def find_params(path: str | os.PathLike | None = None) -> Path:
    """The params file to read: `path` when given, else the project's ``params.yaml``: that of the
    current folder, or of the nearest folder above it that holds ``params.yaml`` and ``dvc.yaml``
    (folders that anyone may write to, such as /tmp, are passed over)."""
    if path is not None:
        return Path(path)
    here = Path.cwd()
    if (here / DEFAULT_PARAMS).is_file():
        return DEFAULT_PARAMS
    for folder in here.parents:
        if _writable_by_anyone(folder):  # e.g. /tmp: anyone could have planted a project there
            continue
        if all((folder / name).is_file() for name in PROJECT_FILES):
            return folder / DEFAULT_PARAMS
    raise MusicbenchError(f"no params.yaml in {str(here)!r} or in any folder above it with a dvc.yaml: run musicbench "
                          "inside its project, or pass --params PATH/params.yaml")


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Make the relative paths of `PATH_KEYS` relative to `folder` (in place)."""
    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str(folder / value)
        return [resolve(item) for item in value] if isinstance(value, list) else value

    for key in PATH_KEYS:
        first, rest = key.split(".", 1)
        top = data.get(first)
        blocks = [top]
        if rest.startswith("*."):  # every profile block of the section
            blocks, rest = [v for v in top.values() if isinstance(v, dict)] if isinstance(top, dict) else [], rest[2:]
        for block in blocks:
            if isinstance(block, dict) and rest in block:
                block[rest] = resolve(block[rest])


def load_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load a params YAML file as a nested dict; raise MusicbenchError if missing or malformed.

    `path` defaults to the project's params.yaml (`find_params`), so commands run from any folder
    inside the project. Relative paths in it (`PATH_KEYS`: ``dataset.root``, ``splits.file``, ...)
    are relative to the file's folder: when that is not the current folder they come back joined
    to it."""
    found_above = path is None
    path = find_params(path)
    if found_above and path != DEFAULT_PARAMS:
        from musicbench.progress import note

        note(f"using {path} (the project above this folder; --params chooses another)")
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
    folder = path.parent.resolve()
    if folder != Path.cwd().resolve():
        _resolve_paths(data, folder)
    return data


def project_dir(params_path: str | os.PathLike | None = None) -> Path:
    """The folder of the params file `find_params` picks: the project (committed split files and
    manifests are read from it)."""
    return find_params(params_path).parent


def section(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Return the mapping `params[name]` (a dotted name reaches into nested sections), or raise
    MusicbenchError naming the missing section."""
    value: Any = params
    for part in name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if not isinstance(value, dict):
        raise MusicbenchError(f"params: section {name!r} is missing or not a mapping")
    return value


def statistics_seed(params: Mapping[str, Any]) -> int:
    """``evaluate.seed``: the seed of every bootstrap (summary CIs and the board's paired tests); 1234 if unset."""
    evaluate = params.get("evaluate") or {}
    seed = evaluate.get("seed", 1234) if isinstance(evaluate, Mapping) else None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MusicbenchError(f"params: evaluate.seed must be an integer, not {seed!r}")
    return seed


def jobs_option(jobs: int | None, default: int) -> int:
    """The parallel workers of a stage: `jobs` (a ``--jobs`` option) if given, else `default` (the
    section's ``jobs``); raise MusicbenchError unless it is a positive integer."""
    jobs = default if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise MusicbenchError(f"--jobs must be a positive integer, got {jobs!r}")
    return jobs


def data_root(params: Mapping[str, Any]) -> Path:
    """The data root, `dataset.root` (default ``data``); manifest paths are relative to it."""
    dataset = params.get("dataset") or {}
    return Path(dataset.get("root") or "data")


def config_error(key: str, rule: str, value: Any) -> MusicbenchError:
    """The one-line error of a bad params.yaml value: ``params: KEY RULE, got VALUE; fix it in params.yaml``."""
    return MusicbenchError(f"params: {key} {rule}, got {value!r}; fix it in params.yaml")


def knob(default: Any = MISSING, *, positive: bool = False, non_negative: bool = False, key: str | None = None,
         parse: Callable[[Any], Any] | None = None) -> Any:
    """A config field: its `default` (none: the key is required), the check of a number (`positive`:
    > 0; `non_negative`: >= 0), its params.yaml `key` when it is not ``<section>.<field>``, and a
    `parse` applied to the raw params.yaml value (e.g. a mapping turned into a tuple)."""
    metadata = {"positive": positive, "non_negative": non_negative, "key": key, "parse": parse}
    return dataclasses.field(default=default, metadata=metadata)


def _key(field: dataclasses.Field, where: str) -> str:
    """The params.yaml key of a config field whose section is `where`."""
    return field.metadata.get("key") or f"{where}.{field.name}"


def check_fields(config: Any, where: str) -> None:
    """Check every field of the frozen dataclass `config` against its type hint and knob checks and
    store the normalised value (an int as float for a float field, a list as a tuple); `where` is
    its params.yaml section (keys in messages are ``where.field`` unless the knob names another)."""
    hints = _type_hints(type(config))
    for field in dataclasses.fields(config):
        key = _key(field, where)
        sign = "positive" if field.metadata.get("positive") else "non_negative" if field.metadata.get("non_negative") else ""
        raw = getattr(config, field.name)
        value = _coerce(raw, hints[field.name], key, sign)
        if sign == "positive" and not value > 0:
            raise config_error(key, "must be positive", raw)
        if sign == "non_negative" and not value >= 0:
            raise config_error(key, "must be >= 0", raw)
        object.__setattr__(config, field.name, value)


def config_from_params(cls: type[Config], params: Mapping[str, Any], where: str, *, optional: bool = False,
                       ignore: tuple[str, ...] = (), **given: Any) -> Config:
    """Build the config dataclass `cls` from section `where` of a loaded params.yaml (dotted for a
    nested section). Each `knob` field not in `given` is read from its key; a missing or null key
    takes the field's default (a knob without one is required); other fields (e.g. an `AudioConfig`)
    must be given. Keys of the section that are no knob of it (and not in `ignore`) are an error.
    `optional`: a missing section reads as empty."""
    block = {} if optional and params.get(where) is None else section(params, where)
    knobs = [f for f in dataclasses.fields(cls) if "key" in f.metadata]
    own = {f.name for f in knobs if not f.metadata["key"]}
    unknown = sorted(set(block) - own - set(ignore))
    if unknown:
        raise MusicbenchError(f"params: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)} in params.yaml; "
                              f"known: {', '.join(sorted(own | set(ignore)))}")
    values = dict(given)
    for field in (f for f in knobs if f.name not in given):
        key = _key(field, where)
        holder, name = (block, field.name) if not field.metadata.get("key") else _holder(params, key)
        value = holder.get(name)
        if value is None:
            if field.default is MISSING and field.default_factory is MISSING:
                raise MusicbenchError(f"params: {key} is missing; add it to params.yaml")
            continue
        parse = field.metadata.get("parse")
        values[field.name] = parse(value) if parse else value
    return cls(**values)


def _holder(params: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], str]:
    where, name = key.rsplit(".", 1)
    return section(params, where), name


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _number_rule(noun: str, sign: str) -> str:
    if sign == "positive":
        return f"must be a positive {noun}"
    article = "an" if noun == "int" else "a"
    return f"must be {article} {noun} >= 0" if sign == "non_negative" else f"must be {article} {noun}"


def _coerce(value: Any, hint: Any, key: str, sign: str = "") -> Any:
    """`value` as the type `hint` says (`sign`: the knob's check of a number, for the message), or
    raise the config error naming `key`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if isinstance(value, bool) or value not in args:
            raise config_error(key, f"must be one of {', '.join(map(str, args))}", value)
        return args[args.index(value)]
    if origin is tuple:
        if isinstance(value, str) and args[0] is str:
            value = [part.strip() for part in value.split(",") if part.strip()]
        fixed = len(args) if args[-1] is not Ellipsis else None
        if not isinstance(value, (list, tuple)) or (fixed is not None and len(value) != fixed):
            count = f"{fixed} " if fixed is not None else ""
            raise config_error(key, f"must be a list of {count}{_PLURALS[args[0]]}", value)
        return tuple(_coerce(item, args[0], key) for item in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise config_error(key, "must be true or false", value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or int(value) != value:
            raise config_error(key, _number_rule("int", sign), value)
        return int(value)
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-4 as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise config_error(key, _number_rule("number", sign), value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise config_error(key, "must be a string", value)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, hint):
        return value
    raise TypeError(f"config field {key}: {value!r} does not fit the type hint {hint!r}")


_PLURALS = {int: "ints", float: "numbers", str: "strings", bool: "booleans"}


@dataclass(frozen=True)
class AudioConfig:
    """The benchmark's signal format: ``audio.sample_rate`` (Hz), ``audio.clip_samples`` (samples
    per benchmark clip) and ``frames.fps`` (frames per second of the processed frames)."""

    sample_rate: int = knob(positive=True)
    clip_samples: int = knob(positive=True)
    fps: float = knob(positive=True, key="frames.fps")

    def __post_init__(self) -> None:
        check_fields(self, "audio")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "AudioConfig":
        """Sections ``audio`` and ``frames`` of a loaded params.yaml."""
        return config_from_params(cls, params, "audio")
