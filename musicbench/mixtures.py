"""The `mixtures` stage: the fixed val/test items a data root holds, and the benchmark they belong to.

What the items are, the benchmark identity and a data root's coverage are defined in
`musicbench.definition`; this stage draws them (or takes them from a published definition),
writes them and compares them with other data roots.

Files (under ``<root>/mixtures/``, replaced together: a failed stage leaves the old ones)::

    mixtures.parquet   the held mixture items, one row per (item, source): MIXTURE_COLUMNS, by item and source
    duets.parquet      the held duet items (natural two-player mixtures): one clip each (DUET_COLUMNS)
    benchmark.json     the identity (``benchmark_version``), its recipe, the coverage, the frames fingerprint, counts
    ground_truth.json  SHA-256 of the MUSIC-Synth stems and boxes the items read (`DataRoot.verify_items`)

The mixture is ``sum_n gain_n * clip_n``; the references of the metric are the scaled clips
``gain_n * clip_n``. The frames, which models see but which do not define the references, get a
fingerprint of their own (`frames_fingerprint`, over the frame archives' bytes). `compare_mixtures`
(against a published mixture table) and `compare_clips` (against another data root: max abs sample
difference and frame PSNR per clip) tell an encoder's rounding from other audio.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from musicbench.benchmark import (
    DEFINITION_NAME,
    DUETS_NAME,
    GROUND_TRUTH_NAME,
    MIXTURES_NAME,
    DataRoot,
    loudness_contour,
    read_clip_frames,
    read_mixtures,
    tables_fingerprint,
)
from musicbench.concurrency import holds_data_root
from musicbench.definition import (
    EVAL_SPLITS,
    BuiltItems,
    MixturesConfig,
    benchmark_identity,
    build_items,
    coverage,
    decoded_audio,
    definition_recipe,
    draw_slots,
    pcm_hashes,
    published_definition,
    read_definition,
    sounding_starts,
)
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, sha256_file, write_parquet
from musicbench.hidden import register_copy

__all__ = ["EVAL_SPLITS", "MixturesConfig", "compare_clips", "compare_mixtures", "frames_fingerprint", "make_mixtures",
           "sounding_starts"]


def frames_fingerprint(mixtures: pd.DataFrame, duets: pd.DataFrame) -> str:
    """``fr-`` + 16 hex digits of the SHA-256 over the (frame archive, file SHA-256) pairs the items
    use: the model inputs that another JPEG encoder (another ffmpeg build) writes differently."""
    pairs = sorted(set(zip(mixtures["frames_path"], mixtures["frames_sha256"], strict=True))
                   | set(zip(duets["frames_path"], duets["frames_sha256"], strict=True)))
    return "fr-" + hashlib.sha256("".join(f"{path} {sha}\n" for path, sha in pairs).encode()).hexdigest()[:16]


def compare_mixtures(published: pd.DataFrame, data: DataRoot) -> pd.DataFrame:
    """Clips of a published mixture table that this data root lacks or holds otherwise.

    Returns rows (item_id, video_id, problem): ``missing`` (video not processed here), ``audio
    differs`` (another loudness contour: another item), ``samples differ by rounding`` (other
    decoded samples, same contour: another decoder's last bits, the same benchmark) or ``frames
    differ`` (same samples, frame archive with other bytes: another JPEG encoder, the same
    benchmark); empty when they agree.
    """
    local = data.read_index().set_index("video_id")
    pcm = pcm_hashes(data.root)
    decoded = decoded_audio(data.root)
    problems = []
    for row in published.itertuples(index=False):
        if row.video_id not in local.index:
            problems.append((row.item_id, row.video_id, "missing"))
            continue
        audio_path = local.at[row.video_id, "audio_path"]
        if pcm(audio_path) != row.audio_pcm_sha256:
            clip = decoded(audio_path)[int(row.start_sample):int(row.start_sample) + int(row.n_samples)]
            same = loudness_contour(clip) == row.clip_loudness_db
            problems.append((row.item_id, row.video_id, "samples differ by rounding" if same else "audio differs"))
        elif local.at[row.video_id, "frames_sha256"] != row.frames_sha256:
            problems.append((row.item_id, row.video_id, "frames differ"))
    return pd.DataFrame(problems, columns=["item_id", "video_id", "problem"])


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB, peak 255) between two uint8 arrays of one shape; inf when equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def compare_clips(data: DataRoot, other: DataRoot) -> pd.DataFrame:
    """Every clip of this root's mixture table read from both roots: item_id, source_index, video_id,
    ``max_abs_diff`` (largest |sample difference| of the clip, full scale 1), ``frames_psnr_db``
    (PSNR of the clip's frames, inf when identical) and ``verdict``: ``identical``; ``audio differs``
    (another loudness contour: another item); ``missing`` (the other root has no such video); else
    the audio (``same samples`` or ``samples differ by rounding``: the same contour) and the frames
    (``same frames``, ``frames re-encoded`` or ``frames differ in size``), e.g. ``same samples, frames re-encoded``."""
    mixtures = read_mixtures(data.mixtures_path)
    other_index = other.read_index().set_index("video_id")
    records = []
    for row in mixtures.itertuples(index=False):
        record = {"item_id": row.item_id, "source_index": int(row.source_index), "video_id": row.video_id,
                  "max_abs_diff": None, "frames_psnr_db": None, "verdict": "missing"}
        if row.video_id in other_index.index:
            theirs = other_index.loc[row.video_id]
            window = {"start": int(row.start_sample), "frames": int(row.n_samples), "dtype": "float64", "always_2d": True}
            ours_audio, _ = sf.read(data.resolve(row.audio_path), **window)
            their_audio, _ = sf.read(other.resolve(theirs["audio_path"]), **window)
            span = range(int(row.start_frame), int(row.start_frame) + int(row.n_frames))
            ours_frames = read_clip_frames(data.resolve(row.frames_path), span)
            their_frames = read_clip_frames(other.resolve(theirs["frames_path"]), span)
            audio = "audio differs"
            if ours_audio.shape == their_audio.shape:
                record["max_abs_diff"] = float(np.max(np.abs(ours_audio - their_audio), initial=0.0))
                if record["max_abs_diff"] == 0:
                    audio = "same samples"
                elif loudness_contour(ours_audio[:, 0]) == loudness_contour(their_audio[:, 0]):
                    audio = "samples differ by rounding"
            frames = "frames differ in size"
            if ours_frames.shape == their_frames.shape:
                record["frames_psnr_db"] = psnr_db(ours_frames, their_frames)
                frames = "same frames" if record["frames_psnr_db"] == float("inf") else "frames re-encoded"
            record["verdict"] = audio if audio == "audio differs" else ("identical" if (audio, frames) == (
                "same samples", "same frames") else f"{audio}, {frames}")
        records.append(record)
    return pd.DataFrame.from_records(records)


def benchmark_document(identity: str, recipe: dict[str, Any], built: BuiltItems, cover: dict[str, Any],
                       config: MixturesConfig, definition: dict[str, Any] | None) -> dict[str, Any]:
    """benchmark.json: the identity and its recipe, the coverage, the frames fingerprint, the held
    items per split (``items``, ``duet_items``), the videos they use and the published definition
    they were built from (file name and SHA-256; None when drawn here)."""
    mixtures, duets = built.mixtures, built.duets
    return {
        "benchmark_version": identity, "recipe": recipe, "coverage": cover, "definition": definition,
        "frames_fingerprint": frames_fingerprint(mixtures, duets),
        "n_sources": config.n_sources, "clip_samples": config.audio.clip_samples, "sample_rate": config.audio.sample_rate,
        "fps": config.audio.fps, "clip_frames": config.clip_frames,
        "items": {split: int(mixtures.loc[mixtures["split"] == split, "item_id"].nunique()) for split in EVAL_SPLITS},
        "duet_items": {split: int((duets["split"] == split).sum()) for split in EVAL_SPLITS},
        "videos": int(mixtures["video_id"].nunique()),
    }


def synth_recipe(params: dict[str, Any]) -> dict[str, Any] | None:
    """What an identity hashes of MUSIC-Synth when ``dataset.source`` is synth (None otherwise): the
    ``synth`` section but its ``jobs``, the soundfont by content (another seed, scene or recording
    is another dataset under the same ids)."""
    if (params.get("dataset") or {}).get("source", "synth") != "synth":
        return None
    from dataclasses import asdict

    from musicbench.synth import SynthConfig

    synth_config = SynthConfig.from_params(params)
    synth = {key: value for key, value in asdict(synth_config).items() if key not in ("jobs", "audio")}
    synth["instruments"] = list(synth["instruments"])
    synth["soundfont"] = sha256_file(synth_config.soundfont_path) if synth_config.soundfont else ""  # content, not path
    return synth


def write_items_folder(data: DataRoot, built: BuiltItems, ground_truth: dict[str, Any], document: dict[str, Any]) -> None:
    """Replace the items' folder of `data` (``mixtures/``, or a protocol's view's ``protocols/<name>/``)
    at once with the held tables of `built`, ground_truth.json and benchmark.json (`document`)."""
    from musicbench.run_folder import staged_folder

    with staged_folder(data.mixtures_dir) as staged:
        write_parquet(built.mixtures, staged / MIXTURES_NAME)
        write_parquet(built.duets, staged / DUETS_NAME)
        atomic_write_text(staged / GROUND_TRUTH_NAME, json.dumps(ground_truth, indent=2, sort_keys=True) + "\n")
        atomic_write_text(staged / DEFINITION_NAME, json.dumps(document, indent=2, sort_keys=True) + "\n")


@holds_data_root("mixtures", "root")
def make_mixtures(params: dict[str, Any], root: str | os.PathLike, definition: str | os.PathLike | None = None,
                  publish: str | os.PathLike | None = None) -> dict[str, Any]:
    """The `mixtures` stage: from the split file, the processed index and the params, write
    ``<root>/mixtures/`` (module docstring) and return benchmark.json's document.

    `definition`: a published definition (`musicbench.definition.read_definition`) whose items are
    built instead of drawn; `publish`: a file to write this data root's definition to. Everything is
    checked and built before anything is written, and the folder is replaced at once, so a failed
    stage leaves the data root as it was. Both files are registered as copies of the references
    (`musicbench.hidden.register_copy`: each clip's loudness contour), hidden from every model.
    """
    from musicbench.process import ProcessConfig
    from musicbench.splits import read_stage_split_rows

    data = DataRoot(root)
    config = MixturesConfig.from_params(params)
    frames = ProcessConfig.from_params(params)
    slots, duet_slots = draw_slots(read_stage_split_rows(root), config)  # a missing or leaking split file: one line
    recipe = definition_recipe(config, frames.size, frames.crop, synth_recipe(params))
    identity = benchmark_identity(slots, duet_slots, recipe)
    published, source = None, None
    if definition is not None:
        published = read_definition(definition, identity, recipe, slots, duet_slots)
        source = {"file": Path(definition).name, "sha256": sha256_file(definition)}
    built = build_items(slots, duet_slots, data.read_index(), data.root, config, published)
    tables = tables_fingerprint(built.mixtures, built.duets)
    cover = coverage(slots, duet_slots, built, tables)
    summary = benchmark_document(identity, recipe, built, cover, config, source)
    ground_truth = data.ground_truth_document(built.mixtures, built.duets, tables)
    if publish is not None:  # first: a file that cannot be written stops the stage before the data root changes
        try:
            atomic_write_text(publish, json.dumps(published_definition(identity, recipe, built), indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            raise MusicbenchError(f"cannot write the definition to {os.fspath(publish)!r}: {exc.strerror or exc}; "
                                  "give --publish a file path in a writable folder") from None
    write_items_folder(data, built, ground_truth, summary)
    # a definition holds every clip's loudness contour, a coarse envelope of each reference: hidden from every model
    for copy in (definition, publish):
        if copy is not None:
            register_copy(data.root, copy, "definition")
    return summary
