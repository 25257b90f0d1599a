"""What a model under test must not see, by content rather than by path.

The references a model could cheat with live in the data root, but not only there: DVC's cache
holds the same files (hardlinks or copies; ``dvc.lock`` says which is which), and so do its local
remotes; every run folder holds estimates (an oracle's are the references, nearly); the
leaderboard publishes estimates as demo audio; and any file may have more names (hardlinks). So
`hidden_paths` hides, for one run:

- the data root's folders (`DataRoot.layout_paths`);
- the runs folder (or only the run folder, when the model file lies in the runs folder);
- the whole ``.dvc`` folder of every DVC project holding the data root, the runs folder, the
  working folder or the model file, and the cache folder and local remotes its config names;
- every folder registered as holding a copy of the data root's content (`register_copy`, beside
  the score cache: every run folder written from it, every leaderboard built from it);
- whatever else the caller names (``--hide``, a score cache kept elsewhere);
- where any symlink under those leads (a data root folder that is a link to another disk).

`check_other_names` then makes sure no file of the references or their copies (all but DVC's
stores, which also hold what models read) has a name outside the hidden paths (a hardlink made by
hand, a backup made with ``cp -al``): the run stops, naming one, rather than leave it readable.
Other names of a whole filesystem (bind mounts) are covered by `musicbench.confine`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.fsutil import ensure_writable_dir

COPIES_NAME = "copies.jsonl"  # in the score cache folder: one JSON line per folder holding a copy of the content


def _is_under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _local_path(value: str, base: Path) -> Path | None:
    """A DVC config value naming a local folder (absolute, relative to `base`, or file://), else None."""
    value = value.strip().strip("'\"")
    if value.startswith("file://"):
        value = value[len("file://"):]
    elif "://" in value or not value:
        return None
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _dvc_config_files(dvc_dir: Path) -> list[Path]:
    """DVC's config files at every level that applies to a project: system, global (user), the
    project's ``config`` and ``config.local`` (where DVC itself looks on Linux and macOS)."""
    home = Path.home()
    if sys.platform == "darwin":
        system, user = Path("/Library/Application Support/dvc"), home / "Library" / "Application Support" / "dvc"
    else:
        system = Path((os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")[0]) / "dvc"
        user = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "dvc"
    system = Path(os.environ.get("DVC_SYSTEM_CONFIG_DIR") or system)
    user = Path(os.environ.get("DVC_GLOBAL_CONFIG_DIR") or user)
    return [system / "config", user / "config", dvc_dir / "config", dvc_dir / "config.local"]


def dvc_stores(start: str | os.PathLike) -> list[Path]:
    """The ``.dvc`` folder of the DVC project holding `start` (the nearest parent with one), and the
    cache folders and local remotes named by DVC's config at every level (system, global, the
    project's ``config`` and ``config.local``); [] outside a project."""
    for folder in (Path(os.path.realpath(start)), *Path(os.path.realpath(start)).parents):
        dvc_dir = folder / ".dvc"
        if dvc_dir.is_dir():
            break
    else:
        return []
    stores = [dvc_dir]
    for config in _dvc_config_files(dvc_dir):
        try:
            lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        section = ""
        for line in lines:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip().strip("'\"")
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if sep and ((section == "cache" and key == "dir") or (section.startswith("remote") and key == "url")):
                path = _local_path(value, config.parent)
                if path is not None:
                    stores.append(path)
    return stores


def copies_path(root: str | os.PathLike) -> Path:
    """The data root's registry of folders that hold copies of its content (beside its score cache:
    the harness's own records, hidden from every model)."""
    return DataRoot(root).score_cache_dir / COPIES_NAME


def register_copy(root: str | os.PathLike, folder: str | os.PathLike, what: str) -> None:
    """Record that `folder` holds content derived from the data root (`what`: "run", "leaderboard",
    "export"), so that every later model run hides it. Appends one line, once per folder."""
    folder = os.path.realpath(folder)
    if folder in registered_copies(root):
        return
    line = json.dumps({"path": folder, "what": what}) + "\n"
    ensure_writable_dir(copies_path(root).parent)
    with open(copies_path(root), "a", encoding="utf-8") as handle:
        handle.write(line)


def registered_copies(root: str | os.PathLike) -> list[str]:
    """The folders `register_copy` recorded for the data root (damaged lines skipped)."""
    try:
        lines = copies_path(root).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        try:
            path = json.loads(line)["path"]
        except (ValueError, TypeError, KeyError):
            continue
        if isinstance(path, str) and os.path.isabs(path) and path not in folders:
            folders.append(path)
    return folders


@dataclass(frozen=True)
class HiddenPaths:
    """What a model run must not see: `paths`, every hidden path (existing ones, none inside another),
    and `content`, those of them that hold the references and copies of them (all but DVC's stores,
    which also hold what models read, such as their checkpoints)."""

    paths: list[Path]
    content: list[Path]


def _outermost(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The existing `paths` as real paths, none inside another, sorted (linear after the sort: a path
    inside another sorts right after it, or after another path inside it)."""
    kept: list[str] = []
    for path in sorted({os.path.realpath(path) for path in paths if os.path.lexists(path)}, key=lambda p: p.split("/")):
        if not kept or not (path == kept[-1] or path.startswith(kept[-1].rstrip("/") + "/")):
            kept.append(path)
    return [Path(path) for path in kept]


def hidden_paths(root: str | os.PathLike, *, model_path: str | os.PathLike | None = None,
                 run_dir: str | os.PathLike | None = None, extra: Iterable[str | os.PathLike] = ()) -> HiddenPaths:
    """Every path the model process must not see for a run into `run_dir` (see the module docstring).
    MusicbenchError if the model file or Python (its installation or environment) lies inside one."""
    data = DataRoot(root)
    content = [*data.layout_paths(), *map(Path, registered_copies(root)), *map(Path, extra)]
    starts = [data.root, Path.cwd()]
    model = None if model_path is None else Path(os.path.realpath(model_path))
    if model is not None:
        starts.append(model.parent)
    if run_dir is not None:
        run_dir = Path(os.path.realpath(run_dir))
        runs_dir = run_dir.parent
        in_runs = model is not None and _is_under(model.parent, runs_dir)
        content.append(run_dir if in_runs else runs_dir)
        starts.append(runs_dir)
    needed = {"model file": model, "Python installation": Path(os.path.realpath(sys.base_prefix)),
              "Python environment": Path(os.path.realpath(sys.prefix))}
    content = _with_link_targets(_outermost(content), [place for place in needed.values() if place is not None])
    stores = [store for start in starts for store in dvc_stores(start)]
    hidden = HiddenPaths(_outermost([*content, *stores]), content)
    for path in hidden.paths:
        for what, place in needed.items():
            if place is not None and _is_under(place, path):
                raise MusicbenchError(f"the {what} {str(place)!r} lies inside {str(path)!r}, which the model must not "
                                      "see (the data root or a link in it, a runs folder, DVC's cache or a copy of the "
                                      "references); move it elsewhere")
    return hidden


def _with_link_targets(content: list[Path], needed: list[Path]) -> list[Path]:
    """`content` and the real path of every symlink found under it that leads outside it (a data root
    whose ``synth/stems`` is a link to another disk: hiding the link alone leaves the files readable
    where they are), and of the links under those, outermost only. A link to a folder that holds
    `needed` places or a hidden path (``runs/host -> /``) is passed over: hiding it would hide what
    the model needs, and what it holds of the references is hidden where it lies."""
    todo = list(content)
    while todo:
        targets = []
        for top in todo:
            for folder, folders, files in os.walk(top):
                for name in (*folders, *files):
                    path = os.path.join(folder, name)
                    if os.path.islink(path) and os.path.exists(path):
                        target = Path(os.path.realpath(path))
                        if not any(_is_under(target, hidden) or _is_under(hidden, target) for hidden in content) and \
                                not any(_is_under(place, target) for place in needed):
                            targets.append(target)
        content = _outermost([*content, *targets])
        todo = [target for target in _outermost(targets) if target in content]
    return content


def _files(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every file under `top` (or `top` itself) with its lstat; symlinks are not followed."""
    try:
        info = os.lstat(top)
    except OSError:
        return
    if not os.path.isdir(top) or os.path.islink(top):
        yield top, info
        return
    for folder, _, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            try:
                yield path, os.lstat(path)
            except OSError:
                continue


def check_other_names(hidden: HiddenPaths) -> None:
    """MusicbenchError if a file of `hidden.content` has a name that no hidden path holds (more
    hardlinks than `hidden.paths` hold), naming one such file. DVC's stores are searched for names
    only when a content file has more than one."""
    names: dict[tuple[int, int], list] = {}  # (device, inode) -> [links, names found, one name]
    for top in map(os.fspath, hidden.content):
        for path, info in _files(top):
            if info.st_nlink > 1:
                names.setdefault((info.st_dev, info.st_ino), [info.st_nlink, 0, path])[1] += 1
    if not names:
        return
    for top in (path for path in hidden.paths if path not in hidden.content):
        for _, info in _files(os.fspath(top)):
            entry = names.get((info.st_dev, info.st_ino))
            if entry is not None:
                entry[1] += 1
    leaks = [(path, links - found) for links, found, path in names.values() if found < links]
    if leaks:
        path, more = leaks[0]
        raise MusicbenchError(
            f"{len(leaks)} file(s) the model must not see have other names elsewhere (hardlinks), e.g. {path!r} "
            f"({more} more name(s)); remove those links, or pass --hide with the folder that holds them")
