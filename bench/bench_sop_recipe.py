"""The Sound of Pixels' scoring recipe against musicbench's, step by step, on the runs of a data root.

For every run folder under ``--runs`` (the default repro's: the baselines and oracles), the items of
``--split`` (mixtures track) are scored from the run's estimates (an oracle's are computed again)
under musicbench's recipe and then with the steps of the Sound of Pixels' recipe added one at a time
(`musicbench.metrics.recipes`): truncation to 65280 samples, clipping to [−1, 1], the validity
filter, and averaging by batches of 32. Each added step's change is that step's difference, so the
changes add up to the gap between the two recipes. The first column is checked against the run's
items.parquet (musicbench's own scores, failed items charged): a run where they differ by more than
1e-9 dB, and a run folder the board would refuse, is left out with a line saying why. "skipped"
counts the items the validity filter drops: under that recipe a failed item is skipped, so failing
can pay there (it never does under musicbench's).

Prints a table (NSDR under each recipe step, and SDR/SIR/SAR under both recipes) and writes
``--json``. docs/metrics.md ("The Sound of Pixels' recipe") holds its output on the default repro.
With ``--protocol NAME`` the items are a paper's test set built in the data root (`musicbench.protocols`)
and the runs those scored on it. docs/protocols.md holds its output on an offline fixture of iQuery's pairs.
Usage: python bench/bench_sop_recipe.py [--root data] [--runs runs] [--split test] [--protocol NAME] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from musicbench.errors import MusicbenchError
from musicbench.harness.oracles import ORACLES
from musicbench.harness.scoring import ok_items, run_item_estimates
from musicbench.leaderboard.runs import Run, find_runs
from musicbench.metrics import charge_failures
from musicbench.metrics.recipes import SopSteps, sop_figures, sop_item_scores
from musicbench.progress import plain
from musicbench.protocols import protocol_root

#: musicbench's recipe, then the Sound of Pixels' steps added one at a time (the last is its whole recipe).
STEPS = {
    "musicbench": SopSteps(truncate=False, clip=False, validity=False, batches=False),
    "+ truncate": SopSteps(truncate=True, clip=False, validity=False, batches=False),
    "+ clip": SopSteps(truncate=True, clip=True, validity=False, batches=False),
    "+ validity": SopSteps(truncate=True, clip=True, validity=True, batches=False),
    "+ batches (SoP)": SopSteps(),
}


def run_estimates(run: Run, items: list) -> list[np.ndarray | None]:
    """Each item's estimates from the run folder (None where the model failed or its file is not
    acceptable, as scoring treats it), or an oracle's outputs computed again from the item."""
    oracle = run.provenance.get("oracle") or None
    if oracle is not None and oracle not in ORACLES:
        raise MusicbenchError(f"provenance.json names oracle {oracle!r}, not one of {', '.join(ORACLES)}")
    done = ok_items(run.path)
    return [run_item_estimates(run.path, item, item.item_id in done, oracle) for item in items]


def recipe_figures(items: list, estimates: list[np.ndarray | None]) -> dict[str, dict[str, float]]:
    """Per recipe step (`STEPS`): its `sop_figures` (item scores computed once per truncation, clipping
    and validity setting)."""
    per_item: dict[tuple[bool, bool, bool], list] = {}  # item scores depend on the first three steps
    out = {}
    for name, steps in STEPS.items():
        key = (steps.truncate, steps.clip, steps.validity)
        if key not in per_item:
            per_item[key] = [sop_item_scores(item.references, estimate, item.mixture, steps)
                             for item, estimate in zip(items, estimates)]
        out[name] = sop_figures(per_item[key], steps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--protocol", default=None, help="a paper's test set built in --root (`musicbench protocol list`)")
    parser.add_argument("--json", type=Path, default=Path("bench_out/sop_recipe.json"))
    args = parser.parse_args()
    items = protocol_root(args.root, args.protocol, args.split).read_verified_items(args.split)
    runs, skipped = find_runs(args.runs)
    results, oracles = {}, set()
    for run in runs:
        if run.invalid:
            skipped.append(f"{run.folder}: {run.invalid}")
            continue
        if run.protocol != args.protocol:
            skipped.append(f"{run.folder}: scored on {'protocol ' + run.protocol if run.protocol else 'the main benchmark'}")
            continue
        try:
            figures = recipe_figures(items, run_estimates(run, items))
        except (MusicbenchError, ValueError) as exc:
            skipped.append(f"{run.folder}: {exc}")
            continue
        table = charge_failures(run.items)  # musicbench's recipe: a failed item charged, never skipped
        ours = table[(table["track"] == "mixtures") & (table["split"] == args.split)]["nsdr"].mean()
        got = figures["musicbench"]["nsdr"]
        if not (got == ours or abs(got - ours) <= 1e-9):  # equal infinities (a failed item) included
            skipped.append(f"{run.folder}: musicbench's recipe here gives NSDR {got!r}, its "
                           f"items.parquet {ours!r} (scored on other items or another data root?)")
            continue
        results[run.folder] = figures
        if run.provenance.get("oracle"):
            oracles.add(run.folder)
    steps = Table(title=f"NSDR (dB) as the Sound of Pixels' steps are added ({args.split}, {len(items)} items)")
    both = Table(title="SDR / SIR / SAR (dB) under each recipe")
    for column in ("run", "musicbench", *(f"Δ {name.split()[1]}" for name in list(STEPS)[1:]), "SoP", "skipped"):
        steps.add_column(column, justify="right")
    for column in ("run", "musicbench", "SoP"):
        both.add_column(column, justify="right")
    for name, figures in results.items():
        shown = f"{name} (oracle)" if name in oracles else name
        nsdr = [figures[step]["nsdr"] for step in STEPS]
        last = figures["+ batches (SoP)"]
        steps.add_row(shown, f"{nsdr[0]:.2f}", *(f"{b - a:+.2f}" for a, b in zip(nsdr, nsdr[1:])), f"{nsdr[-1]:.2f}",
                      str(len(items) - last["n_valid"]))  # skipped by the validity filter: failing pays there
        both.add_row(shown, *(" / ".join(f"{f[m]:.2f}" for m in ("sdr", "sir", "sar")) for f in (figures["musicbench"], last)))
    console = Console()
    console.print(steps)
    console.print(both)
    for line in skipped:
        console.print(plain(f"not tabled: {line}"), markup=False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"split": args.split, "protocol": args.protocol, "n_items": len(items), "runs": results},
                                    indent=2) + "\n")


if __name__ == "__main__":
    main()
