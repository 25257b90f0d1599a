"""Methods that run elsewhere: the benchmark items as plain files, and scoring estimate files.

`export_items` writes what the harness would hand a model, for every item of a split, so that a
method can run in its own environment (another machine, a cluster job array, torchrun)::

    OUT_DIR/README.txt                      the layout below and the expected estimate layout
    OUT_DIR/run_model.py                    runs a model file on these items anywhere (`musicbench.run_exported`)
    OUT_DIR/items.csv, items.parquet        item_id, track, n_sources, n_samples, n_frames, sample_rate, fps, item_key
    OUT_DIR/labels.csv                      item_id, source_index, instrument: only for methods that use labels
    OUT_DIR/<item>/mixture.wav              float32 WAV, mono, 11025 Hz, n_samples long
    OUT_DIR/<item>/source<k>/NNNNNN.jpg     track "mixtures": the frames of source k's video (8 fps), from 000000
    OUT_DIR/<item>/frames/NNNNNN.jpg        track "duets": the frames of the one duet video
    OUT_DIR/<item>/points.json              track "duets": [[x, y], ...] in frame pixels, one point per player

A localization protocol's items (DSOL's solo test) are listed with track "localization": the
layout of a mixture item, of whose estimates only the heatmaps are read (and required). A
class-aware one's (DSOL's duets) with track "class-localization": one heatmap per class of
``OUT_DIR/classes.json`` (``localize_classes``), in its order.

The mixture and the frames are byte for byte what the harness passes (the JPEG files are copied
from the frame archives, the mixture is the float32 sum the harness builds), so a model run on
them gives the estimates it would give inside `musicbench evaluate`.

`score_estimates` reads an estimate folder of that layout, ``EST_DIR/<item>/source<k>.wav``
(source k of a mixture, or the sound at point k of a duet; float or PCM WAV/FLAC, mono, exactly
11025 Hz and the item's length) and optional ``EST_DIR/<item>/heatmap<k>.npy`` (float ``(h, w)``,
read by `musicbench.fsutil.read_npy`: no pickles, the header checked before anything is allocated),
and writes a run folder exactly as `musicbench.evaluate.evaluate` does, through the same scoring
(`musicbench.evaluate.finish_run`). Estimate files are untrusted: symlinks, special files and files
over a size cap are refused, and any file that is not what the item needs fails that item with a
one-line reason; the other items are scored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.benchmark import TRACKS, DataRoot, EvalItem
from musicbench.concurrency import exit_on_sigterm
from musicbench.errors import MusicbenchError
from musicbench.evaluate import finish_run
from musicbench.fsutil import (
    NpyError,
    UntrustedFileError,
    atomic_write_bytes,
    atomic_write_text,
    read_npy,
    read_regular_file,
    write_parquet,
)
from musicbench.harness.outputs import (
    INFERENCE_COLUMNS,
    MAX_HEATMAP_BYTES,
    _save_npy,
    check_estimates,
    check_item_maps,
    item_map_count,
)
from musicbench.harness.provenance import provenance
from musicbench.hidden import register_copy
from musicbench.instruments import MUSIC_INSTRUMENTS
from musicbench.run_folder import check_apart, claim_run_folder, refuse_strangers, staged_folder

MIXTURE_NAME, POINTS_NAME, LABELS_NAME, README_NAME = "mixture.wav", "points.json", "labels.csv", "README.txt"
# items.csv's track of a localization protocol's items (`musicbench.benchmark.DataRoot.localization_only`): localize
# only; of a class-aware one's (`DataRoot.class_maps`): localize_classes only, with the classes of CLASSES_NAME
LOCALIZATION_ITEM, CLASS_LOCALIZATION_ITEM, CLASSES_NAME = "localization", "class-localization", "classes.json"
RUNNER_NAME = "run_model.py"
MAX_ITEMS_CSV_BYTES = 16 << 20  # an export's items.csv: some hundred bytes an item
DUET_FRAMES_DIR = "frames"
EXPORT_ITEM_COLUMNS = ("item_id", "track", "n_sources", "n_samples", "n_frames", "sample_rate", "fps", "item_key")
SCORED_FROM_FILES = "scored from files: inference ran outside the harness"


def estimate_name(k: int) -> str:
    """The file name of estimate k of an item: ``source<k>.wav``."""
    return f"source{k}.wav"


def heatmap_name(k: int) -> str:
    """The file name of heatmap k of an item: ``heatmap<k>.npy``."""
    return f"heatmap{k}.npy"


def source_frames_dir(k: int) -> str:
    """The folder of source k's frames in an exported mixture item: ``source<k>``."""
    return f"source{k}"


