"""leaderboard.md: the board as Markdown tables, for READMEs and papers; every run string escaped."""

from __future__ import annotations

import html
import re
from typing import Any

from musicbench.leaderboard.board import (
    BOARD_METRICS,
    DUET_METRICS,
    LOCALIZATION_VARIANTS,
    PAPER_RECIPE_FAILED,
    PAPER_RECIPE_FIGURES,
    URMP_METRICS,
    Board,
    Table,
    is_localization_table,
)
from musicbench.leaderboard.stats import SIGNIFICANCE_TEST
from musicbench.leaderboard.text import (
    ci_text,
    comparison_text,
    device_text,
    digits,
    display_names,
    fmt,
    fmt_block,
    kind_text,
)
from musicbench.metrics import LOCALIZATION_METRICS
from musicbench.progress import plain


def md_escape(text: Any) -> str:
    """Escape an untrusted string for a Markdown table cell: Markdown syntax and HTML both inert, and
    every other control or bidirectional formatting character (ESC, U+202E) shown as U+FFFD (`plain`)."""
    text = plain(str(text).replace("\r", " ").replace("\n", " "))
    text = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", text)
    return html.escape(text, quote=False)


def _ranking(table: Table) -> list[str]:
    localization = is_localization_table(table)  # a localization protocol's table: its separation columns would be empty
    metrics = [(key, title) for key, title in BOARD_METRICS if not localization or key in LOCALIZATION_METRICS]
    duet_metrics = () if localization else DUET_METRICS
    header = ["Rank", "Method", "Track"]
    for _, title in metrics:
        header += [title, "median"]
    header += [title for _, title, _ in LOCALIZATION_VARIANTS]
    header += [title for _, title in duet_metrics] + ["vs baseline (video bootstrap, Holm)", "Items scored"]
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---:", ":---", ":---"] + ["---:"] * (len(header) - 3)) + "|"]
    names = display_names(table.rows)
    for row in table.rows:
        rank = "unranked" if row.unranked and row.kind != "reference" else ("—" if row.rank is None else str(row.rank))
        name = md_escape(names[row.folder]) + (" (other frames)" if row.frames_differ else "")
        cells = [rank, name, md_escape(kind_text(row))]
        for key, _ in metrics:
            block = row.metrics.get(key)
            cells += [fmt_block(block, digits(key)), "n/a" if block is None else fmt(block.median, digits(key))]
        for key, _, _ in LOCALIZATION_VARIANTS:
            cells.append(fmt((row.localization or {}).get(key), 3))
        for key, _ in duet_metrics:
            cells.append("n/a" if row.duets is None else fmt_block(row.duets.get(key)))
        cells += [md_escape(comparison_text(row.test)), md_escape(f"{row.n_scored}/{row.n_items}")]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _per_instrument(table: Table) -> list[str]:
    if not table.instruments or is_localization_table(table):
        return []
    out = ["Mean NSDR (dB) per instrument over sources, with its 95% video-bootstrap CI:", "",
           "| Method | " + " | ".join(md_escape(i) for i in table.instruments) + " |",
           "|:---|" + "---:|" * len(table.instruments)]
    names = display_names(table.rows)
    for row in table.rows:
        values = [fmt(row.per_instrument.get(i, {}).get("nsdr")) + ci_text(row.per_instrument_nsdr_ci95.get(i))
                  for i in table.instruments]
        out.append(f"| {md_escape(names[row.folder])} | " + " | ".join(values) + " |")
    return out + [""]


def _provenance(table: Table) -> list[str]:
    out = ["Provenance:", "", "| Method | Benchmark version | Git revision | Date | Device | Parameters | s / item |",
           "|:---|:---|:---|:---|:---|---:|---:|"]
    names = display_names(table.rows)
    for row in table.rows:
        prov = row.provenance
        out.append("| " + " | ".join([
            md_escape(names[row.folder]), md_escape(prov.benchmark_version), md_escape((prov.git_revision or "unknown")[:12]),
            md_escape(prov.date or "unknown"), md_escape(device_text(row)),
            "n/a" if prov.n_parameters is None else f"{prov.n_parameters:,}",
            fmt(prov.seconds_per_item, 3)]) + " |")
    return out + [""]


