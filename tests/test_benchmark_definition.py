"""Splits, fixed mixtures, benchmark version and the training Dataset, on a processed MUSIC-Synth set."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from musicbench.benchmark import DUET_COLUMNS, DataRoot, item_keys, loudness_contour, pcm_sha256, read_index, read_mixtures
from musicbench.errors import MusicbenchError
from musicbench.fsutil import resolve_in_root
from musicbench.manifest import read_manifest
from musicbench.mixtures import MixturesConfig, compare_clips, compare_mixtures, make_mixtures, sounding_starts
from musicbench.process import ProcessConfig, process_manifest
from musicbench.published_splits import load_published_splits
from musicbench.splits import MUSIC_MANIFESTS, SplitsConfig, assign_splits, find_leakage, make_splits, read_splits, split_of
from musicbench.synth import SynthConfig
from musicbench.synth.generate import VideoSpec, generate_video
from tests.conftest import AUDIO, BENCH_SYNTH, REPO_ROOT
from tests.conftest import build_benchmark as _build

LISTS = REPO_ROOT / "manifests" / "published"
def test_splits_are_stratified_deterministic_and_leak_free(bench_root, tmp_path):
    root, params, _ = bench_root
    rows = read_splits(root / "splits" / "splits.csv")
    assert not find_leakage(rows)
    membership = split_of(rows)
    entries = read_manifest(root / "synth" / "manifest.csv")
    assert set(membership) == {e.video_id for e in entries}
    for name in BENCH_SYNTH["instruments"]:
        solo_splits = sorted(r.split for r in rows if r.kind == "solo" and r.instruments == name)
        assert solo_splits == ["test", "train", "val"]
    assert {r.split for r in rows if r.kind == "duet"} == {"test"}  # one duet per pair: a test video
    again = tmp_path / "again"
    shutil.copytree(root / "synth", again / "synth")
    make_splits(params, again, repo=REPO_ROOT)
    assert (again / "splits" / "splits.csv").read_bytes() == (root / "splits" / "splits.csv").read_bytes()
    other = assign_splits(entries, SplitsConfig(seed=99))
    assert {r.video_id: r.split for r in other} != membership


def test_mixture_items_are_valid_and_sounding(bench_root):
    root, params, summary = bench_root
    table = read_mixtures(root / "mixtures" / "mixtures.parquet")
    config = MixturesConfig.from_params(params)
    assert summary["items"] == {"val": 6, "test": 12}
    membership = split_of(read_splits(root / "splits" / "splits.csv"))
    index = read_index(root / "processed" / "videos.parquet").set_index("video_id")
    for _item_id, item in table.groupby("item_id"):
        assert len(item) == 2 and item["instrument"].nunique() == 2 and item["video_id"].nunique() == 2
        for row in item.itertuples():
            assert membership[row.video_id] == row.split and index.at[row.video_id, "kind"] == "solo"
            assert row.audio_sha256 == index.at[row.video_id, "audio_sha256"]
            assert row.start_frame + row.n_frames <= index.at[row.video_id, "n_frames"]
            audio, _ = sf.read(resolve_in_root(root, row.audio_path), start=row.start_sample, frames=row.n_samples)
            assert len(audio) == config.audio.clip_samples
            assert 10 * np.log10(np.mean(audio**2)) >= config.min_rms_db
            assert row.gain == pytest.approx(0.5)
    duets = pd.read_parquet(root / "mixtures" / "duets.parquet")
    assert len(duets) == summary["duet_items"]["test"] == 3  # guitar+violin, flute+violin, cello+guitar
    assert all(p.startswith("synth/stems/") for p in duets["stems_path"])


def test_silent_windows_are_never_chosen():
    config = MixturesConfig(audio=AUDIO)
    rng = np.random.default_rng(0)
    audio = np.zeros(4 * config.audio.clip_samples, dtype=np.float32)
    audio[2 * config.audio.clip_samples:] = 0.1 * rng.standard_normal(2 * config.audio.clip_samples)
    starts = sounding_starts(audio, config)
    assert len(starts) and starts.min() >= 2 * config.audio.clip_samples - config.audio.clip_samples // 2
    assert len(sounding_starts(np.zeros(3 * config.audio.clip_samples, dtype=np.float32), config)) == 0


def test_mixture_files_are_byte_identical_across_runs(bench_root, tmp_path):
    root, params, summary = bench_root
    again = tmp_path / "again"
    shutil.copytree(root / "synth", again / "synth")
    assert _build(again, params) == summary
    for name in ("mixtures.parquet", "duets.parquet", "benchmark.json"):
        assert (again / "mixtures" / name).read_bytes() == (root / "mixtures" / name).read_bytes()


def test_another_clip_keeps_the_identity_and_is_never_compared_as_the_same_item(bench_root, tmp_path):
    """A video replaced by another recording: the same benchmark (its items are drawn from the
    lists), but the items that use it get other keys, and against a published definition they are
    "audio differs", not held. A missing video's items are reported as missing."""
    root, params, summary = bench_root
    published = read_mixtures(root / "mixtures" / "mixtures.parquet")
    used = published["video_id"].iloc[0]
    uses = set(published.loc[published["video_id"] == used, "item_id"])
    changed = tmp_path / "changed"
    shutil.copytree(root / "synth", changed / "synth")
    # regenerate one used video with another seed: same id and layout, different content
    config = replace(SynthConfig.from_params(params), seed=12345)
    entry = next(e for e in read_manifest(changed / "synth" / "manifest.csv") if e.video_id == used)
    generate_video(VideoSpec(entry.video_id, entry.kind, entry.instruments), config, changed)
    other = _build(changed, params)
    assert other["benchmark_version"] == summary["benchmark_version"]
    assert other["coverage"]["tables_fingerprint"] != summary["coverage"]["tables_fingerprint"]
    ours = item_keys(published, read_mixtures(root / "mixtures" / "duets.parquet", DUET_COLUMNS))
    theirs = item_keys(read_mixtures(changed / "mixtures" / "mixtures.parquet"),
                       read_mixtures(changed / "mixtures" / "duets.parquet", DUET_COLUMNS))
    assert {item for item in ours if ours[item] != theirs[item]} == uses
    problems = compare_mixtures(published, DataRoot(changed))
    assert set(problems["video_id"]) == {used} and set(problems["problem"]) == {"audio differs"}
    definition = tmp_path / "definition.json"
    make_mixtures(params, root, publish=definition)
    rebuilt = make_mixtures(params, changed, definition=definition)
    assert {row["item_id"]: row["reason"] for row in rebuilt["coverage"]["not_held"]} == dict.fromkeys(uses, "audio differs")

    missing = tmp_path / "missing"
    shutil.copytree(root / "synth", missing / "synth")
    (missing / "synth" / "videos" / f"{used}.mp4").unlink()
    process_manifest(missing / "synth" / "manifest.csv", missing, ProcessConfig.from_params(params))
    problems = compare_mixtures(published, DataRoot(missing))
    assert set(problems["item_id"]) == uses and set(problems["problem"]) == {"missing"}


