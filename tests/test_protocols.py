"""The papers' own test sets (`musicbench.protocols`): items built as each paper's code builds them,
checked against literal ports of that code, run end to end on an offline MUSIC-Synth fixture whose
videos carry the official YouTube ids (real synthesis, ffmpeg, model subprocess, scoring, board)."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.harness.oracles import oracle_outputs
from musicbench.hidden import hidden_paths
from musicbench.leaderboard import build_leaderboard
from musicbench.metrics.recipes import sop_recipe
from musicbench.process import ProcessConfig, process_manifest
from musicbench.protocols import (
    PROTOCOLS,
    build_protocol,
    get_protocol,
    protocol_root,
    protocol_slots,
    protocol_video_specs,
)
from musicbench.synth import SynthConfig, generate_synth
from tests.conftest import REPO_PARAMS, REPO_ROOT, run_cli

LISTS = REPO_ROOT / "manifests" / "published"
EXAMPLE_MODEL = REPO_ROOT / "baselines" / "motion_energy.py"


def fixture_params() -> dict:
    params = json.loads(json.dumps(REPO_PARAMS))
    params["synth"].update(seed=7, width=128, height=96, fps=8, jobs=2)
    params["process"]["jobs"] = 2
    return params


def make_fixture(root: Path, specs: list) -> Path:
    """A data root holding MUSIC-Synth videos under official ids (`specs`), processed."""
    params = fixture_params()
    generate_synth(SynthConfig.from_params(params), root, specs=specs)
    process_manifest(DataRoot(root).manifest_path("synth"), root, ProcessConfig.from_params(params))
    return root


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    """The videos of iQuery-MUSIC's first two pairs and of CCoL's first mixture, at their listed lengths,
    with both protocols built."""
    specs = {spec.video_id: spec for name, items in (("iquery-music", 2), ("ccol", 1))
             for spec in protocol_video_specs(name, LISTS, items)}
    root = make_fixture(tmp_path_factory.mktemp("protocol_root"), list(specs.values()))
    for name in ("iquery-music", "ccol"):
        build_protocol(fixture_params(), root, name, LISTS)
    return root


# ------------------------------------------------------------------------------- the papers' code, ported

def reference_rows(path: Path) -> list[list[str]]:
    """`BaseDataset.__init__`'s list: csv.reader rows with at least 2 fields."""
    with open(path) as handle:
        return [row for row in csv.reader(handle, delimiter=",") if len(row) >= 2]


def reference_infos(sample_row: list[str], counts_rows: list[list[str]]) -> list[list[str]]:
    """The test branch of iQuery's and CCoL's ``MUSICMixDataset.__getitem__``: each entry, stripped of
    spaces, matched as an exact field of the first row of the counts file that has it."""
    infos = []
    for entry in sample_row:
        sample = entry.replace(" ", "")
        infos.append(next(data for data in counts_rows if sample in data))
    return infos