README_TEXT = """musicbench benchmark items, exported for methods that run outside the harness.

Benchmark version {version}, split {split}: {n_mixtures} mixture items, {n_duets} duet items{n_localization}.

Each item folder <item>/ holds what the harness would pass to a model:
  mixture.wav            float32 WAV, mono, {sample_rate} Hz ("mixture", shape (n_samples,))
  source<k>/NNNNNN.jpg   mixture items: the frames of source k's own video at {fps} fps ("frames",
                         uint8 (n_sources, n_frames, H, W, 3) once decoded as RGB)
  frames/NNNNNN.jpg      duet items: the frames of the one video with several players
  points.json            duet items: [[x, y], ...] pixel positions, one per player ("points")
items.csv / items.parquet list every item: item_id, track, n_sources, n_samples, n_frames, sample_rate, fps,
item_key (what the item is; `musicbench score` refuses estimates of an item whose key differs there).
labels.csv (item_id, source_index, instrument) is only for methods that use instrument labels;
score those with --uses-labels (they are ranked apart).

run_model.py runs a model file (the `musicbench evaluate` API) on these items, with numpy and Pillow only:
  python run_model.py MODEL.py ITEMS_DIR EST_DIR [--shard I/N] [--option key=value ...]
(--shard I/N for a job array; under torchrun RANK/WORLD_SIZE shard the items.) Or write your own loop.

Expected estimate layout (EST_DIR is any folder you choose):
  EST_DIR/<item>/source<k>.wav   for k = 0 .. n_sources-1: the sound of source k (mixture items) or
                                 of the player at point k (duet items); mono WAV or FLAC at exactly
                                 {sample_rate} Hz and exactly n_samples long, float or PCM
  EST_DIR/<item>/heatmap<k>.npy  optional, mixture items: where source k sounds, a float array (h, w)
                                 over the frame (saved with numpy.save, no pickles); items of track
                                 "localization" (a localization protocol) need only these, and must have them;
                                 items of track "class-localization" one per class of classes.json, k in its
                                 order (each map in [0, 1])
Duet items are scored when EST_DIR has any duet item folder. A missing or malformed file fails
that item with a reason; the other items are scored. Then, where the benchmark data lives:
  musicbench score EST_DIR --name NAME --split {split}{protocol}
"""


# ------------------------------------------------------------------------------------------ export


def _written_by_export(entry: Path) -> bool:
    """Whether a folder entry is one an export writes: one of its top-level files (a regular file), or
    an item folder holding only an item's files (mixture.wav, points.json, and frames/ or source<k>/
    folders of NNNNNN.jpg files)."""
    if entry.is_symlink():
        return False
    if not entry.is_dir():
        return entry.is_file() and entry.name in (README_NAME, RUNNER_NAME, LABELS_NAME, "items.csv", "items.parquet")
    for part in os.scandir(entry):
        if part.name in (MIXTURE_NAME, POINTS_NAME) and part.is_file(follow_symlinks=False):
            continue
        if not (part.name == DUET_FRAMES_DIR or re.fullmatch(r"source\d+", part.name)) or not part.is_dir(follow_symlinks=False):
            return False
        if not all(frame.is_file(follow_symlinks=False) and re.fullmatch(r"\d{6}\.jpg", frame.name) for frame in os.scandir(part)):
            return False
    return (entry / MIXTURE_NAME).is_file()


