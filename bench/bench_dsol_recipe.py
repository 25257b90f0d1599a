"""DSOL's localization recipes against musicbench's cIoU, rule by rule, on the runs of a data root.

For every localizing run folder under ``--runs``, each map with a box (each source's on the main
benchmark's items or ``dsol-solo``'s; each annotated class's on ``dsol-duet``'s, averaged per item as
DSOL does) is scored by musicbench's rule and then by the binarisations of the literature, one
change at a time (`musicbench.metrics`, `musicbench.metrics.recipes`): musicbench's cIoU (the LVS
median rule on the min-max normalised map at the frame's size), the raw map above 0.1 × its maximum
at the frame's size, the same on DSOL's 224 × 224 grid with its boxes cut by ``int()`` (DSOL's solo
recipe, ``tools.py``), above 0.2 × the maximum there (DSOL's duet rule, ``eval_duet.py``), and above
0.5 × the maximum at the frame's size (DSOL's ``eval.py``, `musicbench.metrics.dsol_ciou`). A failed
item counts 0 in every rule. The first column is checked against the run's items.parquet (a run
where they differ by more than 1e-9 is left out, with a line saying why).

Prints, per run and rule, the mean cIoU, the success rates at 0.3 and 0.5 and the AUC, and writes
``--json``. docs/metrics.md ("DSOL's rules, one change at a time") holds its output on the default
repro. With ``--protocol NAME`` the items are a paper's test set built in the data root.
Usage: python bench/bench_dsol_recipe.py [--root data] [--runs runs] [--split test] [--protocol NAME] [--json FILE]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from recipe_runs import finish, items_and_runs, parse_args, run_outputs
from rich.console import Console
from rich.table import Table

from musicbench.errors import MusicbenchError
from musicbench.harness.scoring import item_boxes, item_class_boxes, run_item_heatmaps
from musicbench.leaderboard.runs import Run
from musicbench.metrics import auc_success, boxes_to_mask, charge_failures, ciou, ciou_success, dsol_ciou
from musicbench.metrics.recipes import DSOL_DUET_THRESHOLD, DSOL_SOLO_THRESHOLD, dsol_grid_ciou
from musicbench.progress import plain

Rule = Callable[[np.ndarray, np.ndarray, tuple[int, int]], float]
#: musicbench's rule, then one change at a time: (map, boxes (k, 4) in frame pixels, frame (H, W)) → cIoU.
RULES: dict[str, Rule] = {
    "musicbench (median rule)": lambda heatmap, boxes, size: ciou(heatmap, boxes_to_mask(boxes, *size)),
    "0.1 × max": lambda heatmap, boxes, size: dsol_ciou(heatmap, boxes_to_mask(boxes, *size), DSOL_SOLO_THRESHOLD),
    "+ 224² grid (DSOL solo)": lambda heatmap, boxes, size: dsol_grid_ciou(heatmap, boxes, size, DSOL_SOLO_THRESHOLD),
    "0.2 × max, 224² (DSOL duet)": lambda heatmap, boxes, size: dsol_grid_ciou(heatmap, boxes, size, DSOL_DUET_THRESHOLD),
    "0.5 × max (DSOL eval.py)": lambda heatmap, boxes, size: dsol_ciou(heatmap, boxes_to_mask(boxes, *size)),
}


def item_scores(item, heatmaps: np.ndarray | None) -> dict[str, list[float]]:
    """Per rule, the item's cIoUs as musicbench's items.parquet counts them: one per source with a box
    (a class-aware item: one, the mean over its annotated classes); 0 for each without a map."""
    size = tuple(item.frames.shape[2:4])
    if item.class_boxes is not None:
        boxes = item_class_boxes(item)
        if not boxes:
            return {name: [] for name in RULES}
        return {name: [0.0 if heatmaps is None else float(np.mean([rule(heatmaps[k], b, size) for k, b in boxes.items()]))]
                for name, rule in RULES.items()}
    pairs = [(k, boxes) for k, boxes in enumerate(item_boxes(item)) if boxes is not None]
    return {name: [0.0 if heatmaps is None else rule(heatmaps[k], boxes, size) for k, boxes in pairs]
            for name, rule in RULES.items()}


def run_rules(run: Run, items: list) -> dict[str, dict[str, float]]:
    """Per rule: ``mean``, ``success@0.3``, ``success@0.5``, ``auc`` and ``n`` over the run's maps."""
    values: dict[str, list[float]] = {name: [] for name in RULES}
    for item, heatmaps in zip(items, run_outputs(run, items, run_item_heatmaps), strict=True):
        for name, scores in item_scores(item, heatmaps).items():
            values[name] += scores
    return {name: {"mean": float(np.mean(v)), "success@0.3": ciou_success(v, 0.3), "success@0.5": ciou_success(v, 0.5),
                   "auc": auc_success(v), "n": len(v)} for name, v in values.items() if v}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], "dsol_recipe.json")
    items, runs, skipped = items_and_runs(args)
    results = {}
    for run in runs:
        table = charge_failures(run.items)
        ours = table[(table["track"] == "mixtures") & (table["split"] == args.split)]["ciou"].dropna()
        if ours.empty:
            skipped.append(f"{run.folder}: no map (the model does not localize)")
            continue
        try:
            figures = run_rules(run, items)
        except (MusicbenchError, ValueError) as exc:
            skipped.append(f"{run.folder}: {exc}")
            continue
        got = figures["musicbench (median rule)"]
        if got["n"] != len(ours) or abs(got["mean"] - float(ours.mean())) > 1e-9:
            skipped.append(f"{run.folder}: musicbench's rule here gives {got['mean']!r} over {got['n']} maps, its "
                           f"items.parquet {float(ours.mean())!r} over {len(ours)} (scored on another data root?)")
            continue
        results[run.folder] = figures
    console = Console()
    for key, title in (("mean", "mean cIoU"), ("success@0.5", "success rate at cIoU 0.5"), ("success@0.3", "success rate at 0.3"),
                       ("auc", "AUC of the success rate")):
        table = Table(title=f"{title} under each rule ({args.protocol or 'main benchmark'}, {args.split}, {len(items)} items)")
        table.add_column("run")
        for name in RULES:
            table.add_column(name, justify="right")
        for folder, figures in results.items():
            table.add_row(plain(folder), *(f"{figures[name][key]:.3f}" for name in RULES))
        console.print(table)
    finish(console, args, items, results, skipped)


if __name__ == "__main__":
    main()