def reference_load_audio(audio_raw: np.ndarray, center_frame: int, fps: float = 1.0, aud_rate: int = 11025,
                         aud_len: int = 65535) -> np.ndarray:
    """``BaseDataset._load_audio`` (iQuery, CCoL) for a file already at `aud_rate`, split != train."""
    audio = np.zeros(aud_len, dtype=np.float32)
    center_timestamp = (center_frame - 0.5) / fps
    len_raw = audio_raw.shape[0]
    center = int(center_timestamp * aud_rate)
    start = max(0, center - aud_len // 2)
    end = min(len_raw, center + aud_len // 2)
    audio[aud_len // 2 - (center - start): aud_len // 2 + (end - center)] = audio_raw[start:end]
    audio[audio > 1.] = 1.
    audio[audio < -1.] = -1.
    return audio


@pytest.mark.parametrize("name, pairs, counts, sounding, n_items", [
    ("iquery-music", "splits_iquery_JiabenChen/testsepmusic.csv", "splits_iquery_JiabenChen/testmusic.csv", (0, 1), 250),
    ("iquery-music21", "splits_iquery_JiabenChen/testsepmusic21.csv", "splits_iquery_JiabenChen/testmusic21.csv", (0, 1), 587),
    ("ccol", "splits_ccol_YapengTian/test_sep.csv", "splits_ccol_YapengTian/test.csv", (0, 2), 260),
])
def test_protocol_items_are_the_papers_test_items(name, pairs, counts, sounding, n_items):
    slots = protocol_slots(get_protocol(name), LISTS)
    assert slots["item_id"].nunique() == n_items
    counts_rows = reference_rows(LISTS / counts)
    for number, row in enumerate(reference_rows(LISTS / pairs)):
        item = slots[slots["item_id"] == f"{name}-{number:05d}"].sort_values("source_index")
        infos = reference_infos(row, counts_rows)
        assert len(item) == len(sounding)
        for clip, n in zip(item.itertuples(index=False), sounding):
            path, _, count = infos[n]
            centre = int((int(count) // 2 + 1 - 0.5) / 1.0 * 11025)
            assert (clip.instrument, clip.video_id) == tuple(path.split("/")[1:3])[:1] + (Path(path).stem,)
            assert clip.start_sample == centre - 65535 // 2 and clip.n_samples == 65534  # the buffer's last sample is never filled
            assert clip.gain == 0.5  # `_mix_n_and_stft`: every mixed source / 2


def test_clips_and_mixture_equal_the_papers_buffers(fixture_root):
    """Each source as iQuery's / CCoL's `_load_audio` gives it from the same audio, divided by N."""
    data = DataRoot(fixture_root)
    index = data.read_index().set_index("video_id")
    for name, counts in (("iquery-music", "splits_iquery_JiabenChen/testmusic.csv"), ("ccol", "splits_ccol_YapengTian/test.csv")):
        counts_rows = {Path(row[0]).stem: int(row[2]) for row in reference_rows(LISTS / counts)}
        items = protocol_root(fixture_root, name).read_verified_items("test")
        assert items
        for item in items:
            buffers = []
            for video_id in item.video_ids:
                raw = sf.read(data.resolve(index.loc[video_id, "audio_path"]), dtype="float32")[0]
                buffers.append(reference_load_audio(raw, counts_rows[video_id] // 2 + 1))
            buffers = np.stack(buffers)
            assert np.all(buffers[:, -1] == 0)  # the reference's last sample: never filled, left out here
            np.testing.assert_allclose(item.references, buffers[:, :-1] / 2, atol=1e-7)
            np.testing.assert_allclose(item.mixture, (buffers[:, :-1] / 2).sum(axis=0), atol=1e-7)


# ------------------------------------------------------------------------------- identity and coverage

def test_coverage_is_the_items_whose_videos_are_held_and_the_identity_does_not_depend_on_it(fixture_root, tmp_path):
    doc = DataRoot(fixture_root, protocol="iquery-music").definition()
    slots = protocol_slots(get_protocol("iquery-music"), LISTS)
    held_videos = set(DataRoot(fixture_root).read_index()["video_id"])
    expected = {item for item, rows in slots.groupby("item_id") if set(rows["video_id"]) <= held_videos}
    table = pd.read_parquet(fixture_root / "protocols" / "iquery-music" / "mixtures.parquet")
    assert set(table["item_id"]) == expected and len(expected) >= 2
    cover = doc["coverage"]
    assert cover["tracks"]["mixtures"]["test"] == {"items": 250, "held": len(expected)}
    assert {row["reason"] for row in cover["not_held"]} == {"video not held"}
    assert doc["protocol"]["name"] == "iquery-music" and doc["benchmark_version"].startswith("mb-")
    assert doc["benchmark_version"] != DataRoot(fixture_root, protocol="ccol").version()

    # a lab lacking one of the videos: exactly its items go, the identity stays
    smaller = tmp_path / "smaller"
    shutil.copytree(fixture_root, smaller, ignore=shutil.ignore_patterns("protocols", "score_cache"))
    index = pd.read_parquet(smaller / "processed" / "videos.parquet")
    dropped = "3-zT9mN8Lio"
    index[index["video_id"] != dropped].to_parquet(smaller / "processed" / "videos.parquet")
    other = build_protocol(fixture_params(), smaller, "iquery-music", LISTS)
    assert other["benchmark_version"] == doc["benchmark_version"]
    lost = {item for item, rows in slots.groupby("item_id") if dropped in set(rows["video_id"])}
    kept = pd.read_parquet(smaller / "protocols" / "iquery-music" / "mixtures.parquet")
    assert set(kept["item_id"]) == expected - lost and expected & lost
    same = kept.merge(table, on=["item_id", "source_index"], suffixes=("", "_full"))
    assert (same["clip_loudness_db"] == same["clip_loudness_db_full"]).all()
    assert other["protocol"]["train_videos"] == []  # no split file: nothing to say

    # a run on the smaller data root stays trusted on the board of the fuller one (same version)
    runs = tmp_path / "runs"
    summary = evaluate(None, protocol_root(smaller, "iquery-music"), runs / "smaller-ibm", oracle="ibm")
    assert summary["paper_recipe"]["n_items"] == len(expected - lost)
    board = build_leaderboard(runs, tmp_path / "board", fixture_root)
    row = board["tables"][0]["rows"][0]
    assert row["rescored"] and not row["untrusted"], row["problems"]
    assert row["paper_recipe"]["n_items"] == len(expected) and row["paper_recipe"]["n_valid"] == len(expected - lost)

    # a split file that trains on one of its videos: said at build time (and on the board)
    from musicbench.splits import SplitRow, write_splits

    write_splits([SplitRow("train", "solo", "flute", "kbTy_5o6AB4"), SplitRow("test", "solo", "cello", "-Gdh8N_KpLY")],
                 smaller / "splits" / "splits.csv")
    assert build_protocol(fixture_params(), smaller, "iquery-music", LISTS)["protocol"]["train_videos"] == ["kbTy_5o6AB4"]


def test_validate_checks_the_protocols_tables(fixture_root, tmp_path):
    from musicbench.process import validate_index

    root = tmp_path / "root"
    shutil.copytree(fixture_root, root, ignore=shutil.ignore_patterns("score_cache"))
    assert validate_index(DataRoot(root).index_path, root) == []
    table = root / "protocols" / "ccol" / "mixtures.parquet"
    pd.read_parquet(table).iloc[:-1].to_parquet(table)  # a row gone: the tables no longer give the fingerprint
    problems = validate_index(DataRoot(root).index_path, root)
    assert [problem.path for problem in problems] == ["protocols/ccol"] and "tables fingerprint" in problems[0].detail
    result = run_cli("evaluate", "--oracle", "ibm", "--protocol", "ccol", "--root", root, "--out", tmp_path / "run", cwd=REPO_ROOT)
    assert result.returncode != 0 and "tables fingerprint" in result.stderr and not (tmp_path / "run").exists()


def test_a_protocol_fixture_is_added_to_the_synth_manifest(tmp_path):
    from musicbench.manifest import read_manifest
    from musicbench.protocols import generate_protocol_videos

    root = tmp_path / "root"
    params = fixture_params()
    first = generate_protocol_videos(params, root, "iquery-music", LISTS, 1)
    second = generate_protocol_videos(params, root, "ccol", LISTS, 1)
    listed = [entry.video_id for entry in read_manifest(root / "synth" / "manifest.csv")]
    assert sorted(listed) == sorted({entry.video_id for entry in (*first, *second)}) and len(listed) == len(set(listed))
    with pytest.raises(MusicbenchError, match="--items must be at least 1"):
        generate_protocol_videos(params, root, "ccol", LISTS, 0)
    own = tmp_path / "own"
    generate_synth(SynthConfig.from_params({**params, "synth": {**params["synth"], "instruments": ["flute"],
                                                                "solo_per_instrument": 1, "duets_per_pair": 0}}), own)
    with pytest.raises(MusicbenchError, match="lists MUSIC-Synth's own videos"):
        generate_protocol_videos(params, own, "ccol", LISTS, 1)
    params["dataset"]["source"] = "music"
    with pytest.raises(MusicbenchError, match="dataset.source is music"):
        generate_protocol_videos(params, root, "ccol", LISTS, 1)


def test_a_video_shorter_than_its_listed_length_is_too_short(tmp_path):
    spec = protocol_video_specs("iquery-music", LISTS, 1)
    short = [type(s)(s.video_id, s.kind, s.instruments, 30.0 if s.video_id == "kbTy_5o6AB4" else s.duration) for s in spec]
    root = make_fixture(tmp_path / "root", short)
    doc = build_protocol(fixture_params(), root, "iquery-music", LISTS)
    assert doc["coverage"]["tracks"]["mixtures"]["test"]["held"] == 0
    assert doc["coverage"]["videos_not_held"]["kbTy_5o6AB4"] == "video too short"


# ------------------------------------------------------------------------------- bad input

def test_a_protocol_file_with_an_unknown_id_is_one_line(tmp_path):
    lists = tmp_path / "published"
    shutil.copytree(LISTS, lists)
    pairs = lists / "splits_iquery_JiabenChen" / "testsepmusic.csv"
    lines = pairs.read_text().splitlines()
    for replacement, expected in (("/flute/AAAAAAAAAAA.wav", "in no official MUSIC list"),
                                  ("/cello/kbTy_5o6AB4.wav", "listed as solo 'flute'"),
                                  ("/flute/nothing", "is not an entry like")):
        pairs.write_text("\n".join([f"{replacement}, {lines[0].split(', ')[1]}", *lines[1:]]) + "\n")
        with pytest.raises(MusicbenchError) as caught:
            protocol_slots(get_protocol("iquery-music"), lists)
        assert expected in str(caught.value) and "testsepmusic.csv:1" in str(caught.value)
        assert "\n" not in str(caught.value)
    # listed, but without a frame count in the counts file
    pairs.write_text("\n".join(["/violin/ICKS19qRRd4.wav, /flute/kbTy_5o6AB4.wav", *lines[1:]]) + "\n")
    with pytest.raises(MusicbenchError, match="has no frame count in"):
        protocol_slots(get_protocol("iquery-music"), lists)
    # a row of another shape than the paper's, an empty file, a count out of range: one line each
    for text, expected in ((lines[0] + ", /flute/3-zT9mN8Lio.wav\n", "expected 2 entries"), ("", "has no row"),
                           ("\x00\xff\n", "not UTF-8 text")):
        pairs.write_bytes(text.encode("latin-1"))
        with pytest.raises(MusicbenchError, match=expected):
            protocol_slots(get_protocol("iquery-music"), lists)
    pairs.write_text("\n".join(lines) + "\n")
    counts = lists / "splits_iquery_JiabenChen" / "testmusic.csv"
    counts.write_text(counts.read_text().replace(",122\n", ",-122\n", 1))
    with pytest.raises(MusicbenchError, match="with a count of 1 to"):
        protocol_slots(get_protocol("iquery-music"), lists)


def test_a_bad_protocol_file_leaves_the_built_protocol_as_it_was(fixture_root, tmp_path):
    lists = tmp_path / "published"
    shutil.copytree(LISTS, lists)
    (lists / "splits_iquery_JiabenChen" / "testsepmusic.csv").write_text("")
    before = {path.name: path.read_bytes() for path in (fixture_root / "protocols" / "iquery-music").iterdir()}
    result = run_cli("protocol", "build", "iquery-music", "--root", fixture_root, "--lists", lists, cwd=REPO_ROOT)
    assert result.returncode != 0 and "has no row" in result.stderr
    assert {path.name: path.read_bytes() for path in (fixture_root / "protocols" / "iquery-music").iterdir()} == before


def test_bad_protocol_names_and_splits_are_one_line_errors(fixture_root, tmp_path):
    result = run_cli("protocol", "build", "nosuch", "--root", tmp_path, cwd=REPO_ROOT)
    assert result.returncode != 0 and "unknown protocol 'nosuch'" in result.stderr
    assert "iquery-music" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("evaluate", "--oracle", "ibm", "--protocol", "iquery-music21", "--root", fixture_root,
                     "--out", tmp_path / "run", cwd=REPO_ROOT)
    assert result.returncode != 0 and "musicbench protocol build iquery-music21" in result.stderr
    result = run_cli("evaluate", "--oracle", "ibm", "--protocol", "iquery-music", "--split", "val", "--root", fixture_root,
                     "--out", tmp_path / "run", cwd=REPO_ROOT)
    assert result.returncode != 0 and "test items only" in result.stderr
    assert not (tmp_path / "run").exists()
    with pytest.raises(MusicbenchError, match="unknown protocol"):
        protocol_video_specs("sop", LISTS)
    assert set(PROTOCOLS) >= {"iquery-music", "iquery-music21", "ccol"}


# ------------------------------------------------------------------------------- runs

PEEKING_MODEL = textwrap.dedent('''
    import numpy as np

    class Peeking:
        def __init__(self, table):
            self.table = table

        def separate(self, mixture, frames, sample_rate):
            try:
                open(self.table, "rb").read(4)
            except OSError:
                return np.stack([mixture / len(frames)] * len(frames)).astype(np.float32)
            raise RuntimeError("read the protocol's item table")

    def load_model(table, device="cpu"):
        return Peeking(table)
''')


def test_a_model_runs_confined_on_a_protocol_and_lands_in_its_own_board_table(fixture_root, tmp_path):
    runs = tmp_path / "runs"
    table = fixture_root / "protocols" / "iquery-music" / "mixtures.parquet"
    assert any(Path(table).is_relative_to(path) for path in hidden_paths(fixture_root).paths)
    model = tmp_path / "peeking.py"
    model.write_text(PEEKING_MODEL)
    result = run_cli("evaluate", model, "--protocol", "iquery-music", "--root", fixture_root, "--out", runs / "peeking",
                     "--option", f"table={table}", "--device", "cpu", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads((runs / "peeking" / "summary.json").read_text())
    held = DataRoot(fixture_root, protocol="iquery-music").definition()["coverage"]["tracks"]["mixtures"]["test"]["held"]
    assert summary["n_scored"] == summary["n_items"] == held  # it could not read the table, on any item
    assert summary["protocol"] == "iquery-music"
    assert summary["benchmark_version"] == DataRoot(fixture_root, protocol="iquery-music").version()
    provenance = json.loads((runs / "peeking" / "provenance.json").read_text())
    assert provenance["protocol"] == "iquery-music" and provenance["confined"] is True
    items = pd.read_parquet(runs / "peeking" / "items.parquet")
    assert set(items["item_id"]) == set(pd.read_parquet(table)["item_id"])
    recipe = summary["paper_recipe"]
    assert recipe["recipe"] == "sop" and recipe["n_items"] == held and recipe["n_not_held"] == 250 - held
    assert abs(recipe["nsdr"]) < 1e-6  # the mixture halved: no better than the mixture, by either recipe

    # the ideal binary mask, by the paper's recipe: its `calc_metrics` over the same items, computed here
    ibm = evaluate(None, protocol_root(fixture_root, "iquery-music"), runs / "oracle-ibm", oracle="ibm")
    built = protocol_root(fixture_root, "iquery-music").read_verified_items("test")
    expected = sop_recipe([(item.references, oracle_outputs(item, "ibm")[0], item.mixture) for item in built])
    assert ibm["paper_recipe"]["sdr"] == pytest.approx(expected["sdr"], abs=1e-9)
    assert ibm["paper_recipe"]["nsdr"] == pytest.approx(expected["nsdr"], abs=1e-9)
    assert ibm["paper_recipe"]["nsdr"] != pytest.approx(ibm["metrics"]["nsdr"]["mean"], abs=1e-3)  # 65280 samples, clipped

    # CCoL on the same data root: another version, another table
    assert run_cli("evaluate", "--oracle", "mixture", "--protocol", "ccol", "--root", fixture_root,
                   "--out", runs / "ccol-mixture", cwd=REPO_ROOT).returncode == 0
    board = build_leaderboard(runs, tmp_path / "board", fixture_root)
    tables = {table["protocol"]["name"]: table for table in board["tables"]}
    assert set(tables) == {"iquery-music", "ccol"}
    assert tables["iquery-music"]["protocol"]["paper"].startswith("iQuery")
    rows = {row["name"]: row for row in tables["iquery-music"]["rows"]}
    assert rows["peeking"]["rescored"] and not rows["peeking"]["untrusted"]
    assert rows["oracle-ibm"]["paper_recipe"]["nsdr"] == pytest.approx(expected["nsdr"], abs=1e-9)
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "## Protocol iquery-music, version" in markdown and "By the paper's recipe" in markdown

    # a run that drops items: its paper-recipe figure still counts every item the data root holds
    dropped = runs / "dropped"
    shutil.copytree(runs / "peeking", dropped)
    items = pd.read_parquet(dropped / "items.parquet")
    last = sorted(set(items["item_id"]))[-1]
    items[items["item_id"] != last].to_parquet(dropped / "items.parquet")
    inference = pd.read_parquet(dropped / "inference.parquet")
    inference[inference["item_id"] != last].to_parquet(dropped / "inference.parquet")
    (dropped / "estimates" / f"{last}.npy").unlink()
    claimed = json.loads((dropped / "summary.json").read_text())
    claimed.pop("paper_recipe")
    claimed["name"] = "dropped"
    for key in ("n_items", "n_scored"):
        claimed[key] -= 1
    (dropped / "summary.json").write_text(json.dumps(claimed))
    board = build_leaderboard(runs, tmp_path / "board", fixture_root)
    rows = {row["name"]: row for table in board["tables"] for row in table["rows"]}
    assert rows["dropped"]["paper_recipe"]["n_items"] == held and rows["dropped"]["paper_recipe"]["n_valid"] == held - 1
    assert rows["dropped"]["rank"] is None
    shutil.rmtree(dropped)

    # a summary that claims another paper-recipe figure is caught against the estimates
    claimed = json.loads((runs / "peeking" / "summary.json").read_text())
    claimed["paper_recipe"]["sdr"] += 1.0
    (runs / "peeking" / "summary.json").write_text(json.dumps(claimed))
    board = build_leaderboard(runs, tmp_path / "board", fixture_root)
    rows = {row["name"]: row for table in board["tables"] for row in table["rows"]}
    assert "paper_recipe.sdr" in rows["peeking"]["untrusted"] and rows["peeking"]["rank"] is None

    # a broken protocol folder leaves that protocol out of the board, not the board
    (fixture_root / "protocols" / "ccol" / "benchmark.json").rename(tmp_path / "ccol.json")
    (fixture_root / "protocols" / "ccol" / "benchmark.json").write_text("{garbage")
    try:
        board = build_leaderboard(runs, tmp_path / "board", fixture_root)
    finally:
        (tmp_path / "ccol.json").replace(fixture_root / "protocols" / "ccol" / "benchmark.json")
    assert any("Protocol ccol is left out" in warning for warning in board["warnings"])
    assert any(table.get("protocol", {}).get("name") == "iquery-music" for table in board["tables"])


def test_export_and_score_take_a_protocol(fixture_root, tmp_path):
    out = tmp_path / "export"
    result = run_cli("export", out, "--protocol", "ccol", "--root", fixture_root, "--runs", tmp_path / "runs", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "--split test --protocol ccol" in (out / "README.txt").read_text()
    table = pd.read_parquet(fixture_root / "protocols" / "ccol" / "mixtures.parquet")
    exported = sorted(path.name for path in out.iterdir() if path.is_dir())
    assert exported == sorted(set(table["item_id"]))
    estimates = tmp_path / "estimates"
    for item in exported:
        mixture, rate = sf.read(out / item / "mixture.wav", dtype="float32")
        (estimates / item).mkdir(parents=True)
        for k in range(2):
            sf.write(estimates / item / f"source{k}.wav", mixture / 2, rate, subtype="FLOAT")
    result = run_cli("score", estimates, "--name", "halves", "--protocol", "ccol", "--root", fixture_root,
                     "--out", tmp_path / "runs" / "halves", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "halves" / "summary.json").read_text())
    assert summary["protocol"] == "ccol" and summary["n_scored"] == len(exported)
    assert summary["paper_recipe"]["n_items"] == len(exported)
    # one protocol's estimates are never another's: its item ids carry its name
    result = run_cli("score", estimates, "--name", "crossed", "--protocol", "iquery-music", "--root", fixture_root,
                     "--out", tmp_path / "runs" / "crossed", cwd=REPO_ROOT)
    assert result.returncode != 0 and "holds no folder of a 'test' mixture item (e.g. iquery-music-00000/)" in result.stderr


def test_a_protocol_folder_under_another_name_is_refused(fixture_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(fixture_root, root, ignore=shutil.ignore_patterns("score_cache"))
    shutil.rmtree(root / "protocols" / "ccol")
    shutil.copytree(root / "protocols" / "iquery-music", root / "protocols" / "ccol")
    result = run_cli("evaluate", "--oracle", "ibm", "--protocol", "ccol", "--root", root, "--out", tmp_path / "run", cwd=REPO_ROOT)
    assert result.returncode != 0 and "is not the definition of protocol ccol" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    from musicbench.process import validate_index

    problems = validate_index(DataRoot(root).index_path, root)
    assert [problem.path for problem in problems] == ["protocols/ccol"]
    # renaming the protocol inside its definition is not enough: its items are iQuery's
    document = json.loads((root / "protocols" / "ccol" / "benchmark.json").read_text())
    document["protocol"]["name"] = document["recipe"]["protocol"] = "ccol"
    (root / "protocols" / "ccol" / "benchmark.json").write_text(json.dumps(document))
    with pytest.raises(MusicbenchError, match="is not the definition of protocol ccol"):
        protocol_root(root, "ccol")


def test_sop_val_is_the_sound_of_pixels_val_recipe_on_the_test_split(bench_root, tmp_path):
    """Items as `MUSICMixDataset.__getitem__` (split val) draws them from a list, clips as its
    `_load_audio` cuts them, on a copy of the small benchmark's data root."""
    import random

    from musicbench.splits import read_stage_split_rows

    source, params, _ = bench_root
    root = tmp_path / "root"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("score_cache"))
    doc = build_protocol(params, root, "sop-val", LISTS)
    listed = [row.video_id for row in read_stage_split_rows(root) if row.split == "test" and row.kind == "solo"]
    data = DataRoot(root)
    index = data.read_index().set_index("video_id")
    items = {item.item_id: item for item in protocol_root(root, "sop-val").read_verified_items("test")}
    assert doc["coverage"]["tracks"]["mixtures"]["test"] == {"items": len(listed), "held": len(items)} and items
    same = set()
    for index_number, first in enumerate(listed):
        random.seed(index_number)  # as the reference does, on the global generator
        partner = listed[random.randint(0, len(listed) - 1)]
        if partner == first:  # one clip twice: not held, and said so
            same.add(f"sop-val-{index_number:05d}")
            continue
        item = items[f"sop-val-{index_number:05d}"]
        assert item.video_ids == [first, partner]
        for k, video_id in enumerate(item.video_ids):
            raw = sf.read(data.resolve(index.loc[video_id, "audio_path"]), dtype="float32")[0]
            count = len(raw) * 8 // 11025  # its frames at 8 fps
            buffer = reference_load_audio(raw, count // 2, fps=8)
            np.testing.assert_allclose(item.references[k], buffer[:-1] / 2, atol=1e-7)
    assert same and {row["item_id"] for row in doc["coverage"]["not_held"] if row["reason"] == "one clip twice"} == same
    assert len(items) == len(listed) - len(same)
    summary = evaluate(None, protocol_root(root, "sop-val"), tmp_path / "runs" / "ibm", oracle="ibm")
    assert summary["protocol"] == "sop-val" and summary["paper_recipe"]["n_items"] == len(items)
    # beside a run of the main benchmark: the current table first, the protocol's apart
    main = evaluate(EXAMPLE_MODEL, root, tmp_path / "runs" / "motion_energy", device="cpu")
    assert "protocol" not in main and main["benchmark_version"] == DataRoot(root).version()
    board = build_leaderboard(tmp_path / "runs", tmp_path / "board", root)
    assert [table.get("protocol", {}).get("name") for table in board["tables"]] == [None, "sop-val"]
    assert board["tables"][0]["current"] and board["tables"][0]["rows"][0]["demo"]
    assert "paper_recipe" not in board["tables"][0]["rows"][0]
    protocol_row = board["tables"][1]["rows"][0]
    assert protocol_row["rescored"] and "protocol sop-val" in protocol_row["demo_note"]
    assert not any("benchmark versions" in warning for warning in board["warnings"])  # a protocol is apart, not another version

    # a main run that claims to be a protocol run relabels nothing and is untrusted
    liar = tmp_path / "runs" / "liar"
    shutil.copytree(tmp_path / "runs" / "motion_energy", liar)
    for name in ("summary.json", "provenance.json"):
        document = json.loads((liar / name).read_text())
        document.update(protocol="ccol", name="liar")
        (liar / name).write_text(json.dumps(document))
    board = build_leaderboard(tmp_path / "runs", tmp_path / "board", root)
    assert [table.get("protocol", {}).get("name") for table in board["tables"]] == [None, "sop-val"]
    rows = {row["name"]: row for row in board["tables"][0]["rows"]}
    assert "names protocol 'ccol'" in rows["liar"]["untrusted"] and rows["liar"]["rank"] is None
    assert rows["motion_energy"]["rank"] == 1
    with pytest.raises(MusicbenchError, match="lists no videos of its own"):
        protocol_video_specs("sop-val", LISTS)