def export_items(
    root: str | os.PathLike, out_dir: str | os.PathLike, *, split: str = "test", limit: int | None = None,
    protected: tuple[str | os.PathLike, ...] = (), overwrite: bool = False,
) -> pd.DataFrame:
    """Write every item of `split` (both tracks; the first `limit` of each) as plain files under
    `out_dir` (layout in the module docstring); return the items table.

    `out_dir` may not lie inside or hold the data root or any `protected` folder (the runs folder);
    an existing non-empty `out_dir` is refused unless `overwrite`, and with it unless it holds only
    what an export writes. The export is written beside it and renamed onto it when complete. Every
    benchmark file is checked first (`DataRoot.verify_items`). The folder is registered as a copy of
    the benchmark (`musicbench.hidden.register_copy`): its labels.csv is hidden from every model.
    """
    data = DataRoot(root)
    out_dir = Path(os.path.realpath(out_dir))
    check_apart(out_dir, [data.root, *protected], "export folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise MusicbenchError(f"export folder {str(out_dir)!r} exists and is not a folder; choose another")
    if not overwrite and out_dir.is_dir() and any(out_dir.iterdir()):
        raise MusicbenchError(f"export folder {str(out_dir)!r} is not empty; choose an empty folder or pass --overwrite")
    strangers = [] if not out_dir.is_dir() else [entry.name for entry in sorted(out_dir.iterdir(), key=lambda p: p.name)
                                                  if not _written_by_export(entry)]
    if not strangers and out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "items.parquet").is_file():
        strangers = ["(no items.parquet)"]
    refuse_strangers(out_dir, strangers, "export folder", "export", ": --overwrite replaces only an export; choose another folder")
    register_copy(root, out_dir, "export")  # labels.csv: hidden from label-free models
    version = data.version()
    fps = data.read_index().set_index("video_id")["fps"]
    records, labels = [], []
    with staged_folder(out_dir) as work_dir:
        for track in TRACKS:
            data.verify_items(split, limit, track)
            for item, (item_id, frame_files) in zip(data.iter_items(split, limit, track), data.iter_frame_files(split, limit, track)):
                assert item.item_id == item_id, (item.item_id, item_id)
                _export_item(work_dir / item.item_id, item, frame_files)
                track = (CLASS_LOCALIZATION_ITEM if data.class_maps else LOCALIZATION_ITEM) if data.localization_only \
                    else item.track
                records.append({"item_id": item.item_id, "track": track,
                                "n_sources": int(item.references.shape[0]),
                                "n_samples": int(item.mixture.shape[0]), "n_frames": int(item.frames.shape[1]),
                                "sample_rate": int(item.sample_rate), "fps": float(fps.loc[item.video_ids[0]]),
                                "item_key": item.key})
                if track == "mixtures":
                    labels += [{"item_id": item.item_id, "source_index": k, "instrument": name}
                               for k, name in enumerate(item.instruments)]
        table = pd.DataFrame.from_records(records, columns=list(EXPORT_ITEM_COLUMNS))
        atomic_write_text(work_dir / "items.csv", table.to_csv(index=False))
        write_parquet(table, work_dir / "items.parquet")
        atomic_write_text(work_dir / LABELS_NAME,
                          pd.DataFrame.from_records(labels, columns=["item_id", "source_index", "instrument"]).to_csv(index=False))
        shutil.copyfile(Path(__file__).with_name("run_exported.py"), work_dir / RUNNER_NAME)
        if data.class_maps:  # the classes localize_classes is asked for, in the order of heatmap<k>.npy
            atomic_write_text(work_dir / CLASSES_NAME, json.dumps(list(MUSIC_INSTRUMENTS)) + "\n")
        counts = table["track"].value_counts()
        atomic_write_text(work_dir / README_NAME, README_TEXT.format(
            version=version, split=split, n_mixtures=int(counts.get("mixtures", 0)), n_duets=int(counts.get("duets", 0)),
            n_localization="".join(f", {int(counts[track])} {track} items ({call} only)" for track, call in (
                (LOCALIZATION_ITEM, "localize"), (CLASS_LOCALIZATION_ITEM, "localize_classes")) if track in counts),
            sample_rate=int(table["sample_rate"].iloc[0]) if len(table) else 11025,
            fps=f"{table['fps'].iloc[0]:g}" if len(table) else "8",
            protocol="" if data.protocol is None else f" --protocol {data.protocol}"))
    return table


