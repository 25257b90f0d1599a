"""Scoring: a run folder's outputs against the data root's references, through the score cache.

`score_items` scores the estimates (and heatmaps) of a run folder with `musicbench.metrics`
(`score_item`, one item), and `score_run` writes them as ``items.parquet`` (`ITEM_COLUMNS`): each
row carries its item's key (``item_key``, `musicbench.benchmark.item_keys`). Scores are cached
(`ScoreCache`) by estimate hash, item and its content (`item_content_hash`), benchmark and metric
version and metric code hash (`metric_code_hash`) in signed entries, so re-scoring is free, a
tampered entry is recomputed, and anyone can re-score a submission of estimates.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.annotations import load_dsol_boxes
from musicbench.benchmark import SCORE_CACHE_SECRET_NAME, URMP_TRACK, DataRoot, EvalItem
from musicbench.concurrency import worker_pool
from musicbench.errors import MusicbenchError
from musicbench.fsutil import (
    NpyError,
    UntrustedFileError,
    atomic_write_text,
    ensure_writable_dir,
    read_npy,
    read_regular_file,
    read_untrusted_parquet,
    sha256_file,
    write_parquet,
)
from musicbench.harness.oracles import oracle_code_hash, oracle_outputs
from musicbench.harness.outputs import (
    INFERENCE_COLUMNS,
    MAX_HEATMAP_BYTES,
    check_estimates,
    check_item_maps,
    item_map_count,
)
from musicbench.instruments import MUSIC_INSTRUMENTS
from musicbench.metrics import (
    LOCALIZATION_VARIANTS,
    METRIC_VERSION,
    MetricInputError,
    boxes_to_mask,
    bss_eval_sources,
    ciou,
    dsol_ciou,
    finite_or_none,
    mixture_sdr,
    pointing_game,
    scores_keeping_plus_inf,
    si_sdr,
    si_sdr_improvement,
)
from musicbench.progress import progress_bar

ITEM_COLUMNS = (
    "item_id", "track", "split", "source_index", "video_id", "instrument", "status", "reason", "sdr", "sir", "sar", "sdr_mix",
    "nsdr", "si_sdr", "si_sdri", "ciou", "pointing_hit", "seconds", "item_key", *LOCALIZATION_VARIANTS,
)


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def item_content_hash(item: EvalItem) -> str:
    """Hex SHA-256 of what an item's scores are computed from: its mixture and references (exact
    samples), its boxes (per class, for a class-aware item) and its points. Two items of one id and
    key can differ here (a polarity
    flip keeps every loudness contour): the score cache keys on this, never on the key alone."""
    digest = hashlib.sha256()
    for array in (item.mixture, item.references):
        array = np.ascontiguousarray(array, dtype=np.float32)
        digest.update(repr(array.shape).encode() + array.tobytes())
    for box in item.boxes:
        box = None if box is None else np.ascontiguousarray(box, dtype=np.float64)
        digest.update(b"none" if box is None else repr(box.shape).encode() + box.tobytes())
    digest.update(repr([tuple(map(float, point)) for point in item.points]).encode())
    for name, boxes in sorted((item.class_boxes or {}).items()):  # a class-aware item's boxes per class
        boxes = np.ascontiguousarray(boxes, dtype=np.float64)
        digest.update(name.encode() + b"\x00" + repr(boxes.shape).encode() + boxes.tobytes())
    return digest.hexdigest()


@functools.cache
def metric_code_hash() -> str:
    """Hex SHA-256 of the code that computes a score: every musicbench/metrics/*.py, how outputs are
    read and checked (`musicbench.harness.outputs`, `_run_outputs`) and `score_item`'s source."""
    from musicbench import metrics as metrics_package
    from musicbench.harness import outputs

    digest = hashlib.sha256()
    for path in [*sorted(Path(metrics_package.__file__).resolve().parent.glob("*.py")), Path(outputs.__file__)]:
        digest.update(path.name.encode() + b"\x00" + path.read_bytes() + b"\x00")
    for function in (_run_outputs, _run_heatmaps, score_item, localization_scores, _map_scores, item_boxes, _with_area):
        digest.update(inspect.getsource(function).encode())
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
    """Metrics of one item: lists over sources (SDR/SIR/SAR/NSDR/SI-SDR/SI-SDRi, cIoU, pointing, and
    the `LOCALIZATION_VARIANTS`)."""
    sdr, sir, sar = bss_eval_sources(item.references, estimates)
    scores = {
        "sdr": scores_keeping_plus_inf(sdr), "sir": scores_keeping_plus_inf(sir), "sar": scores_keeping_plus_inf(sar),
        "sdr_mix": scores_keeping_plus_inf(floor_sdr), "nsdr": scores_keeping_plus_inf(sdr - floor_sdr),
        "si_sdr": scores_keeping_plus_inf(si_sdr(item.references, estimates)),
        "si_sdri": scores_keeping_plus_inf(si_sdr_improvement(item.references, estimates, item.mixture)),
    }
    return {**scores, **localization_scores(item, heatmaps)}


def localization_scores(item: EvalItem, heatmaps: np.ndarray | None) -> dict[str, list]:
    """The localization scores of one item, lists over sources: cIoU, pointing and the
    `LOCALIZATION_VARIANTS` of each source's map against its boxes (None without a map or a box).
    An item scored per class (``class_boxes``) has one source: each score is the mean over its
    annotated classes of that class's map (``MUSIC_INSTRUMENTS`` order) against that class's boxes."""
    names = ("ciou", "pointing_hit", *LOCALIZATION_VARIANTS)
    scores: dict[str, list] = {name: [None] * len(item.video_ids) for name in names}
    if heatmaps is None:
        return scores
    if item.class_boxes is not None:
        per_class = [_map_scores(heatmaps[MUSIC_INSTRUMENTS.index(name)], boxes, item.frames.shape[2:4])
                     for name, boxes in sorted(item.class_boxes.items()) if name in MUSIC_INSTRUMENTS]
        per_class = [values for values in per_class if values is not None]
        if per_class:
            scores.update({name: [float(np.mean([values[name] for values in per_class]))] for name in names})
        return scores
    for k, boxes in enumerate(item_boxes(item)):
        values = _map_scores(heatmaps[k], boxes, item.frames.shape[2:4])
        for name in names if values is not None else ():
            scores[name][k] = values[name]
    return scores


def _map_scores(heatmap: np.ndarray, boxes: np.ndarray | None, frame_size: tuple[int, int]) -> dict[str, float] | None:
    """cIoU, pointing and the `LOCALIZATION_VARIANTS` of one map against boxes ``(k, 4)`` (those with
    an area; None when none has)."""
    boxes = _with_area(boxes)
    if boxes is None:
        return None
    height, width = frame_size
    mask = boxes_to_mask(boxes, height, width)
    return {"ciou": float(ciou(heatmap, mask)), "pointing_hit": float(pointing_game(heatmap, boxes, (height, width))),
            "ciou_t05": float(ciou(heatmap, mask, threshold=0.5)), "dsol_ciou": float(dsol_ciou(heatmap, mask))}


def item_boxes(item: EvalItem) -> list[np.ndarray | None]:
    """Per source of `item`, its boxes ``(k, 4)`` in frame pixels that have an area, or None (no box)."""
    return [_with_area(box) for box in item.boxes]


def item_class_boxes(item: EvalItem) -> dict[int, np.ndarray]:
    """A class-aware item's boxes that have an area, by the index of their class's map
    (``MUSIC_INSTRUMENTS`` order); classes left without a box are left out."""
    found = {MUSIC_INSTRUMENTS.index(name): _with_area(boxes) for name, boxes in (item.class_boxes or {}).items()
             if name in MUSIC_INSTRUMENTS}
    return {index: boxes for index, boxes in sorted(found.items()) if boxes is not None}


def _with_area(box: np.ndarray | None) -> np.ndarray | None:
    boxes = None if box is None else np.atleast_2d(box)
    boxes = None if boxes is None else boxes[(boxes[:, 2] > 0) & (boxes[:, 3] > 0)]
    return boxes if boxes is not None and len(boxes) else None


def _score_rows(item: EvalItem, status: dict[str, Any] | None, out_dir: Path, cache: ScoreCache, version: str,
                localizes: bool = False, oracle: str | None = None, localization_only: bool = False) -> list[dict[str, Any]]:
    """The items.parquet rows (one per source) of one item; uses and fills the score cache. In a run
    that `localizes`, a mixture item without heatmaps is excluded like one without estimates. An
    `oracle` run's outputs are computed from the item (`oracle_outputs`), not read. With
    `localization_only` (a localization protocol) only the maps are read and scored."""
    base = {"item_id": item.item_id, "track": item.track, "split": item.split, "item_key": item.key}
    estimates_path = out_dir / "estimates" / f"{item.item_id}.npy"
    heatmaps_path = out_dir / "heatmaps" / f"{item.item_id}.npy"
    if status is None or status["status"] != "ok":
        scores, state = {}, "excluded"
        reason = "no inference record" if status is None else status["reason"]
    elif oracle is None and (localizes or localization_only) and item.track == "mixtures" and not os.path.lexists(heatmaps_path):
        scores, state, reason = {}, "excluded", "localize: no heatmaps for this item (a run that localizes must localize every item)"
    elif localization_only:
        try:
            if oracle is not None:
                key_parts, maps = (f"oracle:{oracle}", oracle_code_hash()), lambda: oracle_outputs(item, oracle)[1]
            else:
                digest, heatmaps = _run_heatmaps(item, heatmaps_path)
                key_parts, maps = ("localization", digest), lambda: heatmaps
            key = _cache_key("scores", version, item.item_id, item_content_hash(item), METRIC_VERSION, metric_code_hash(), *key_parts)
            scores, state, reason = cache.get(key, lambda: localization_scores(item, maps())), "ok", ""
        except UntrustedFileError as exc:
            scores, state, reason = {}, "excluded", str(exc)
        except MetricInputError as exc:
            scores, state, reason = {}, "excluded", f"metric undefined: {exc}"
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
    if not os.path.lexists(heatmaps_path):
        return (hashlib.sha256(data).hexdigest(), "-"), (estimates, None)
    digest, heatmaps = _run_heatmaps(item, heatmaps_path)
    return (hashlib.sha256(data).hexdigest(), digest), (estimates, heatmaps)


def _run_heatmaps(item: EvalItem, heatmaps_path: Path) -> tuple[str, np.ndarray]:
    """A run folder's heatmaps of `item` ``(n_sources, h, w)``, read once and checked as
    `_run_outputs` reads them, with the file's SHA-256; UntrustedFileError says why not."""
    name = f"heatmaps/{item.item_id}.npy"
    data = read_regular_file(heatmaps_path, max_bytes=item_map_count(item) * MAX_HEATMAP_BYTES, name=name)
    heatmaps, reason = check_item_maps(read_npy(data, max_bytes=len(data), kinds="f", ndim=3, name=name), item)
    if heatmaps is None:
        raise NpyError(f"{name}: {reason}")
    return hashlib.sha256(data).hexdigest(), heatmaps


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
    """The items.parquet table of the run folder `out_dir` (from
    `musicbench.harness.inference.run_inference`), scored from its estimate files against the data
    root (nothing is written but score cache entries).

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
    out_dir, data = Path(out_dir), DataRoot(root)  # DataRoot keeps a protocol's view (`musicbench.protocols`)
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
              localizes, oracle, data.localization_only) for item in items]
    records = []
    with progress_bar(f"scoring ({split})", total=len(items), show=show_progress) as advance:
        if jobs <= 1:
            for task in tasks:
                records += _score_rows(*task)
                advance()
        else:
            import multiprocessing

            tasks = [(_without_pictures(task[0]), *task[1:]) for task in tasks]
            with _single_blas_thread(), worker_pool(jobs, multiprocessing.get_context("spawn")) as pool:
                for rows in pool.map(_score_rows, *zip(*tasks)):
                    records += rows
                    advance()
    return pd.DataFrame.from_records(records).reindex(columns=list(ITEM_COLUMNS))


def _without_pictures(item: EvalItem) -> EvalItem:
    """`item` with no frames left but their shape's other axes (scoring reads only the frame size):
    what a scoring worker is sent, a sixth of the item (the pictures are most of it)."""
    shape = list(item.frames.shape)
    shape[1] = 0
    return replace(item, frames=np.empty(shape, dtype=item.frames.dtype))


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


def run_item_estimates(out_dir: str | os.PathLike, item: EvalItem, ok: bool, oracle: str | None = None) -> np.ndarray | None:
    """The estimates ``(n_sources, n_samples)`` a run folder holds for `item`, read and checked as
    scoring reads them (an oracle's computed again); None where inference did not end `ok` or the
    file is missing or unfit."""
    if not ok:
        return None
    if oracle is not None:
        return oracle_outputs(item, oracle)[0]
    out_dir = Path(out_dir)
    try:
        return _run_outputs(item, out_dir / "estimates" / f"{item.item_id}.npy",
                            out_dir / "heatmaps" / f"{item.item_id}.npy")[1][0]
    except (ValueError, OSError):  # UntrustedFileError is a ValueError
        return None


def run_item_heatmaps(out_dir: str | os.PathLike, item: EvalItem, ok: bool, oracle: str | None = None) -> np.ndarray | None:
    """The heatmaps ``(n_sources, h, w)`` a run folder holds for `item`, read and checked as scoring
    reads them (an oracle's computed again); None where inference did not end `ok` or the file is
    missing or unfit."""
    if not ok:
        return None
    if oracle is not None:
        return oracle_outputs(item, oracle)[1]
    try:
        return _run_heatmaps(item, Path(out_dir) / "heatmaps" / f"{item.item_id}.npy")[1]
    except (ValueError, OSError):  # UntrustedFileError is a ValueError
        return None


def ok_items(out_dir: str | os.PathLike) -> set[str]:
    """The ids of the items whose inference ended "ok" in a run folder's inference.parquet (untrusted)."""
    inference = read_untrusted_parquet(Path(out_dir) / "inference.parquet", INFERENCE_COLUMNS, max_bytes=256 << 20,
                                       max_rows=1_000_000, max_memory=256 << 20, name="inference.parquet")
    return set(inference.loc[inference["status"] == "ok", "item_id"])


def paper_recipe_scores(out_dir: str | os.PathLike, items: Sequence[EvalItem], recipe: str,
                        oracle: str | None = None) -> dict[str, Any]:
    """A protocol run's figures by its paper's own recipe (`musicbench.metrics.recipes`; ``"sop"``:
    The Sound of Pixels' ``calc_metrics``; ``"dsol-solo"``: DSOL's ``cal_ciou``; ``"dsol-duet"``: its
    ``eval_duet.py``) over `items` (every item of the protocol the data root holds, mixtures track,
    in the paper's order: item order), from the run's estimates (heatmaps for DSOL's): an item the
    run did not complete counts as the paper's code counts a failed one (silent, so skipped:
    ``n_valid`` of ``n_items``; DSOL's: cIoU 0, NSA 0); a figure that is not finite (the mixture's
    SAR) is None."""
    from musicbench.metrics.recipes import (
        dsol_duet_figures,
        dsol_duet_scores,
        dsol_solo_ciou,
        dsol_solo_figures,
        sop_figures,
        sop_item_scores,
    )

    if recipe not in ("sop", "dsol-solo", "dsol-duet"):
        raise MusicbenchError(f"unknown scoring recipe {recipe!r}")
    done = ok_items(out_dir)
    ordered = sorted((item for item in items if item.track == "mixtures"), key=lambda item: item.item_id)
    if recipe == "dsol-solo":  # an item whose frame lost its box to the crop is left out, as DSOL leaves out a frame without one
        cious = []
        for item in ordered:
            boxes, maps = item_boxes(item)[0], run_item_heatmaps(out_dir, item, item.item_id in done, oracle)
            if boxes is not None:
                cious.append(0.0 if maps is None else dsol_solo_ciou(maps[0], boxes, item.frames.shape[2:4]))
        figures = dsol_solo_figures(cious)
    elif recipe == "dsol-duet":  # per class; an item the run lacks counts 0 in both figures
        cious, silent = [], []
        for item in ordered:
            boxes, maps = item_class_boxes(item), run_item_heatmaps(out_dir, item, item.item_id in done, oracle)
            if boxes:
                value, quiet = (0.0, 0.0) if maps is None else dsol_duet_scores(maps, boxes, item.frames.shape[2:4])
                cious.append(value)
                silent.append(quiet)
        figures = dsol_duet_figures(cious, silent)
    else:
        figures = sop_figures([sop_item_scores(item.references, run_item_estimates(out_dir, item, item.item_id in done, oracle),
                                               item.mixture) for item in ordered])
    return {**{key: finite_or_none(value) if isinstance(value, float) else value for key, value in figures.items()},
            "recipe": recipe}
