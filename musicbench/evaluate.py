"""`musicbench evaluate`: score a model file on the fixed benchmark items, exactly like every other.

Two steps, each a plain function:

1. `run_inference` builds every item of a split from the benchmark definition
   (``<root>/mixtures/mixtures.parquet``: mixture = sum of gain * clip, the model never sees a
   reference) and runs the model isolated in a subprocess that can hand back only float arrays
   (`musicbench.model_runner`), writing ``estimates/<item_id>.npy`` (float32 ``(n_sources,
   n_samples)``), ``heatmaps/<item_id>.npy`` (float32 ``(n_sources, h, w)``, if the model
   localizes) and ``inference.parquet`` (status and reason per item). A model that raises, hangs,
   dies or returns NaN/inf, integers, the wrong shape or a silent source gets that item recorded as
   failed with the reason; the run goes on.
2. `score_run` scores the estimates with `musicbench.metrics` (cached by estimate hash, item,
   metric version and metric code hash in signed entries, so re-scoring is free, a tampered entry
   is recomputed, and anyone can re-score a submission of estimates) and writes ``items.parquet``,
   ``summary.json`` and ``provenance.json``. Each row of items.parquet carries its item's key
   (``item_key``, `musicbench.benchmark.item_keys`), and provenance.json the data root's coverage
   of the split (``coverage``, `musicbench.definition.split_coverage`): which items of the
   benchmark the run could score and which the data root does not hold.

Both steps check every benchmark file the items are built from before reading it
(`DataRoot.verify_items`): a changed or truncated one stops the run.

Oracles (`oracle_outputs`): the ideal binary and ratio masks on the Sound of Pixels STFT
(window 1022, hop 256) are the ceilings of the board. The mixture oracle is the floor: the
mixture as every estimate (NSDR 0) and the centre prior (`musicbench.metrics.centre_prior`) as
every heatmap, the localization score of knowing nothing. An oracle's estimates are computed from
the references, so they are the references, nearly: an oracle run writes none (no copy of the
references ever leaves the data root); its items are scored, and re-scored by the board, from
estimates computed again from the data root.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import inspect
import json
import os
import platform
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.annotations import load_dsol_boxes
from musicbench.benchmark import SCORE_CACHE_SECRET_NAME, URMP_TRACK, DataRoot, EvalItem, side_by_side_strips
from musicbench.concurrency import exit_on_sigterm, worker_pool
from musicbench.confine import SCRATCH_BYTES
from musicbench.definition import split_coverage
from musicbench.device import resolve_device
from musicbench.errors import MusicbenchError
from musicbench.fsutil import (
    NpyError,
    UntrustedFileError,
    atomic_path,
    atomic_write_text,
    ensure_writable_dir,
    read_npy,
    read_regular_file,
    read_untrusted_parquet,
    sha256_file,
    write_parquet,
)
from musicbench.hidden import check_other_names, hidden_paths, register_copy
from musicbench.metrics import (
    ITEM_METRICS,
    METRIC_VERSION,
    PER_INSTRUMENT_METRICS,
    MetricInputError,
    auc_success,
    boxes_to_mask,
    bss_eval_sources,
    centre_prior,
    charge_failures,
    ciou,
    ciou_success,
    finite_or_none,
    mixture_sdr,
    pointing_game,
    scores_keeping_plus_inf,
    si_sdr,
    si_sdr_improvement,
)
from musicbench.model_child import describe_model, result_array, short_error
from musicbench.model_runner import LOAD_TIMEOUT, CallResult, ModelRunner
from musicbench.progress import note, plain, progress_bar
from musicbench.run_folder import claim_run_folder, staged_folder
from musicbench.stats import video_bootstrap_ci, videos_by_item
from musicbench.stft import hann_window, istft, stft

ITEM_COLUMNS = (
    "item_id", "track", "split", "source_index", "video_id", "instrument", "status", "reason", "sdr", "sir", "sar", "sdr_mix",
    "nsdr", "si_sdr", "si_sdri", "ciou", "pointing_hit", "seconds", "item_key",
)
ORACLES = ("ibm", "irm", "mixture")
IN_PROCESS = "in-process, unconfined: the model object ran in the harness's own process (musicbench.evaluate.evaluate_model)"
INFERENCE_COLUMNS = ("item_id", "track", "status", "reason", "seconds", "localized")
MAX_HEATMAP_BYTES = 64 << 20  # of one source's heatmap in a run folder or an estimate folder


def check_estimates(estimates: Any, n_sources: int, n_samples: int) -> tuple[np.ndarray | None, str]:
    """Validate a model's output: (float32 array, "") or (None, reason)."""
    try:
        array = np.asarray(estimates, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, f"estimates are not a numeric array ({exc})"
    if array.shape != (n_sources, n_samples):
        return None, f"estimates have shape {array.shape}, expected ({n_sources}, {n_samples})"
    if not np.all(np.isfinite(array)):
        return None, "estimates contain NaN or inf"
    silent = [k for k in range(n_sources) if not np.any(array[k])]
    if silent:
        return None, f"estimate of source {silent[0]} is silent (all zeros)"
    return array, ""


HEATMAP_SCALE = 4  # a heatmap may be at most this many times the frame's height and width


def check_heatmaps(heatmaps: Any, n_sources: int, frame_size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Validate localization output ``(n_sources, h, w)`` for frames of `frame_size` (height, width):
    h and w at most `HEATMAP_SCALE` times the frame's (scoring resizes a heatmap to the frame):
    (float32 array, "") or (None, reason)."""
    try:
        array = np.asarray(heatmaps, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, f"heatmaps are not a numeric array ({exc})"
    if array.ndim != 3 or array.shape[0] != n_sources or min(array.shape[1:]) < 1:
        return None, f"heatmaps have shape {array.shape}, expected ({n_sources}, h, w)"
    if array.shape[1] > HEATMAP_SCALE * frame_size[0] or array.shape[2] > HEATMAP_SCALE * frame_size[1]:
        return None, (f"heatmaps have shape {array.shape}: more than {HEATMAP_SCALE} times the frames' "
                      f"{frame_size[0]}x{frame_size[1]} pixels")
    if not np.all(np.isfinite(array)):
        return None, "heatmaps contain NaN or inf"
    return array, ""


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def oracle_estimates(item: EvalItem, kind: str) -> np.ndarray:
    """Reference estimates ``(n_sources, n_samples)`` float32 computed from the item's references.

    "ibm" / "irm": ideal binary / ratio masks on the Sound of Pixels STFT (`musicbench.stft`, float64),
    the ceilings of the board; "mixture": every estimate is the mixture itself, the floor (NSDR 0);
    its heatmaps (written by the inference step) are the centre prior, the localization floor.
    """
    if kind == "mixture":
        return np.repeat(item.mixture[None, :], item.references.shape[0], axis=0).astype(np.float32)
    import torch

    window = hann_window()
    mixture, references = stft(item.mixture, window), stft(item.references, window)
    magnitudes = references.abs()
    if kind == "ibm":
        masks = (magnitudes == magnitudes.max(dim=0, keepdim=True).values).to(torch.float64)
    elif kind == "irm":
        masks = magnitudes / magnitudes.sum(dim=0, keepdim=True).clamp_min(1e-12)
    else:
        raise MusicbenchError(f"unknown oracle {kind!r}: choose one of {', '.join(ORACLES)}")
    estimates = istft(masks * mixture, window, item.mixture.shape[0])
    return estimates.numpy().astype(np.float32)


def oracle_outputs(item: EvalItem, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An oracle's estimates (`oracle_estimates`) of `item` and its heatmaps: the centre prior
    ``(n_sources, h, w)`` for the mixture oracle on the mixtures track, else None."""
    estimates = oracle_estimates(item, kind)
    if kind != "mixture" or item.track != "mixtures":
        return estimates, None
    height, width = item.frames.shape[2:4]
    return estimates, np.repeat(centre_prior(height, width)[None], item.references.shape[0], axis=0)


@functools.cache
def oracle_code_hash() -> str:
    """Hex SHA-256 of the code that computes an oracle's outputs (they join its score cache key)."""
    from musicbench import stft as stft_module

    digest = hashlib.sha256(Path(stft_module.__file__).read_bytes())
    for function in (oracle_estimates, oracle_outputs):
        digest.update(inspect.getsource(function).encode())
    return digest.hexdigest()


def run_inference(
    model_path: str | os.PathLike | None, root: str | os.PathLike, out_dir: str | os.PathLike, *, split: str = "test",
    options: dict[str, Any] | None = None, timeout: float = 60.0, limit: int | None = None, oracle: str | None = None,
    load_timeout: float = LOAD_TIMEOUT, confine: bool = True, hide: tuple[str | os.PathLike, ...] = (),
    python: str | os.PathLike | None = None, scratch_bytes: int = SCRATCH_BYTES, model: Any = None,
    keep_items: list[EvalItem] | None = None,
) -> pd.DataFrame:
    """Run a model file (or an oracle, or an in-memory `model` object: `InProcessRunner`) on every
    item of `split`; write estimates and inference.parquet.

    The mixtures track always runs; the duets track runs when the model has ``separate_at`` (an
    oracle always has); the real-ensembles track (URMP) runs when the data root has it, through
    ``separate_at`` or else ``separate`` with one frame crop per player (`run_tracks`). `timeout`
    bounds each call of the model, `load_timeout` the import of its file and ``load_model``
    (seconds; the model process is killed after either). Returns the inference table: item_id,
    track, status (ok | failed), reason, seconds, localized. `keep_items`: a list the verified,
    decoded items are added to, for scoring them without reading them again.

    The model process sees nothing of the data root's folders, the runs folder (`out_dir`'s parent, or
    `out_dir` alone when the model file lies in that parent), DVC's cache, the registered copies of
    the references and the `hide` paths, nor any other name of a file in them
    (`musicbench.hidden`), and writes only to its scratch space (`musicbench.confine`);
    `confine=False` (``--no-confine``) runs it unconfined, else confinement that cannot be had stops
    the run (MusicbenchError); it may write `scratch_bytes` (and as much to /dev/shm), in memory.
    model.json records ``confined`` and ``confinement``. `python` (``--python``) runs
    the model process under another interpreter that has numpy (e.g. the method's own environment);
    model.json's ``interpreter`` names the one used and its python, numpy and torch versions.
    """
    if oracle is not None and oracle not in ORACLES:
        raise MusicbenchError(f"unknown oracle {oracle!r}: choose one of {', '.join(ORACLES)}")
    out_dir = ensure_writable_dir(out_dir)
    records, info = [], {"uses_labels": False, "has_separate": True, "has_localize": False,
                         "has_separate_at": True, "n_parameters": None, "confined": None,
                         "confinement": "oracle: no model code runs"}
    runner = None
    if model is not None:
        runner = InProcessRunner(model)
    elif oracle is None:
        hidden = hidden_paths(root, model_path=model_path, run_dir=out_dir, extra=hide)
        if confine:
            check_other_names(hidden)
        runner = ModelRunner(model_path, options, timeout, load_timeout, hide_paths=hidden.paths, confine=confine, python=python,
                             scratch_bytes=scratch_bytes)
    try:
        if runner is not None:
            if runner.load_error:
                raise MusicbenchError(f"model {model_path}: {runner.load_error}")
            info = runner.info
            if not info["has_separate"]:
                raise MusicbenchError(f"model {model_path}: the loaded object has no separate(mixture, frames, sample_rate) method")
            if info.get("undeclared_options"):
                note(f"option(s) {', '.join(info['undeclared_options'])} are not parameters of load_model, which takes "
                     "**kwargs and so got them unchecked: check their spelling, or declare them as keyword parameters")
        items = DataRoot(root).read_verified_items(split, limit, run_tracks(DataRoot(root), info["has_separate_at"]))
        if keep_items is not None:  # the caller scores from them: each item is read and decoded once per run
            keep_items.extend(items)
        what = oracle or (Path(model_path).name if model_path is not None else type(model).__name__)
        with progress_bar(f"inference ({what}, {split})", total=len(items)) as advance:
            for item in items:
                records.append(_infer_item(item, runner, info, oracle, out_dir))
                advance()
    finally:
        if runner is not None:
            runner.close()
    table = pd.DataFrame.from_records(records, columns=list(INFERENCE_COLUMNS))
    write_parquet(table, out_dir / "inference.parquet")
    atomic_write_text(out_dir / "model.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return table


def run_tracks(data: DataRoot, has_separate_at: bool) -> tuple[str, ...]:
    """The tracks a run scores: mixtures; duets with ``separate_at``; URMP's real ensembles when the
    data root has them (imported and processed), with or without ``separate_at``."""
    return ("mixtures", *(("duets",) if has_separate_at else ()), *((URMP_TRACK,) if data.has_urmp_track() else ()))


def player_crops(frames: np.ndarray, n_players: int) -> np.ndarray:
    """One crop per player of side-by-side ensemble frames ``(n_frames, H, W, 3)``: player k's strip
    (`musicbench.benchmark.side_by_side_strips`), every crop ``W // N`` pixels wide from the strip's
    left edge, so that they stack: uint8 ``(n_players, n_frames, H, W // N, 3)``."""
    width = frames.shape[2] // n_players
    return np.stack([frames[:, :, x0:x0 + width] for x0, _ in side_by_side_strips(frames.shape[2], n_players)])


def _infer_item(item: EvalItem, runner, info: dict[str, Any], oracle: str | None, out_dir: Path) -> dict[str, Any]:
    n_sources, n_samples = item.references.shape
    record = {"item_id": item.item_id, "track": item.track, "localized": False}
    if oracle:  # computed to check and time it, never written: scoring computes it again from the data root
        start = time.perf_counter()
        estimates, heatmaps = oracle_outputs(item, oracle)
        estimates, reason = check_estimates(estimates, n_sources, n_samples)
        seconds = time.perf_counter() - start
        status = {"status": "ok", "reason": ""} if estimates is not None else {"status": "failed", "reason": reason}
        return {**record, **status, "localized": heatmaps is not None, "seconds": seconds}
    else:
        if item.track == "duets" or (item.track == URMP_TRACK and info.get("has_separate_at")):
            result = runner.call("separate_at", mixture=item.mixture, frames=item.frames[0], points=list(item.points))
        else:
            frames = player_crops(item.frames[0], n_sources) if item.track == URMP_TRACK else item.frames
            kwargs: dict[str, Any] = {"mixture": item.mixture, "frames": frames, "sample_rate": item.sample_rate}
            if info.get("uses_labels"):
                kwargs["labels"] = list(item.instruments)
            result = runner.call("separate", **kwargs)
        seconds = result.seconds
        estimates, reason = check_estimates(result.value, n_sources, n_samples) if result.ok else (None, result.reason)
    if estimates is None:
        return {**record, "status": "failed", "reason": reason, "seconds": seconds}
    heatmaps = None
    if info.get("has_localize") and item.track == "mixtures":
        result = runner.call("localize", mixture=item.mixture, frames=item.frames, sample_rate=item.sample_rate)
        seconds += result.seconds  # an item's cost is all the model did for it
        heatmaps, reason = check_heatmaps(result.value, n_sources, item.frames.shape[2:4]) if result.ok else (None, result.reason)
        if heatmaps is None:  # a model that localizes is charged for an item it does not localize, as for separate
            return {**record, "status": "failed", "reason": f"localize: {reason}", "seconds": seconds}
    _save_npy(out_dir / "estimates" / f"{item.item_id}.npy", estimates)
    if heatmaps is not None:
        _save_npy(out_dir / "heatmaps" / f"{item.item_id}.npy", heatmaps)
        record["localized"] = True
    return {**record, "status": "ok", "reason": "", "seconds": seconds}


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def item_content_hash(item: EvalItem) -> str:
    """Hex SHA-256 of what an item's scores are computed from: its mixture and references (exact
    samples), its boxes and its points. Two items of one id and key can differ here (a polarity
    flip keeps every loudness contour): the score cache keys on this, never on the key alone."""
    digest = hashlib.sha256()
    for array in (item.mixture, item.references):
        array = np.ascontiguousarray(array, dtype=np.float32)
        digest.update(repr(array.shape).encode() + array.tobytes())
    for box in item.boxes:
        box = None if box is None else np.ascontiguousarray(box, dtype=np.float64)
        digest.update(b"none" if box is None else repr(box.shape).encode() + box.tobytes())
    digest.update(repr([tuple(map(float, point)) for point in item.points]).encode())
    return digest.hexdigest()


@functools.cache
def metric_code_hash() -> str:
    """Hex SHA-256 of the code that computes a score: every musicbench/metrics/*.py and `score_item`'s source."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parent / "metrics").glob("*.py")):
        digest.update(path.name.encode() + b"\x00" + path.read_bytes() + b"\x00")
    digest.update(inspect.getsource(score_item).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ScoreCache:
    """The score cache: ``<key>.json`` entries, each signed (HMAC-SHA256 over its key and value) with
    the folder's secret key file ``.secret``; an entry that fails the check is recomputed."""

    directory: Path
    secret: bytes

    @classmethod
    def open(cls, directory: str | os.PathLike) -> ScoreCache:
        """The cache in `directory` (created if needed), with its secret key (created once, mode 0600)."""
        directory = ensure_writable_dir(directory)
        key_path = directory / SCORE_CACHE_SECRET_NAME
        if not key_path.is_file():
            tmp = directory / f".secret.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(tmp, key_path)  # the first writer's key wins; never a half-written one
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return cls(directory, key_path.read_bytes().strip())

    @staticmethod
    def renew_secret(directory: str | os.PathLike) -> None:
        """Forget the cache's key, so that every entry signed so far is recomputed (a new key is made
        by the next `open`): after a model ran unconfined, it may have read the key."""
        (Path(directory) / SCORE_CACHE_SECRET_NAME).unlink(missing_ok=True)

    def _signature(self, key: str, value: Any) -> str:
        return hmac.new(self.secret, json.dumps([key, value], sort_keys=True).encode(), hashlib.sha256).hexdigest()

    def get(self, key: str, compute) -> dict[str, Any]:
        """The cached value of `key` if its entry is intact, else ``compute()``, stored signed."""
        path = self.directory / f"{key}.json"
        if path.is_file():
            try:
                entry = json.loads(path.read_text())
                if hmac.compare_digest(str(entry["hmac"]), self._signature(key, entry["value"])):
                    return entry["value"]
            except (OSError, ValueError, TypeError, KeyError):
                pass  # a damaged or tampered entry is recomputed
        value = compute()
        atomic_write_text(path, json.dumps({"key": key, "value": value, "hmac": self._signature(key, value)}, sort_keys=True))
        return value


def score_item(item: EvalItem, estimates: np.ndarray, heatmaps: np.ndarray | None, floor_sdr: np.ndarray) -> dict[str, list]:
    """Metrics of one item: lists over sources (SDR/SIR/SAR/NSDR/SI-SDR/SI-SDRi, cIoU, pointing)."""
    sdr, sir, sar = bss_eval_sources(item.references, estimates)
    scores = {
        "sdr": scores_keeping_plus_inf(sdr), "sir": scores_keeping_plus_inf(sir), "sar": scores_keeping_plus_inf(sar),
        "sdr_mix": scores_keeping_plus_inf(floor_sdr), "nsdr": scores_keeping_plus_inf(sdr - floor_sdr),
        "si_sdr": scores_keeping_plus_inf(si_sdr(item.references, estimates)),
        "si_sdri": scores_keeping_plus_inf(si_sdr_improvement(item.references, estimates, item.mixture)),
        "ciou": [None] * len(sdr), "pointing_hit": [None] * len(sdr),
    }
    if heatmaps is not None:
        height, width = item.frames.shape[2:4]
        for k, box in enumerate(item.boxes):
            boxes = None if box is None else np.atleast_2d(box)
            boxes = None if boxes is None else boxes[(boxes[:, 2] > 0) & (boxes[:, 3] > 0)]
            if boxes is not None and len(boxes):
                scores["ciou"][k] = float(ciou(heatmaps[k], boxes_to_mask(boxes, height, width)))
                scores["pointing_hit"][k] = float(pointing_game(heatmaps[k], boxes, (height, width)))
    return scores


def _score_rows(item: EvalItem, status: dict[str, Any] | None, out_dir: Path, cache: ScoreCache, version: str,
                localizes: bool = False, oracle: str | None = None) -> list[dict[str, Any]]:
    """The items.parquet rows (one per source) of one item; uses and fills the score cache. In a run
    that `localizes`, a mixture item without heatmaps is excluded like one without estimates. An
    `oracle` run's outputs are computed from the item (`oracle_outputs`), not read."""
    base = {"item_id": item.item_id, "track": item.track, "split": item.split, "item_key": item.key}
    estimates_path = out_dir / "estimates" / f"{item.item_id}.npy"
    heatmaps_path = out_dir / "heatmaps" / f"{item.item_id}.npy"
    if status is None or status["status"] != "ok":
        scores, state = {}, "excluded"
        reason = "no inference record" if status is None else status["reason"]
    elif oracle is None and localizes and item.track == "mixtures" and not os.path.lexists(heatmaps_path):
        scores, state, reason = {}, "excluded", "localize: no heatmaps for this item (a run that localizes must localize every item)"
    else:
        code, content = metric_code_hash(), item_content_hash(item)
        floor = cache.get(_cache_key("floor", version, item.item_id, content, METRIC_VERSION, code),
                          lambda: {"sdr_mix": [float(v) for v in mixture_sdr(item.references, item.mixture)]})
        try:
            if oracle is not None:  # computed again from the item only when its scores are not cached
                key_parts, outputs = (f"oracle:{oracle}", oracle_code_hash()), functools.partial(oracle_outputs, item, oracle)
            else:
                key_parts, arrays = _run_outputs(item, estimates_path, heatmaps_path)
                outputs = functools.partial(tuple, arrays)
            key = _cache_key("scores", version, item.item_id, content, METRIC_VERSION, code, *key_parts)
            scores = cache.get(key, lambda: score_item(item, *outputs(), np.array(floor["sdr_mix"])))
            state, reason = "ok", ""
        except UntrustedFileError as exc:
            scores, state, reason = {}, "excluded", str(exc)
        except MetricInputError as exc:
            scores, state, reason = {}, "excluded", f"metric undefined: {exc}"
    seconds = None if status is None else float(status["seconds"])
    rows = []
    for k, video_id in enumerate(item.video_ids):
        row = {**base, "source_index": k, "video_id": video_id, "instrument": item.instruments[k],
               "status": state, "reason": reason, "seconds": seconds}
        row.update({name: values[k] for name, values in scores.items()})
        rows.append(row)
    return rows


def _run_outputs(item: EvalItem, estimates_path: Path, heatmaps_path: Path
                 ) -> tuple[tuple[str, str], tuple[np.ndarray, np.ndarray | None]]:
    """A run folder's estimates of `item` and its heatmaps (None without a file), each file read once
    and checked (`read_regular_file`, `read_npy`, `check_estimates`, `check_heatmaps`) before it is
    allocated or scored (run folders are untrusted), with their SHA-256s ("-" without heatmaps):
    ((estimates hash, heatmaps hash), (estimates, heatmaps)). UntrustedFileError says why not."""
    n_sources, n_samples = item.references.shape
    name = f"estimates/{item.item_id}.npy"
    data = read_regular_file(estimates_path, max_bytes=n_sources * n_samples * 8 + (1 << 16), name=name)
    estimates, reason = check_estimates(read_npy(data, max_bytes=len(data), kinds="f", ndim=2, name=name), n_sources, n_samples)
    if estimates is None:
        raise NpyError(f"{name}: {reason}")
    hashes = (hashlib.sha256(data).hexdigest(), "-")
    if not os.path.lexists(heatmaps_path):
        return hashes, (estimates, None)
    name = f"heatmaps/{item.item_id}.npy"
    data = read_regular_file(heatmaps_path, max_bytes=n_sources * MAX_HEATMAP_BYTES, name=name)
    heatmaps, reason = check_heatmaps(read_npy(data, max_bytes=len(data), kinds="f", ndim=3, name=name), n_sources,
                                      item.frames.shape[2:4])
    if heatmaps is None:
        raise NpyError(f"{name}: {reason}")
    return (hashes[0], hashlib.sha256(data).hexdigest()), (estimates, heatmaps)


def _run_localizes(out_dir: Path) -> bool:
    """Whether the run folder's model localizes: model.json says so, or any heatmaps file is there."""
    try:
        if json.loads(read_regular_file(out_dir / "model.json", max_bytes=1 << 20)).get("has_localize") is True:
            return True
    except (ValueError, AttributeError, RecursionError):  # UntrustedFileError is a ValueError
        pass
    return (out_dir / "heatmaps").is_dir() and any((out_dir / "heatmaps").iterdir())


def score_run(
    out_dir: str | os.PathLike, root: str | os.PathLike, *, split: str = "test", cache_dir: str | os.PathLike | None = None,
    limit: int | None = None, jobs: int = 1, boxes_file: str | os.PathLike | None = None, oracle: str | None = None,
    items: Sequence[EvalItem] | None = None,
) -> pd.DataFrame:
    """Score the estimates under `out_dir` (`score_items`; `items`: already built); write items.parquet; return it."""
    table = score_items(out_dir, root, split=split, cache_dir=cache_dir, limit=limit, jobs=jobs, boxes_file=boxes_file,
                        oracle=oracle, items=items)
    write_parquet(table, Path(out_dir) / "items.parquet")
    return table


def score_items(
    out_dir: str | os.PathLike, root: str | os.PathLike, *, split: str = "test", cache_dir: str | os.PathLike | None = None,
    limit: int | None = None, jobs: int = 1, boxes_file: str | os.PathLike | None = None,
    items: Sequence[EvalItem] | None = None, show_progress: bool = True, oracle: str | None = None,
) -> pd.DataFrame:
    """The items.parquet table of the run folder `out_dir` (from `run_inference`), scored from its
    estimate files against the data root (nothing is written but score cache entries).

    `boxes_file`: localization ground truth for videos without boxes of their own (real MUSIC),
    in DSOL's format (`musicbench.annotations.load_dsol_boxes`); its hash joins the cache key.

    Every item of the mixtures track gets rows (failed ones as excluded, with the reason); duet
    items get rows when the run has inference records for them. Every benchmark file the items are
    built from is checked first (`DataRoot.verify_items`). Scores are cached in `cache_dir` (default
    ``<root>/score_cache``, a `ScoreCache`) by (estimate file hash, heatmap file hash, item and
    `item_content_hash`, benchmark version, metric version, `metric_code_hash`); mixture floors by
    (item and its content hash, benchmark version, metric version, metric code hash).
    `jobs` > 1 scores items in that many processes (one BLAS thread each). `items`: the split's
    items already built and verified (`DataRoot.read_verified_items`, e.g. shared by every run the
    leaderboard re-scores); those of the run's tracks are scored. An `oracle` run has no estimate
    files: its outputs are computed again from the items (`oracle_outputs`).
    """
    out_dir, root = Path(out_dir), Path(root)
    data = DataRoot(root)
    cache = ScoreCache.open(cache_dir or data.score_cache_dir)
    version = data.version()
    try:  # a run folder is untrusted (the leaderboard re-scores folders it did not write)
        inference = read_untrusted_parquet(out_dir / "inference.parquet", INFERENCE_COLUMNS, max_bytes=256 << 20,
                                           max_rows=1_000_000, max_memory=256 << 20, name="inference.parquet")
    except UntrustedFileError as exc:
        raise MusicbenchError(f"cannot read the inference table of {str(out_dir)!r}: {exc}; run the model first "
                              "(`musicbench evaluate`)") from None
    missing = [column for column in ("item_id", "status", "reason", "seconds") if column not in inference.columns]
    if missing:
        raise MusicbenchError(f"the inference table of {str(out_dir)!r} lacks column(s) {', '.join(missing)}; run the model "
                              "again (`musicbench evaluate`)")
    if "track" not in inference.columns:
        inference["track"] = "mixtures"
    status = {row["item_id"]: row for row in inference.to_dict("records")}
    annotations = load_dsol_boxes(boxes_file) if boxes_file else None
    version = version if not boxes_file else f"{version}+boxes:{sha256_file(boxes_file)}"
    tracks = ("mixtures", *(track for track in ("duets", URMP_TRACK) if (inference["track"] == track).any()))
    if items is None:
        items = data.read_verified_items(split, limit, tracks, annotations)
    else:
        items = [item for item in items if item.track in tracks]
    # a URMP item is defined by the real-ensembles track's version, not the MUSIC one: its cache entries carry both
    urmp_version = f"{version}+{data.urmp_version()}" if URMP_TRACK in tracks else version
    localizes = _run_localizes(out_dir)
    tasks = [(item, status.get(item.item_id), out_dir, cache, urmp_version if item.track == URMP_TRACK else version,
              localizes, oracle) for item in items]
    records = []
    with progress_bar(f"scoring ({split})", total=len(items), show=show_progress) as advance:
        if jobs <= 1:
            for task in tasks:
                records += _score_rows(*task)
                advance()
        else:
            import multiprocessing

            with _single_blas_thread(), worker_pool(jobs, multiprocessing.get_context("spawn")) as pool:
                for rows in pool.map(_score_rows, *zip(*tasks)):
                    records += rows
                    advance()
    return pd.DataFrame.from_records(records).reindex(columns=list(ITEM_COLUMNS))


class _single_blas_thread:
    """Context manager: worker processes started inside it use one BLAS/OpenMP thread each."""

    NAMES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

    def __enter__(self):
        self.saved = {name: os.environ.get(name) for name in self.NAMES}
        os.environ.update({name: "1" for name in self.NAMES})

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def metric_summary(per_item: pd.Series, item_videos: dict[str, list[str]], seed: int) -> dict[str, Any]:
    """One metric over a track's items (`per_item`: item_id → value; failed items already charged):
    ``mean``, ``median`` and ``ci95`` (video bootstrap, `musicbench.stats`) when every value is
    finite, else None (a mean over the finite values only would hide the rest); ``n`` items,
    ``n_failed`` (charged −inf) and ``n_plus_inf`` (a perfect estimate's +inf)."""
    values = per_item.dropna()
    array = values.to_numpy(dtype=np.float64)
    finite = bool(np.isfinite(array).all())
    median = float(np.median(array)) if array.size else float("nan")
    low, high = video_bootstrap_ci(array, [item_videos[i] for i in values.index], seed) if finite else (None, None)
    return {"mean": float(array.mean()) if finite else None, "median": finite_or_none(median), "ci95": [low, high],
            "n": int(array.size), "n_failed": int(np.isneginf(array).sum()), "n_plus_inf": int(np.isposinf(array).sum())}


def summarize_track(items: pd.DataFrame, seed: int = 1234) -> dict[str, Any]:
    """Summary of one track's rows. Every item counts: a failed one is charged the worst score of
    each metric (`charge_failures`), so per metric the mean and median over all items (each item the
    mean of its sources) with the 95% video-bootstrap CI (`metric_summary`); per-instrument means
    over sources; item counts and failure reasons. ``complete`` is False when any item failed."""
    charged = charge_failures(items)
    per_item = charged.groupby("item_id")[list(ITEM_METRICS)].mean(numeric_only=True)
    # clips of one YouTube video (Solos' segments) are one video to the bootstrap
    item_videos = videos_by_item(charged)
    excluded = items[items["status"] != "ok"].drop_duplicates("item_id")
    n_items = int(items["item_id"].nunique())
    summary: dict[str, Any] = {
        "n_items": n_items, "n_scored": n_items - int(len(excluded)), "n_excluded": int(len(excluded)),
        "excluded_reasons": dict(Counter(excluded["reason"])), "complete": len(excluded) == 0,
    }
    summary["metrics"] = {name: metric_summary(per_item[name], item_videos, seed)
                          for name in ITEM_METRICS if name in per_item and per_item[name].notna().any()}
    summary["localization"] = localization_summary(charged)
    per_instrument = charged.groupby("instrument")[list(PER_INSTRUMENT_METRICS)].mean(numeric_only=True)
    summary["per_instrument"] = {name: {k: finite_or_none(v) for k, v in row.items() if not np.isnan(v)}
                                 for name, row in per_instrument.iterrows()}
    return summary


def localization_summary(scored: pd.DataFrame) -> dict[str, float] | None:
    """The named localization variants over every source with a box (None if none; failed items'
    sources charged cIoU 0 and a miss by `charge_failures`):
    ``ciou_mean``, ``ciou_success@0.5`` (LVS / Senocak et al.), ``auc_success`` (thresholds
    0, 0.05, ..., 1, trapezoid), ``pointing_game`` (hit rate), and ``n`` (sources)."""
    if "ciou" not in scored or scored["ciou"].notna().sum() == 0:
        return None
    cious = scored["ciou"].dropna().to_numpy(dtype=np.float64)
    return {
        "ciou_mean": float(cious.mean()), "ciou_success@0.5": ciou_success(cious, 0.5),
        "auc_success": auc_success(cious), "pointing_game": float(scored["pointing_hit"].dropna().mean()),
        "n": int(cious.size),
    }


def summarize(items: pd.DataFrame, seed: int = 1234) -> dict[str, Any]:
    """summary.json: the mixtures track's summary at the top level (see `summarize_track`), the
    duet track's under ``duets`` (None when the model has no separate_at: "n/a" on the board) and,
    only when the run has real-ensembles items, theirs under ``urmp`` (a piece is one video to the
    bootstrap)."""
    tracks = items["track"] if "track" in items.columns else pd.Series("mixtures", index=items.index)
    summary = summarize_track(items[tracks == "mixtures"], seed)
    duets = items[tracks == "duets"]
    summary["duets"] = summarize_track(duets, seed) if len(duets) else None
    if (tracks == URMP_TRACK).any():
        summary[URMP_TRACK] = summarize_track(items[tracks == URMP_TRACK], seed)
    return summary


def _git_revision() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() if result.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


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
    definition = DataRoot(root).definition()  # benchmark.json, read once
    fingerprint = definition.get("frames_fingerprint")
    return {
        "name": name, "benchmark_version": str(definition["benchmark_version"]),
        "frames_fingerprint": str(fingerprint) if fingerprint else None,
        "coverage": split_coverage(definition["coverage"], split), "metric_version": METRIC_VERSION, "split": split,
        "git_revision": _git_revision(), "package_versions": versions, "python": platform.python_version(),
        "seed": seed, "device": device, "options": options, "oracle": oracle,
        "model_file": None if model_path is None else os.fspath(model_path),
        "model_sha256": None if model_path is None else sha256_file(model_path),
        "uses_labels": bool(info.get("uses_labels", False)), "n_parameters": info.get("n_parameters"),
        "confined": info.get("confined"), "confinement": info.get("confinement"), "interpreter": info.get("interpreter"),
        "wall_seconds": wall_seconds, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


class InProcessRunner:
    """`ModelRunner`'s interface over a model object in this process (`evaluate_model`): its methods
    are called directly, with no time limit and no confinement; torch tensors are handed back as numpy."""

    def __init__(self, model: Any):
        self.model, self.load_error = model, ""
        self.info = {**describe_model(model), "undeclared_options": [], "confined": False,
                     "confinement": IN_PROCESS}

    def call(self, method: str, **kwargs: Any) -> CallResult:
        start = time.perf_counter()
        try:
            value = getattr(self.model, method)(**kwargs)
            if hasattr(value, "detach"):  # a torch tensor, perhaps on a GPU or with a graph
                value = value.detach().cpu().numpy()
        except Exception as exc:  # the model's failure is the item's, as in the model process
            return CallResult(False, reason=short_error(exc), seconds=time.perf_counter() - start)
        value, reason = result_array(method, value)  # what the model process accepts, and nothing else
        return CallResult(value is not None, value, reason, seconds=time.perf_counter() - start)

    def close(self) -> None:
        pass


def evaluate_model(
    model: Any, root: str | os.PathLike, out_dir: str | os.PathLike, *, split: str = "val", name: str = "in-process",
    seed: int = 1234, limit: int | None = None, jobs: int = 1, cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False, device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate a model object of this process (e.g. inside a training loop) on `split` (default
    ``val``): the same items, metric engine and run folder as `evaluate`, with the model API's
    methods (``separate``, optionally ``localize``, ``separate_at``, ``uses_labels``) called
    directly. Nothing is confined and no call is timed out: provenance says "in-process, unconfined",
    and the board lists such a run as unconfined. Returns the summary (see `evaluate`)."""
    start = time.perf_counter()
    with exit_on_sigterm(), claim_run_folder(out_dir, overwrite, protected=(root,)) as out_dir, \
            staged_folder(out_dir) as work_dir:
        built: list[EvalItem] = []
        run_inference(None, root, work_dir, split=split, limit=limit, model=model, keep_items=built)
        ScoreCache.renew_secret(cache_dir or DataRoot(root).score_cache_dir)  # the model could read the cache's key
        register_copy(root, out_dir, "run")
        options = {"device": device}
        return finish_run(work_dir, root, name=name, split=split, seed=seed, limit=limit, jobs=jobs, cache_dir=cache_dir,
                          boxes_file=None, built=built, provenance_of=lambda info: {**provenance(
                              root, None, name=name, split=split, seed=seed, device=device, options=options, info=info,
                              wall_seconds=time.perf_counter() - start), "model_object": plain(type(model).__qualname__)})


def run_name(model_path: str | os.PathLike | None, oracle: str | None) -> str:
    """A run's default name (and ``runs/`` folder): ``oracle-<kind>`` for an oracle, else the model file's stem."""
    return f"oracle-{oracle}" if oracle else Path(model_path).stem


def evaluate(
    model_path: str | os.PathLike | None, root: str | os.PathLike, out_dir: str | os.PathLike, *, split: str = "test",
    device: str = "auto", options: dict[str, Any] | None = None, timeout: float = 60.0, seed: int = 1234,
    limit: int | None = None, oracle: str | None = None, name: str | None = None, jobs: int = 1,
    cache_dir: str | os.PathLike | None = None, boxes_file: str | os.PathLike | None = None,
    load_timeout: float = LOAD_TIMEOUT, overwrite: bool = False, confine: bool = True,
    python: str | os.PathLike | None = None, hide: tuple[str | os.PathLike, ...] = (), scratch_bytes: int = SCRATCH_BYTES,
) -> dict[str, Any]:
    """Inference then scoring (`jobs` processes; score cache `cache_dir`, default
    ``<root>/score_cache``) then summary: writes everything under `out_dir` (see the module
    docstring); returns the summary. `confine=False` runs the model process unconfined
    (``--no-confine``; provenance says so); `python` runs it under another interpreter (``--python``,
    see `run_inference`; provenance's ``interpreter`` says which).

    `out_dir` is this run's alone while it runs, and may not lie inside or hold the data root
    (`musicbench.run_folder.claim_run_folder`). The run is written under a temporary folder beside
    it and swapped in when complete (`staged_folder`); a killed run leaves nothing behind. An
    existing run at `out_dir` is refused unless `overwrite`; with it, the old run (estimates,
    heatmaps, everything) is replaced only once the new one is complete, and a folder holding
    anything but a run is never replaced. `hide`: more paths the model must not see (the score cache
    and the `boxes_file` are hidden too). After an
    unconfined model ran, the score cache's key is renewed (the model could have read it and signed
    entries of its own). The run folder is registered as a copy of the references
    (`musicbench.hidden.register_copy`), hidden from every later model."""
    start = time.perf_counter()
    device = resolve_device(device)
    options = {**(options or {}), "device": device}
    name = name or run_name(model_path, oracle)
    hide = (*hide, *(() if cache_dir is None else (cache_dir,)), *(() if boxes_file is None else (boxes_file,)))
    built: list[EvalItem] = []
    with exit_on_sigterm(), claim_run_folder(out_dir, overwrite, protected=(root,)) as out_dir, \
            staged_folder(out_dir) as work_dir:
        run_inference(model_path, root, work_dir, split=split, options=options, timeout=timeout, limit=limit,
                      oracle=oracle, load_timeout=load_timeout, confine=confine, python=python, hide=hide,
                      scratch_bytes=scratch_bytes, keep_items=built)
        if oracle is None and not confine:
            ScoreCache.renew_secret(cache_dir or DataRoot(root).score_cache_dir)
        register_copy(root, out_dir, "run")
        return finish_run(work_dir, root, name=name, split=split, seed=seed, limit=limit, jobs=jobs, cache_dir=cache_dir,
                          boxes_file=boxes_file, oracle=oracle, built=built, provenance_of=lambda info: provenance(
                              root, model_path, name=name, split=split, seed=seed, device=device, options=options,
                              info=info, wall_seconds=time.perf_counter() - start, oracle=oracle))


def finish_run(
    work_dir: Path, root: str | os.PathLike, *, name: str, split: str, seed: int, limit: int | None, jobs: int,
    cache_dir: str | os.PathLike | None, boxes_file: str | os.PathLike | None,
    provenance_of: Callable[[dict[str, Any]], dict[str, Any]], oracle: str | None = None,
    built: Sequence[EvalItem] | None = None,
) -> dict[str, Any]:
    """The scoring half of a run, shared by `evaluate` and scoring estimate files: score the
    estimates of `work_dir` (`score_run`; `built`: the items inference verified and decoded, scored
    without reading them again), write summary.json and provenance.json
    (``provenance_of(model.json's info)``, plus ``urmp_version`` and ``urmp_coverage`` when the run has the real-ensembles
    track); return the summary."""
    items = score_run(work_dir, root, split=split, limit=limit, jobs=jobs, cache_dir=cache_dir, boxes_file=boxes_file,
                      oracle=oracle, items=None if boxes_file else built)
    summary = summarize(items, seed)
    info = json.loads((work_dir / "model.json").read_text())
    summary.update({"name": name, "benchmark_version": DataRoot(root).version(), "split": split,
                    "uses_labels": bool(info.get("uses_labels", False))})
    atomic_write_text(work_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True, allow_nan=True) + "\n")
    prov = provenance_of(info)
    if summary.get(URMP_TRACK):  # the real-ensembles track's identity and coverage, only where the run has the track
        prov["urmp_version"], prov["urmp_coverage"] = DataRoot(root).urmp_version(), DataRoot(root).urmp_coverage()
    atomic_write_text(work_dir / "provenance.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return summary
