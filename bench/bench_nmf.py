"""Speed of the reference NMF baseline: training time and separation time per benchmark item.

Trains the dictionaries (`musicbench.nmf.train_nmf`) on the train-split solo videos of a data
root, then separates every item of a split in this process (no harness subprocess), timing each
call, and times the oracle ideal ratio mask (`musicbench.harness.oracles.oracle_estimates`, the same
STFT and inverse STFT, no factorisation) on the same items as the reference: the ratio is what the NMF
activations cost on top of masking. The oracle is timed twice, with torch's default thread count
(as `musicbench evaluate` runs it) and on one thread (as NMF runs). With --score it also prints
the mean NSDR of both.

Without --root it builds a benchmark like the test fixture (4 instruments, 3 solo videos of 8 s
each, 12 test items) in a temporary folder. Hyperparameters: the `nmf` section of --params
(default params.yaml; missing keys take musicbench.nmf.NMFConfig's defaults), --set overrides.
Usage: python bench/bench_nmf.py [--root DATA] [--params params.yaml] [--set rank=16 ...] [--split test] [--score]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from musicbench.benchmark import DataRoot
from musicbench.harness.oracles import oracle_estimates
from musicbench.nmf import NMFConfig, learn_dictionaries, load_nmf, single_thread, train_nmf
from musicbench.progress import cpu_seconds

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SYNTH = dict(seed=11, solo_per_instrument=3, duets_per_pair=1, duration=8.0, width=128, height=96, fps=16,
                     instruments=["acoustic_guitar", "cello", "flute", "violin"], jobs=2)


def build_fixture_benchmark(root: Path, params: dict) -> None:
    """synth → process → splits → mixtures of the test fixture's small MUSIC-Synth benchmark."""
    from musicbench.mixtures import make_mixtures
    from musicbench.process import ProcessConfig, process_manifest
    from musicbench.splits import make_splits
    from musicbench.synth import SynthConfig, generate_synth

    params["synth"].update(FIXTURE_SYNTH)
    params["mixtures"].update(n_val=6, n_test=12)
    generate_synth(SynthConfig.from_params(params), root)
    process_manifest(DataRoot(root).manifest_path("synth"), root, ProcessConfig.from_params(params))
    make_splits(params, root, repo=REPO)
    make_mixtures(params, root)


def _parse_sets(pairs: list[str]) -> dict:
    changes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        changes[key] = yaml.safe_load(value)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="processed data root with splits and mixtures (default: build one)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="nmf.KEY=VALUE override (repeatable)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="time only the first N items")
    parser.add_argument("--score", action="store_true", help="also print mean NSDR of NMF and of the oracle IRM")
    args = parser.parse_args()

    params = yaml.safe_load(args.params.read_text())
    params["nmf"] = {**(params.get("nmf") or {}), **_parse_sets(args.sets)}
    with tempfile.TemporaryDirectory(prefix="bench_nmf_") as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "data"
            began = time.perf_counter()
            build_fixture_benchmark(root, params)
            print(f"built the test-fixture benchmark in {time.perf_counter() - began:.1f} s")
        checkpoint = Path(tmp) / "nmf" / "nmf.npz"
        noise = np.random.default_rng(0).standard_normal(11025).astype(np.float32)
        learn_dictionaries({"warm-up": [noise]}, NMFConfig.from_params(params))  # first torch calls are slow
        began, cpu = time.perf_counter(), cpu_seconds()
        stats = train_nmf(params, root, checkpoint, progress=False)
        wall, cpu = time.perf_counter() - began, cpu_seconds() - cpu
        model = load_nmf(checkpoint)
        config = model.config
        print(f"NMF config: rank {config.rank}, iterations {config.iterations}, divergence {config.divergence}, "
              f"STFT {config.n_fft}/{config.hop}, separation iterations {config.separation_iterations}, "
              f"mask power {config.mask_power:g}")
        print(f"{'instrument':16} {'videos':>6} {'audio s':>8} {'frames':>7} {'train s':>8}")
        for name in stats["instruments"]:
            print(f"{name:16} {len(stats['train_video_ids'][name]):6d} {stats['train_audio_seconds'][name]:8.1f} "
                  f"{stats['train_frames'][name]:7d} {stats['seconds_per_instrument'][name]:8.2f}")
        print(f"training total: {wall:.2f} s wall, {cpu:.2f} s CPU ({len(stats['instruments'])} instruments, "
              f"{sum(stats['train_audio_seconds'].values()):.0f} s of audio)")

        items = list(DataRoot(root).iter_items(args.split, args.limit))
        for item in items[:1]:  # warm-up: first-call costs (torch, FFT plans) are not per-item costs
            model.separate(item.mixture, item.instruments)
            oracle_estimates(item, "irm")
        nmf_times, irm_times, irm1_times, nmf_estimates, irm_estimates = [], [], [], [], []
        for item in items:
            began = time.perf_counter()
            nmf_estimates.append(model.separate(item.mixture, item.instruments))
            nmf_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            irm_estimates.append(oracle_estimates(item, "irm"))  # as the harness runs it: torch's default threads
            irm_times.append(time.perf_counter() - began)
            with single_thread():  # as NMF runs: one thread
                began = time.perf_counter()
                oracle_estimates(item, "irm")
                irm1_times.append(time.perf_counter() - began)
        nmf_ms, irm_ms, irm1_ms = (1000 * np.median(t) for t in (nmf_times, irm_times, irm1_times))
        print(f"separation ({args.split}, {len(items)} items of {items[0].mixture.shape[0]} samples), median per item: "
              f"NMF {nmf_ms:.1f} ms (mean {1000 * np.mean(nmf_times):.1f}); oracle IRM {irm_ms:.1f} ms with torch's "
              f"default threads, {irm1_ms:.1f} ms on one thread like NMF; ratio NMF/IRM {nmf_ms / irm_ms:.2f}x "
              f"and {nmf_ms / irm1_ms:.1f}x")
        if args.score:
            from musicbench.metrics import bss_eval_sources, mixture_sdr

            nsdr = {"NMF": [], "oracle IRM": []}
            for item, nmf_est, irm_est in zip(items, nmf_estimates, irm_estimates):
                floor = mixture_sdr(item.references, item.mixture)
                nsdr["NMF"].append(np.mean(bss_eval_sources(item.references, nmf_est)[0] - floor))
                nsdr["oracle IRM"].append(np.mean(bss_eval_sources(item.references, irm_est)[0] - floor))
            print("mean NSDR: " + ", ".join(f"{name} {np.mean(values):.2f} dB" for name, values in nsdr.items()))


if __name__ == "__main__":
    main()