# An ffmpeg "of another build": the real binary, except that it encodes the frames' JPEGs at another
# quality (what another encoder's rounding does); the decoded audio it gives is the same.
OTHER_FFMPEG = """#!/bin/bash
args=(); previous=""
for arg in "$@"; do
  if [ "$previous" = "-q:v" ]; then arg=3; fi
  args+=("$arg"); previous="$arg"
done
exec {real} "${{args[@]}}"
"""


def test_benchmark_version_survives_another_ffmpeg_build(bench_root, tmp_path, monkeypatch):
    from musicbench import media, process

    root, params, summary = bench_root
    wrapper = tmp_path / "ffmpeg-other"
    wrapper.write_text(OTHER_FFMPEG.format(real=media.ffmpeg_exe()))
    wrapper.chmod(0o755)
    other = tmp_path / "other"
    shutil.copytree(root / "synth", other / "synth")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(wrapper))
    media.ffmpeg_exe.cache_clear(), process.ffmpeg_version.cache_clear()
    try:
        other_summary = _build(other, params)
    finally:
        monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
        media.ffmpeg_exe.cache_clear(), process.ffmpeg_version.cache_clear()
    ours, theirs = read_index(root / "processed" / "videos.parquet"), read_index(other / "processed" / "videos.parquet")
    assert (ours["frames_sha256"] != theirs["frames_sha256"]).all()  # every frame archive has other bytes
    # the same benchmark: items, recipe and decoded reference audio; the frames are fingerprinted apart
    assert other_summary["benchmark_version"] == summary["benchmark_version"]
    assert other_summary["frames_fingerprint"] != summary["frames_fingerprint"]
    assert DataRoot(other).frames_fingerprint() == other_summary["frames_fingerprint"]
    clips = compare_clips(DataRoot(root), DataRoot(other))
    assert len(clips) == 2 * 18 and set(clips["verdict"]) == {"same samples, frames re-encoded"}
    assert (clips["max_abs_diff"] == 0).all() and clips["frames_psnr_db"].between(25, 80).all()
    problems = compare_mixtures(read_mixtures(root / "mixtures" / "mixtures.parquet"), DataRoot(other))
    assert set(problems["problem"]) == {"frames differ"}


