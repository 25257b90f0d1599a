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

import numpy as np
from recipe_runs import finish, items_and_runs, parse_args, run_outputs
from rich.console import Console
from rich.table import Table

from musicbench.errors import MusicbenchError
from musicbench.harness.scoring import run_item_estimates
from musicbench.metrics import charge_failures
from musicbench.metrics.recipes import SopSteps, sop_figures, sop_item_scores

#: musicbench's recipe, then the Sound of Pixels' steps added one at a time (the last is its whole recipe).
STEPS = {
    "musicbench": SopSteps(truncate=False, clip=False, validity=False, batches=False),
    "+ truncate": SopSteps(truncate=True, clip=False, validity=False, batches=False),
    "+ clip": SopSteps(truncate=True, clip=True, validity=False, batches=False),
    "+ validity": SopSteps(truncate=True, clip=True, validity=True, batches=False),
    "+ batches (SoP)": SopSteps(),
}


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
    args = parse_args(__doc__.splitlines()[0], "sop_recipe.json")
    items, runs, skipped = items_and_runs(args)
    results, oracles = {}, set()
    for run in runs:
        try:
            figures = recipe_figures(items, run_outputs(run, items, run_item_estimates))
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
    finish(console, args, items, results, skipped)


if __name__ == "__main__":
    main()