def _export_item(item_dir: Path, item: EvalItem, frame_files: list[list[bytes]]) -> None:
    import soundfile as sf

    item_dir.mkdir()
    sf.write(item_dir / MIXTURE_NAME, item.mixture, item.sample_rate, subtype="FLOAT")
    if item.track == "duets":
        folders = [DUET_FRAMES_DIR]
        atomic_write_text(item_dir / POINTS_NAME, json.dumps([[float(x), float(y)] for x, y in item.points]) + "\n")
    else:
        folders = [source_frames_dir(k) for k in range(len(frame_files))]
    for folder, frames in zip(folders, frame_files):
        (item_dir / folder).mkdir()
        for index, data in enumerate(frames):
            atomic_write_bytes(item_dir / folder / f"{index:06d}.jpg", data)


# ------------------------------------------------------------------------------------------ scoring files


@dataclass
class ItemEstimates:
    """What an estimate folder holds for one item: the checked arrays, or the reason it fails."""

    estimates: np.ndarray | None
    heatmaps: np.ndarray | None
    reason: str
    files: dict[str, str]  # relative path → SHA-256 of every file read


def _open_regular(path: Path, max_bytes: int) -> tuple[bytes | None, str]:
    """The bytes of `path` if it is a regular file (not a symlink) of at most `max_bytes`, else (None, why)."""
    try:
        return read_regular_file(path, max_bytes=max_bytes, name=path.name), ""
    except UntrustedFileError as exc:
        return None, str(exc)


def _read_wav(data: bytes, name: str, sample_rate: int, n_samples: int) -> tuple[np.ndarray | None, str]:
    import io

    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as audio:
            if audio.samplerate != sample_rate:
                return None, f"{name} is at {audio.samplerate} Hz, not {sample_rate} Hz"
            if audio.channels != 1:
                return None, f"{name} has {audio.channels} channels, not 1"
            if audio.frames != n_samples:
                return None, f"{name} has {audio.frames} samples, not the item's {n_samples}"
            return audio.read(dtype="float64"), ""
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as exc:
        return None, f"{name} is not a readable WAV or FLAC file ({' '.join(str(exc).split())[:120]})"


def _read_heatmap(data: bytes, name: str) -> tuple[np.ndarray | None, str]:
    """A heatmap ``(h, w)`` of numbers from the bytes of a ``heatmap<k>.npy`` (`read_npy`: its header is
    checked against its length before anything is allocated), or (None, why)."""
    try:
        return read_npy(data, max_bytes=MAX_HEATMAP_BYTES, kinds="biuf", ndim=2, name=name), ""
    except NpyError as exc:
        return None, str(exc)


