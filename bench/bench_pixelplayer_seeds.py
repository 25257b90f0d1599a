"""Spread of the default PixelPlayer over training seeds: train the `cpu` profile once per seed on a
built data root and score it on the test items, then print each seed's figures and their mean and
range (NSDR, median NSDR, cIoU, pointing game, click-to-hear duet NSDR, best val NSDR, training time).

Needs a data root that `dvc repro` (or synth → process → splits → mixtures) has built. Each seed
trains for the profile's full ``steps`` (the `cpu` profile, the published weights' recipe: 22 to 40
minutes on 2 cores), so this is a bench, not a test.
Writes ``OUT/models/seed-<seed>/`` (checkpoints; a completed one is reused), ``OUT/runs/seed-<seed>/``
(run folders: kept apart from the models, since the model under evaluation cannot see its runs
folder) and ``OUT/seeds.json``. Run it from the repository root (it evaluates baselines/pixelplayer.py).
Usage: python bench/bench_pixelplayer_seeds.py [--root data] [--seeds 1234,1235,1236] [--out bench_out/seeds]
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from musicbench.pixelplayer.train import train_pixelplayer

FIGURES = ("nsdr", "median_nsdr", "ciou", "pointing", "duet_nsdr", "best_val_nsdr", "train_seconds")


def run_seed(params: dict, root: Path, seed: int, out: Path) -> dict[str, float]:
    """Train the profile with `seed` (or reuse its completed checkpoint), evaluate best.pt on test; its figures."""
    seeded = copy.deepcopy(params)
    seeded["pixelplayer"]["seed"] = seed
    model, run = out / "models" / f"seed-{seed}", out / "runs" / f"seed-{seed}"
    model.mkdir(parents=True, exist_ok=True)
    params_path = model / "params.yaml"
    params_path.write_text(yaml.safe_dump(seeded))
    summary = train_pixelplayer(seeded, root, model, device="cpu", resume=True, progress=False)
    subprocess.run([sys.executable, "-m", "musicbench", "evaluate", "baselines/pixelplayer.py", "--params", str(params_path),
                    "--root", str(root), "--out", str(run), "--overwrite", "--device", "cpu", "--jobs", "2",
                    "--option", f"checkpoint={(model / 'best.pt').resolve()}", "--name", f"pixelplayer-seed-{seed}"],
                   check=True, stdout=subprocess.DEVNULL)
    result = json.loads((run / "summary.json").read_text())
    nsdr = result["metrics"]["nsdr"]
    return {"nsdr": nsdr["mean"], "median_nsdr": nsdr["median"], "ciou": result["localization"]["ciou_mean"],
            "pointing": result["localization"]["pointing_game"], "duet_nsdr": result["duets"]["metrics"]["nsdr"]["mean"],
            "best_val_nsdr": summary["best_val_nsdr"], "train_seconds": summary["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--seeds", default="1234,1235,1236")
    parser.add_argument("--out", type=Path, default=Path("bench_out/seeds"))
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {seed: run_seed(params, args.root, seed, args.out) for seed in seeds}
    table = Table(title=f"PixelPlayer, profile {params['pixelplayer']['profile']}, test items, by training seed")
    table.add_column("seed")
    for name in FIGURES:
        table.add_column(name, justify="right")
    for seed, figures in results.items():
        table.add_row(str(seed), *(f"{figures[name]:.3f}" if name != "train_seconds" else f"{figures[name]:.0f}"
                                   for name in FIGURES))
    values = {name: np.array([figures[name] for figures in results.values()]) for name in FIGURES}
    table.add_row("mean", *(f"{values[name].mean():.3f}" for name in FIGURES))
    table.add_row("range", *(f"{values[name].min():.2f} .. {values[name].max():.2f}" for name in FIGURES))
    Console(width=160).print(table)
    (args.out / "seeds.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
