"""The Sound of Pixels' scoring recipe (musicbench.metrics.recipes) against a literal port of its
``calc_metrics`` + ``evaluate`` on mir_eval, and each of its steps on real signals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from musicbench.metrics import bss_eval_sources, recipes
from musicbench.metrics.recipes import SOP_SAMPLES, SopSteps, sop_average, sop_item_scores, sop_recipe
from tests.test_metrics_separation import degrade, music_like

mir_sep = pytest.importorskip("mir_eval.separation")

N = 65535


def _item(rng: np.random.Generator, *, loud: bool = False, silent: bool = False, tail_noise: bool = False):
    """(references, estimates, mixture) of 2 music-like sources; options: estimates peaking above 1,
    a silent estimate source, loud noise in the estimates' last 255 samples only."""
    references = np.stack([music_like(rng, N), music_like(rng, N)])
    estimates = degrade(rng, references)
    if loud:
        estimates *= 1.5 / np.max(np.abs(estimates))
    if silent:
        estimates[1] = 0.0
    if tail_noise:
        estimates[:, SOP_SAMPLES:] += rng.standard_normal((2, N - SOP_SAMPLES))
    return references, estimates, references.sum(axis=0)


def _calc_metrics_port(batches):
    """The reference's ``calc_metrics`` per batch and ``evaluate``'s AverageMeters, on mir_eval:
    estimates already of the inverse STFT's length (65280) and clipped, gts cut to it."""
    meters = {name: [] for name in ("sdr_mix", "sdr", "sir", "sar")}
    for batch in batches:
        batch_meters = {name: [] for name in meters}
        for references, estimates, mixture in batch:
            preds = np.clip(estimates[:, :SOP_SAMPLES], -1.0, 1.0)
            mix = np.clip(mixture[:SOP_SAMPLES], -1.0, 1.0)
            gts = references[:, : preds.shape[1]]
            valid = all(np.sum(np.abs(g)) > 1e-5 and np.sum(np.abs(p)) > 1e-5 for g, p in zip(gts, preds))
            if valid:
                sdr, sir, sar, _ = mir_sep.bss_eval_sources(gts, preds, False)
                sdr_mix = mir_sep.bss_eval_sources(gts, np.stack([mix, mix]), False)[0]
                for name, value in (("sdr_mix", sdr_mix), ("sdr", sdr), ("sir", sir), ("sar", sar)):
                    batch_meters[name].append(value.mean())
        for name in meters:  # AverageMeter.average(): 0.0 when nothing was added
            meters[name].append(float(np.mean(batch_meters[name])) if batch_meters[name] else 0.0)
    return {name: float(np.mean(values)) for name, values in meters.items()}


