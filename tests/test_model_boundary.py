"""The boundary between the harness and a model process: real hostile model files through the real
harness. Nothing the model returns is unpickled or run in the harness; only float arrays cross."""

from __future__ import annotations

import json
import shutil
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from tests.conftest import run_cli

# separate() returns an object whose unpickling would write the marker file (a pickle gadget).
GADGET_MODEL = textwrap.dedent('''
    class Gadget:
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):
            return (exec, (f"open({self.marker!r}, 'w').write('ran in the harness')",))

    class Model:
        def __init__(self, marker):
            self.marker = marker

        def separate(self, mixture, frames, sample_rate):
            return Gadget(self.marker)

    def load_model(marker, device="cpu"):
        return Model(marker)
''')

# writes a forged answer straight onto the protocol socket: an object-dtype array holding a pickle
# gadget, or a frame claiming more bytes than any answer may have
FORGING_MODEL = textwrap.dedent('''
    import json, os, pickle, socket, struct, sys, time

    class Gadget:
        def __reduce__(self):
            return (exec, (f"open({MARKER!r}, 'w').write('ran in the harness')",))

    class Model:
        def __init__(self, mode):
            self.mode = mode

        def separate(self, mixture, frames, sample_rate):
            if self.mode == "malformed" and abs(float(mixture.sum()) - FORGE_ON) > 1e-3:
                return [mixture / len(frames)] * len(frames)
            sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
            if self.mode == "huge":
                sock.sendall(struct.pack(">Q", 1 << 60))
            elif self.mode == "many":  # 16 arrays of 256 MiB announced: nothing of them may be buffered
                entry = {"name": "result", "dtype": "<f4", "shape": [1 << 26]}
                header = json.dumps({"status": "ok", "arrays": [entry] * 16}).encode()
                sock.sendall(struct.pack(">Q", len(header)) + header)
            elif self.mode == "malformed":  # "ok" with an array whose bytes disagree with its shape, on one item only
                header = json.dumps({"status": "ok", "arrays": [{"name": "result", "dtype": "<f4", "shape": [2, 10]}]})
                for frame in (header.encode(), bytes(12)):
                    sock.sendall(struct.pack(">Q", len(frame)) + frame)
            else:
                body = pickle.dumps(Gadget())
                header = json.dumps({"status": "ok", "arrays": [{"name": "result", "dtype": "|O", "shape": []}]})
                for frame in (header.encode(), body):
                    sock.sendall(struct.pack(">Q", len(frame)) + frame)
            time.sleep(600)

    def load_model(mode, device="cpu"):
        return Model(mode)
''')

# returns the share of the mixture in the dtype given as option; prints to stdout on every step
DTYPE_MODEL = textwrap.dedent('''
    import numpy as np
    print("importing the model file")

    class Model:
        def __init__(self, dtype):
            self.dtype = dtype

        def separate(self, mixture, frames, sample_rate):
            print("separating", mixture.shape, frames.dtype)
            estimates = np.stack([mixture * (k + 1) / 3 for k in range(len(frames))]).astype(np.float32)
            if self.dtype == "int16":
                return (estimates * 32767).astype(np.int16)
            return estimates.astype(self.dtype)

    def load_model(dtype="float32", device="cpu"):
        print("loading", dtype)
        return Model(dtype)
''')

HANGING_LOAD_MODEL = textwrap.dedent('''
    import time

    def load_model(device="cpu"):
        time.sleep(600)
''')


def _inference(out):
    return pd.read_parquet(out / "inference.parquet")


def test_a_pickle_gadget_never_runs_in_the_harness(bench_root, tmp_path):
    root, _, _ = bench_root
    model, marker = tmp_path / "gadget.py", tmp_path / "marker"
    model.write_text(GADGET_MODEL)
    evaluate(model, root, tmp_path / "run", device="cpu", options={"marker": str(marker)}, limit=2)
    inference = _inference(tmp_path / "run")
    assert (inference["status"] == "failed").all()
    assert inference["reason"].str.contains("separate returned Gadget, not an array of numbers").all()
    assert not marker.exists()


def test_forged_answers_on_the_protocol_socket_are_refused(bench_root, tmp_path):
    root, _, _ = bench_root
    model = tmp_path / "forging.py"
    marker = tmp_path / "marker"
    first = next(DataRoot(root).iter_items("test", 1))
    model.write_text(f"MARKER = {str(marker)!r}\nFORGE_ON = {float(first.mixture.sum())!r}\n" + FORGING_MODEL)
    for mode, reason in (("object", "an array of dtype '|O', not one of <f4, <f8"), ("huge", "over the limit"),
                         ("many", "16 arrays in one message, over the limit of 1")):
        out = tmp_path / mode
        evaluate(model, root, out, device="cpu", options={"mode": mode}, timeout=20, limit=1)
        inference = _inference(out)
        assert (inference["status"] == "failed").all() and reason in inference["reason"].iloc[0], inference["reason"]
    assert not marker.exists()

    # a malformed "ok" answer on the first item: the process is restarted at once, so the next items neither
    # wait out the --timeout behind the model (still asleep in the first call) nor receive a stale answer
    start = time.monotonic()
    evaluate(model, root, tmp_path / "malformed", device="cpu", options={"mode": "malformed"}, timeout=20, limit=3)
    inference = _inference(tmp_path / "malformed")
    assert list(inference["status"]) == ["failed", "ok", "ok"], inference["reason"]
    assert "a frame of 12 bytes where its header announced 80" in inference["reason"].iloc[0]
    assert time.monotonic() - start < 20