def test_a_decoders_last_bit_rounding_keeps_the_items_an_audible_change_does_not(bench_root, tmp_path):
    """Another ffmpeg build's AAC decoder rounds the last bit of some samples otherwise (measured: one
    24-bit step, 1.19e-7, on 144 of 280 clips of the default benchmark): the same items. A clip
    1 dB louder is another item of the same benchmark."""
    root, params, summary = bench_root
    used = read_mixtures(root / "mixtures" / "mixtures.parquet")["audio_path"].iloc[0]
    versions = {}
    for name, change in (("rounded", "lsb"), ("louder", "gain")):
        other = tmp_path / name
        shutil.copytree(root, other)
        audio, rate = sf.read(other / used, dtype="int32")
        if change == "lsb":  # one 24-bit step up or down on a tenth of the samples
            steps = np.random.default_rng(0).choice([-1, 0, 0, 0, 0, 0, 0, 0, 0, 1], size=audio.shape)
            audio = (audio + steps * 256).astype(np.int32)  # libsndfile's int32 holds the 24-bit sample in its top bits
        else:
            audio = (audio * 10 ** (1 / 20)).astype(np.int32)
        sf.write(other / used, audio, rate, subtype="PCM_24")
        rebuilt = make_mixtures(params, other)
        assert rebuilt["benchmark_version"] == summary["benchmark_version"]  # the identity never follows the audio
        versions[name] = rebuilt["coverage"]["tables_fingerprint"]
        clips = compare_clips(DataRoot(root), DataRoot(other))
        changed = clips[clips["video_id"] == Path(used).stem]
        expected = "samples differ by rounding, same frames" if change == "lsb" else "audio differs"
        assert len(changed) and set(changed["verdict"]) == {expected}, set(changed["verdict"])
        assert set(clips.loc[clips["video_id"] != Path(used).stem, "verdict"]) == {"identical"}
    assert versions["rounded"] == summary["coverage"]["tables_fingerprint"] != versions["louder"]


def test_loudness_contour():
    rng = np.random.default_rng(1)
    clip = (0.1 * rng.standard_normal(65535)).astype(np.float32)
    contour = loudness_contour(clip)
    assert len(contour.split()) == 8 and set(contour.split()) == {"-20"}
    assert loudness_contour(clip + rng.choice([-1, 0, 1], 65535) / 2**23) == contour
    assert loudness_contour(np.zeros(10000)) == "-100 -100"


def test_pcm_hash_follows_samples_not_container_bytes(tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(20000)).astype(np.float32)
    sf.write(tmp_path / "a.flac", audio, 11025, subtype="PCM_24", compression_level=0.0)
    sf.write(tmp_path / "b.flac", audio, 11025, subtype="PCM_24", compression_level=1.0)
    assert (tmp_path / "a.flac").read_bytes() != (tmp_path / "b.flac").read_bytes()
    assert pcm_sha256(tmp_path / "a.flac") == pcm_sha256(tmp_path / "b.flac")
    audio[12345] += 1e-3  # one sample more than a 24-bit step
    sf.write(tmp_path / "c.flac", audio, 11025, subtype="PCM_24")
    assert pcm_sha256(tmp_path / "c.flac") != pcm_sha256(tmp_path / "a.flac")
    sf.write(tmp_path / "d.flac", audio, 22050, subtype="PCM_24")
    assert pcm_sha256(tmp_path / "d.flac") != pcm_sha256(tmp_path / "c.flac")  # the rate is part of it


def test_mixtures_need_enough_instruments(bench_root, tmp_path):
    """4-source items need 4 instruments in the split; without the cello test video there are 3."""
    from musicbench.splits import write_splits

    root, params, _ = bench_root
    work = tmp_path / "four"
    shutil.copytree(root, work)
    rows = [r for r in read_splits(work / "splits" / "splits.csv") if not (r.instruments == "cello" and r.split == "test")]
    write_splits(rows, work / "splits" / "splits.csv")
    params4 = {**params, "mixtures": {**params["mixtures"], "n_sources": 4}}
    with pytest.raises(MusicbenchError, match="split 'test' of the split file has solo videos of 3 instrument"):
        make_mixtures(params4, work)
    for name in ("mixtures.parquet", "duets.parquet", "benchmark.json", "ground_truth.json"):  # a failed stage changes nothing
        assert (work / "mixtures" / name).read_bytes() == (root / "mixtures" / name).read_bytes()


