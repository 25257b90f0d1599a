"""Methods that run elsewhere: `musicbench export` writes the items as plain files, a model runs on
them outside the harness, `musicbench score` scores its estimate files; the numbers are the
harness's own (real model, real files, real scoring)."""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.export import export_items, score_estimates
from musicbench.leaderboard import build_leaderboard
from tests.conftest import REPO_ROOT, run_cli

EXAMPLE_MODEL = REPO_ROOT / "baselines" / "motion_energy.py"
LIMIT = 3
METRICS = ["sdr", "sir", "sar", "nsdr", "si_sdr", "si_sdri", "ciou", "pointing_hit"]

# The example model, loaded from a file that first checks what the model process has imported.
WRAPPED_MODEL = textwrap.dedent('''
    import importlib.util, sys
    assert "musicbench" not in sys.modules, "the model process imported musicbench"
    assert importlib.util.find_spec("musicbench") is None, "musicbench is importable in this interpreter"
    spec = importlib.util.spec_from_file_location("motion_energy", {model!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    load_model = module.load_model
''')


def isolated_python(base: Path, packages: dict[str, str]) -> Path:
    """A venv's python (no system site packages) that has `packages` ({import name: distribution
    name}), linked from this interpreter's via a .pth file, and nothing else."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", base / "venv"], check=True, timeout=120)
    python = base / "venv" / "bin" / "python"
    linked = base / "packages"
    linked.mkdir()
    for module, dist in packages.items():
        folder = Path(importlib.import_module(module).__file__).parent
        version = importlib.metadata.version(dist)
        for entry in [folder, *folder.parent.glob(f"{dist}.libs"), *folder.parent.glob(f"{dist}-{version}.dist-info")]:
            (linked / entry.name).symlink_to(entry)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True,
                          capture_output=True, text=True).stdout.strip()
    (Path(site) / "linked.pth").write_text(f"{linked}\n")
    # code that an environment runs at startup, before any model file: it says what it can see of the folder
    # named in <venv>/probe_target (a file, not the environment: the model process gets a minimal one)
    (Path(site) / "probe.pth").write_text('import os, sys; t = os.path.join(sys.prefix, "probe_target"); os.path.exists(t) '
                                          'and sys.stderr.write("probe sees %r\\n" % sorted(os.listdir(open(t).read())))\n')
    return python


@pytest.fixture(scope="module")
def numpy_only_python(tmp_path_factory) -> Path:
    """A venv's python that has numpy and nothing else."""
    return isolated_python(tmp_path_factory.mktemp("numpy_only"), {"numpy": "numpy"})


@pytest.fixture(scope="module")
def numpy_pillow_python(tmp_path_factory) -> Path:
    """A venv's python that has numpy and Pillow and nothing else (what the shipped runner needs)."""
    return isolated_python(tmp_path_factory.mktemp("numpy_pillow"), {"numpy": "numpy", "PIL": "pillow"})


@pytest.fixture(scope="module")
def exported(bench_root, numpy_pillow_python, tmp_path_factory):
    """(data root, export folder, estimate folder) of the example model run on exported items."""
    root, _, _ = bench_root
    base = tmp_path_factory.mktemp("elsewhere")
    result = run_cli("export", base / "items", "--root", root, "--limit", LIMIT, "--runs", base / "runs")
    assert result.returncode == 0, result.stderr
    # the shipped runner, as two jobs of a job array: one given its shard, one under torchrun's variables,
    # in an environment with numpy and Pillow only (no musicbench, no soundfile)
    runner = [numpy_pillow_python, base / "items" / "run_model.py", EXAMPLE_MODEL, base / "items", base / "estimates"]
    first = subprocess.run([*runner, "--shard", "0/2"], capture_output=True, text=True, timeout=300, cwd=base)
    second = subprocess.run(runner, capture_output=True, text=True, timeout=300, cwd=base,
                            env={**os.environ, "RANK": "1", "WORLD_SIZE": "2"})
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert f"{LIMIT} of {LIMIT} items (shard 0/2)" in first.stderr and f"{LIMIT} of {LIMIT} items (shard 1/2)" in second.stderr
    return root, base / "items", base / "estimates"


