"""Run a model file on exported items (`musicbench export`) and write its estimate files, on any machine.

This file is copied into every export as ``run_model.py``; it needs Python 3.9+, numpy and Pillow,
nothing of musicbench. The model file is the one `musicbench evaluate` takes (``load_model(**options)``
returning an object with ``separate``, optionally ``localize`` and ``separate_at``), and it gets the
same arrays the harness would pass::

    python run_model.py MODEL.py ITEMS_DIR EST_DIR [--shard I/N] [--option key=value ...]

``--shard I/N`` runs items I, I+N, I+2N, ... of ``items.csv`` (a job array: I from the scheduler's task
id); under ``torchrun`` the shard defaults to ``RANK/WORLD_SIZE``. An item whose estimate folder exists
is skipped, so a preempted job can be rerun; each item's folder is written under a temporary name and
renamed when complete. A failing item is reported on stderr and the rest go on (scoring records it as
failed); the exit status is 1 when any item failed, so job arrays see it. Without Pillow it stops at
once with one line; duet items are left out, with one note, for a model without ``separate_at``. Items of
track "localization" (a localization protocol) call ``localize`` alone and write only ``heatmap<k>.npy``;
of track "class-localization" ``localize_classes`` with the classes of ``classes.json``, a map per class.
Then, where the benchmark lives: ``musicbench score EST_DIR --name NAME``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import struct
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_EXTENSIBLE = 3, 0xFFFE


def read_float_wav(path: Path) -> tuple[np.ndarray, int]:
    """A mono float32 WAV file as exported (``mixture.wav``): ``(n_samples,)`` float32 and its rate in Hz."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a WAV file")
    position, rate, samples = 12, None, None
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], struct.unpack("<I", data[position + 4:position + 8])[0]
        body = data[position + 8:position + 8 + size]
        if chunk == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == WAVE_FORMAT_EXTENSIBLE:
                tag = struct.unpack("<H", body[24:26])[0]
            if (tag, channels, bits) != (WAVE_FORMAT_IEEE_FLOAT, 1, 32):
                raise ValueError(f"{path} is not mono float32 (format {tag}, {channels} channels, {bits} bits)")
        elif chunk == b"data":
            samples = np.frombuffer(body, dtype="<f4").astype(np.float32)
        position += 8 + size + (size & 1)
    if rate is None or samples is None:
        raise ValueError(f"{path} has no fmt or data chunk")
    return samples, rate


