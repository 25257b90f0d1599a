"""What the leaderboard reads from the data root: the benchmark version and the benchmark items of the demo pages."""

from __future__ import annotations

import os
from pathlib import Path

from musicbench.errors import MusicbenchError
from musicbench.evaluate import EvalItem, benchmark_version, iter_items


def has_benchmark(root: str | os.PathLike) -> bool:
    """Whether `root` holds a benchmark definition (written by `musicbench mixtures`)."""
    return (Path(root) / "mixtures" / "benchmark.json").is_file()


def current_version(root: str | os.PathLike) -> str:
    """The benchmark version of the data under `root`."""
    return benchmark_version(root)


def load_items(root: str | os.PathLike, split: str, track: str, limit: int) -> list[EvalItem]:
    """The first `limit` items of `split` on `track` ("mixtures" or "duets"); none when the data root
    cannot provide them."""
    try:
        return list(iter_items(root, split, limit, track=track))
    except (MusicbenchError, OSError):
        return []
