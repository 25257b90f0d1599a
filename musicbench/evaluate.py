"""`musicbench evaluate`: score a model file on the fixed benchmark items, exactly like every other.

The stage API that the CLI and the DVC stage call: `evaluate` (a model file or an oracle),
`evaluate_model` (a model object of this process), `finish_run` (the scoring half, shared with
scoring estimate files) and `run_name`. The work is done by the harness (`musicbench.harness`), in
two steps, each a plain function:

1. `musicbench.harness.inference.run_inference` builds every item of a split from the benchmark
   definition (``<root>/mixtures/mixtures.parquet``: mixture = sum of gain * clip, the model never
   sees a reference) and runs the model isolated in a subprocess that can hand back only float
   arrays (`musicbench.model_runner`), writing ``estimates/<item_id>.npy`` (float32 ``(n_sources,
   n_samples)``), ``heatmaps/<item_id>.npy`` (float32 ``(n_sources, h, w)``, if the model
   localizes) and ``inference.parquet`` (status and reason per item). A model that raises, hangs,
   dies or returns NaN/inf, integers, the wrong shape or a silent source gets that item recorded as
   failed with the reason (`musicbench.harness.outputs`); the run goes on.
2. `musicbench.harness.scoring.score_run` scores the estimates with `musicbench.metrics` (cached by
   estimate hash, item, metric version and metric code hash in signed entries, so re-scoring is
   free, a tampered entry is recomputed, and anyone can re-score a submission of estimates) and
   writes ``items.parquet``; `finish_run` then writes ``summary.json``
   (`musicbench.harness.summaries`) and ``provenance.json`` (`musicbench.harness.provenance`). Each
   row of items.parquet carries its item's key (``item_key``, `musicbench.benchmark.item_keys`), and
   provenance.json the data root's coverage of the split (``coverage``,
   `musicbench.definition.split_coverage`): which items of the benchmark the run could score and
   which the data root does not hold.

Both steps check every benchmark file the items are built from before reading it
(`DataRoot.verify_items`): a changed or truncated one stops the run.

Oracles (`musicbench.harness.oracles`): the ideal binary and ratio masks on the Sound of Pixels STFT
(window 1022, hop 256) are the ceilings of the board. The mixture oracle is the floor: the
mixture as every estimate (NSDR 0) and the centre prior (`musicbench.metrics.centre_prior`) as
every heatmap, the localization score of knowing nothing. An oracle's estimates are computed from
the references, so they are the references, nearly: an oracle run writes none (no copy of the
references ever leaves the data root); its items are scored, and re-scored by the board, from
estimates computed again from the data root.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from musicbench.benchmark import URMP_TRACK, DataRoot, EvalItem
from musicbench.concurrency import exit_on_sigterm
from musicbench.confine import SCRATCH_BYTES
from musicbench.device import resolve_device
from musicbench.fsutil import atomic_write_text
from musicbench.harness.inference import run_inference
from musicbench.harness.provenance import provenance
from musicbench.harness.scoring import ScoreCache, paper_recipe_scores, score_run
from musicbench.harness.summaries import summarize
from musicbench.hidden import register_copy
from musicbench.model_runner import LOAD_TIMEOUT
from musicbench.progress import plain
from musicbench.run_folder import claim_run_folder, staged_folder


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
    see `musicbench.harness.inference.run_inference`; provenance's ``interpreter`` says which).

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


def protocol_recipe_figures(work_dir: Path, data: DataRoot, split: str, limit: int | None, oracle: str | None,
                            built: Sequence[EvalItem] | None) -> dict[str, Any]:
    """summary.json's ``paper_recipe`` of a protocol run (`musicbench.harness.scoring.paper_recipe_scores`)
    over every item of the protocol this data root holds, in the paper's order (one the run did not
    complete, e.g. beyond ``--limit``, counts as failed), with ``n_not_held``: the protocol's items
    this data root lacks (left out of the list, as a lab drops the rows of videos it does not have)."""
    definition = data.definition()
    items = built if built and limit is None else data.read_verified_items(split)
    figures = paper_recipe_scores(work_dir, items, definition["protocol"]["recipe"], oracle)
    counts = definition["coverage"]["tracks"]["mixtures"]["test"]
    return {**figures, "n_not_held": counts["items"] - counts["held"]}


def finish_run(
    work_dir: Path, root: str | os.PathLike, *, name: str, split: str, seed: int, limit: int | None, jobs: int,
    cache_dir: str | os.PathLike | None, boxes_file: str | os.PathLike | None,
    provenance_of: Callable[[dict[str, Any]], dict[str, Any]], oracle: str | None = None,
    built: Sequence[EvalItem] | None = None,
) -> dict[str, Any]:
    """The scoring half of a run, shared by `evaluate` and scoring estimate files: score the
    estimates of `work_dir` (`musicbench.harness.scoring.score_run`; `built`: the items inference
    verified and decoded, scored without reading them again), write summary.json and provenance.json
    (``provenance_of(model.json's info)``, plus ``urmp_version`` and ``urmp_coverage`` when the run has the real-ensembles
    track); return the summary."""
    items = score_run(work_dir, root, split=split, limit=limit, jobs=jobs, cache_dir=cache_dir, boxes_file=boxes_file,
                      oracle=oracle, items=None if boxes_file else built)
    summary = summarize(items, seed)
    info = json.loads((work_dir / "model.json").read_text())
    data = DataRoot(root)
    summary.update({"name": name, "benchmark_version": data.version(), "split": split,
                    "uses_labels": bool(info.get("uses_labels", False))})
    if data.protocol is not None:  # a paper's test set: its items scored by the paper's recipe too
        summary["protocol"] = data.protocol
        summary["paper_recipe"] = protocol_recipe_figures(work_dir, data, split, limit, oracle, built)
    atomic_write_text(work_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True, allow_nan=True) + "\n")
    prov = provenance_of(info)
    if summary.get(URMP_TRACK):  # the real-ensembles track's identity and coverage, only where the run has the track
        prov["urmp_version"], prov["urmp_coverage"] = DataRoot(root).urmp_version(), DataRoot(root).urmp_coverage()
    atomic_write_text(work_dir / "provenance.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return summary