def test_export_writes_what_the_harness_passes(exported):
    root, items_dir, _ = exported
    data = DataRoot(root)
    table = pd.read_parquet(items_dir / "items.parquet")
    assert table.equals(pd.read_csv(items_dir / "items.csv"))
    assert list(table["track"]) == ["mixtures"] * LIMIT + ["duets"] * LIMIT
    labels = pd.read_csv(items_dir / "labels.csv")
    for track in ("mixtures", "duets"):
        for item in data.iter_items("test", LIMIT, track):
            item_dir = items_dir / item.item_id
            mixture, rate = sf.read(item_dir / "mixture.wav", dtype="float32")
            assert rate == item.sample_rate == 11025 and sf.info(item_dir / "mixture.wav").subtype == "FLOAT"
            np.testing.assert_array_equal(mixture, item.mixture)  # bit for bit
            folders = ["frames"] if track == "duets" else [f"source{k}" for k in range(len(item.frames))]
            for folder, video in zip(folders, item.frames):
                files = sorted((item_dir / folder).glob("*.jpg"))
                assert [f.name for f in files] == [f"{i:06d}.jpg" for i in range(len(video))]
                decoded = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
                np.testing.assert_array_equal(decoded, video)
            row = table.set_index("item_id").loc[item.item_id]
            assert (row["n_sources"], row["n_samples"], row["n_frames"], row["fps"]) == (
                len(item.references), len(item.mixture), item.frames.shape[1], 8.0)
            if track == "duets":
                assert json.loads((item_dir / "points.json").read_text()) == [list(p) for p in item.points]
                assert item.item_id not in set(labels["item_id"])
            else:
                assert list(labels[labels["item_id"] == item.item_id]["instrument"]) == item.instruments
                assert not (item_dir / "points.json").exists()
    readme = (items_dir / "README.txt").read_text()
    assert "EST_DIR/<item>/source<k>.wav" in readme and data.version() in readme


def test_export_stays_out_of_the_data_root_and_runs(bench_root, tmp_path):
    root, _, _ = bench_root
    runs = tmp_path / "runs"
    for bad in (root / "exported", root.parent, runs / "exported"):
        with pytest.raises(MusicbenchError, match="overlaps"):
            export_items(root, bad, limit=1, protected=(runs,))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(MusicbenchError, match="not empty"):
        export_items(root, tmp_path / "full", limit=1)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    result = run_cli("export", root / "mixtures" / "x", "--root", root, "--limit", 1)
    assert result.returncode == 2 and result.stderr.startswith("error: export folder") and len(result.stderr.splitlines()) == 1
    assert not (root / "mixtures" / "x").exists()


