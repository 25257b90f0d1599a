"""Speed and agreement of musicbench's BSS Eval v3 engine against mir_eval (the reference).

Run: python bench/bench_metrics.py [--items 20] [--sources 2] [--samples 65535] [--blas-threads 1]
[--rounds 3]. Scores the same music-like items (sums of harmonics with vibrato and note envelopes,
estimate = reference + leaked interference + noise) with mir_eval.separation.bss_eval_sources
(compute_permutation=False), with musicbench.metrics.bss_eval_sources (item by item), with
bss_eval_sources_batch (several items per call) and with the SDR-only path (what NSDR needs), and
prints items/second, the speed-up over mir_eval and the largest |ΔSDR|, |ΔSIR|, |ΔSAR| in dB.

Timing is robust to a machine shared with other work: each of ``--rounds`` rounds takes the
items 4 at a time and scores each block with every engine back to back (mir_eval item by item,
bss_eval_sources item by item, bss_eval_sources_batch and sdr_sources_batch on the block; the
order alternates from block to block); items/second are from the median time per item over all
blocks and rounds, so a burst of load elsewhere hits all engines alike.

--blas-threads sets OPENBLAS/MKL/OMP thread counts *before* numpy loads, for both engines alike
("0" leaves the environment alone). On a shared 2-core machine multithreaded OpenBLAS busy-waits
and both engines get several times slower; 1 thread per process is what a scoring pool should use.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--sources", type=int, default=2)
    parser.add_argument("--samples", type=int, default=65535)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (medians are reported)")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    if args.blas_threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    if "numpy" in sys.modules:  # pragma: no cover - only when imported, not run
        print("warning: numpy already loaded, --blas-threads has no effect")

    import warnings

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mir_eval.separation as mir_sep

    from musicbench.metrics import bss_eval_sources, bss_eval_sources_batch, sdr_sources_batch

    rng = np.random.default_rng(args.seed)
    sr = 11025
    t = np.arange(args.samples) / sr

    def music_like() -> np.ndarray:
        f0 = rng.uniform(80.0, 900.0)
        vibrato = 1.0 + 0.006 * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * t)
        phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sr
        partials = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
        note = rng.uniform(0.25, 1.0)
        envelope = np.exp(-(t % note) * rng.uniform(2.0, 8.0)) * np.minimum(1.0, (t % note) * 200.0)
        return rng.uniform(0.05, 0.5) * partials * envelope

    refs = np.stack([np.stack([music_like() for _ in range(args.sources)]) for _ in range(args.items)])
    leak = 0.2 * np.roll(refs, 1, axis=1)
    ests = refs + leak + 0.02 * rng.standard_normal(refs.shape) * refs.std(axis=-1, keepdims=True)

    def mir_item(r: np.ndarray, e: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.array(mir_sep.bss_eval_sources(r, e, compute_permutation=False)[:3])

    bss_eval_sources(refs[0], ests[0])  # warm-up (imports, FFT plans)
    n = args.items
    block = 4  # items timed together per engine, engines interleaved block by block
    times: dict[str, list[float]] = {"mir": [], "single": [], "batch": [], "sdr": []}
    outputs: dict[str, list[np.ndarray]] = {engine: [] for engine in times}  # first round's scores
    for round_ in range(max(1, args.rounds)):
        for first in range(0, n, block):
            r, e = refs[first : first + block], ests[first : first + block]
            engines = ["mir", "single", "batch", "sdr"]
            if (round_ + first // block) % 2:
                engines.reverse()  # alternate who runs first
            for engine in engines:
                start = time.perf_counter()
                if engine == "mir":
                    out = np.array([mir_item(ri, ei) for ri, ei in zip(r, e)])  # (block, 3, sources)
                elif engine == "single":
                    out = np.array([bss_eval_sources(ri, ei) for ri, ei in zip(r, e)])
                elif engine == "batch":
                    out = np.stack(bss_eval_sources_batch(r, e), axis=1)
                else:
                    out = sdr_sources_batch(r, e)
                times[engine].append((time.perf_counter() - start) / len(r))
                if round_ == 0:
                    outputs[engine].append(out)
    ref_out, ours_single, ours_batch, sdr_only = (np.concatenate(outputs[k]) for k in ("mir", "single", "batch", "sdr"))
    t_mir, t_single, t_batch, t_sdr = (float(np.median(times[k])) for k in ("mir", "single", "batch", "sdr"))

    def worst(ours: np.ndarray) -> list[str]:
        return [f"{np.max(np.abs(ours[:, k] - ref_out[:, k])):.2e}" for k in range(3)]

    table = Table(
        title=(
            f"BSS Eval v3 sources: {n} items × {args.sources} sources × {args.samples} samples, "
            f"BLAS threads {args.blas_threads or 'default'}, {os.cpu_count()} CPUs, "
            f"median of {max(1, args.rounds)} rounds"
        )
    )
    for column in ("engine", "items/s", "× mir_eval", "max |ΔSDR| dB", "max |ΔSIR| dB", "max |ΔSAR| dB"):
        table.add_column(column, justify="right")
    table.add_row("mir_eval 0.8 (reference)", f"{1 / t_mir:.2f}", "1.0", "-", "-", "-")
    table.add_row("bss_eval_sources", f"{1 / t_single:.2f}", f"{t_mir / t_single:.1f}", *worst(ours_single))
    table.add_row("bss_eval_sources_batch", f"{1 / t_batch:.2f}", f"{t_mir / t_batch:.1f}", *worst(ours_batch))
    table.add_row(
        "sdr_sources_batch (SDR only)",
        f"{1 / t_sdr:.2f}",
        f"{t_mir / t_sdr:.1f}",
        f"{np.max(np.abs(sdr_only - ref_out[:, 0])):.2e}",
        "-",
        "-",
    )
    Console(width=130).print(table)
    print(f"mean SDR {ref_out[:, 0].mean():.2f} dB, SIR {ref_out[:, 1].mean():.2f} dB, SAR {ref_out[:, 2].mean():.2f} dB")


if __name__ == "__main__":
    main()