def write_float_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Write ``(n_samples,)`` as a mono float32 WAV file."""
    data = np.ascontiguousarray(samples, dtype="<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 4 + 26 + 12 + 8 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHHH", 18, WAVE_FORMAT_IEEE_FLOAT, 1, rate, rate * 4, 4, 32, 0)
    header += b"fact" + struct.pack("<II", 4, len(samples))
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)


def read_frames(folder: Path) -> np.ndarray:
    """The JPEG frames of a folder, in name order, as the harness decodes them: uint8 ``(n_frames, H, W, 3)``."""
    from PIL import Image

    frames = []
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return np.stack(frames)


def load_model(path: Path, options: dict[str, str]) -> Any:
    """Import the model file and return ``load_model(**options)``."""
    spec = importlib.util.spec_from_file_location("musicbench_user_model", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: model file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.load_model(**options)


def run_item(model: Any, item: dict[str, str], items_dir: Path, labels: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """The estimate files of one item: ``{file name: array}``."""
    item_dir = items_dir / item["item_id"]
    mixture, rate = read_float_wav(item_dir / "mixture.wav")
    if item["track"] == "duets":
        points = [tuple(point) for point in json.loads((item_dir / "points.json").read_text())]
        estimates, heatmaps = model.separate_at(mixture=mixture, frames=read_frames(item_dir / "frames"), points=points), None
    elif item["track"] == "localization":  # a localization protocol's item: only the maps are scored
        frames = np.stack([read_frames(item_dir / f"source{k}") for k in range(int(item["n_sources"]))])
        estimates, heatmaps = [], model.localize(mixture=mixture, frames=frames, sample_rate=rate)
    elif item["track"] == "class-localization":  # one map per class of classes.json, in its order
        frames = np.stack([read_frames(item_dir / f"source{k}") for k in range(int(item["n_sources"]))])
        classes = json.loads((items_dir / "classes.json").read_text())
        estimates, heatmaps = [], model.localize_classes(mixture=mixture, frames=frames, sample_rate=rate, classes=classes)
    else:
        frames = np.stack([read_frames(item_dir / f"source{k}") for k in range(int(item["n_sources"]))])
        kwargs: dict[str, Any] = {"mixture": mixture, "frames": frames, "sample_rate": rate}
        if getattr(model, "uses_labels", False):
            kwargs["labels"] = labels[item["item_id"]]
        estimates = model.separate(**kwargs)
        heatmaps = None
        if callable(getattr(model, "localize", None)):
            heatmaps = model.localize(mixture=mixture, frames=frames, sample_rate=rate)
    files = {f"source{k}.wav": np.asarray(estimate, dtype=np.float32) for k, estimate in enumerate(estimates)}
    if heatmaps is not None:
        files.update({f"heatmap{k}.npy": np.asarray(heatmap, dtype=np.float32) for k, heatmap in enumerate(heatmaps)})
    return files


def write_item(est_dir: Path, item_id: str, files: dict[str, np.ndarray], rate: int) -> None:
    """Write one item's estimate folder under a temporary name, then rename it into place."""
    work = est_dir / f".{item_id}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name, array in files.items():
        if name.endswith(".wav"):
            write_float_wav(work / name, array, rate)
        else:
            np.save(work / name, array, allow_pickle=False)
    os.rename(work, est_dir / item_id)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (or torchrun's RANK/WORLD_SIZE, else 0/1) as (index, count)."""
    text = text or f"{os.environ.get('RANK', 0)}/{os.environ.get('WORLD_SIZE', 1)}"
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise SystemExit(f"error: --shard {text!r} must be I/N with 0 <= I < N")
    return int(index), int(count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="run_model.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model file defining load_model(**options)")
    parser.add_argument("items", type=Path, help="the export folder (holds items.csv)")
    parser.add_argument("estimates", type=Path, help="folder to write <item>/source<k>.wav into")
    parser.add_argument("--shard", default=None, help="I/N: run every N-th item from item I (default RANK/WORLD_SIZE or 0/1)")
    parser.add_argument("--option", action="append", default=[], help="key=value passed to load_model (repeatable)")
    args = parser.parse_args(argv)
    try:
        import PIL.Image  # noqa: F401  (the frames are JPEG files)
    except ImportError:
        raise SystemExit("error: run_model.py needs Pillow to read the frames: pip install pillow") from None
    options = {"device": "cpu", **dict(pair.split("=", 1) for pair in args.option)}
    index, count = parse_shard(args.shard)
    with open(args.items / "items.csv", newline="") as handle:
        items = list(csv.DictReader(handle))[index::count]
    labels: dict[str, list[str]] = {}
    with open(args.items / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            labels.setdefault(row["item_id"], []).append(row["instrument"])
    args.estimates.mkdir(parents=True, exist_ok=True)
    keys = args.estimates / "items.csv"  # the items' keys travel with the estimates: `musicbench score` checks them
    if not keys.exists():
        partial = args.estimates / f".items.csv.{os.getpid()}"
        shutil.copyfile(args.items / "items.csv", partial)
        os.replace(partial, keys)
    model = load_model(args.model, options)
    if getattr(model, "uses_labels", False):
        print("note: the model uses labels: score with `musicbench score --uses-labels`", file=sys.stderr)
    duets = [item for item in items if item["track"] == "duets"]
    if duets and not callable(getattr(model, "separate_at", None)):
        print(f"note: the model has no separate_at: its {len(duets)} duet items are left out (the duet track is not scored)",
              file=sys.stderr)
        items = [item for item in items if item["track"] != "duets"]
    for track, method in (("localization", "localize"), ("class-localization", "localize_classes")):
        if any(item["track"] == track for item in items) and not callable(getattr(model, method, None)):
            raise SystemExit(f"error: these items score localization alone (a localization protocol) and the model has no "
                             f"{method}(); add it (see the README's model API)")
    failed = 0
    for item in items:
        if (args.estimates / item["item_id"]).exists():
            continue
        try:
            write_item(args.estimates, item["item_id"], run_item(model, item, args.items, labels), int(item["sample_rate"]))
        except Exception as exc:  # one item's failure is reported; the rest go on
            failed += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"item {item['item_id']}: {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
                  file=sys.stderr)
    print(f"{len(items) - failed} of {len(items)} items (shard {index}/{count}) in {args.estimates}/"
          + (f"; {failed} failed (exit status 1)" if failed else ""), file=sys.stderr)
    if failed:  # a job array sees the failure; the finished items stay, and a rerun does only the rest
        raise SystemExit(1)


if __name__ == "__main__":
    main()
