"""`musicbench leaderboard`: gather every run under ``runs/`` into the published leaderboard.

`build_leaderboard` reads the run folders written by `musicbench.evaluate.evaluate` (`runs`) and
writes under the output folder (default ``leaderboard/``)::

    leaderboard.md            Markdown tables, for READMEs and papers (`markdown`)
    leaderboard.json          the whole board: tables, rows, tests, provenance, per-item NSDR (`board`)
    leaderboard.parquet       one flat row per run (`tables`)
    metrics/<method>.json     DVC metrics, one file per method with the same keys (`dvc metrics show`
                              prints a row per method; `dvc metrics diff` compares them across commits)
    plots/per_instrument_nsdr.csv   DVC plots data: mean NSDR per method and instrument (bar template)
    index.html                the static site: opens from disk, no server, no network (`pages`)
    assets/                   its stylesheet and scripts (copied from musicbench/site)
    demo/<method>.html        one demo page per method, its audio (WAV) and frames (PNG) in demo/<method>/ (`demo`)

Honesty rules:

- Runs are ranked together only when they share the benchmark version, the split and the metric
  version: each such group gets its own table, and the board warns when there is more than one.
- Reference rows (runs whose ``provenance.oracle`` is set: the mixture floor, the IBM/IRM ceilings)
  are shown but never ranked. Label-free methods form the main track; methods that read the
  instrument labels (``uses_labels``) are marked and ranked in their own track.
- Run folders are untrusted: the board believes none of summary.json's numbers. Every count, flag and
  figure of a row (items, failures, completeness, means, medians, CIs, localization, per-instrument,
  duet and URMP blocks) is recomputed from the run's items.parquet with
  `musicbench.harness.summaries.summarize` (the run's own seed); with the data root (`root`) of the
  run's benchmark version, items.parquet is first re-scored from the run's estimates
  (`board.Rescorer`, through the signed score cache). A folder that disagrees with its own files, or
  that cannot be re-scored, is listed unranked with the first disagreement; a complete run has the
  data root's item count (else the most items a run of its table has). Symlinked run folders and run
  files are never followed (`runs.find_runs`, `runs.load_run`).
- Every mean carries its 95% bootstrap CI (recomputed from the run's items) and its median.
- Each method is compared with the table's best baseline by `stats.SIGNIFICANCE_TEST` (`stats.paired_test`).

Every string that comes from a run (names, folder names, options, reasons) is untrusted: it is
escaped for HTML (the Jinja2 templates autoescape) and Markdown, reaches the page's scripts only
through escaped attributes (the scripts set ``textContent``, never ``innerHTML``), and file names of
demo pages and metrics are sanitised (`slug.safe_slug`) and checked to stay inside the output folder.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, ensure_writable_dir, write_parquet
from musicbench.hidden import register_copy
from musicbench.leaderboard.board import Board, Rescorer, json_text, make_board
from musicbench.leaderboard.demo import write_demos
from musicbench.leaderboard.markdown import render_markdown
from musicbench.leaderboard.pages import render_index
from musicbench.leaderboard.runs import Run, find_runs
from musicbench.leaderboard.tables import (
    board_frame,
    dvc_metrics,
    per_instrument_records,
    plots_csv,
    write_dvc_metrics,
)
from musicbench.protocols import checked_view, protocol_views
from musicbench.run_folder import refuse_strangers
from musicbench.splits import train_instruments

SITE_ASSETS = ("leaderboard.css", "leaderboard.js", "demo.js")
BOARD_MARKER = ".musicbench-leaderboard"  # in a board's output folder: later builds may replace what it holds
# What a build writes in its output folder, by kind of entry (DVC adds .gitignore beside its outputs).
BOARD_FILES = ("leaderboard.md", "leaderboard.json", "leaderboard.parquet", "index.html", "metrics.json", ".gitignore",
               BOARD_MARKER)
BOARD_FOLDERS = {"metrics": r".+\.json", "plots": r".+\.csv", "assets": "|".join(map(re.escape, SITE_ASSETS)), "demo": None}


def check_board_folder(out_dir: Path) -> None:
    """MusicbenchError unless `out_dir` is missing, holds nothing but DVC's .gitignore, or is a board's:
    it holds only what a build writes there (`BOARD_FILES`, `BOARD_FOLDERS`; demo/ is checked by its
    own marker) and the `BOARD_MARKER` an earlier build left (or, for a board built before markers,
    its leaderboard.json and index.html). A build replaces files and deletes stale ones, so it never
    writes into a folder of something else (``--out .``)."""
    if not out_dir.is_dir():
        return
    entries = sorted(out_dir.iterdir())
    if {entry.name for entry in entries} <= {".gitignore"}:
        return
    strangers = []
    for entry in entries:
        if entry.is_symlink():
            strangers.append(entry.name)
        elif entry.name in BOARD_FILES:
            strangers += [] if entry.is_file() else [entry.name]
        elif entry.name in BOARD_FOLDERS and entry.is_dir():
            pattern = BOARD_FOLDERS[entry.name]
            if pattern is not None and not all(part.is_file(follow_symlinks=False) and re.fullmatch(pattern, part.name)
                                               for part in os.scandir(entry)):
                strangers.append(entry.name)
        else:
            strangers.append(entry.name)
    marked = (out_dir / BOARD_MARKER).is_file() or all((out_dir / name).is_file() for name in ("leaderboard.json", "index.html"))
    if not strangers and not marked:
        strangers = [entry.name for entry in entries if entry.name != ".gitignore"]
    refuse_strangers(out_dir, strangers, "leaderboard folder", "leaderboard build",
                     "; choose an empty folder (or one a build wrote) for --out")


def _copy_assets(out_dir: Path) -> None:
    assets = ensure_writable_dir(out_dir / "assets")
    site = resources.files("musicbench") / "site"
    for name in SITE_ASSETS:
        atomic_write_text(assets / name, (site / name).read_text(encoding="utf-8"))


def parse_demo_items(text: str) -> int | None:
    """``--demo-items``: ``all`` → None (every item), else a count of at least 0."""
    if str(text).strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise MusicbenchError(f"--demo-items must be 'all' or a count of at least 0 (0: no demo pages), got {text!r}")
    return count


def assemble_board(runs_dir: str | os.PathLike, root: str | os.PathLike | None = None, *, baseline: str | None = None,
                   seed: int = 1234) -> tuple[Board, list[Run], str | os.PathLike | None]:
    """The board of every run under `runs_dir`, checked and re-scored against the data root `root`
    (see `build_leaderboard`), without writing anything: (board, runs, the data root used or None)."""
    runs, warnings = find_runs(runs_dir)
    if not runs:
        raise MusicbenchError(f"no run under {str(runs_dir)!r} (a run folder holds summary.json); "
                              "run `musicbench evaluate` first")
    protocol_rescorers = []  # the papers' test sets built there re-score their runs
    for view in [] if root is None else protocol_views(root):
        try:
            protocol_rescorers.append(Rescorer(checked_view(view)))
        except MusicbenchError as exc:
            warnings.append(f"Protocol {view.protocol} is left out: {exc}")
    if root is not None and not DataRoot(root).has_definition():
        warnings.append(f"No benchmark definition under the data root {str(root)!r}: no demo pages were written "
                        "(run `musicbench mixtures`, or give --root).")
        root = None
    data = None if root is None else DataRoot(root)
    board = make_board(runs, None if data is None else data.version(), baseline, warnings, seed,
                       None if data is None else data.frames_fingerprint(), None if data is None else train_instruments(data.root),
                       rescorer=None if root is None else Rescorer(root),
                       current_video_frames=None if data is None else data.definition()["coverage"].get("frames"),
                       protocol_rescorers=tuple(protocol_rescorers))
    return board, runs, root


def build_leaderboard(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, root: str | os.PathLike | None = None,
                      *, demo_items: int | None = None, baseline: str | None = None, seed: int = 1234) -> dict[str, Any]:
    """Gather every run under `runs_dir` and write the leaderboard under `out_dir` (see the module
    docstring for the files). `root` is the data root: it names the current benchmark version and
    provides the items' audio and frames for the demo pages (without it: no demo pages; with it, the
    output folder is registered as a copy of the references, hidden from every later model:
    `musicbench.hidden.register_copy`), and the items
    that runs of its benchmark version are re-scored on (`board.Rescorer`; without it: no re-scoring,
    every row's numbers come from its items.parquet).
    `demo_items` test mixtures (and as many duets) per demo page (None: every item; 0: no demo pages); `baseline` names the run that the
    significance tests compare against (default: the best musicbench baseline of each table); `seed`
    seeds their bootstrap (params.yaml ``evaluate.seed``).
    Returns the board as leaderboard.json holds it (with each row's demo link). `out_dir` must be
    missing, empty or a board's (`check_board_folder`): nothing else is ever overwritten or deleted."""
    check_board_folder(Path(out_dir))
    board, runs, root = assemble_board(runs_dir, root, baseline=baseline, seed=seed)
    out = ensure_writable_dir(out_dir)
    atomic_write_text(out / BOARD_MARKER, "written by musicbench leaderboard: later builds replace what this folder holds\n")
    if root is not None:  # its demo pages publish estimates (an oracle's are the references, nearly)
        register_copy(root, out, "leaderboard")
    _copy_assets(out)
    write_demos(board, runs, root, out, demo_items)
    atomic_write_text(out / "leaderboard.json", json_text(board.to_json()))
    atomic_write_text(out / "leaderboard.md", render_markdown(board))
    write_parquet(board_frame(board), out / "leaderboard.parquet")
    write_dvc_metrics(dvc_metrics(board), out / "metrics")
    (out / "metrics.json").unlink(missing_ok=True)  # the one-file layout of earlier builds
    atomic_write_text(ensure_writable_dir(out / "plots") / "per_instrument_nsdr.csv", plots_csv(per_instrument_records(board)))
    atomic_write_text(out / "index.html", render_index(board))
    return board.to_json()