def test_the_isolated_interpreters_have_only_their_packages(numpy_only_python, numpy_pillow_python, tmp_path):
    check = subprocess.run([numpy_only_python, "-c", "import numpy; print(numpy.__version__); import musicbench"],
                           capture_output=True, text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert check.stdout.strip() == np.__version__
    assert "No module named 'musicbench'" in check.stderr
    for module in ("musicbench", "soundfile", "torch"):
        check = subprocess.run([numpy_pillow_python, "-c", f"import numpy, PIL; import {module}"], capture_output=True, text=True,
                               cwd=tmp_path, env={"PATH": os.environ["PATH"]})
        assert f"No module named '{module}'" in check.stderr, check.stderr


def test_the_same_number_in_and_out_of_the_harness(exported, numpy_only_python, tmp_path, monkeypatch, capfd):
    """evaluate, evaluate --python (a venv with numpy only) and export → run elsewhere → score give
    the same scores for the same model."""
    root, _, estimates = exported
    runs = tmp_path / "runs"
    inside = evaluate(EXAMPLE_MODEL, root, runs / "inside", device="cpu", limit=LIMIT, name="inside")
    wrapped = tmp_path / "motion_energy_wrapped.py"
    wrapped.write_text(WRAPPED_MODEL.format(model=str(EXAMPLE_MODEL)))
    monkeypatch.chdir(tmp_path)  # the model process has the harness's working directory on its path, as with -m
    monkeypatch.delenv("PYTHONPATH", raising=False)
    probe_target = numpy_only_python.parent.parent / "probe_target"
    probe_target.write_text(str(root / "mixtures"))
    try:
        other = evaluate(wrapped, root, runs / "other-python", device="cpu", limit=LIMIT, name="other-python",
                         python=numpy_only_python)
    finally:
        probe_target.unlink()
    # the other environment's own startup code ran confined: the benchmark's folders are empty to it
    probes = [line for line in capfd.readouterr().err.splitlines() if line.startswith("probe sees")]
    assert probes and set(probes) == {"probe sees []"}, probes
    assert json.loads((runs / "other-python" / "provenance.json").read_text())["confined"] is True
    assert other["n_scored"] == LIMIT and other["duets"]["n_scored"] == LIMIT
    interpreter = json.loads((runs / "other-python" / "provenance.json").read_text())["interpreter"]
    assert interpreter == {"executable": str(numpy_only_python), "python": platform.python_version(),
                           "numpy": np.__version__, "torch": None}
    own = json.loads((runs / "inside" / "provenance.json").read_text())["interpreter"]
    assert own["executable"] == sys.executable and own["torch"] == importlib.metadata.version("torch")
    result = run_cli("score", estimates, "--name", "from-files", "--root", root, "--out", runs / "from-files",
                     "--limit", LIMIT, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "duet track (separate_at): 3/3 items scored" in " ".join(result.stdout.split())
    a = pd.read_parquet(runs / "inside" / "items.parquet").set_index(["item_id", "source_index"])
    for route in ("other-python", "from-files"):
        b = pd.read_parquet(runs / route / "items.parquet").set_index(["item_id", "source_index"])
        assert len(a) == len(b) == 2 * LIMIT * 2 and (b["status"] == "ok").all(), route
        np.testing.assert_allclose(b.loc[a.index, METRICS].to_numpy(float), a[METRICS].to_numpy(float), atol=1e-4,
                                   equal_nan=True, err_msg=route)
        assert b["ciou"].notna().sum() == 2 * LIMIT  # the heatmaps were scored
    outside = json.loads((runs / "from-files" / "summary.json").read_text())
    for track_in, track_out in ((inside, outside), (inside["duets"], outside["duets"])):
        assert track_out["metrics"]["nsdr"]["mean"] == pytest.approx(track_in["metrics"]["nsdr"]["mean"], abs=1e-4)
    prov = json.loads((runs / "from-files" / "provenance.json").read_text())
    assert prov["confined"] is False and prov["confinement"].startswith("scored from files")
    assert prov["scored_from_files"]["folder"] == os.path.realpath(estimates)
    assert prov["scored_from_files"]["n_files"] == 2 * LIMIT * 2 + 2 * LIMIT  # wavs and heatmaps
    assert prov["model_file"] is None and prov["benchmark_version"] == DataRoot(root).version()
    board = build_leaderboard(runs, tmp_path / "board")
    rows = {row["name"]: row for table in board["tables"] for row in table["rows"]}
    assert {"inside", "other-python", "from-files"} <= set(rows)
    # the board says where each row's estimates came from
    assert rows["from-files"]["provenance"]["scored_from_files"]["sha256"] == prov["scored_from_files"]["sha256"]
    assert rows["other-python"]["provenance"]["interpreter"]["numpy"]
    provenance_lines = [line for line in (tmp_path / "board" / "leaderboard.md").read_text().splitlines()
                        if line.startswith("| from-files | mb-")]
    assert len(provenance_lines) == 1 and "| scored from files |" in provenance_lines[0]


def _write(path: Path, audio: np.ndarray, rate: int = 11025, subtype: str = "FLOAT") -> None:
    path.unlink(missing_ok=True)
    sf.write(path, audio, rate, subtype=subtype)


def test_bad_estimate_files_fail_their_item_with_a_reason(exported, tmp_path):
    root, _, estimates = exported
    est = tmp_path / "est"
    shutil.copytree(estimates, est)
    ids = DataRoot(root).item_ids("test", LIMIT)
    good, _ = sf.read(est / ids[0] / "source0.wav", dtype="float32")
    _write(est / ids[0] / "source0.wav", good, subtype="PCM_16")  # PCM is fine
    _write(est / ids[0] / "source1.wav", good[::2].copy(), rate=5512)  # another rate
    (est / ids[1] / "source1.wav").unlink()
    os.symlink(est / ids[0] / "source0.wav", est / ids[1] / "source1.wav")  # a symlink
    nan = good.copy()
    nan[7] = np.nan
    _write(est / ids[2] / "source0.wav", nan)
    np.save(est / ids[2] / "heatmap0.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (est / ids[2] / "source0.wav").unlink()
    with open(est / ids[2] / "source0.wav", "wb") as handle:  # a huge (sparse) file
        handle.truncate(1 << 34)
    summary = score_estimates(est, root, tmp_path / "runs" / "bad", name="bad", limit=LIMIT)
    items = pd.read_parquet(tmp_path / "runs" / "bad" / "items.parquet").drop_duplicates("item_id").set_index("item_id")
    reasons = items["reason"].to_dict()
    assert "source1.wav is at 5512 Hz, not 11025 Hz" in reasons[ids[0]]
    assert "source1.wav cannot be opened (a symlink)" in reasons[ids[1]]
    assert "source0.wav has 17179869184 bytes, over" in reasons[ids[2]]
    assert (items.loc[[i for i in items.index if i.startswith("duet")], "status"] == "ok").all()
    assert summary["n_excluded"] == 3 and summary["duets"]["n_scored"] == LIMIT

    # the same folder, now with PCM, NaN, a wrong length, a pickled heatmap: each its own reason
    _write(est / ids[0] / "source1.wav", good)
    os.unlink(est / ids[1] / "source1.wav")
    _write(est / ids[1] / "source1.wav", good[:-1])
    _write(est / ids[2] / "source0.wav", good)
    summary = score_estimates(est, root, tmp_path / "runs" / "bad", name="bad", limit=LIMIT, overwrite=True)
    items = pd.read_parquet(tmp_path / "runs" / "bad" / "items.parquet").drop_duplicates("item_id").set_index("item_id")
    assert items.loc[ids[0], "status"] == "ok"  # 16-bit PCM, scored
    assert "source1.wav has 65534 samples, not the item's 65535" in items.loc[ids[1], "reason"]
    assert "heatmap0.npy holds Python objects (a pickle)" in items.loc[ids[2], "reason"]
    _write(est / ids[2] / "source0.wav", nan)
    (est / ids[2] / "heatmap0.npy").unlink()
    score_estimates(est, root, tmp_path / "runs" / "bad", name="bad", limit=LIMIT, overwrite=True)
    items = pd.read_parquet(tmp_path / "runs" / "bad" / "items.parquet").drop_duplicates("item_id").set_index("item_id")
    assert items.loc[ids[2], "reason"] == "estimates contain NaN or inf"
    shutil.rmtree(est / ids[0])
    score_estimates(est, root, tmp_path / "runs" / "bad", name="bad", limit=LIMIT, overwrite=True)
    items = pd.read_parquet(tmp_path / "runs" / "bad" / "items.parquet").drop_duplicates("item_id").set_index("item_id")
    assert items.loc[ids[0], "reason"] == f"no estimate folder {ids[0]}/"
    result = run_cli("score", tmp_path / "runs", "--name", "wrong", "--root", root, "--split", "val", cwd=REPO_ROOT)
    assert result.returncode == 2 and "holds no folder of a 'val' mixture item" in result.stderr
    assert not (REPO_ROOT / "runs" / "wrong").exists()


def lying_npy(path: Path, shape: tuple[int, ...] = (10**7, 10**7)) -> None:
    """A 192-byte .npy file whose header claims `shape` of float64 (800 TB for the default)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    path.unlink(missing_ok=True)
    path.write_bytes(header.getvalue().ljust(192, b"\0"))


def test_a_heatmap_whose_header_lies_fails_its_item_only(exported, tmp_path):
    """np.load believed a heatmap's header and tried to allocate 728 TiB: MemoryError ended `musicbench score`."""
    root, _, estimates = exported
    est = tmp_path / "est"
    shutil.copytree(estimates, est)
    ids = DataRoot(root).item_ids("test", LIMIT)
    assert (est / ids[1] / "heatmap0.npy").is_file()  # the example model localizes
    lying_npy(est / ids[1] / "heatmap0.npy")
    assert (est / ids[1] / "heatmap0.npy").stat().st_size == 192
    result = run_cli("score", est, "--name", "liar", "--root", root, "--limit", LIMIT, "--out", tmp_path / "runs" / "liar",
                     "--params", REPO_ROOT / "params.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = pd.read_parquet(tmp_path / "runs" / "liar" / "items.parquet").drop_duplicates("item_id").set_index("item_id")
    assert items.loc[ids[1], "status"] == "excluded"
    assert items.loc[ids[1], "reason"] == (
        f"{ids[1]}/heatmap0.npy has a header that claims shape (10000000, 10000000) of float64 (800000000000000 bytes) "
        "but 64 bytes follow it; the file is damaged or forged, write it again with numpy.save")
    assert (items.drop(index=ids[1])["status"] == "ok").all() and len(items) > LIMIT  # every other item, duets too
    assert "heatmap0.npy has a header that claims shape" in result.stdout  # the excluded reason, printed


LABELLED_MODEL = textwrap.dedent('''
    import numpy as np

    class Labelled:
        uses_labels = True

        def separate(self, mixture, frames, sample_rate, labels):
            if "cello" in labels:
                raise RuntimeError("no cello today")
            return np.repeat(mixture[None] / len(labels), len(labels), axis=0)

    def load_model(device="cpu"):
        return Labelled()
''')


def test_the_shipped_runner_passes_labels_goes_on_after_a_failure_and_resumes(exported, numpy_pillow_python, tmp_path):
    root, items_dir, _ = exported
    model = tmp_path / "labelled.py"
    model.write_text(LABELLED_MODEL)
    runner = [numpy_pillow_python, items_dir / "run_model.py", model, items_dir, tmp_path / "est"]
    first = subprocess.run(runner, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    labels = pd.read_csv(items_dir / "labels.csv").groupby("item_id")["instrument"].apply(list)
    cello = [item_id for item_id, names in labels.items() if "cello" in names]
    assert 0 < len(cello) < LIMIT, "the small benchmark's first items mix cello with other instruments"
    assert first.returncode == 1 and "score with `musicbench score --uses-labels`" in first.stderr  # failures: exit 1
    assert f"{len(cello)} failed (exit status 1)" in first.stderr
    assert "has no separate_at: its" in first.stderr and "AttributeError" not in first.stderr  # duets: one note
    for item_id in cello:
        assert f"item {item_id}: RuntimeError: no cello today (at labelled.py:" in first.stderr
    written = sorted(p.name for p in (tmp_path / "est").iterdir() if p.is_dir())
    assert written == sorted(set(labels.index) - set(cello))  # no duets (no separate_at), no half-written folder
    assert (tmp_path / "est" / "items.csv").read_bytes() == (items_dir / "items.csv").read_bytes()  # the items' keys
    np.testing.assert_allclose(sf.read(tmp_path / "est" / written[0] / "source0.wav", dtype="float32")[0] * 2,
                               sf.read(items_dir / written[0] / "mixture.wav", dtype="float32")[0], rtol=1e-6)
    stamp = (tmp_path / "est" / written[0] / "source0.wav").stat().st_mtime_ns
    again = subprocess.run(runner, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 1 and (tmp_path / "est" / written[0] / "source0.wav").stat().st_mtime_ns == stamp
    no_pillow = tmp_path / "no_pillow" / "PIL"  # a Python whose Pillow cannot be imported
    no_pillow.mkdir(parents=True)
    (no_pillow / "__init__.py").write_text("raise ImportError('no Pillow here')\n")
    bare = subprocess.run(runner[:-1] + [tmp_path / "est-bare"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(no_pillow.parent)})
    assert bare.returncode == 1 and bare.stderr.strip() == "error: run_model.py needs Pillow to read the frames: pip install pillow"
    scored = run_cli("score", tmp_path / "est", "--name", "labelled", "--root", root, "--limit", LIMIT, "--uses-labels",
                     "--out", tmp_path / "runs" / "labelled", cwd=REPO_ROOT)
    assert scored.returncode == 0, scored.stderr
    printed = " ".join(scored.stdout.split())
    assert f"{LIMIT - len(cello)}/{LIMIT} items scored" in printed and f"│ nsdr │ −∞ ({len(cello)} of {LIMIT} items failed) │" in printed
    summary = json.loads((tmp_path / "runs" / "labelled" / "summary.json").read_text())
    assert summary["uses_labels"] is True and summary["n_excluded"] == len(cello) and summary["duets"] is None
    assert summary["excluded_reasons"] == {f"no estimate folder {item_id}/": 1 for item_id in cello}
