"""Paper-ready tables of the board: booktabs LaTeX and compact Markdown, with chosen columns.

`paper_table(board, fmt, columns, ci)` renders the current benchmark version's table (else the
board's first) in the board's order: the label-free main track, then methods that use labels, then
the reference rows (oracles), with a rule between the groups. Each cell is the mean over items,
optionally with its 95% video-bootstrap interval; the best value of each column among ranked rows
of the main track is bold (every column here is higher-is-better). A row without a rank (failed or
missing items, numbers the board could not check) is marked with a dagger and a note. The caption
names the benchmark version, split, metric version and item count, so a number in a paper says what
it was computed on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from musicbench.errors import MusicbenchError
from musicbench.leaderboard.board import Board, MetricBlock, Row, Table
from musicbench.leaderboard.markdown import md_escape
from musicbench.leaderboard.text import display_names
from musicbench.progress import plain

#: column name → (title, unit, where the value is read from a row)
PAPER_COLUMNS: dict[str, tuple[str, str, Callable[[Row], Any]]] = {
    "nsdr": ("NSDR", "dB", lambda row: row.metrics.get("nsdr")),
    "sdr": ("SDR", "dB", lambda row: row.metrics.get("sdr")),
    "sir": ("SIR", "dB", lambda row: row.metrics.get("sir")),
    "sar": ("SAR", "dB", lambda row: row.metrics.get("sar")),
    "si_sdr": ("SI-SDR", "dB", lambda row: row.metrics.get("si_sdr")),
    "si_sdri": ("SI-SDRi", "dB", lambda row: row.metrics.get("si_sdri")),
    "ciou": ("cIoU", "", lambda row: row.metrics.get("ciou")),
    "pointing": ("Pointing", "", lambda row: row.metrics.get("pointing_hit")),
    "auc": ("cIoU AUC", "", lambda row: (row.localization or {}).get("auc_success")),
    "duet_nsdr": ("Duet NSDR", "dB", lambda row: (row.duets or {}).get("nsdr")),
}
DEFAULT_COLUMNS = ("sdr", "sir", "sar", "nsdr")
FORMATS = ("latex", "markdown")
_GROUPS = (("main", "label-free"), ("labels", "uses labels"), ("reference", "reference"))
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def parse_columns(text: str | None) -> tuple[str, ...]:
    """``"sdr,sir,sar"`` → the column names, checked; None or empty: `DEFAULT_COLUMNS`."""
    if not text:
        return DEFAULT_COLUMNS
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PAPER_COLUMNS]
    if unknown or not names:
        raise MusicbenchError(f"unknown column(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(PAPER_COLUMNS)}")
    return names


def latex_escape(text: str) -> str:
    """Text set literally in LaTeX: every special character escaped, and what `plain` made of a
    control character (U+FFFD, which pdflatex cannot set) shown as ``?``."""
    text = plain(text).replace("\ufffd", "?")
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def _value(row: Row, column: str) -> tuple[float | None, list[float | None]]:
    """(mean, ci) of a row's column: −inf for a block with failed items, None when not scored."""
    value = PAPER_COLUMNS[column][2](row)
    if isinstance(value, MetricBlock):
        headline = value.headline
        return (None if headline != headline else headline), value.ci95
    return (None if value is None else float(value)), [None, None]


def _digits(column: str) -> int:
    return 2 if PAPER_COLUMNS[column][1] else 3


def _number(value: float | None, digits: int, latex: bool) -> str:
    if value is None:
        return "--" if latex else "n/a"
    if value == float("-inf"):
        return r"$-\infty$" if latex else "−∞"
    if value == float("inf"):
        return r"$\infty$" if latex else "∞"
    text = f"{0.0 if round(value, digits) == 0 else value:.{digits}f}"  # no "-0.00"
    return text.replace("-", "$-$", 1) if latex and text.startswith("-") else text.replace("-", "−", 1)


def _cell(row: Row, column: str, ci: bool, bold: bool, latex: bool) -> str:
    mean, interval = _value(row, column)
    digits = _digits(column)
    text = _number(mean, digits, latex)
    if bold and mean is not None:
        text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
    if ci and mean is not None and None not in interval:
        low, high = (_number(v, digits, latex) for v in interval)
        text += rf" {{\scriptsize [{low}, {high}]}}" if latex else f" [{low}, {high}]"
    return text