def test_integer_estimates_are_refused_and_float64_scores_like_float32(bench_root, tmp_path):
    root, _, _ = bench_root
    model = tmp_path / "dtypes.py"
    model.write_text(DTYPE_MODEL)
    items = {}
    for dtype in ("float32", "float64", "int16"):
        evaluate(model, root, tmp_path / dtype, device="cpu", options={"dtype": dtype}, limit=3)
        items[dtype] = pd.read_parquet(tmp_path / dtype / "items.parquet")
    assert (items["float32"]["status"] == "ok").all()
    pd.testing.assert_frame_equal(items["float64"].drop(columns="seconds"), items["float32"].drop(columns="seconds"))
    for item_id in items["float32"]["item_id"].unique():
        np.testing.assert_array_equal(np.load(tmp_path / "float64" / "estimates" / f"{item_id}.npy"),
                                      np.load(tmp_path / "float32" / "estimates" / f"{item_id}.npy"))
    refused = _inference(tmp_path / "int16")
    assert (refused["status"] == "failed").all()
    assert (refused["reason"] == "separate returned int16 values: return floats (float32 or float64)").all()


def test_validate_model_refuses_integers_and_a_printing_model_still_works(tmp_path):
    model = tmp_path / "dtypes.py"
    model.write_text(DTYPE_MODEL)
    good = run_cli("validate-model", model, "--root", tmp_path / "no_benchmark_here")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "all checks passed" in good.stdout and "separating" in good.stderr and "separating" not in good.stdout
    bad = run_cli("validate-model", model, "--root", tmp_path / "no_benchmark_here", "--option", "dtype=int16")
    assert bad.returncode == 1 and "return floats" in " ".join(bad.stdout.split())


def test_a_hanging_load_is_killed_after_the_load_timeout(bench_root, tmp_path):
    root, _, _ = bench_root
    model = tmp_path / "hanging.py"
    model.write_text(HANGING_LOAD_MODEL)
    result = run_cli("evaluate", model, "--root", root, "--out", tmp_path / "run", "--load-timeout", "2", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "loading the model took longer than 2 s (--load-timeout)" in result.stderr
    check = run_cli("validate-model", model, "--root", tmp_path, "--load-timeout", "2", timeout=60)
    assert check.returncode == 1 and "(--load-timeout)" in " ".join(check.stdout.split())


# a model that tries, on every item, to read the references, change the benchmark, another run and a
# processed file; it answers honestly only where every attempt failed
SNOOPING_MODEL = textwrap.dedent('''
    import os

    class Model:
        def __init__(self, root, other_run):
            self.root, self.other_run = root, other_run

        def separate(self, mixture, frames, sample_rate):
            reached = []
            attempts = {
                "read mixtures.parquet": lambda: open(os.path.join(self.root, "mixtures", "mixtures.parquet"), "rb").read(),
                "list the benchmark": lambda: os.listdir(os.path.join(self.root, "mixtures")) or (_ for _ in ()).throw(OSError("empty")),
                "write the data root": lambda: open(os.path.join(self.root, "mixtures", "benchmark.json"), "w").write("{}"),
                "write another run": lambda: open(os.path.join(self.other_run, "summary.json"), "w").write("{}"),
                "delete a processed file": lambda: os.remove(os.path.join(self.root, "processed", "videos.parquet")),
            }
            for what, attempt in attempts.items():
                try:
                    attempt()
                    reached.append(what)
                except OSError:
                    pass
            if reached:
                raise RuntimeError("reached the benchmark: " + ", ".join(reached))
            return [mixture / frames.shape[0]] * frames.shape[0]

    def load_model(root, other_run, device="cpu"):
        return Model(root, other_run)
''')


def test_a_confined_model_cannot_read_or_change_the_benchmark_or_other_runs(bench_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(bench_root[0], root, ignore=shutil.ignore_patterns("score_cache"))
    runs = tmp_path / "runs"
    (runs / "other").mkdir(parents=True)
    (runs / "other" / "summary.json").write_text('{"name": "other"}')
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    model = tmp_path / "snoop.py"
    model.write_text(SNOOPING_MODEL)
    options = {"root": str(root), "other_run": str(runs / "other")}
    summary = evaluate(model, root, runs / "snoop", device="cpu", options=options, limit=2, timeout=120)
    provenance = json.loads((runs / "snoop" / "provenance.json").read_text())
    assert provenance["confined"] is True, provenance["confinement"]
    assert summary["n_scored"] == summary["n_items"] == 2, summary["excluded_reasons"]
    assert {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "score_cache" not in p.parts} == before
    assert (runs / "other" / "summary.json").read_text() == '{"name": "other"}'

    # the same model unconfined (--no-confine) reaches everything, so the attempts above are real: it
    # overwrites benchmark.json, and the harness then refuses to publish a summary for that data root
    with pytest.raises(MusicbenchError, match="no benchmark definition"):
        evaluate(model, root, runs / "snoop-unconfined", device="cpu", options=options, limit=1, timeout=120, confine=False)
    assert (root / "mixtures" / "benchmark.json").read_text() == "{}"
    assert (runs / "other" / "summary.json").read_text() == "{}"
    assert not (runs / "snoop-unconfined").exists()  # a run that failed never lands
