"""Cost of verified reads: `musicbench evaluate` with every benchmark file checked first vs without.

Runs the same evaluation (the mixture oracle by default, or --model FILE) in this process, in
alternating rounds: once as the harness runs it (`DataRoot.verify_items` hashes the mixture tables,
the processed audio and frames, stems and boxes of the items; its per-process hash memo emptied
before each round, so every file is hashed again) and once with `DataRoot.verify_items` replaced by
a no-op (the order alternates between rounds). Each run scores into a fresh score cache, so both
do the full work. Prints the median wall time of each and their ratio (the issue's aim: under
1.10), the time spent inside `verify_items` during a verified run (less noisy than the ratio on a
busy machine), and the time of one cold verification of the split alone.

Without --root it builds a benchmark like the test fixture (4 instruments, 3 solo videos of 8 s
each, 12 test items) in a temporary folder.
Usage: python bench/bench_verified_reads.py [--root DATA] [--split test] [--model FILE] [--rounds 3] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from musicbench import benchmark
from musicbench.benchmark import TRACKS, DataRoot
from musicbench.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]


def timed_evaluate(root: Path, work: Path, name: str, model: Path | None, split: str, limit: int | None) -> float:
    """Wall seconds of one evaluation into ``work/name`` with its own score cache."""
    began = time.perf_counter()
    evaluate(model, root, work / name, split=split, device="cpu", limit=limit, oracle=None if model else "mixture",
             cache_dir=work / f"{name}-cache")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="processed data root with splits and mixtures (default: build one)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, help="a model file (default: the mixture oracle)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each track")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_verified_") as tmp:
        work, root = Path(tmp), args.root
        if root is None:
            from bench_nmf import build_fixture_benchmark

            root = work / "data"
            build_fixture_benchmark(root, yaml.safe_load((REPO / "params.yaml").read_text()))
        verify = DataRoot.verify_items
        began = time.perf_counter()
        for track in TRACKS:
            DataRoot(root).verify_items(args.split, args.limit, track)
        print(f"one cold verification of {args.split} (both tracks): {time.perf_counter() - began:.3f} s")
        timed_evaluate(root, work, "warmup", args.model, args.split, args.limit)  # imports, page cache
        spent = []  # seconds inside verify_items, per verified round

        def timed_verify(self: DataRoot, *verify_args, **verify_kwargs) -> None:
            began = time.perf_counter()
            try:
                verify(self, *verify_args, **verify_kwargs)
            finally:
                spent[-1] += time.perf_counter() - began

        def skipped_verify(self: DataRoot, *verify_args, **verify_kwargs) -> None:
            return None

        verified, unverified = [], []
        for round_ in range(args.rounds):
            for mode in (("verified", "unverified") if round_ % 2 == 0 else ("unverified", "verified")):
                benchmark._VERIFIED_HASHES.clear()
                spent.append(0.0)
                DataRoot.verify_items = timed_verify if mode == "verified" else skipped_verify
                try:
                    seconds = timed_evaluate(root, work, f"{mode}-{round_}", args.model, args.split, args.limit)
                finally:
                    DataRoot.verify_items = verify
                (verified if mode == "verified" else unverified).append((seconds, spent.pop()))
        with_ = statistics.median(seconds for seconds, _ in verified)
        without = statistics.median(seconds for seconds, _ in unverified)
        inside = statistics.median(seconds for _, seconds in verified)
        print(f"evaluate ({args.model.name if args.model else 'oracle mixture'}, {args.split}, median of {args.rounds}): "
              f"verified {with_:.2f} s, unverified {without:.2f} s: ratio {with_ / without:.3f}")
        print(f"time inside verify_items per verified evaluate: {inside:.3f} s, "
              f"{inside / (with_ - inside):.1%} of the rest of the run")

if __name__ == "__main__":
    main()
