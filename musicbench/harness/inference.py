"""Inference: run a model (or an oracle) on every item of a split and write its outputs.

`run_inference` builds every item of a split from the benchmark definition
(``<root>/mixtures/mixtures.parquet``: mixture = sum of gain * clip, the model never sees a
reference) and runs the model isolated in a subprocess that can hand back only float arrays
(`musicbench.model_runner`), or a model object of this process (`InProcessRunner`), writing
``estimates/<item_id>.npy`` (float32 ``(n_sources, n_samples)``), ``heatmaps/<item_id>.npy``
(float32 ``(n_sources, h, w)``, if the model localizes) and ``inference.parquet`` (status and reason
per item; `musicbench.harness.outputs`). A model that raises, hangs, dies or returns NaN/inf,
integers, the wrong shape or a silent source gets that item recorded as failed with the reason; the
run goes on. `run_tracks` says which tracks a run scores, `player_crops` what a model without
``separate_at`` sees of a real ensemble.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.benchmark import URMP_TRACK, DataRoot, EvalItem, side_by_side_strips
from musicbench.confine import SCRATCH_BYTES
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, ensure_writable_dir, write_parquet
from musicbench.harness.oracles import ORACLES, oracle_outputs
from musicbench.harness.outputs import INFERENCE_COLUMNS, _save_npy, check_estimates, check_heatmaps, check_item_maps
from musicbench.hidden import check_other_names, hidden_paths
from musicbench.instruments import MUSIC_INSTRUMENTS
from musicbench.model_child import describe_model, result_array, short_error
from musicbench.model_runner import LOAD_TIMEOUT, CallResult, ModelRunner
from musicbench.progress import note, progress_bar

IN_PROCESS = "in-process, unconfined: the model object ran in the harness's own process (musicbench.evaluate.evaluate_model)"


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
    oracle always has); a localization protocol's items (`DataRoot.localization_only`, whose boxes
    are public) are called in a secret order, drawn afresh for every run, never from the params; the
    real-ensembles track (URMP) runs when the data root has it, through ``separate_at`` or else
    ``separate`` with one frame crop per player (`run_tracks`). `timeout` bounds each call of the
    model, `load_timeout` the import of its file and ``load_model`` (seconds; the model process is
    killed after either). Returns the inference table: item_id,
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
            if not info["has_separate"] and not DataRoot(root).localization_only:  # a localization protocol asks for maps only
                raise MusicbenchError(f"model {model_path}: the loaded object has no separate(mixture, frames, sample_rate) method")
            if info.get("undeclared_options"):
                note(f"option(s) {', '.join(info['undeclared_options'])} are not parameters of load_model, which takes "
                     "**kwargs and so got them unchecked: check their spelling, or declare them as keyword parameters")
        localization_only = _check_localization_task(DataRoot(root), info, oracle, model_path)
        items = DataRoot(root).read_verified_items(split, limit, run_tracks(DataRoot(root), info["has_separate_at"]))
        if keep_items is not None:  # the caller scores from them: each item is read and decoded once per run
            keep_items.extend(items)
        what = oracle or (Path(model_path).name if model_path is not None else type(model).__name__)
        order = list(items)
        if localization_only:  # public annotations (DSOL's): a secret order, so that counting calls names no item
            random.SystemRandom().shuffle(order)
        done: dict[int, dict[str, Any]] = {}
        with progress_bar(f"inference ({what}, {split})", total=len(items)) as advance:
            for item in order:
                done[id(item)] = _infer_item(item, runner, info, oracle, out_dir, localization_only)
                advance()
        records = [done[id(item)] for item in items]  # the table in item order, whatever the calls' order
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


def _check_localization_task(data: DataRoot, info: dict[str, Any], oracle: str | None, model_path: Any) -> bool:
    """Whether the items score localization alone (`DataRoot.localization_only`); then a model
    without ``localize``, or an oracle that only separates, is a MusicbenchError."""
    if not data.localization_only:
        return False
    if oracle is not None and oracle != "mixture":
        raise MusicbenchError(f"protocol {data.protocol} scores localization alone; oracle {oracle} only separates: "
                              "use --oracle mixture (the centre prior, the localization floor)")
    method, returns = (("localize_classes(mixture, frames, sample_rate, classes)", "one map per class in [0, 1], "
                        f"({len(MUSIC_INSTRUMENTS)}, h, w)") if data.class_maps else
                       ("localize(mixture, frames, sample_rate)", "heatmaps (1, h, w)"))
    if oracle is None and not info.get("has_localize_classes" if data.class_maps else "has_localize"):
        raise MusicbenchError(f"protocol {data.protocol} scores localization alone, and model {model_path} has no "
                              f"{method} method; add one that returns {returns}")
    return True


def player_crops(frames: np.ndarray, n_players: int) -> np.ndarray:
    """One crop per player of side-by-side ensemble frames ``(n_frames, H, W, 3)``: player k's strip
    (`musicbench.benchmark.side_by_side_strips`), every crop ``W // N`` pixels wide from the strip's
    left edge, so that they stack: uint8 ``(n_players, n_frames, H, W // N, 3)``."""
    width = frames.shape[2] // n_players
    return np.stack([frames[:, :, x0:x0 + width] for x0, _ in side_by_side_strips(frames.shape[2], n_players)])


def _infer_item(item: EvalItem, runner, info: dict[str, Any], oracle: str | None, out_dir: Path,
                localization_only: bool = False) -> dict[str, Any]:
    n_sources, n_samples = item.references.shape
    record = {"item_id": item.item_id, "track": item.track, "localized": False}
    if localization_only:
        return {**record, **_localize_item(item, runner, oracle, out_dir)}
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


def _localize_item(item: EvalItem, runner, oracle: str | None, out_dir: Path) -> dict[str, Any]:
    """An item of a localization protocol: only ``localize`` is called (an oracle's maps, the
    centre prior, are computed to time them and never written); heatmaps are written, no estimates."""
    start = time.perf_counter()
    if oracle:
        oracle_outputs(item, oracle)
        return {"status": "ok", "reason": "", "seconds": time.perf_counter() - start, "localized": True}
    if item.class_boxes is not None:  # one map per MUSIC instrument, each in [0, 1]
        method = "localize_classes"
        result = runner.call(method, mixture=item.mixture, frames=item.frames, sample_rate=item.sample_rate,
                             classes=list(MUSIC_INSTRUMENTS))
    else:
        method = "localize"
        result = runner.call(method, mixture=item.mixture, frames=item.frames, sample_rate=item.sample_rate)
    heatmaps, reason = check_item_maps(result.value, item) if result.ok else (None, result.reason)
    if heatmaps is None:
        return {"status": "failed", "reason": f"{method}: {reason}", "seconds": result.seconds, "localized": False}
    _save_npy(out_dir / "heatmaps" / f"{item.item_id}.npy", heatmaps)
    return {"status": "ok", "reason": "", "seconds": result.seconds, "localized": True}


class InProcessRunner:
    """`ModelRunner`'s interface over a model object in this process
    (`musicbench.evaluate.evaluate_model`): its methods are called directly, with no time limit and
    no confinement; torch tensors are handed back as numpy."""

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
