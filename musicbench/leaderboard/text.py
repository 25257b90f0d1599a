"""How the board's numbers read as text, shared by the Markdown and the HTML outputs."""

from __future__ import annotations

from musicbench.leaderboard.board import Comparison, MetricBlock, Row


def fmt(value: float | None, digits: int = 2) -> str:
    """`value` with `digits` decimals ("n/a" for None), never "-0.00"."""
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_block(block: MetricBlock | None, digits: int = 2) -> str:
    """``mean [low, high]`` ("n/a" for None; no CI part when the CI is unknown)."""
    if block is None:
        return "n/a"
    low, high = block.ci95
    ci = f" [{fmt(low, digits)}, {fmt(high, digits)}]" if low is not None and high is not None else ""
    return f"{fmt(block.mean, digits)}{ci}"


def digits(key: str) -> int:
    """Decimals of a metric: 3 for the localization fractions, 2 for dB."""
    return 3 if key in ("ciou", "pointing_hit") else 2


def fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def comparison_text(test: Comparison | None) -> str:
    """One line on a row's test against the baseline, e.g. ``better: median Δ +1.20 dB, p = 0.012 (n = 8)``."""
    if not test:
        return "n/a"
    if test.verdict == "baseline":
        return "baseline"
    if test.p is None:
        return f"not tested ({test.note or 'no p-value'})"
    arrow = {"better": "better", "worse": "worse"}.get(test.verdict, "n.s.")
    return f"{arrow}: median Δ {test.median_diff:+.2f} dB, p = {fmt_p(test.p_holm)} (n = {test.n})"


def kind_text(row: Row) -> str:
    """``main``, ``uses labels`` or ``reference (<oracle>)``."""
    if row.kind == "reference":
        return f"reference ({row.oracle})"
    return "uses labels" if row.kind == "labels" else "main"
