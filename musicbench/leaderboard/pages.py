"""The static site's HTML: Jinja2 templates (templates/, autoescape on) filled from the board.

Every string from a run is untrusted: the templates escape it, it reaches the page's scripts only
through escaped attributes (the scripts set ``textContent``, never ``innerHTML``), and the pages'
Content-Security-Policy allows only the site's own scripts, styles and media.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined

from musicbench.leaderboard.board import (
    BOARD_METRICS,
    DUET_METRICS,
    KINDS,
    LOCALIZATION_VARIANTS,
    PAPER_RECIPE_FAILED,
    PAPER_RECIPE_FIGURES,
    URMP_METRICS,
    Board,
    Comparison,
    Row,
    RunProvenance,
)
from musicbench.leaderboard.charts import distribution_chart, per_instrument_chart
from musicbench.leaderboard.stats import SIGNIFICANCE_TEST
from musicbench.leaderboard.text import device_text, digits, fmt, infinite_note, kind_text, p_text
from musicbench.metrics import LOCALIZATION_METRICS

if TYPE_CHECKING:
    from musicbench.leaderboard.demo import DemoItem

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "base-uri 'none'; form-action 'none'")
KIND_LABELS = {
    "main": "Main track: label-free audio-visual methods",
    "labels": "Methods that use the instrument labels (ranked separately)",
    "reference": "References: not ranked",
}
#: the ranking's column groups, each shown or hidden as one by its checkbox: (group, label, shown at first)
COLUMN_GROUPS = (("separation", "separation", True), ("localization", "localization", True), ("duets", "duets", True),
                 ("details", "details (medians, cIoU success@0.5 and AUC)", False))


def comparison_detail(test: Comparison) -> str:
    """The tooltip of a tested row: both differences, both p-values and the paired items."""
    low, high = test.ci95
    ci = f" [{low:+.3f}, {high:+.3f}]" if low is not None and high is not None else ""
    unit = f" {test.unit}" if test.unit else ""
    return (f"paired video bootstrap vs {test.against}: mean difference {test.mean_diff:+.3f}{unit}{ci}, "
            f"median difference {test.median_diff:+.3f}{unit}, {p_text(test.p)}, Holm-adjusted {p_text(test.p_holm)}, "
            f"{test.n} paired items on {test.n_videos} videos")


def sort_key(value: object) -> object:
    """A cell's data-value: infinities as JavaScript's ``Infinity`` / ``-Infinity``, anything else as is."""
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def provenance_details(prov: RunProvenance) -> str:
    """The provenance a row's details box shows, as indented JSON."""
    return json.dumps({"model_file": prov.model_file, "model_sha256": prov.model_sha256, "options": prov.options,
                       "package_versions": prov.package_versions, "metric_version": prov.metric_version,
                       "seed": prov.seed, "wall_seconds": prov.wall_seconds, "frames_fingerprint": prov.frames_fingerprint,
                       "interpreter": prov.interpreter, "scored_from_files": prov.scored_from_files},
                      indent=1, sort_keys=True, default=str)


def excluded_text(reasons: dict[str, int]) -> str:
    """``"<count> <reason>, ..."`` of a row's excluded items."""
    return ", ".join(f"{count} {reason}" for reason, count in reasons.items())


@cache
def environment() -> Environment:
    """The templates' environment: autoescape on for every template, undefined names are errors."""
    env = Environment(loader=PackageLoader("musicbench.leaderboard", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(fmt=fmt, p_text=p_text, infinite_note=infinite_note, sort_key=sort_key, device_text=device_text, digits=digits,
                       px=lambda value: f"{value:.1f}", comparison_detail=comparison_detail, provenance_details=provenance_details,
                       excluded_text=excluded_text)
    env.globals.update(csp=CSP, board_metrics=BOARD_METRICS, duet_metrics=DUET_METRICS, urmp_metrics=URMP_METRICS,
                       paper_recipe_figures=PAPER_RECIPE_FIGURES, paper_recipe_failed=PAPER_RECIPE_FAILED,
                       localization_variants=LOCALIZATION_VARIANTS, kinds=KINDS, kind_labels=KIND_LABELS,
                       column_groups=COLUMN_GROUPS, localization_keys=LOCALIZATION_METRICS)
    return env


def render_index(board: Board) -> str:
    """index.html: per table the sortable ranking, per-instrument table and bars, the NSDR
    distribution and the provenance; assets from ``assets/``; no network access."""
    return environment().get_template("index.html").render(
        board=board, title=board.title, assets="assets/", scripts=("leaderboard.js",),
        significance_test=SIGNIFICANCE_TEST,
        bar_charts={table.id: per_instrument_chart(table) for table in board.tables},
        distribution_charts={table.id: distribution_chart(table) for table in board.tables},
    )


def render_demo(row: Row, mixtures: list[DemoItem], duets: list[DemoItem], others: list[dict] | None = None) -> str:
    """A run's demo page (``demo/<slug>.html``): an index of its test-mixture items best first (with
    links to the best, median and worst), the items with their scores and ground-truth stems, then
    its duet items. `others`: the other pages (``{name, slug, items: {item slug: NSDR}}``) whose
    estimates the page can set beside its own, item by item."""
    middle = mixtures[len(mixtures) // 2] if mixtures else None
    return environment().get_template("demo.html").render(
        row=row, kind=kind_text(row), mixtures=mixtures, duets=duets, title=f"Demo: {row.name}", assets="../assets/",
        scripts=("demo.js",), others_json=json.dumps(others or []), has_others=bool(others), median_item=middle,
    )
