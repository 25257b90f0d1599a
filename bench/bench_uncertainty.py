"""How much wider intervals get when they respect shared videos: per run folder, the 95% CI of mean
NSDR by the item bootstrap (items as if independent, what the board did before) and by the video
bootstrap (`musicbench.stats`, what it does now), their widths and the ratio video / item.

Reads ``runs/*/items.parquet`` (the mixtures track; failed items are left out here, since only the
width is compared). Also prints how many items each test video is in.
Usage: python bench/bench_uncertainty.py [--runs runs] [--seed 1234]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from musicbench.leaderboard.stats import item_videos, per_item_values
from musicbench.stats import item_bootstrap_ci, video_bootstrap_ci


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    table = Table(title="95% CI of mean NSDR (dB): items as independent vs resampling videos")
    for column in ("run", "items", "videos", "mean", "item bootstrap", "video bootstrap", "width ratio"):
        table.add_column(column, justify="left" if column == "run" else "right")
    uses = None
    for path in sorted(p for p in args.runs.iterdir() if (p / "items.parquet").is_file()):
        items = pd.read_parquet(path / "items.parquet")
        values = per_item_values(items)
        videos = item_videos(items)
        if values.empty:
            continue
        units = [videos[item] for item in values.index]
        item_low, item_high = item_bootstrap_ci(values.to_numpy(), args.seed)
        video_low, video_high = video_bootstrap_ci(values.to_numpy(), units, args.seed)
        n_videos = len({v for unit in units for v in unit})
        table.add_row(path.name, str(len(values)), str(n_videos), f"{values.mean():.2f}",
                      f"[{item_low:.2f}, {item_high:.2f}]", f"[{video_low:.2f}, {video_high:.2f}]",
                      f"{(video_high - video_low) / (item_high - item_low):.2f}")
        uses = pd.Series([v for unit in units for v in unit]).value_counts()
    console = Console()
    console.print(table)
    if uses is not None:
        console.print(f"items per test video: min {uses.min()}, median {int(uses.median())}, max {uses.max()} "
                      f"({len(uses)} videos)")


if __name__ == "__main__":
    main()
