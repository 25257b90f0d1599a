"""What the recipe benches (bench_sop_recipe.py, bench_dsol_recipe.py) share: the command line, the
items of a data root (or of a protocol built there) and the runs scored on them, each run's outputs
read as scoring reads them, and the lines and JSON file they end with."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from musicbench.benchmark import EvalItem
from musicbench.errors import MusicbenchError
from musicbench.harness.oracles import ORACLES
from musicbench.harness.scoring import ok_items
from musicbench.leaderboard.runs import Run, find_runs
from musicbench.progress import plain
from musicbench.protocols import protocol_root


def parse_args(description: str, json_name: str) -> argparse.Namespace:
    """``--root``, ``--runs``, ``--split``, ``--protocol`` and ``--json`` (default ``bench_out/<json_name>``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--protocol", default=None, help="a paper's test set built in --root (`musicbench protocol list`)")
    parser.add_argument("--json", type=Path, default=Path("bench_out") / json_name)
    return parser.parse_args()


def items_and_runs(args: argparse.Namespace) -> tuple[list[EvalItem], list[Run], list[str]]:
    """The mixture items of ``--split`` (of ``--protocol``), the run folders under ``--runs`` scored on
    them, and a line for each run folder left out (the board would refuse it, or it was scored on
    other items)."""
    items = protocol_root(args.root, args.protocol, args.split).read_verified_items(args.split)
    runs, skipped = find_runs(args.runs)
    chosen = []
    for run in runs:
        if run.invalid:
            skipped.append(f"{run.folder}: {run.invalid}")
        elif run.protocol != args.protocol:
            skipped.append(f"{run.folder}: scored on {'protocol ' + run.protocol if run.protocol else 'the main benchmark'}")
        else:
            chosen.append(run)
    return items, chosen, skipped


def run_outputs(run: Run, items: list[EvalItem], read: Callable[..., Any]) -> list[Any]:
    """Each item's outputs from the run folder by `read` (`musicbench.harness.scoring.run_item_estimates`
    or `run_item_heatmaps`: None where the model failed or its file is not acceptable, as scoring
    treats it), or an oracle's computed again from the item."""
    oracle = run.provenance.get("oracle") or None
    if oracle is not None and oracle not in ORACLES:
        raise MusicbenchError(f"provenance.json names oracle {oracle!r}, not one of {', '.join(ORACLES)}")
    done = ok_items(run.path)
    return [read(run.path, item, item.item_id in done, oracle) for item in items]


def finish(console: Console, args: argparse.Namespace, items: list[EvalItem], results: dict[str, Any],
           skipped: list[str]) -> None:
    """Print a line for each run left out, and write ``--json``."""
    for line in skipped:
        console.print(plain(f"not tabled: {line}"), markup=False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"split": args.split, "protocol": args.protocol, "n_items": len(items), "runs": results},
                                    indent=2) + "\n")