def _chosen_table(board: Board) -> Table:
    if not board.tables:
        raise MusicbenchError("the board has no table: run `musicbench evaluate` first")
    return next((table for table in board.tables if table.current), board.tables[0])


def _groups(table: Table) -> list[tuple[str, list[Row]]]:
    return [(label, [row for row in table.rows if row.kind == kind]) for kind, label in _GROUPS
            if any(row.kind == kind for row in table.rows)]


def _best(table: Table, columns: tuple[str, ...]) -> dict[str, float]:
    best = {}
    for column in columns:
        values = [_value(row, column)[0] for row in table.rows if row.kind == "main" and row.rank is not None]
        values = [v for v in values if v is not None and v == v]
        if values:
            best[column] = max(values)
    return best


def _name(row: Row, names: dict[str, str], latex: bool) -> str:
    name = latex_escape(names[row.folder]) if latex else md_escape(names[row.folder])
    return name + (r"$^\dagger$" if latex else " †") if row.rank is None and row.kind != "reference" else name


def _caption(table: Table, ci: bool) -> str:
    n_items = max((row.n_items for row in table.rows if isinstance(row.n_items, int)), default=None)
    protocol = "" if table.protocol is None else f"Protocol {table.protocol['name']} ({table.protocol['paper']}): "
    return (f"{protocol}musicbench {table.benchmark_version}, {table.split} split" + (f", {n_items} items" if n_items else "")
            + f", metric version {table.metric_version}. Mean over items"
            + ("; in brackets the 95% confidence interval of a bootstrap over videos" if ci else "")
            + ". Best label-free value in bold.")


def paper_table(board: Board, fmt: str = "latex", columns: tuple[str, ...] = DEFAULT_COLUMNS, ci: bool = False) -> str:
    """The current table of `board` as a paper table (see the module docstring): ``fmt`` latex
    (booktabs, a complete ``table`` environment) or markdown."""
    if fmt not in FORMATS:
        raise MusicbenchError(f"unknown table format {fmt!r}: choose {' or '.join(FORMATS)}")
    latex = fmt == "latex"
    table = _chosen_table(board)
    best = _best(table, columns)
    titles = [PAPER_COLUMNS[c][0] + (f" ({PAPER_COLUMNS[c][1]})" if PAPER_COLUMNS[c][1] else "") for c in columns]
    groups = _groups(table)
    names = display_names(table.rows)
    unranked = any(row.rank is None and row.kind != "reference" for _, rows in groups for row in rows)
    note = "Not ranked (a failed or missing item, or numbers the board could not check)."

    def cells(row: Row) -> list[str]:
        mean_of = {c: _value(row, c)[0] for c in columns}
        return [_cell(row, c, ci, row.kind == "main" and row.rank is not None and c in best and mean_of[c] == best[c], latex)
                for c in columns]

    if not latex:
        lines = ["| Method | " + " | ".join(titles) + " |", "|:---|" + "---:|" * len(columns)]
        for label, rows in groups:
            if len(groups) > 1:
                lines.append(f"| *{label}* |" + " |" * len(columns))
            lines += ["| " + " | ".join([_name(row, names, False), *cells(row)]) + " |" for row in rows]
        lines += ["", md_escape(_caption(table, ci)) + (f" † {note}" if unranked else "")]
        return "\n".join(lines) + "\n"
    titles = [latex_escape(title) for title in titles]
    lines = [r"% musicbench leaderboard --format latex; needs \usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering",
             r"\caption{" + latex_escape(_caption(table, ci)) + (r" $^\dagger$" + latex_escape(note) if unranked else "") + "}",
             r"\label{tab:musicbench}", r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\toprule",
             "Method & " + " & ".join(titles) + r" \\", r"\midrule"]
    for position, (label, rows) in enumerate(groups):
        if position:
            lines.append(r"\midrule")
        if len(groups) > 1:
            lines.append(r"\multicolumn{" + str(len(columns) + 1) + r"}{l}{\emph{" + latex_escape(label) + r"}} \\")
        lines += [" & ".join([_name(row, names, True), *cells(row)]) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