def read_item_estimates(est_dir: Path, item: EvalItem, localization_only: bool = False) -> ItemEstimates:
    """Read and check ``est_dir/<item>/source<k>.wav`` (and any ``heatmap<k>.npy``) for one item; for
    a localization protocol's item (`localization_only`) its ``heatmap<k>.npy`` alone, all required."""
    n_sources, n_samples = item.references.shape
    item_dir, files = est_dir / item.item_id, {}
    if item_dir.is_symlink() or not item_dir.is_dir():
        return ItemEstimates(None, None, f"no estimate folder {item.item_id}/" + (" (a symlink)" if item_dir.is_symlink() else ""),
                             files)
    if localization_only:
        n_maps = item_map_count(item)
        if os.path.lexists(item_dir / heatmap_name(n_maps)):  # one map too many: not the layout asked for
            return ItemEstimates(None, None, f"{item.item_id}/ has {heatmap_name(n_maps)}: an item of this protocol has "
                                 f"{n_maps} maps, heatmap0.npy to {heatmap_name(n_maps - 1)}", files)
        found = _read_item_heatmaps(item_dir, item, files, list(range(n_maps)))
        return ItemEstimates(None, found.heatmaps, found.reason, files)
    max_wav = n_samples * 8 + (1 << 16)  # float64 samples and a generous header
    sources = []
    for k in range(n_sources):
        data, reason = _open_regular(item_dir / estimate_name(k), max_wav)
        if data is not None:
            files[f"{item.item_id}/{estimate_name(k)}"] = hashlib.sha256(data).hexdigest()
            source, reason = _read_wav(data, estimate_name(k), item.sample_rate, n_samples)
        if reason:
            return ItemEstimates(None, None, f"{item.item_id}/{reason}", files)
        sources.append(source)
    estimates, reason = check_estimates(np.stack(sources), n_sources, n_samples)
    if estimates is None:
        return ItemEstimates(None, None, reason, files)
    present = [k for k in range(n_sources) if os.path.lexists(item_dir / heatmap_name(k))]
    if not present:
        return ItemEstimates(estimates, None, "", files)
    found = _read_item_heatmaps(item_dir, item, files, present)
    return ItemEstimates(estimates if found.heatmaps is not None else None, found.heatmaps, found.reason, files)


def _read_item_heatmaps(item_dir: Path, item: EvalItem, files: dict[str, str], present: list[int]) -> ItemEstimates:
    """An item folder's ``heatmap<k>.npy``, one per source (per class of ``classes.json`` for an item
    scored per class; `present`: the k whose file exists, or all, to name the first one missing),
    checked; `files` gets each file's SHA-256."""
    n_maps = item_map_count(item)
    if item.track != "mixtures" or len(present) != n_maps:
        return ItemEstimates(None, None, f"{item.item_id}/ has heatmaps {', '.join(heatmap_name(k) for k in present)}: "
                             f"a mixture item needs one per source ({n_maps}; one per class of classes.json for a "
                             "class-localization item), a duet item none", files)
    maps = []
    for k in range(n_maps):
        data, reason = _open_regular(item_dir / heatmap_name(k), MAX_HEATMAP_BYTES)
        if data is not None:
            files[f"{item.item_id}/{heatmap_name(k)}"] = hashlib.sha256(data).hexdigest()
            heatmap, reason = _read_heatmap(data, heatmap_name(k))
        if reason:
            return ItemEstimates(None, None, f"{item.item_id}/{reason}", files)
        maps.append(heatmap)
    if len({m.shape for m in maps}) != 1:
        return ItemEstimates(None, None, f"{item.item_id}/ heatmaps differ in shape: {sorted({m.shape for m in maps})}", files)
    heatmaps, reason = check_item_maps(np.stack(maps), item)
    return ItemEstimates(None, heatmaps, reason, files)


def estimate_folder_hash(files: dict[str, str]) -> str:
    """Hex SHA-256 over the sorted (relative path, file SHA-256) of every estimate file read."""
    digest = hashlib.sha256()
    for path, sha in sorted(files.items()):
        digest.update(f"{path}\x00{sha}\n".encode())
    return digest.hexdigest()