def test_sop_recipe_equals_a_port_of_the_reference_code(monkeypatch):
    """Batches of 3, so that 4 items give a partial last batch: a clipped item, a plain one and a
    skipped one (silent estimate source), then a last batch of one item that weighs as much as the
    first batch's two valid items together, as in the reference."""
    monkeypatch.setattr(recipes, "SOP_BATCH", 3)
    rng = np.random.default_rng(28)
    items = [_item(rng, loud=True), _item(rng), _item(rng, silent=True), _item(rng, tail_noise=True)]
    ours = sop_recipe(items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval 0.8 marks separation deprecated
        port = _calc_metrics_port([items[:3], items[3:]])
    for name in ("sdr", "sir", "sar", "sdr_mix"):
        assert ours[name] == pytest.approx(port[name], abs=1e-8), name
    assert ours["nsdr"] == pytest.approx(port["sdr"] - port["sdr_mix"], abs=1e-8)
    assert (ours["n_items"], ours["n_valid"], ours["n_batches"]) == (4, 3, 2)
    per_item = sop_recipe(items, SopSteps(batches=False))  # the same items averaged one by one differ
    assert abs(per_item["sdr"] - ours["sdr"]) > 0.01
    # musicbench's own recipe on the same items: every item counts, the silent one charged
    ours_plain = sop_recipe(items, SopSteps(truncate=False, clip=False, validity=False, batches=False))
    assert ours_plain["sdr"] == float("-inf") and ours_plain["n_valid"] == 4


def test_batch_averaging_weights_a_partial_batch_like_a_full_one():
    assert sop_average([0.0] * 32 + [10.0]) == pytest.approx(5.0)  # 33 items: the last alone is half the figure
    assert sop_average([0.0] * 32 + [10.0], SopSteps(batches=False)) == pytest.approx(10.0 / 33)
    assert sop_average([1.0] * 32 + [None]) == pytest.approx(0.5)  # a batch without a valid item counts 0.0
    assert sop_average([1.0] * 32 + [None], SopSteps(batches=False)) == pytest.approx(1.0)


def test_truncation_and_clipping_are_what_the_scores_see():
    rng = np.random.default_rng(29)
    references, estimates, mixture = _item(rng, tail_noise=True)
    truncated = sop_item_scores(references, estimates, mixture, SopSteps(clip=False))
    full = sop_item_scores(references, estimates, mixture, SopSteps(truncate=False, clip=False))
    sdr_cut = bss_eval_sources(references[:, :SOP_SAMPLES], estimates[:, :SOP_SAMPLES])[0]
    assert truncated["sdr"] == pytest.approx(float(np.mean(sdr_cut)), abs=1e-12)
    assert truncated["sdr"] > full["sdr"] + 0.1  # the noise past sample 65280 is not scored
    references, estimates, mixture = _item(rng, loud=True)
    clipped = sop_item_scores(references, estimates, mixture, SopSteps(truncate=False))
    kept = sop_item_scores(references, estimates, mixture, SopSteps(truncate=False, clip=False))
    sdr_clipped = bss_eval_sources(references, np.clip(estimates, -1.0, 1.0))[0]
    assert clipped["sdr"] == pytest.approx(float(np.mean(sdr_clipped)), abs=1e-12)
    assert clipped["sdr"] != pytest.approx(kept["sdr"], abs=1e-3)


def test_validity_skips_what_musicbench_charges():
    rng = np.random.default_rng(30)
    references, estimates, mixture = _item(rng, silent=True)
    assert sop_item_scores(references, estimates, mixture) is None
    assert sop_item_scores(references, None, mixture) is None  # a failed item: skipped, never charged
    charged = sop_item_scores(references, None, mixture, SopSteps(validity=False))
    assert charged["sdr"] == charged["sir"] == charged["sar"] == float("-inf")
    assert np.isfinite(charged["sdr_mix"])
    # a source whose Σ|x| is at most 1e-5 is skipped too, though BSS Eval could score it
    estimates[1] = 1e-5 / N
    assert sop_item_scores(references, estimates, mixture) is None
    estimates[1] = np.nan  # the reference's `Σ|x| > 1e-5` is False for NaN: skipped, whichever source it is in
    assert sop_item_scores(references, estimates, mixture) is None
    assert sop_item_scores(references, estimates[::-1], mixture) is None


FAILS_FIRST_ITEM = '''
import numpy as np


class EqualSharesAfterTheFirst:
    calls = 0

    def separate(self, mixture, frames, sample_rate):
        EqualSharesAfterTheFirst.calls += 1
        if EqualSharesAfterTheFirst.calls == 1:
            raise RuntimeError("the first item fails")
        return np.repeat(mixture[None] / frames.shape[0], frames.shape[0], axis=0)


def load_model(device="cpu"):
    return EqualSharesAfterTheFirst()
'''


def test_the_bench_tables_the_runs_it_can_check_and_says_which_it_cannot(bench_root, tmp_path):
    """bench/bench_sop_recipe.py on real runs: an oracle and a model that fails one item (charged
    −inf under musicbench's recipe, skipped under the reference's); a symlinked run folder and one
    whose items.parquet was scored elsewhere are left out with a line each."""
    import json
    import shutil
    import subprocess
    import sys

    from musicbench.evaluate import evaluate
    from tests.conftest import REPO_ROOT

    root = bench_root[0]
    runs = tmp_path / "runs"
    evaluate(None, root, runs / "oracle-irm", oracle="irm", device="cpu")
    model = tmp_path / "fails_first.py"
    model.write_text(FAILS_FIRST_ITEM)
    evaluate(model, root, runs / "fails-first", device="cpu")
    (runs / "linked").symlink_to(runs / "oracle-irm")
    shutil.copytree(runs / "oracle-irm", runs / "relabelled")  # a mixture oracle's items under an IRM claim
    summary = json.loads((runs / "relabelled" / "provenance.json").read_text())
    (runs / "relabelled" / "provenance.json").write_text(json.dumps({**summary, "oracle": "mixture"}))
    out = tmp_path / "sop.json"
    result = subprocess.run([sys.executable, "bench/bench_sop_recipe.py", "--root", str(root), "--runs", str(runs),
                             "--json", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    tabled = json.loads(out.read_text())["runs"]
    assert set(tabled) == {"oracle-irm", "fails-first"}
    assert tabled["fails-first"]["musicbench"]["nsdr"] == float("-inf")
    sop = tabled["fails-first"]["+ batches (SoP)"]
    assert np.isfinite(sop["nsdr"]) and sop["n_valid"] == 11  # the failed item is skipped: failing pays there
    assert tabled["oracle-irm"]["+ batches (SoP)"]["n_valid"] == 12
    printed = " ".join(result.stdout.split())
    assert "not tabled: linked" in printed and "not tabled: relabelled" in printed