def test_training_dataset_is_deterministic_and_works_with_workers(bench_root):
    from musicbench.dataset import MixAndSeparateDataset

    root, params, _ = bench_root
    index = read_index(root / "processed" / "videos.parquet")
    train = [r.video_id for r in read_splits(root / "splits" / "splits.csv") if r.split == "train" and r.kind == "solo"]
    make = lambda seed: MixAndSeparateDataset(index, root, train, AUDIO, n_sources=2, items_per_epoch=6, seed=seed)  # noqa: E731
    dataset = make(5)
    item = dataset[0]
    assert item["mixture"].shape == (65535,) and item["sources"].shape == (2, 65535)
    assert item["frames"].shape == (2, 3, 112, 112, 3) and item["frames"].dtype == torch.uint8
    assert item["labels"][0] != item["labels"][1]
    assert torch.allclose(item["mixture"], item["sources"].sum(0).clamp(-1, 1))
    assert all(float(s.pow(2).mean()) > 0 for s in item["sources"])
    direct = [make(5)[i] for i in range(6)]
    loader = torch.utils.data.DataLoader(make(5), batch_size=3, num_workers=2)
    batched = [b for b in loader]
    assert torch.equal(torch.cat([b["mixture"] for b in batched]), torch.stack([d["mixture"] for d in direct]))
    assert not torch.equal(make(6)[0]["mixture"], direct[0]["mixture"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0]["mixture"], direct[0]["mixture"])


def test_published_split_sets_and_their_leakage():
    ccol = load_published_splits("ccol", LISTS)
    leaks = find_leakage(ccol)
    test_ids = {r.video_id for r in ccol if r.split == "test"}
    val_ids = {r.video_id for r in ccol if r.split == "val"}
    assert len(test_ids) == 26 and len(test_ids & val_ids) == 24
    assert sum(1 for splits in leaks.values() if "test" in splits and "val" in splits) == 24
    iquery = load_published_splits("iquery_music", LISTS)
    ccol_test_in_train = {v for v, s in leaks.items() if s[0] == "train" and "test" in s}
    iquery_leaks = find_leakage(iquery)
    assert len(ccol_test_in_train) == 2 and ccol_test_in_train <= set(iquery_leaks)
    dsol = load_published_splits("dsol", LISTS)
    assert {r.split for r in dsol} == {"train", "val", "test"} and {r.kind for r in dsol} == {"solo", "duet"}
    for name in ("ccol", "iquery_music", "iquery_music21", "dsol"):
        committed = read_splits(REPO_ROOT / "manifests" / "splits" / f"published_{name}.csv")
        assert committed == load_published_splits(name, LISTS)


def test_committed_music_splits_match_the_convention():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    entries = [e for m in MUSIC_MANIFESTS for e in read_manifest(REPO_ROOT / m)]
    rows = assign_splits(entries, SplitsConfig.from_params(params))
    assert read_splits(REPO_ROOT / "manifests" / "splits" / "musicbench_music11.csv") == rows
    assert not find_leakage(rows)
    counts = pd.Series([r.split for r in rows if r.kind == "solo"]).value_counts()
    assert counts["train"] > counts["test"] > counts["val"] > 0


def test_a_malformed_params_file_is_a_one_line_error_with_its_position(tmp_path):
    from musicbench.config import load_params

    bad = tmp_path / "params.yaml"
    bad.write_text("synth:\n  seed: 1\n  instruments: [violin, cello\n  scale: 1\n")
    with pytest.raises(MusicbenchError, match=r"not valid YAML at line 4, column \d+: expected ','") as info:
        load_params(bad)
    assert "\n" not in str(info.value)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(MusicbenchError, match="must hold a mapping"):
        load_params(bad)
    with pytest.raises(MusicbenchError, match="cannot read params file"):
        load_params(tmp_path / "absent.yaml")


def test_the_cli_reports_a_bad_params_file_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from musicbench.cli import app

    bad = tmp_path / "params.yaml"
    bad.write_text("splits: {seed: 1\n")
    result = CliRunner().invoke(app, ["splits", "build", "--params", str(bad), "--root", str(tmp_path / "data")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: params file") and "not valid YAML at line" in lines[0]