def _urmp(table: Table) -> list[str]:
    """The real-ensembles (URMP) table: rows that have the track, mean [95% CI, pieces resampled]."""
    rows = [row for row in table.rows if row.urmp is not None]
    if not rows:
        return []
    out = ["Real ensembles (URMP: natural mixtures of 2-5 players, the real stems as references; "
           "mean [95% CI, a bootstrap over pieces]):", "",
           "| Method | Query | " + " | ".join(title for _, title in URMP_METRICS) + " | Items scored | Pieces held | Track version |",
           "|:---|:---|" + "---:|" * len(URMP_METRICS) + "---:|---:|:---|"]
    for row in rows:
        urmp = row.urmp
        query = {True: "separate_at (strip centres)", False: "separate (strip crops)", None: "unknown"}[urmp.separate_at]
        cells = [md_escape(row.name), query] + [fmt_block(urmp.metrics.get(key)) for key, _ in URMP_METRICS]
        held = f"{urmp.pieces['held']}/{urmp.pieces['pieces']}" if urmp.pieces else "unknown"
        cells += [md_escape(f"{urmp.n_scored}/{urmp.n_items}"), held, md_escape(urmp.version or "unknown")]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _paper_recipe(table: Table) -> list[str]:
    """A protocol table's figures by the paper's own recipe, recomputed from each run's estimates; never ranked."""
    rows = [row for row in table.rows if row.paper_recipe is not None]
    if table.protocol is None or not rows:
        return []
    scoring = table.protocol.get("scoring", "sop")
    columns = PAPER_RECIPE_FIGURES[scoring]
    out = [f"By the paper's recipe ({md_escape(table.protocol['recipe'])}); recomputed from each run's outputs over "
           f"every item the data root holds ({PAPER_RECIPE_FAILED[scoring]}), never ranked; the rank is musicbench's:", "",
           "| Rank | Method | " + " | ".join(title for _, title in columns) + " | Items kept | Items not held |",
           "|---:|:---|" + "---:|" * len(columns) + "---:|---:|"]
    for row in rows:
        figures = row.paper_recipe
        rank = str(row.rank) if row.rank is not None else ("untrusted" if row.untrusted else "—")
        cells = [rank, md_escape(row.name)] + [fmt(figures.get(key)) for key, _ in columns]
        cells += [f"{figures.get('n_valid', figures['n_items'])}/{figures['n_items']}", str(figures["n_not_held"])]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def render_markdown(board: Board) -> str:
    """leaderboard.md: per table the ranking (mean [95% CI] and median), the per-instrument NSDR and the provenance."""
    out = [f"# {board.title}", ""]
    out.append("Mean over items with its 95% confidence interval (a bootstrap over videos: items share videos), then the "
               "median. Every item counts: a failed one counts −∞ (cIoU and pointing 0), so a run with a failed item is "
               "listed unranked below the complete ones, as is a run that scored fewer items; ∞ marks a mean over items "
               "at +∞ (a perfect estimate). Reference rows (oracles) are not ranked; methods that use instrument labels "
               "are ranked separately from the main (label-free) track.")
    out += ["", f"Significance: {SIGNIFICANCE_TEST}.", ""]
    for warning in board.warnings:
        out += [f"> **Warning:** {md_escape(warning)}", ""]
    for table in board.tables:
        title = "Benchmark version" if table.protocol is None else f"Protocol {md_escape(table.protocol['name'])}, version"
        out.append(f"## {title} `{md_escape(table.benchmark_version)}` · split {md_escape(table.split)} · "
                   f"metric version {md_escape(table.metric_version)}" + ("" if table.current or table.protocol else " (not current)"))
        out.append("")
        for warning in table.warnings:
            out += [f"> **Warning:** {md_escape(warning)}", ""]
        if table.baseline:
            out += [f"Baseline of the tests: {md_escape(table.baseline.name)} ({md_escape(table.baseline.why)}).", ""]
        out += _ranking(table) + _paper_recipe(table) + _per_instrument(table) + _urmp(table) + _provenance(table)
    return "\n".join(out)
