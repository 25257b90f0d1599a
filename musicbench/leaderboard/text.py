"""How the board's numbers read as text, shared by the Markdown and the HTML outputs."""

from __future__ import annotations

import math

from musicbench.leaderboard.board import Comparison, MetricBlock, Row


def fmt(value: float | None, digits: int = 2) -> str:
    """`value` with `digits` decimals ("n/a" for None or NaN, "∞" and "−∞" for infinities), never "-0.00"."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def infinite_note(block: MetricBlock) -> str:
    """Why a block's mean is infinite, e.g. ``3 of 100 items failed`` or ``83 of 100 items ∞`` ("" if finite)."""
    if block.n_failed:
        return f"{block.n_failed} of {block.n} items failed"
    if block.n_plus_inf:
        return f"{block.n_plus_inf} of {block.n} items ∞"
    return ""


def fmt_mean(block: MetricBlock | None, digits: int = 2) -> str:
    """A block's mean ("n/a" for None; ``−∞ (3 of 100 items failed)`` or ``∞ (83 of 100 items ∞)`` for an infinite one)."""
    if block is None:
        return "n/a"
    if infinite_note(block):
        return f"{fmt(block.headline, digits)} ({infinite_note(block)})"
    return fmt(block.mean, digits)


def ci_text(ci: list[float | None] | None, digits: int = 2) -> str:
    """`` [low, high]``, or "" when the interval is unknown."""
    return f" [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci and ci[0] is not None and ci[1] is not None else ""


def fmt_block(block: MetricBlock | None, digits: int = 2) -> str:
    """``mean [low, high]`` (`fmt_mean`; no CI part when the mean is infinite or the CI unknown)."""
    if block is None or infinite_note(block):
        return fmt_mean(block, digits)
    return fmt_mean(block, digits) + ci_text(block.ci95, digits)


def digits(key: str) -> int:
    """Decimals of a metric: 3 for the localization fractions, 2 for dB."""
    return 3 if key in ("ciou", "pointing_hit") else 2


def p_text(p: float | None) -> str:
    """``p = 0.012``, ``p < 0.001`` or ``p n/a``."""
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def comparison_text(test: Comparison | None) -> str:
    """One line on a row's test against the baseline, e.g.
    ``better: mean Δ +1.20 dB [+0.31, +2.05], p = 0.012 (n = 100 items, 22 videos)``."""
    if not test:
        return "n/a"
    if test.verdict == "baseline":
        return "baseline"
    if test.p is None:
        return f"not tested ({test.note or 'no p-value'})"
    arrow = {"better": "better", "worse": "worse"}.get(test.verdict, "n.s.")
    low, high = test.ci95
    ci = f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else ""
    unit = f" {test.unit}" if test.unit else ""
    return f"{arrow}: mean Δ {test.mean_diff:+.2f}{unit}{ci}, {p_text(test.p_holm)} (n = {test.n} items, {test.n_videos} videos)"


def device_text(row: Row) -> str:
    """Where a row's estimates came from: ``scored from files`` (`musicbench score`), else the device,
    with ``, unconfined`` when the model process ran unconfined."""
    prov = row.provenance
    if prov.scored_from_files:
        return "scored from files"
    return (prov.device or "unknown") + (", unconfined" if prov.confined is False else "")


def kind_text(row: Row) -> str:
    """``main``, ``uses labels`` or ``reference (<oracle>)``."""
    if row.kind == "reference":
        return f"reference ({row.oracle})"
    return "uses labels" if row.kind == "labels" else "main"


def display_names(rows: list[Row]) -> dict[str, str]:
    """run folder → the name shown for it: its run name, with ``(runs/<folder>)`` added where two
    rows of `rows` share a name, so that same-named runs are told apart."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.name] = counts.get(row.name, 0) + 1
    return {row.folder: row.name if counts[row.name] == 1 else f"{row.name} (runs/{row.folder})" for row in rows}
