"""The harness's own cost: `evaluate` of a trivial model against a plain loop that only reads and
decodes the same items once, in one process, side by side.

A trivial model (each source gets the mixture divided by the number of sources) costs next to
nothing, so evaluate's wall time is the harness: start-up, verification, the model process, building
the items, scoring (fresh, or from the score cache) and the run folder. Printed: each timing, the
ratio of evaluate (cached scores) to the plain loop, the speed-up of fresh scoring in 2 processes
(``--jobs 2``) over one (scoring time: fresh minus cached), the fixed cost (evaluate of one item, cached) and
the per-item harness cost beyond the loop ((evaluate − fixed − model time − loop) / items), and the
command a user types for one item (interpreter start-up and imports included).

Usage: python bench/bench_evaluate.py [--root data] [--split test] [--repeat 2]
Needs a built data root (`dvc repro`). Writes only to a temporary folder (and the data root's score cache).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from musicbench.benchmark import DataRoot
from musicbench.evaluate import evaluate
from musicbench.harness.inference import run_tracks

TRIVIAL_MODEL = '''
import numpy as np


class EqualShares:
    def separate(self, mixture, frames, sample_rate):
        return np.repeat(mixture[None] / frames.shape[0], frames.shape[0], axis=0)

    def separate_at(self, mixture, frames, points):
        return np.repeat(mixture[None] / len(points), len(points), axis=0)


def load_model(device="cpu"):
    return EqualShares()
'''


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def plain_loop(root: Path, split: str) -> int:
    """Read, verify and decode every item of the run's tracks once; the item count."""
    data = DataRoot(root)
    return len(data.read_verified_items(split, None, run_tracks(data, True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement (the median is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = scratch / "equal_shares.py"
        model.write_text(TRIVIAL_MODEL)
        runs = scratch / "runs"
        figures: dict[str, list[float]] = {"plain loop": [], "evaluate, fresh scores": [],
                                           "evaluate, fresh scores, --jobs 2": [], "evaluate, cached scores": [],
                                           "evaluate, 1 item (cached)": [], "musicbench evaluate --limit 1 (command)": [],
                                           "model time": []}
        n_items = 0

        def evaluated(folder: str, cache: Path, limit: int | None = None, jobs: int = 1) -> float:
            start = time.perf_counter()
            evaluate(model, args.root, runs / folder, split=args.split, device="cpu", cache_dir=cache, limit=limit,
                     jobs=jobs)
            return time.perf_counter() - start

        for repeat in range(args.repeat):
            seconds, n_items = timed(lambda: plain_loop(args.root, args.split))
            figures["plain loop"].append(seconds)
            cache = scratch / f"cache-{repeat}"  # fresh: an empty score cache
            figures["evaluate, fresh scores"].append(evaluated(f"fresh-{repeat}", cache))
            figures["evaluate, cached scores"].append(evaluated(f"cached-{repeat}", cache))
            figures["evaluate, fresh scores, --jobs 2"].append(evaluated(f"jobs-{repeat}", scratch / f"cache-jobs-{repeat}",
                                                                         jobs=2))
            inference = pd.read_parquet(runs / f"cached-{repeat}" / "inference.parquet")
            figures["model time"].append(float(inference["seconds"].sum()))
            figures["evaluate, 1 item (cached)"].append(evaluated(f"one-{repeat}", cache, limit=1))
            start = time.perf_counter()  # the command a user types: interpreter start-up and imports too
            subprocess.run([sys.executable, "-m", "musicbench", "evaluate", str(model), "--root", str(args.root), "--out",
                            str(runs / f"cli-{repeat}"), "--limit", "1", "--device", "cpu"], check=True, capture_output=True)
            figures["musicbench evaluate --limit 1 (command)"].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in figures.items()}
    table = Table(title=f"evaluate of a trivial model on {args.root} ({args.split}, {n_items} items), median of {args.repeat}")
    table.add_column("measurement")
    table.add_column("seconds", justify="right")
    for name, value in median.items():
        table.add_row(name, f"{value:.2f}")
    ratio = median["evaluate, cached scores"] / median["plain loop"]
    per_item = (median["evaluate, cached scores"] - median["evaluate, 1 item (cached)"] - median["model time"]
                - median["plain loop"]) / max(n_items - 1, 1)
    table.add_row("evaluate (cached) / plain loop", f"{ratio:.2f}×")
    scoring = [median[f"evaluate, fresh scores{jobs}"] - median["evaluate, cached scores"] for jobs in ("", ", --jobs 2")]
    table.add_row("fresh scoring, 1 process / 2 processes", f"{scoring[0] / max(scoring[1], 1e-9):.2f}×")
    table.add_row("fixed cost (evaluate of 1 item, cached)", f"{median['evaluate, 1 item (cached)']:.2f}")
    table.add_row("per-item harness cost beyond the loop (ms)", f"{1000 * per_item:.1f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
