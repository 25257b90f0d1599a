"""Time to generate the default MUSIC-Synth set (params.yaml) and its size on disk.

Run: python bench/bench_synth.py [--params params.yaml] [--jobs N]
Prints wall time, videos per second, seconds of media generated per wall second and the bytes
written per kind of file. Generates into a temporary folder, deleted afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from musicbench.config import load_params
from musicbench.synth import SynthConfig, generate_synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    config = SynthConfig.from_params(load_params(args.params))
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        start = time.perf_counter()
        entries = generate_synth(config, tmp, jobs=args.jobs)
        wall = time.perf_counter() - start
        sizes = {kind: sum(p.stat().st_size for p in (Path(tmp) / "synth" / kind).iterdir())
                 for kind in ("videos", "stems", "boxes")}
    media_seconds = sum(e.duration for e in entries)
    table = Table(title=f"MUSIC-Synth default set ({args.params}, jobs={args.jobs or config.jobs})")
    for column in ("videos", "solo", "duet", "media s", "wall s", "media s / wall s", "videos MB", "stems MB", "boxes MB"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(entries)), str(sum(e.kind == "solo" for e in entries)), str(sum(e.kind == "duet" for e in entries)),
        f"{media_seconds:.0f}", f"{wall:.1f}", f"{media_seconds / wall:.1f}",
        *(f"{sizes[k] / 1e6:.1f}" for k in ("videos", "stems", "boxes")),
    )
    Console().print(table)


if __name__ == "__main__":
    main()