def _exported_keys(est_dir: Path) -> dict[str, str]:
    """``{item_id: item_key}`` of the items.csv an export wrote into `est_dir`, when the estimates sit
    in an export folder ({} without one, or one without keys; the file is untrusted and capped)."""
    path = est_dir / "items.csv"
    if not os.path.lexists(path):
        return {}
    try:
        text = read_regular_file(path, max_bytes=MAX_ITEMS_CSV_BYTES, name=path.name).decode("utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))
    except (UntrustedFileError, UnicodeDecodeError, csv.Error) as exc:
        raise MusicbenchError(f"cannot read {str(path)!r} ({exc}); remove it or export the items again") from None
    return {row["item_id"]: row["item_key"] for row in rows
            if isinstance(row.get("item_id"), str) and isinstance(row.get("item_key"), str) and row["item_key"]}


def score_estimates(
    est_dir: str | os.PathLike, root: str | os.PathLike, out_dir: str | os.PathLike, *, name: str, split: str = "test",
    uses_labels: bool = False, seed: int = 1234, limit: int | None = None, jobs: int = 1,
    cache_dir: str | os.PathLike | None = None, boxes_file: str | os.PathLike | None = None, overwrite: bool = False,
) -> dict[str, Any]:
    """Score an estimate folder (layout in the module docstring) as a run folder `out_dir`, exactly
    as `musicbench.evaluate.evaluate` writes one (estimates, heatmaps, inference.parquet,
    items.parquet, summary.json, provenance.json); return the summary.

    Duet items are scored when `est_dir` holds any duet item folder. Provenance says
    ``scored_from_files`` with the folder and `estimate_folder_hash`; ``confined`` is False (the
    method ran outside the harness). `uses_labels` ranks the run with the methods that use labels.
    """
    est_dir = Path(os.path.realpath(est_dir))
    if not est_dir.is_dir():
        raise MusicbenchError(f"estimate folder {str(est_dir)!r} does not exist; give the folder holding <item>/source<k>.wav")
    data = DataRoot(root)
    if not any((est_dir / item_id).is_dir() for item_id in data.item_ids(split, limit)):
        raise MusicbenchError(f"estimate folder {str(est_dir)!r} holds no folder of a {split!r} mixture item "
                              f"(e.g. {data.item_ids(split, 1)[0]}/); score the split (--split) and the protocol "
                              "(--protocol) you exported")
    has_duets = any((est_dir / item_id).is_dir() for item_id in data.item_ids(split, limit, "duets"))
    items = data.read_verified_items(split, limit, TRACKS if has_duets else ("mixtures",))
    exported_keys = _exported_keys(est_dir)
    records, files, localized = [], {}, False
    with exit_on_sigterm(), claim_run_folder(out_dir, overwrite, protected=(root,)) as out_dir, \
            staged_folder(out_dir) as work_dir:
        register_copy(root, out_dir, "run")
        for item in items:
            found = read_item_estimates(est_dir, item, data.localization_only)
            files.update(found.files)
            record = {"item_id": item.item_id, "track": item.track, "seconds": float("nan"), "localized": False}
            if exported_keys.get(item.item_id, item.key) != item.key:
                records.append({**record, "status": "failed", "reason": "exported from a data root whose item has other "
                                f"audio (item key {exported_keys[item.item_id][:20]}, here {item.key})"})
                continue
            if found.estimates is None and (found.heatmaps is None or not data.localization_only):
                records.append({**record, "status": "failed", "reason": found.reason})
                continue
            if found.estimates is not None:
                _save_npy(work_dir / "estimates" / f"{item.item_id}.npy", found.estimates)
            if found.heatmaps is not None:
                _save_npy(work_dir / "heatmaps" / f"{item.item_id}.npy", found.heatmaps)
                record["localized"] = localized = True
            records.append({**record, "status": "ok", "reason": ""})
        write_parquet(pd.DataFrame.from_records(records, columns=list(INFERENCE_COLUMNS)), work_dir / "inference.parquet")
        info = {"uses_labels": bool(uses_labels), "has_separate": True, "has_localize": localized, "has_separate_at": has_duets,
                "n_parameters": None, "confined": False, "confinement": SCORED_FROM_FILES}
        atomic_write_text(work_dir / "model.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
        scored_from = {"folder": os.fspath(est_dir), "sha256": estimate_folder_hash(files), "n_files": len(files)}
        return finish_run(work_dir, root, name=name, split=split, seed=seed, limit=limit, jobs=jobs, cache_dir=cache_dir,
                          boxes_file=boxes_file, provenance_of=lambda info: {
                              **provenance(root, None, name=name, split=split, seed=seed, device=None, options={},
                                           info=info, wall_seconds=None),
                              "scored_from_files": scored_from})

