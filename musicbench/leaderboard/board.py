"""The board model: typed rows and tables built from run folders (`make_board`), as leaderboard.json holds them.

Runs are ranked together only when they share the benchmark version, the split and the metric version:
each such group is a `Table`. Reference rows (oracles) are shown, never ranked; methods that read the
instrument labels are ranked in their own track. Only complete runs are ranked: a run with a failed
item, or one that scored fewer items than the benchmark has (``--limit``), is listed below the ranked
rows with what is missing, so that failing on chosen items can never raise a rank. Every row is
compared with its table's baseline by `musicbench.leaderboard.stats.paired_test` (a video bootstrap),
the p-values Holm-adjusted per table.

A run folder is untrusted, so the board believes none of summary.json's numbers (`check_run`): every
count, flag and figure of a row is recomputed from the run's items.parquet with
`musicbench.harness.summaries.summarize`, the function that wrote summary.json; with the data root of
the run's benchmark version, items.parquet is first re-scored from the run's estimates (`Rescorer`,
through the signed score cache). A folder whose files disagree (`summary_difference`, `table_difference`), or that
cannot be re-scored, is listed unranked with the first disagreement (``Row.untrusted``).
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicbench.benchmark import ALL_TRACKS, URMP_TRACK, DataRoot, EvalItem, read_mixtures
from musicbench.errors import MusicbenchError
from musicbench.harness.oracles import ORACLES
from musicbench.harness.scoring import paper_recipe_scores, score_items
from musicbench.harness.summaries import summarize
from musicbench.leaderboard.runs import ITEM_KEY, MAX_ITEMS_BYTES, Run
from musicbench.leaderboard.stats import (
    ALPHA,
    SIGNIFICANCE_TEST,
    PairedTest,
    holm,
    item_videos,
    paired_test,
    per_item_values,
)
from musicbench.metrics import ITEM_METRICS, METRIC_VERSION, PER_INSTRUMENT_METRICS, charge_failures, finite_or_none
from musicbench.progress import plain
from musicbench.stats import video_bootstrap_ci, videos_by_item

BOARD_SCHEMA = 1
KINDS = ("main", "labels", "reference")
# The board's columns: (key in summary metrics, column title); localization scores are fractions, the rest dB.
BOARD_METRICS: tuple[tuple[str, str], ...] = (
    ("nsdr", "NSDR (dB)"), ("sir", "SIR (dB)"), ("sar", "SAR (dB)"), ("si_sdri", "SI-SDRi (dB)"),
    ("ciou", "cIoU"), ("pointing_hit", "Pointing game"),
)
DUET_METRICS: tuple[tuple[str, str], ...] = (("nsdr", "Duet NSDR (dB)"), ("si_sdri", "Duet SI-SDRi (dB)"))
# The real-ensembles (URMP) table: these metrics over its items, mean [95% CI over pieces].
URMP_METRICS: tuple[tuple[str, str], ...] = (("nsdr", "NSDR (dB)"), ("sdr", "SDR (dB)"), ("sir", "SIR (dB)"),
                                             ("sar", "SAR (dB)"), ("si_sdri", "SI-SDRi (dB)"))
# A protocol table's figures by the paper's own recipe (`musicbench.metrics.recipes`), never ranked.
PAPER_RECIPE_FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "sop": (("sdr", "SDR (dB)"), ("sdr_mix", "Mixture SDR (dB)"), ("nsdr", "NSDR (dB)"), ("sir", "SIR (dB)"), ("sar", "SAR (dB)")),
    "dsol-solo": (("ciou_mean", "cIoU mean"), ("success@0.5", "cIoU success@0.5"), ("auc", "cIoU AUC")),
    "dsol-duet": (("ciou_mean", "class cIoU mean"), ("success@0.3", "success@0.3"), ("success@0.5", "success@0.5"),
                  ("auc", "AUC"), ("nsa", "NSA")),
}
# How each recipe counts an item a run lacks (as the paper's code counts a failed one).
PAPER_RECIPE_FAILED = {"sop": "an item a run lacks counts as failed, so skipped: Items kept",
                       "dsol-solo": "an item a run lacks counts cIoU 0",
                       "dsol-duet": "an item a run lacks counts cIoU 0 and NSA 0"}
# summary.json ``localization``: the named variants pooled over sources (key, column title, flat key).
LOCALIZATION_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("ciou_success@0.5", "cIoU success@0.5", "ciou_success_0_5"), ("auc_success", "cIoU AUC", "ciou_auc"),
)


@dataclass
class MetricBlock:
    """One metric of a run over its items: mean, median, 95% video-bootstrap CI ``[low, high]``, n items,
    n_failed (charged −inf: the mean is then −inf, stored as None) and n_plus_inf (items at +inf: the
    mean is then +inf, stored as None)."""

    mean: float | None
    median: float | None
    ci95: list[float | None]
    n: int
    n_failed: int = 0
    n_plus_inf: int = 0

    @property
    def headline(self) -> float:
        """The mean as a number to rank by: −inf with a failed item, +inf with an infinite item, NaN if unknown."""
        if self.n_failed:
            return float("-inf")
        if self.n_plus_inf:
            return float("inf")
        return float("nan") if self.mean is None else self.mean


@dataclass(kw_only=True)
class Comparison(PairedTest):
    """A row against its table's baseline (leaderboard.json ``test``): the `PairedTest` fields, the
    baseline's name (`against`), the Holm-adjusted p and the verdict ("baseline", "better", "worse",
    "no significant difference" or "not tested"); `unit` that of the differences ("dB" for NSDR, ""
    for a localization table's cIoU; left out of the JSON when "dB")."""

    against: str
    verdict: str
    p_holm: float | None = None
    unit: str = "dB"


@dataclass
class RunProvenance:
    """What a row's numbers were computed on and with (from provenance.json)."""

    benchmark_version: str = "unknown"
    metric_version: str = "unknown"
    split: str = "unknown"
    git_revision: str | None = None
    date: str | None = None
    device: str | None = None
    n_parameters: int | None = None
    seconds_per_item: float | None = None
    wall_seconds: float | None = None
    model_file: str | None = None
    model_sha256: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    package_versions: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    confined: bool | None = None  # the model process was confined (None: an oracle, or a run made before confinement)
    confinement: str | None = None  # what confinement did, or why there was none
    frames_fingerprint: str | None = None  # the model inputs' frames (`DataRoot.frames_fingerprint`), None for older runs
    interpreter: dict[str, Any] | None = None  # the model process's interpreter (executable, python, numpy, torch)
    scored_from_files: dict[str, Any] | None = None  # `musicbench score`: the estimate folder, its hash and file count


@dataclass
class UrmpResult:
    """A run's real-ensembles (URMP) track: metric blocks (CI: video bootstrap, a piece is the
    video), items, items scored, the track's identity, whether it went through ``separate_at``, and
    the pieces its copy held of the track's (``pieces``: ``{"pieces", "held"}``)."""

    metrics: dict[str, MetricBlock | None]
    n_items: int | None
    n_scored: int | None
    version: str | None
    separate_at: bool | None
    pieces: dict[str, int] | None = None  # its copy's coverage as the run records it: the track's pieces and those held


@dataclass
class Row:
    """One run on the board. `metrics` and `duets` map metric names to blocks (None: not scored),
    `per_instrument` instrument → metric → mean (dB), `per_item_nsdr` item_id → NSDR (dB).
    `item_videos` item_id → the videos of its sources (the unit of the tests' resampling).
    `item_keys` item_id → its key (`musicbench.benchmark.item_keys`; items of one id and other keys
    are never compared). `coverage` the run's coverage of the split's mixture items as the board
    checks it against its data root (`checked_coverage`; None without the data root of its version).
    `per_instrument_nsdr_ci95` instrument → the 95% video-bootstrap CI of that mean NSDR.
    Every count and figure is recomputed from the run's items (`check_run`), never read from summary.json:
    `untrusted` is why they cannot be trusted ("" when they can: the run folder disagrees with its own
    files, or could not be re-scored), and such a row is unranked; `rescored` says whether its
    items.parquet was checked against its estimates.
    `rank`, `unranked` (why the row has no rank: untrusted numbers, failed or missing items; "" when
    ranked) and `test` are set by `make_board`, `demo` (page path) or `demo_note` (why none) by the demo writer."""

    name: str
    folder: str
    kind: str
    rank: int | None = None
    oracle: str | None = None
    uses_labels: bool = False
    baseline: bool = False
    metrics: dict[str, MetricBlock | None] = field(default_factory=dict)
    localization: dict[str, float | None] | None = None
    duets: dict[str, MetricBlock | None] | None = None
    duet_items: int | None = None
    n_items: Any = None
    n_scored: Any = None
    n_excluded: Any = None
    excluded_reasons: dict[str, Any] = field(default_factory=dict)
    per_instrument: dict[str, dict[str, float]] = field(default_factory=dict)
    per_instrument_nsdr_ci95: dict[str, list[float | None]] = field(default_factory=dict)
    per_item_nsdr: dict[str, float] = field(default_factory=dict)
    per_item_ciou: dict[str, float] = field(default_factory=dict)  # the rank's per-item scores in a localization table
    rank_metric: str = "nsdr"  # "ciou" in a localization protocol's table (left out of the JSON otherwise)
    item_videos: dict[str, list[str]] = field(default_factory=dict)
    item_keys: dict[str, str] = field(default_factory=dict)
    coverage: dict[str, int] | None = None
    unranked: str = ""
    untrusted: str = ""
    rescored: bool = False
    frames_differ: bool = False
    test: Comparison | None = None
    provenance: RunProvenance = field(default_factory=RunProvenance)
    problems: list[str] = field(default_factory=list)
    demo: str | None = None
    demo_note: str = ""
    urmp: UrmpResult | None = None  # the real-ensembles track, when the run has one (left out of the JSON otherwise)
    paper_recipe: dict[str, Any] | None = None  # a protocol run: the paper's recipe, recomputed (left out of the JSON otherwise)

    @property
    def headline_mean(self) -> float | None:
        """The headline: the mean of `rank_metric` over all items (NSDR: −inf when an item failed;
        cIoU: a failed item counts 0), None when not scored."""
        block = self.metrics.get(self.rank_metric)
        return None if block is None or np.isnan(block.headline) else block.headline

    @property
    def per_item_headline(self) -> dict[str, float]:
        """item_id → the `rank_metric` score of each item it scored (what the tests pair)."""
        return self.per_item_nsdr if self.rank_metric == "nsdr" else self.per_item_ciou


@dataclass
class BaselineChoice:
    """The row a table's tests compare against, and why it was chosen."""

    name: str
    folder: str
    why: str


@dataclass
class Table:
    """The runs of one (benchmark version, split, metric version), ranked; `instruments` sorted."""

    id: str
    benchmark_version: str
    split: str
    metric_version: str
    current: bool
    warnings: list[str]
    baseline: BaselineChoice | None
    instruments: list[str]
    rows: list[Row]
    unseen_classes: dict[str, list[str]] = field(default_factory=dict)  # track → its classes the training split lacks
    protocol: dict[str, str] | None = None  # a paper's test set (`musicbench.protocols`): name, paper, recipe, checked


def is_localization_table(table: Table) -> bool:
    """Whether `table` ranks a localization protocol's runs (by cIoU: `Row.rank_metric`)."""
    return table.protocol is not None and table.protocol.get("task") == "localization"


@dataclass
class Board:
    """The whole leaderboard: the current benchmark version's tables first."""

    current_benchmark_version: str | None
    warnings: list[str]
    tables: list[Table]
    schema: int = BOARD_SCHEMA
    title: str = "musicbench leaderboard"
    significance_test: dict[str, Any] = field(default_factory=lambda: {
        "description": SIGNIFICANCE_TEST, "alpha": ALPHA, "test": "paired video bootstrap", "correction": "holm",
        "metric": "nsdr", "track": "mixtures"})

    def to_json(self) -> dict[str, Any]:
        """The board as leaderboard.json holds it: plain dicts and lists, NaN and ±inf as None; a row's
        ``urmp`` only where it has the real-ensembles track, its ``paper_recipe`` and the table's
        ``protocol`` only for a paper's test set."""
        doc = json_safe(asdict(self))
        for table in doc["tables"]:
            if table.get("protocol") is None:
                table.pop("protocol", None)
            for row in table["rows"]:
                if row.get("rank_metric") == "nsdr":
                    del row["rank_metric"], row["per_item_ciou"]
                if isinstance(row.get("test"), dict) and row["test"].get("unit") == "dB":
                    del row["test"]["unit"]
                for key in ("urmp", "paper_recipe"):
                    if row.get(key) is None:
                        row.pop(key, None)
        return doc


def json_safe(value: Any) -> Any:
    """JSON-safe copy: NaN and ±inf become None (strict JSON has neither), numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_text(value: Any) -> str:
    """`value` as the board's JSON files hold it: `json_safe`, keys sorted, indented, UTF-8 text."""
    return json.dumps(json_safe(value), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False, default=str) + "\n"


# ------------------------------------------------------------------------------ checking a run folder

# summary.json's figures that the board compares with the summary it recomputes (`summary_difference`)
SUMMARY_COUNTS = ("n_items", "n_excluded", "n_scored", "complete")
SUMMARY_BLOCK_FIELDS = ("mean", "median", "n", "n_failed", "n_plus_inf")
SUMMARY_TOLERANCE = 1e-9  # relative
# items.parquet's columns that re-scoring must give again (`table_difference`)
RESCORED_TEXT = ("status", "video_id", "instrument")
RESCORED_SCORES = ("sdr", "sir", "sar", "sdr_mix", "nsdr", "si_sdr", "si_sdri", "ciou", "pointing_hit")
LOCALIZATION_SCORES = ("ciou", "pointing_hit")
RESCORE_TOLERANCE = 1e-6  # absolute
MAX_ESTIMATE_BYTES = 1 << 30  # an estimate or heatmap file larger than this is not read


def _shown(value: Any) -> str:
    """A summary value as a disagreement names it: JSON's spelling, numbers to 6 significant digits."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return f"a track of {value['n_items']} items" if isinstance(value.get("n_items"), int) else "an object"
    return plain(value)[:60]


def _same(claimed: Any, computed: Any) -> bool:
    """Whether a value of summary.json equals the recomputed one (numbers within `SUMMARY_TOLERANCE`, relative)."""
    if isinstance(claimed, bool) or isinstance(computed, bool) or claimed is None or computed is None:
        return type(claimed) is type(computed) and claimed == computed
    if isinstance(claimed, (int, float)) and isinstance(computed, (int, float)):
        a, b = float(claimed), float(computed)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=SUMMARY_TOLERANCE, abs_tol=1e-12)
    return claimed == computed


def _first_difference(claimed: dict[str, Any], computed: dict[str, Any], prefix: str = "") -> tuple[str, Any, Any] | None:
    """(where, summary.json's value, the recomputed value) of the first figure of one track's summary
    that summary.json states and gets wrong, else None. What summary.json leaves out is not compared
    (the board never reads it)."""
    for key in SUMMARY_COUNTS:
        if key in claimed and not _same(claimed[key], computed.get(key)):
            return prefix + key, claimed[key], computed.get(key)
    if "excluded_reasons" in claimed:
        stated, actual = claimed["excluded_reasons"] or {}, computed.get("excluded_reasons") or {}
        for reason in sorted(set(stated) | set(actual)):
            if stated.get(reason, 0) != actual.get(reason, 0):
                return f"{prefix}excluded_reasons[{plain(reason)[:40]!r}]", stated.get(reason, 0), actual.get(reason, 0)
    stated_metrics, actual_metrics = claimed.get("metrics") or {}, computed.get("metrics") or {}
    for name in sorted(stated_metrics):
        block, actual = stated_metrics[name], actual_metrics.get(name)
        if actual is None:
            return f"{prefix}metrics.{name}.n", block.get("n", "a block"), "no such metric"
        for key in SUMMARY_BLOCK_FIELDS:
            if key in block and not _same(block[key], actual.get(key)):
                return f"{prefix}metrics.{name}.{key}", block[key], actual.get(key)
    if "localization" in claimed:
        stated, actual = claimed["localization"], computed.get("localization")
        if (stated is None) != (actual is None):
            return prefix + "localization", stated, actual
        for key, value in (stated or {}).items():
            if not _same(value, (actual or {}).get(key)):
                return f"{prefix}localization.{key}", value, (actual or {}).get(key)
    if "per_instrument" in claimed:
        stated, actual = claimed["per_instrument"] or {}, computed.get("per_instrument") or {}
        for instrument in sorted(stated):
            if instrument not in actual:
                return f"{prefix}per_instrument.{plain(instrument)[:40]}", "an instrument", "none"
            for metric, value in stated[instrument].items():
                if not _same(value, actual[instrument].get(metric)):
                    return f"{prefix}per_instrument.{plain(instrument)[:40]}.{metric}", value, actual[instrument].get(metric)
    return None


def summary_difference(claimed: dict[str, Any], computed: dict[str, Any], source: str = "items.parquet") -> str:
    """The first figure summary.json (`claimed`) states and gets wrong against `computed` (the summary
    recomputed from `source`), e.g. ``n_excluded 0, items.parquet has 30``; "" when they agree. Counts,
    ``complete``, failure reasons, every metric block's mean, median, n, n_failed and n_plus_inf, the
    localization variants and the per-instrument means of each track (mixtures, duets, urmp)."""
    found = _first_difference(claimed, computed)
    for track in ("duets", URMP_TRACK):
        if found is None and track in claimed:
            stated, actual = claimed[track], computed.get(track)
            if (stated is None) != (actual is None):
                found = track, stated, actual
            elif stated is not None:
                found = _first_difference(stated, actual, f"{track}.")
    if found is None:
        return ""
    where, stated, actual = found
    return f"{where} {_shown(stated)}, {source} has {_shown(actual)}"


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame`'s compared columns, indexed by (track, item, source) and sorted."""
    keyed = pd.DataFrame({"track": frame["track"].astype(str).to_numpy(), "item_id": frame["item_id"].astype(str).to_numpy(),
                          "source_index": pd.to_numeric(frame["source_index"]).to_numpy(dtype=np.int64)})
    for column in RESCORED_TEXT:
        keyed[column] = frame[column].astype(str).to_numpy()
    for column in RESCORED_SCORES:
        keyed[column] = _numeric(frame, column)
    keyed = keyed.set_index(list(ITEM_KEY)).sort_index()
    tracks = [track for track in ALL_TRACKS if track in keyed.index.get_level_values(0)]  # mixtures first
    return pd.concat([keyed.xs(track, level=0, drop_level=False) for track in tracks]) if tracks else keyed


def _unscorable_localization(claimed: pd.DataFrame, items: list[EvalItem]) -> set[str]:
    """The tracks whose localization the data root cannot score, since none of their `items` has a
    box (real MUSIC, whose boxes `evaluate --boxes` takes from a file that the run does not record),
    while items.parquet has cIoU or pointing values for them: those are kept, not compared."""
    tracks = set()
    for track in {item.track for item in items}:
        if any(box is not None and np.size(box) > 0 for item in items if item.track == track for box in item.boxes):
            continue
        theirs = claimed[claimed["track"] == track]
        if any(not np.isnan(_numeric(theirs, column)).all() for column in LOCALIZATION_SCORES):
            tracks.add(str(track))
    return tracks


def table_difference(claimed: pd.DataFrame, rescored: pd.DataFrame, skip_localization: set[str] = frozenset()) -> str:
    """The first place where items.parquet (`claimed`) disagrees with the table re-scored from the run's
    estimates, "" when they agree: the same item ids per track and the same sources, the same status,
    video and instrument, every score within `RESCORE_TOLERANCE` (absolute; infinities equal, missing
    values on both sides). cIoU and pointing game are not compared on the `skip_localization` tracks."""
    ours, theirs = _keyed(rescored), _keyed(claimed)
    for track in ALL_TRACKS:
        stated = set(theirs.xs(track, level=0).index.get_level_values(0)) if track in theirs.index.get_level_values(0) else set()
        actual = set(ours.xs(track, level=0).index.get_level_values(0)) if track in ours.index.get_level_values(0) else set()
        if stated - actual:
            return f"it lists {track} item {plain(sorted(stated - actual)[0])[:60]!r}, which re-scoring does not give"
        if actual - stated:
            return f"it lacks {track} item {plain(sorted(actual - stated)[0])[:60]!r}"
    if not ours.index.equals(theirs.index):
        extra = theirs.index.difference(ours.index)
        track, item, source = (extra if len(extra) else ours.index.difference(theirs.index))[0]
        return f"{track} item {plain(item)[:60]!r} source {source}: the sources differ"
    mismatch = pd.DataFrame(False, index=ours.index, columns=[*RESCORED_TEXT, *RESCORED_SCORES])
    for column in RESCORED_TEXT:
        mismatch[column] = ours[column].to_numpy() != theirs[column].to_numpy()
    skipped = ours.index.get_level_values(0).isin(list(skip_localization))
    for column in RESCORED_SCORES:
        a, b = theirs[column].to_numpy(), ours[column].to_numpy()
        with np.errstate(invalid="ignore"):
            same = (np.isnan(a) & np.isnan(b)) | (a == b) | (np.abs(a - b) <= RESCORE_TOLERANCE)
        mismatch[column] = ~same & ~(skipped & (column in LOCALIZATION_SCORES))
    rows = mismatch.any(axis=1)
    if not rows.any():
        return ""
    key = rows[rows].index[0]
    column = next(c for c in mismatch.columns if mismatch.at[key, c])
    stated, actual = theirs.at[key, column], ours.at[key, column]
    if column in RESCORED_TEXT:
        stated, actual = repr(plain(stated)[:40]), repr(plain(actual)[:40])
    else:
        stated, actual = f"{stated:.6g}", f"{actual:.6g}"
    track, item, source = key
    return f"{track} item {plain(item)[:60]!r} source {source}: {column} {stated} in items.parquet, {actual} re-scored"


def _regular_file(path: Path, max_bytes: int) -> str:
    """"" when `path` is a regular file (not a symlink) of at most `max_bytes`, else what it is."""
    try:
        info = os.lstat(path)
    except OSError:
        return f"no {path.name}"
    if stat.S_ISLNK(info.st_mode):
        return f"{plain(path.name)[:60]} is a symlink"
    if not stat.S_ISREG(info.st_mode):
        return f"{plain(path.name)[:60]} is not a regular file"
    return f"{plain(path.name)[:60]} is too large" if info.st_size > max_bytes else ""


def estimates_problem(run_dir: Path, oracle: str | None = None, localization_only: bool = False) -> str:
    """Why the run folder cannot be re-scored ("" if it can): no inference.parquet or, but for an
    `oracle` run (its outputs are computed again from the data root), no estimates/ ("no estimates";
    a run of a localization protocol, `localization_only`: no heatmaps/, "no heatmaps"), or an
    inference.parquet, estimates/, heatmaps/ or file in them that is a symlink, not a regular
    file, or too large (nothing is followed out of the run folder)."""
    for name in ("inference.parquet", "estimates", "heatmaps"):
        if (run_dir / name).is_symlink():
            return f"{name} is a symlink"
    outputs = "heatmaps" if localization_only else "estimates"
    if not (run_dir / "inference.parquet").exists() or (oracle is None and not (run_dir / outputs).is_dir()):
        return f"no {outputs}"
    problem = _regular_file(run_dir / "inference.parquet", MAX_ITEMS_BYTES)
    if problem:
        return problem
    for name in ("estimates", "heatmaps"):
        folder = run_dir / name
        if not folder.exists():
            continue
        if not folder.is_dir():
            return f"{name} is not a folder"
        with os.scandir(folder) as entries:
            for entry in entries:
                problem = _regular_file(Path(entry.path), MAX_ESTIMATE_BYTES)
                if problem:
                    return f"{name}/{problem}"
    return ""


@dataclass
class Rescored:
    """What `Rescorer.rescore` made of a run: the re-scored items table (None when there is none, with
    the reason in `problem`), notes (tracks it could not re-score), and the tracks whose localization
    the data root cannot score (`_unscorable_localization`)."""

    table: pd.DataFrame | None
    problem: str = ""
    notes: list[str] = field(default_factory=list)
    skip_localization: set[str] = field(default_factory=set)


class Rescorer:
    """Re-scores run folders of the data root's benchmark version
    (`musicbench.harness.scoring.score_items`, no progress bar): each split's items are built and
    checked once for the whole board (`DataRoot.read_verified_items`, per track, as many as the runs
    need), and scores come from the data root's signed score cache, so re-scoring an honest run costs
    a cache lookup per item."""

    def __init__(self, root: str | os.PathLike):
        self.data = DataRoot(root)  # a protocol's view (`musicbench.protocols.protocol_root`) re-scores its runs
        self.root = self.data.root
        self.version = self.data.version()
        self.protocol: dict[str, Any] | None = self.data.definition().get("protocol") if self.data.protocol else None
        # (split, track) → the items the data root holds by id, or the error building them
        self._items: dict[tuple[str, str], dict[str, EvalItem] | MusicbenchError] = {}

    def covers(self, run: Run) -> bool:
        """Whether `run` can be re-scored here: the data root's benchmark version, scored by this
        musicbench's metric version (another metric version's numbers cannot be reproduced)."""
        return run.benchmark_version == self.version and run.metric_version == METRIC_VERSION and run.items is not None

    def reserve(self, runs: list[Run]) -> None:
        """Build, once, every item of each split and track that a run of this version scored."""
        for split, track in sorted({(run.split, str(track)) for run in runs if self.covers(run)
                                    and not estimates_problem(run.path, run.oracle, self.data.localization_only)
                                    for track in run.items["track"].unique()}):
            try:
                self._track_items(split, track)
            except MusicbenchError:
                pass  # kept, and reported by every run that needs these items

    def item_count(self, split: str) -> int | None:
        """The number of mixture items of `split` in the benchmark (held here or not; None when the data
        root has no definition): what a complete run of the current version has."""
        try:
            return int(self.data.definition()["coverage"]["tracks"]["mixtures"][split]["items"])
        except (MusicbenchError, OSError, KeyError, TypeError, ValueError):
            return None

    def canonical_items(self, split: str) -> dict[str, set[str]] | None:
        """Every mixture item of `split` in the benchmark, held here or not, with its videos (from
        benchmark.json's coverage and the mixture table); None when the data root cannot say."""
        try:
            cover = self.data.definition()["coverage"]
            table = read_mixtures(self.data.mixtures_path)
        except (MusicbenchError, OSError, KeyError, TypeError):
            return None
        items: dict[str, set[str]] = {}
        for item_id, rows in table[table["split"] == split].groupby("item_id"):
            items[str(item_id)] = set(rows["video_id"])
        for row in cover.get("not_held", []):
            if row.get("track") == "mixtures" and row.get("split") == split:
                items[row["item_id"]] = set(str(row.get("item_videos") or row.get("videos") or "").split())
        return items

    def video_copies(self, split: str) -> dict[str, tuple[str, int, int]]:
        """video → (SHA-256 of its frame archive, its samples, its frames) for each video of `split`'s
        held items here: a run whose copy of a video has the same frames had the same length."""
        try:
            frames = (self.data.definition()["coverage"].get("frames") or {}).get(split) or {}
            index = self.data.read_index().set_index("video_id")
        except (MusicbenchError, OSError, KeyError, TypeError, AttributeError):
            return {}
        return {str(video): (str(sha), int(index.loc[video, "n_samples"]), int(index.loc[video, "n_frames"]))
                for video, sha in frames.items() if video in index.index}

    def canonical_clips(self, split: str) -> dict[str, dict[str, tuple[int, int]]]:
        """item_id → video → the end of its clip, ``(sample, frame)``, of each mixture item of `split`
        this data root holds (what a run's claim that a video is too short is checked against)."""
        try:
            table = read_mixtures(self.data.mixtures_path)
        except (MusicbenchError, OSError):
            return {}
        clips: dict[str, dict[str, tuple[int, int]]] = {}
        for row in table[table["split"] == split].itertuples(index=False):
            clips.setdefault(str(row.item_id), {})[str(row.video_id)] = (int(row.start_sample) + int(row.n_samples),
                                                                         int(row.start_frame) + int(row.n_frames))
        return clips

    def _track_items(self, split: str, track: str) -> dict[str, EvalItem]:
        """Every item of `split` and `track` that the data root holds, by id, built (and their files
        checked) at most once."""
        if (split, track) not in self._items:
            try:
                self._items[(split, track)] = {item.item_id: item for item in self.data.read_verified_items(split, None, (track,))}
            except (MusicbenchError, OSError) as exc:
                self._items[(split, track)] = MusicbenchError(str(exc))
        built = self._items[(split, track)]
        if isinstance(built, MusicbenchError):
            raise built
        return built

    def _held(self, run: Run, track: str, claimed: pd.DataFrame) -> list[EvalItem]:
        """This data root's items for the `track` items the run scored, in id order; MusicbenchError
        when the data root does not hold one of them, or holds it with other audio (another key)."""
        held = self._track_items(run.split, track)
        rows = claimed[claimed["track"] == track].drop_duplicates("item_id").sort_values("item_id")
        absent = [item for item in rows["item_id"] if item not in held]
        if absent:
            raise MusicbenchError(f"the data root does not hold {len(absent)} of its {track} items (e.g. {plain(absent[0])[:40]})")
        other = [row.item_id for row in rows.itertuples(index=False) if row.item_key and row.item_key != held[row.item_id].key]
        if other:
            raise MusicbenchError(f"{len(other)} of its {track} items have other audio here (audio differs, "
                                  f"e.g. {plain(other[0])[:40]})")
        return [held[item] for item in rows["item_id"]]

    def _urmp_problem(self, run: Run) -> str:
        """Why the run's real-ensembles track cannot be re-scored against this data root ("" if it can)."""
        try:
            version = self.data.urmp_version()
        except MusicbenchError as exc:
            return str(exc)
        if version is None:
            return "the data root has no real-ensembles track"
        claimed = run.provenance.get("urmp_version")
        if claimed != version:
            return f"the run's real-ensembles version is {plain(claimed)[:40]}, the data root's {version}"
        theirs = (run.provenance.get("urmp_coverage") or {}).get("tables_fingerprint")
        ours = (self.data.urmp_coverage() or {}).get("tables_fingerprint")
        return "" if theirs == ours else (f"the run's URMP copy held other pieces or other audio (items {plain(theirs)[:20]}, "
                                          f"the data root's {ours})")

    def rescore(self, run: Run) -> Rescored:
        """The run's items table re-scored from its estimates: of each track, this data root's items of
        the ids in its items.parquet (a run made with ``--limit``, or on a data root that lacks some
        videos, scored some of them), each with the key the run recorded (`_held`)."""
        problem = estimates_problem(run.path, run.oracle, self.data.localization_only)
        if problem:
            return Rescored(None, f"not re-scored: {problem}")
        claimed = run.items
        counts = claimed.groupby("track")["item_id"].nunique().to_dict() if claimed is not None else {}
        items: list[EvalItem] = []
        kept, notes = [], []
        for track in ALL_TRACKS:
            if not counts.get(track):
                continue
            if track == URMP_TRACK:
                problem = self._urmp_problem(run)
                if problem:
                    kept.append(track)
                    notes.append(f"the {track} track is not re-scored ({problem}): its figures are items.parquet's")
                    continue
            try:
                items += self._held(run, track, claimed)
            except MusicbenchError as exc:
                return Rescored(None, plain(f"not re-scored: {exc}"))
        try:
            table = score_items(run.path, self.data, split=run.split, items=items, show_progress=False,
                                oracle=run.oracle if run.oracle in ORACLES else None)
        except Exception as exc:  # an untrusted folder: whatever its files make the scorer raise is this row's problem
            return Rescored(None, plain(f"not re-scored: {type(exc).__name__}: {exc}")[:300])
        if kept:
            table = pd.concat([table, claimed[claimed["track"].isin(kept)].reindex(columns=table.columns)], ignore_index=True)
        skip = _unscorable_localization(claimed, items)
        if skip:
            notes.append(f"cIoU and pointing game of the {', '.join(sorted(skip))} track(s) are not re-scored (the data "
                         "root has no boxes for their items; `evaluate --boxes` files are not recorded): items.parquet's")
        return Rescored(table, "", notes, skip)


    def paper_recipe(self, run: Run) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A protocol run's figures by the paper's recipe, recomputed from its estimates
        (`musicbench.harness.scoring.paper_recipe_scores`, with ``n_not_held``), twice: over every
        item of the protocol this data root holds (what the board shows: one the run lacks counts as
        failed), and over those its own data root held by its provenance's coverage (what its
        summary.json states: a lab's data root may lack videos this one has). None when this is not
        a protocol or the run cannot be re-scored (the row says why)."""
        if self.protocol is None or run.items is None or estimates_problem(run.path, run.oracle, self.data.localization_only):
            return None
        declared = (((run.provenance.get("coverage") or {}).get("tracks") or {}).get("mixtures") or {}).get("not_held") or []
        try:
            self._held(run, "mixtures", run.items)  # the run's items are this data root's
            held = list(self._track_items(run.split, "mixtures").values())
            oracle = run.oracle if run.oracle in ORACLES else None
            recipe = self.protocol["recipe"]
            shown = paper_recipe_scores(run.path, held, recipe, oracle)
            own = [item for item in held if item.item_id not in set(declared)]
            stated = shown if len(own) == len(held) else paper_recipe_scores(run.path, own, recipe, oracle)
        except Exception:  # an untrusted folder: `rescore` reports what is wrong with it
            return None
        items = self.data.definition()["coverage"]["tracks"]["mixtures"]["test"]["items"]
        return {**shown, "n_not_held": items - len(held)}, {**stated, "n_not_held": items - len(own)}


def _with_localization_of(table: pd.DataFrame, claimed: pd.DataFrame, tracks: set[str]) -> pd.DataFrame:
    """`table` with the cIoU and pointing game of `tracks` taken from `claimed` (matched by item and source)."""
    if not tracks:
        return table
    table = table.copy()
    keys = list(ITEM_KEY)
    stated = claimed.set_index(keys)
    index = pd.MultiIndex.from_frame(table[keys].astype({"source_index": "int64"}))
    chosen = table["track"].isin(list(tracks)).to_numpy()
    for column in LOCALIZATION_SCORES:
        values = _numeric(table, column)
        if column in stated.columns:
            values = np.where(chosen, stated[column].reindex(index).to_numpy(dtype=np.float64, na_value=np.nan), values)
        table[column] = values
    return table


@dataclass
class CheckedRun:
    """A run as the board trusts it (`check_run`): `run` with the items table its numbers come from
    (items.parquet, or the re-scored table where they disagree) and its problems, `summary` recomputed
    from that table (`musicbench.harness.summaries.summarize`), `untrusted` the first reason its numbers cannot
    be trusted ("" if none), `rescored` whether items.parquet was checked against the estimates."""

    run: Run
    summary: dict[str, Any]
    untrusted: str = ""
    rescored: bool = False
    paper_recipe: dict[str, Any] | None = None  # a protocol run's figures by the paper's recipe, recomputed


def _confinement(prov: dict[str, Any]) -> tuple[bool | None, str]:
    """(whether the model process was confined as the board shows it, the problem when provenance
    contradicts itself): True only when ``confined`` is true and ``confinement`` starts with "confined"."""
    confined, text = prov.get("confined"), prov.get("confinement")
    says_confined = isinstance(text, str) and text.startswith("confined")
    if confined is True and not says_confined:
        return False, f"provenance.json says confined, but its confinement says {plain(text)[:80]!r}: shown unconfined"
    if confined is False and says_confined:
        return False, f"provenance.json says unconfined, but its confinement says {plain(text)[:80]!r}: shown unconfined"
    return (confined if isinstance(confined, bool) else None), ""


def check_run(run: Run, seed: int = 1234, rescorer: Rescorer | None = None) -> CheckedRun:
    """The board's view of a run: re-score items.parquet from the estimates when `rescorer`'s data root
    has the run's benchmark version and metric version (`Rescorer.covers`; a disagreement: the problem "items.parquet disagrees with its
    estimates (re-scored): ...", and the re-scored table is used; no estimates: "not re-scored: ..."),
    summarize the table with the run's own seed (else `seed`), compare summary.json with that summary
    ("summary.json disagrees with ...: ..."), and check provenance's confinement. A run of the data
    root's benchmark version scored with another metric version cannot be re-scored ("not re-scored:
    metric version ..."). Any of these but the confinement makes the row untrusted, so unranked."""
    problems, items, untrusted, rescored, source = list(run.problems), run.items, "", False, "items.parquet"
    if rescorer is not None and run.benchmark_version == rescorer.version and run.metric_version != METRIC_VERSION:
        # the data root's items, another metric version: this musicbench cannot reproduce its numbers
        untrusted = plain(f"not re-scored: metric version {run.metric_version[:20]}, this musicbench scores with "
                          f"{METRIC_VERSION} (evaluate it again)")
        problems.append(untrusted)
    if rescorer is not None and rescorer.covers(run):
        outcome = rescorer.rescore(run)
        problems += outcome.notes
        if outcome.table is None:
            problems.append(outcome.problem)
            untrusted = outcome.problem
        else:
            rescored = True
            difference = table_difference(items, outcome.table, outcome.skip_localization)
            if difference:
                untrusted = f"items.parquet disagrees with its estimates (re-scored): {difference}"
                problems.append(untrusted)
                items = _with_localization_of(outcome.table, items, outcome.skip_localization)
                source = "its estimates (re-scored)"
    summary: dict[str, Any] = {}
    if items is not None:
        try:
            summary = summarize(items, run.seed if run.seed is not None else seed)
        except Exception as exc:  # an untrusted table that passed its schema and still cannot be summarized
            problem = plain(f"items.parquet cannot be summarized ({type(exc).__name__}: {exc})")[:300]
            problems.append(problem)
            untrusted, summary = untrusted or problem, {}
        difference = summary_difference(run.summary, summary, source) if summary else ""
        if difference:
            problems.append(f"summary.json disagrees with {source}: {difference}")
            untrusted = untrusted or problems[-1]
    both = rescorer.paper_recipe(run) if rescorer is not None and rescored else None
    paper, stated = (None, None) if both is None else both
    claimed = run.summary.get("paper_recipe")
    wrong = [key for key in sorted(claimed or {}) if stated is not None and not _same(claimed[key], stated.get(key))]
    if wrong:
        problems.append(f"summary.json disagrees with its estimates (re-scored): paper_recipe.{wrong[0]} "
                        f"{_shown(claimed[wrong[0]])}, its estimates give {_shown(stated.get(wrong[0]))}")
        untrusted = untrusted or problems[-1]
    _, confinement_problem = _confinement(run.provenance)
    if confinement_problem:
        problems.append(confinement_problem)
    return CheckedRun(replace(run, items=items, problems=problems), summary, untrusted, rescored, paper)


# ------------------------------------------------------------------------------------------- rows


def _metric_block(values: Any) -> MetricBlock | None:
    if not isinstance(values, dict):
        return None
    n_failed, n_plus_inf = int(values.get("n_failed") or 0), int(values.get("n_plus_inf") or 0)
    if finite_or_none(values.get("mean")) is None and not (n_failed or n_plus_inf):
        return None
    ci = values.get("ci95") if isinstance(values.get("ci95"), (list, tuple)) else [None, None]
    ci = (list(ci) + [None, None])[:2]
    return MetricBlock(mean=finite_or_none(values.get("mean")), median=finite_or_none(values.get("median")),
                       ci95=[finite_or_none(ci[0]), finite_or_none(ci[1])], n=int(values.get("n") or 0),
                       n_failed=n_failed, n_plus_inf=n_plus_inf)


def _seconds_per_item(run: Run, summary: dict[str, Any]) -> float | None:
    items = run.items
    if items is not None and "seconds" in items.columns:
        rows = items[(items["track"] == "mixtures") & (items["status"] == "ok")].drop_duplicates("item_id")
        seconds = pd.to_numeric(rows["seconds"], errors="coerce").dropna()
        if len(seconds):
            return float(seconds.mean())
    wall, n = finite_or_none(run.provenance.get("wall_seconds")), summary.get("n_items")
    return wall / n if wall is not None and isinstance(n, int) and n > 0 else None


def _run_date(run: Run) -> str | None:
    for key in ("date", "created", "timestamp"):
        value = run.provenance.get(key)
        if isinstance(value, str) and value:
            return plain(value)
    for name in ("provenance.json", "summary.json"):
        try:
            mtime = (run.path / name).lstat().st_mtime
        except OSError:
            continue
        return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return None


def _charged_mixture_rows(run: Run) -> pd.DataFrame | None:
    """The run's mixtures-track rows with failures charged (`charge_failures`: a failed source counts
    −inf, so failing never helps); None when items.parquet lacks what per-instrument figures need."""
    items = run.items
    if items is None or not {"instrument", "status"} <= set(items.columns):
        return None
    return charge_failures(items[items["track"] == "mixtures"])


def _per_instrument(summary: dict[str, Any], rows: pd.DataFrame | None) -> dict[str, dict[str, float]]:
    """instrument → metric → mean over sources: `summary`'s (``per_instrument``, from `summarize`), with
    the infinite means it stores as null (a failed source: −∞) taken again from the charged `rows`."""
    result: dict[str, dict[str, float]] = {}
    for instrument, stated in (summary.get("per_instrument") or {}).items():
        means = {}
        for metric, value in stated.items():
            if value is None and rows is not None and metric in rows.columns:
                values = pd.to_numeric(rows.loc[rows["instrument"] == instrument, metric], errors="coerce").dropna()
                value = float(values.mean()) if len(values) else None
            if value is not None and not math.isnan(value):
                means[metric] = value
        result[plain(instrument)] = means
    return result


def _text_or_none(value: Any) -> str | None:
    return plain(value) if value else None


def _provenance(run: Run, summary: dict[str, Any]) -> RunProvenance:
    prov = run.provenance
    n_parameters = prov.get("n_parameters")
    confined, _ = _confinement(prov)
    return RunProvenance(
        benchmark_version=plain(run.benchmark_version), metric_version=plain(run.metric_version), split=plain(run.split),
        git_revision=_text_or_none(prov.get("git_revision")), date=_run_date(run),
        device=_text_or_none(prov.get("device")),
        n_parameters=n_parameters if type(n_parameters) is int else None,
        seconds_per_item=_seconds_per_item(run, summary), wall_seconds=finite_or_none(prov.get("wall_seconds")),
        model_file=_text_or_none(prov.get("model_file")), model_sha256=_text_or_none(prov.get("model_sha256")),
        options=prov.get("options") if isinstance(prov.get("options"), dict) else {},
        confined=confined, confinement=_text_or_none(prov.get("confinement")),
        frames_fingerprint=_text_or_none(prov.get("frames_fingerprint")),
        interpreter=_dict_of(prov, "interpreter"), scored_from_files=_dict_of(prov, "scored_from_files"),
        package_versions=prov.get("package_versions") if isinstance(prov.get("package_versions"), dict) else {},
        seed=prov.get("seed"),
    )


def _dict_of(document: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = document.get(key)
    return value if isinstance(value, dict) else None


def _per_instrument_ci(rows: pd.DataFrame | None, seed: int) -> dict[str, list[float | None]]:
    """instrument → 95% video-bootstrap CI of its mean NSDR over the charged `rows`' sources (each
    source weighted by its item's videos); [None, None] where a failed source makes the mean −inf."""
    if rows is None or not {"nsdr", "video_id"} <= set(rows.columns):
        return {}
    videos = videos_by_item(rows)
    result: dict[str, list[float | None]] = {}
    for instrument, group in rows.groupby("instrument"):
        values = pd.to_numeric(group["nsdr"], errors="coerce").dropna()
        if len(values) and np.isfinite(values).all():
            unit_videos = [videos[str(item)] for item in group.loc[values.index, "item_id"]]
            result[plain(instrument)] = list(video_bootstrap_ci(values.to_numpy(), unit_videos, seed))
        else:
            result[plain(instrument)] = [None, None]
    return result


def row_of(run: Run | CheckedRun, seed: int = 1234) -> Row:
    """A run's row, unranked and untested: every metric's block, duet blocks, localization variants,
    per-instrument means, per-item NSDR and provenance, all from the run's items (`check_run`; a bare
    `Run` is checked without re-scoring), none from summary.json."""
    checked = run if isinstance(run, CheckedRun) else check_run(run, seed)
    run, summary = checked.run, checked.summary
    metrics = _dict_of(summary, "metrics") or {}
    duets = _dict_of(summary, "duets")
    localization = _dict_of(summary, "localization")
    charged = _charged_mixture_rows(run)
    duet_metrics = None
    if duets is not None:
        stored = _dict_of(duets, "metrics") or {}
        duet_metrics = {key: _metric_block(stored.get(key)) for key in PER_INSTRUMENT_METRICS}
    return Row(
        name=run.name, folder=run.folder, kind=run.kind, oracle=_text_or_none(run.oracle), uses_labels=run.uses_labels,
        baseline=run.is_baseline, metrics={key: _metric_block(metrics.get(key)) for key in ITEM_METRICS},
        localization=None if localization is None else {str(k): finite_or_none(v) for k, v in localization.items()},
        duets=duet_metrics,
        duet_items=int(duets["n_items"]) if duets is not None and isinstance(duets.get("n_items"), int) else None,
        n_items=summary.get("n_items"), n_scored=summary.get("n_scored"), n_excluded=summary.get("n_excluded"),
        excluded_reasons={plain(k): v for k, v in (_dict_of(summary, "excluded_reasons") or {}).items()},
        per_instrument=_per_instrument(summary, charged), per_instrument_nsdr_ci95=_per_instrument_ci(charged, seed),
        per_item_nsdr={str(k): float(v) for k, v in per_item_values(run.items).items()},
        per_item_ciou={str(k): float(v) for k, v in per_item_values(run.items, "ciou").items()},
        item_videos=item_videos(run.items), item_keys=_item_keys(run.items),
        untrusted=checked.untrusted, rescored=checked.rescored,
        provenance=_provenance(run, summary), problems=list(run.problems), urmp=_urmp_result(run, summary),
        paper_recipe=checked.paper_recipe,
    )


def _video_frames(run: Run) -> dict[str, str] | None:
    """video → SHA-256 of the frame archive the run's items read (provenance.json ``coverage.frames``);
    None when not recorded, or when it leaves out a video of the run's items (then the run's frames
    fingerprint is what the board compares)."""
    frames = (run.provenance.get("coverage") or {}).get("frames")
    if not isinstance(frames, dict):
        return None
    used = set(run.items["video_id"]) if run.items is not None else set()
    return {plain(video): plain(sha) for video, sha in frames.items()} if used <= set(frames) else None


def _item_keys(items: pd.DataFrame | None, track: str = "mixtures") -> dict[str, str]:
    """item_id → the key items.parquet records for it (items without one left out)."""
    if items is None or "item_key" not in items.columns:
        return {}
    rows = items[(items["track"] == track) & (items["item_key"] != "")].drop_duplicates("item_id")
    return dict(zip(rows["item_id"].map(str), rows["item_key"].map(str), strict=True))


def checked_coverage(run: Run, canonical: dict[str, set[str]] | None,
                     clips: dict[str, dict[str, tuple[int, int]]] | None = None,
                     copies: dict[str, tuple[str, int, int]] | None = None) -> tuple[dict[str, int] | None, str]:
    """(the run's coverage of its split's mixture items as the board can check it, the problem when
    its claim is false). `canonical`: every mixture item of the split with its videos, from the
    board's data root (`Rescorer.canonical_items`; None: nothing to check against, no coverage);
    `clips`: the end of each clip of the items that data root holds (`Rescorer.canonical_clips`).

    An item the run did not score counts as not held only if it uses a video that the run's
    provenance says its data root lacked (``coverage.tracks.mixtures.videos_not_held``): a claim
    about videos, never about items, so no run can leave out items of its choosing. A video it says
    was too short, with its length (``videos_short``: ``[samples, frames]``), explains only the items
    whose clip of it ends beyond that length (an item whose clip the board does not know, as it
    does not hold it either, is taken as explained). A claimed video that an item the run scored
    uses (beyond the length it claims, for a short one) makes the claim false (no item is then not
    held), and so does a short video whose frame archive the run names as this data root's
    (`copies`: `Rescorer.video_copies`) while this one is of another length. Returns ``{"items",
    "held", "not_held", "not_scored"}``: `not_scored` counts the items neither scored nor explained
    (failures and skips, not lacking)."""
    if canonical is None:
        return None, ""
    counts = ((run.provenance.get("coverage") or {}).get("tracks") or {}).get("mixtures")
    claimed = set(counts.get("videos_not_held") or []) if isinstance(counts, dict) else set()
    short = _claimed_lengths(counts.get("videos_short") if isinstance(counts, dict) else None, claimed)
    clips = clips or {}

    def lacking(item: str, unknown: bool) -> list[str]:
        """The claimed videos that explain `item` (`unknown`: what a clip the board does not know counts as)."""
        found = []
        for video in sorted(canonical.get(item, set()) & claimed):
            end = clips.get(item, {}).get(video)
            if video not in short or (unknown if end is None else end[0] > short[video][0] or end[1] > short[video][1]):
                found.append(video)
        return found

    scored = set(run.items.loc[run.items["track"] == "mixtures", "item_id"]) if run.items is not None else set()
    problem = ""
    run_frames = (run.provenance.get("coverage") or {}).get("frames")
    run_frames = run_frames if isinstance(run_frames, dict) else {}
    same = sorted(video for video, (samples, frames) in short.items() if video in (copies or {})
                  and run_frames.get(video) == copies[video][0] and (copies[video][1], copies[video][2]) != (samples, frames))
    contradicting = sorted(item for item in scored if lacking(item, unknown=False))
    if same:
        problem = plain(f"provenance.json says its copy of {same[0][:40]} held only {short[same[0]][0]} samples, yet its frames "
                        f"are this data root's, which holds {copies[same[0]][1]}: the coverage it claims is false")
        claimed = set()
    elif contradicting:
        video = lacking(contradicting[0], unknown=False)[0]
        said = "lacked" if video not in short else f"held only {short[video][0]} samples of"
        problem = plain(f"provenance.json says its data root {said} {video[:40]}, yet the run scored "
                        f"{contradicting[0][:40]}, which uses it: the coverage it claims is false")
        claimed = set()
    missing = set(canonical) - scored
    not_held = {item for item in missing if lacking(item, unknown=True)}
    return {"items": len(canonical), "held": len(canonical) - len(not_held), "not_held": len(not_held),
            "not_scored": len(missing) - len(not_held)}, problem


def _claimed_lengths(value: Any, claimed: set[str]) -> dict[str, tuple[int, int]]:
    """A run's ``videos_short`` (video → ``[samples, frames]``) for the videos it claims, malformed entries left out."""
    if not isinstance(value, dict):
        return {}
    return {video: (length[0], length[1]) for video, length in value.items() if video in claimed and isinstance(length, list)
            and len(length) == 2 and all(type(number) is int and number >= 0 for number in length)}


def _urmp_result(run: Run, summary: dict[str, Any]) -> UrmpResult | None:
    urmp = _dict_of(summary, URMP_TRACK)
    if urmp is None:
        return None
    stored = _dict_of(urmp, "metrics") or {}
    count = lambda key: int(urmp[key]) if isinstance(urmp.get(key), int) else None  # noqa: E731
    version = (run.provenance or {}).get("urmp_version")
    cover = (run.provenance or {}).get("urmp_coverage")
    tracks = run.items["track"] if run.items is not None and "track" in run.items.columns else pd.Series(dtype=str)
    return UrmpResult({key: _metric_block(stored.get(key)) for key, _ in URMP_METRICS}, count("n_items"), count("n_scored"),
                      plain(version) if isinstance(version, str) else None, bool((tracks == "duets").any()) if len(tracks) else None,
                      {"pieces": cover["pieces"], "held": cover["held"]} if isinstance(cover, dict) else None)


# ----------------------------------------------------------------------------- ranking and tests


def _unranked_reason(row: Row, n_items: int) -> str:
    """Why `row` gets no rank ("" if it is complete): numbers the board cannot trust (``Row.untrusted``),
    failed items, items neither scored nor explained by a video its data root lacked, or (partial
    coverage) items its data root did not hold: a mean over a subset is never ranked, since which
    subset would then pay. Without a checked coverage, fewer items than `n_items` is incomplete."""
    if row.untrusted:
        return row.untrusted
    failed = row.n_excluded if isinstance(row.n_excluded, int) else 0
    scored = row.n_items if isinstance(row.n_items, int) else 0
    if failed:
        return f"incomplete: {failed} of {scored} items failed"
    coverage = row.coverage
    if coverage is not None and coverage["not_scored"]:
        return f"incomplete: scored {scored} of the {coverage['items']} items"
    if coverage is not None and coverage["not_held"]:
        return f"partial coverage: {scored}/{coverage['items']} items, {coverage['not_held']} not held by its data root"
    if coverage is None and scored < n_items:
        return f"incomplete: scored {scored} of the {n_items} items"
    if row.headline_mean is None:
        return "no cIoU" if row.rank_metric == "ciou" else "no NSDR"
    return ""


def is_partial(row: Row) -> bool:
    """Whether `row` is unranked only because its data root lacked videos: trusted, no failed
    item, every item it did not score explained by its checked coverage."""
    coverage = row.coverage
    return (not row.untrusted and not row.n_excluded and coverage is not None and bool(coverage["not_held"])
            and not coverage["not_scored"] and row.headline_mean is not None)


def sort_and_rank(rows: list[Row], n_items: int | None = None) -> list[Row]:
    """Rows ordered main track, labels track, references. Within each, the complete rows first by
    mean NSDR (descending), with competition ranks (ties share a rank) in the main and labels
    tracks; then the unranked ones (untrusted numbers, a failed item, or fewer items than `n_items`,
    by default the most any row has: see `_unranked_reason`), fewest failures first. Failing can only
    move a row down. Rows' counts are their items' (`check_run`), never summary.json's."""
    if n_items is None:
        n_items = max((row.n_items for row in rows if isinstance(row.n_items, int)), default=0)
    ordered = []
    for kind in KINDS:
        group = [r for r in rows if r.kind == kind]
        for row in group:
            row.unranked = _unranked_reason(row, n_items)
        group.sort(key=lambda r: (bool(r.unranked), r.n_excluded if isinstance(r.n_excluded, int) else 0,
                                  -(r.headline_mean if r.headline_mean is not None and not r.unranked else 0.0), r.name, r.folder))
        previous, rank = None, 0
        for position, row in enumerate(group, start=1):
            if kind == "reference" or row.unranked:
                continue
            if row.headline_mean != previous:
                rank, previous = position, row.headline_mean
            row.rank = rank
        ordered += group
    return ordered


def choose_baseline(rows: list[Row], requested: str | None) -> tuple[Row | None, str]:
    """The row a table's tests compare against, and why: the row named `requested` (name or folder),
    else the best label-free musicbench baseline, else the best baseline, else the best-ranked method,
    else (no ranked row) the partial run (`is_partial`) holding the most items."""
    candidates = [r for r in rows if r.kind != "reference" and not r.unranked and r.per_item_headline]
    if requested is not None:
        chosen = [r for r in rows if requested in (r.name, r.folder) and r.per_item_headline]
        if chosen:
            return chosen[0], "the baseline requested with --baseline"
    baselines = [r for r in candidates if r.baseline]
    if baselines:
        best = max(baselines, key=lambda r: (r.kind == "main", r.headline_mean, r.name))
        track = "label-free " if best.kind == "main" else ""
        return best, f"the best {track}musicbench baseline (model file in baselines/) by mean NSDR"
    if candidates:
        best = max(candidates, key=lambda r: (r.kind == "main", r.headline_mean, r.name))
        return best, "no musicbench baseline in this table: the best-ranked method instead"
    partial = [r for r in rows if r.kind != "reference" and is_partial(r) and r.per_item_headline]
    if partial:  # e.g. a board built on a data root that lacks videos: every run is partial
        best = max(partial, key=lambda r: (r.baseline, r.kind == "main", r.coverage["held"], r.headline_mean, r.name))
        return best, "no ranked run in this table: the partial run holding the most items instead"
    return None, "no ranked method with per-item scores in this table"


def _verdict(comparison: Comparison) -> str:
    if comparison.p_holm is None:
        return "not tested"
    if comparison.p_holm < ALPHA and comparison.direction != 0:
        return "better" if comparison.direction > 0 else "worse"
    return "no significant difference"


def _add_tests(rows: list[Row], baseline: Row | None, seed: int) -> None:
    """Test each row against `baseline` (`paired_test` over the items both scored with the same key),
    Holm-adjusted over the rows tested. Only complete and partial rows are tested (`is_partial`): a row
    with untrusted numbers, failed items or items it left out gets "not tested", so that no choice
    of items to fail on, skip or misreport can buy a verdict."""
    if baseline is None:
        return
    reference = pd.Series(baseline.per_item_headline, dtype=float)
    videos = {**baseline.item_videos}
    tested = []
    for row in rows:
        if row is baseline:
            row.test = Comparison(against=baseline.name, verdict="baseline", n=len(reference),
                                  note="the baseline of this table")
            continue
        if row.unranked and not is_partial(row):
            row.test = Comparison(against=baseline.name, verdict="not tested", n=0, note=f"not tested: {row.unranked}")
            continue
        method = pd.Series(row.per_item_headline, dtype=float)
        other = [item for item, key in row.item_keys.items() if baseline.item_keys.get(item, key) != key]
        paired = paired_test(method.drop(index=other, errors="ignore"), reference, {**row.item_videos, **videos}, seed)
        if other:
            paired.note = (f"{paired.note}; " if paired.note else "") + \
                f"{len(other)} item(s) of other audio than the baseline's (audio differs) not compared"
        row.test = Comparison(against=baseline.name, verdict="", **asdict(paired))
        tested.append(row)
    for row, p_holm in zip(tested, holm([r.test.p for r in tested]), strict=True):
        row.test.p_holm = p_holm
        row.test.verdict = _verdict(row.test)
    for row in rows:
        if row.test is not None and baseline.rank_metric != "nsdr":
            row.test.unit = ""


def _mark_frames(rows: list[Row], expected: str | None, video_frames: dict[str, dict[str, str]],
                 expected_videos: dict[str, str] | None = None) -> list[str]:
    """Flag the rows whose models saw other frames: same benchmark and references, other model inputs.
    Where a run records the frame archive of each video it used (`video_frames`, folder → video →
    SHA-256), a row differs when a video's archive differs from `expected_videos` (the data root's;
    else each video's most common archive among the rows): lacking videos is not seeing other frames.
    Otherwise its frames fingerprint is compared with `expected` (else the rows' most common one).
    Returns warnings."""
    seen = [row.provenance.frames_fingerprint for row in rows if row.provenance.frames_fingerprint]
    if expected is None and seen:
        expected = max(sorted(set(seen)), key=seen.count)
    if expected_videos is None:
        votes: dict[str, list[str]] = {}
        for frames in video_frames.values():
            for video, sha in frames.items():
                votes.setdefault(video, []).append(sha)
        expected_videos = {video: max(sorted(set(shas)), key=shas.count) for video, shas in votes.items()}
    warnings = []
    for row in rows:
        fingerprint, frames = row.provenance.frames_fingerprint, video_frames.get(row.folder)
        if frames is not None:
            differ = [video for video, sha in sorted(frames.items()) if expected_videos.get(video, sha) != sha]
            if differ:
                row.frames_differ = True
                warnings.append(f"{row.name} ({row.folder}) was given frames encoded otherwise for {len(differ)} video(s) "
                                f"(e.g. {plain(differ[0])[:40]}): the same items and references, but the model's visual "
                                "input differs (e.g. another ffmpeg build)")
        elif expected and fingerprint and fingerprint != expected:
            row.frames_differ = True
            warnings.append(f"{row.name} ({row.folder}) was given frames encoded otherwise ({fingerprint}, not {expected}): "
                            "the same items and references, but the model's visual input differs (e.g. another ffmpeg build)")
    return warnings


def unseen_classes(runs: list[Run], train_classes: set[str] | None) -> dict[str, list[str]]:
    """track → the classes its items have (over `runs`' items: `check_run`'s) that `train_classes` lacks
    (empty without `train_classes`, or when every class was in training)."""
    if train_classes is None:
        return {}
    by_track: dict[str, set[str]] = {}
    for run in runs:
        if run.items is not None and {"track", "instrument"} <= set(run.items.columns):
            for track, group in run.items.groupby("track"):
                by_track.setdefault(str(track), set()).update(map(plain, group["instrument"].dropna()))
    return {track: sorted(classes - train_classes) for track, classes in sorted(by_track.items()) if classes - train_classes}


def _table_protocol(runs: list[Run], rescorer: Rescorer | None) -> dict[str, str] | None:
    """The label of a table of protocol runs (name, paper, recipe; ``checked``: "yes" when the data
    root re-scores them; ``task``: separation or localization; ``scoring``: the recipe's key in
    `PAPER_RECIPE_FIGURES`): from the data root that holds their benchmark version, never from what
    the runs say, except where no data root holds it (all runs name one known protocol: labelled as
    their claim). None for the main benchmark's runs."""
    from musicbench.protocols import PROTOCOLS, RECIPES

    if rescorer is not None:
        if rescorer.protocol is None:
            return None
        info = rescorer.protocol
        known = PROTOCOLS.get(str(info["name"]))
        return {"name": plain(info["name"]), "paper": plain(info["paper"]), "recipe": plain(info["recipe_text"]),
                "checked": "yes", "task": known.task if known is not None else "separation",
                "scoring": known.recipe if known is not None else "sop"}
    names = {run.protocol for run in runs}
    if len(names) != 1 or next(iter(names)) not in PROTOCOLS:
        return None
    protocol = PROTOCOLS[next(iter(names))]
    return {"name": protocol.name, "paper": protocol.paper, "recipe": RECIPES[protocol.recipe],
            "checked": "no: the runs say so, and no data root here holds this version", "task": protocol.task,
            "scoring": protocol.recipe}


def _protocol_problem(run: Run, rescorer: Rescorer | None) -> str:
    """Why the protocol a run names is not the one its benchmark version is here ("" when it is, or
    when no data root here holds the version)."""
    from musicbench.protocols import PROTOCOLS

    if rescorer is None:
        return "" if run.protocol is None or run.protocol in PROTOCOLS else f"names an unknown protocol {run.protocol[:40]!r}"
    actual = None if rescorer.protocol is None else rescorer.protocol["name"]
    if run.protocol == actual:
        return ""
    claimed = "no protocol" if run.protocol is None else f"protocol {run.protocol[:40]!r}"
    return f"it names {claimed}, but its benchmark version is {'the main benchmark' if actual is None else 'protocol ' + actual}'s here"


def make_board(runs: list[Run], current_version: str | None = None, baseline: str | None = None,
               warnings: list[str] | None = None, seed: int = 1234, current_frames: str | None = None,
               train_classes: set[str] | None = None, rescorer: Rescorer | None = None,
               current_video_frames: dict[str, dict[str, str]] | None = None,
               protocol_rescorers: tuple[Rescorer, ...] = ()) -> Board:
    """The leaderboard: a table per (benchmark version, split, metric version), the current benchmark
    version's first (`current_version`, else the version with most runs); every run checked by
    `check_run` (re-scored by `rescorer`, the data root's, where it has the run's benchmark version);
    rows ranked by `sort_and_rank` against the split's item count in the data root (tables of
    `rescorer`'s version; else the most items a row has), each tested against the baseline of
    `choose_baseline` (bootstrap `seed`); rows whose frames differ from the data root's
    (`current_video_frames`: split → video → SHA-256, else the fingerprint `current_frames`) are
    marked (`_mark_frames`); each table names the classes of its tracks that `train_classes` (the
    data root's training split) lacks. A protocol's runs (a paper's test set, its own benchmark
    version) are a table of their own, labelled with the paper and its recipe, re-scored by the
    `protocol_rescorers` of their version (the data root's protocols), whose paper-recipe figures
    are shown beside the ranked ones, never ranked."""
    warnings = list(warnings or [])
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.benchmark_version, run.split, run.metric_version), []).append(run)
    rescorers = {each.version: each for each in (rescorer, *protocol_rescorers) if each is not None}
    labels = {key: _table_protocol(members, rescorers.get(key[0])) for key, members in groups.items()}
    counts: dict[str, int] = {}
    for (version, split, metric), members in groups.items():
        if labels[(version, split, metric)] is None:  # the papers' test sets are versions of their own, apart
            counts[version] = counts.get(version, 0) + len(members)
    if current_version is None and counts:
        current_version = max(counts, key=lambda v: (counts[v], v))
    versions = sorted(counts)
    if len(versions) > 1:
        warnings.insert(0, f"Runs on {len(versions)} benchmark versions ({', '.join(versions)}): each version is "
                           "ranked in its own table; numbers from different tables are not comparable.")
    if sum(label is None for label in labels.values()) > len(versions):
        warnings.insert(0, "Runs on different splits or metric versions: each combination is ranked in its own table.")
    tables = []
    keys = sorted(groups, key=lambda k: (labels[k] is not None, k[0] != current_version, k[1] != "test",
                                         -counts.get(k[0], len(groups[k])), k))
    for number, key in enumerate(keys, start=1):
        version, split, metric_version = key
        table_rescorer = rescorers.get(version)
        if table_rescorer is not None:
            table_rescorer.reserve(groups[key])
        checked = [check_run(run, seed, table_rescorer) for run in groups[key]]
        expected = table_rescorer.item_count(split) if table_rescorer is not None else None
        canonical = table_rescorer.canonical_items(split) if table_rescorer is not None else None
        clips = table_rescorer.canonical_clips(split) if table_rescorer is not None else None
        copies = table_rescorer.video_copies(split) if table_rescorer is not None else None
        protocol = labels[key]
        rows = [row_of(run, seed) for run in checked]
        localization_table = protocol is not None and protocol["task"] == "localization"
        for row, run in zip(rows, checked, strict=True):
            if localization_table:
                row.rank_metric = "ciou"
            row.coverage, coverage_problem = checked_coverage(run.run, canonical, clips, copies)
            for problem in (coverage_problem, _protocol_problem(run.run, table_rescorer)):
                if problem:
                    row.problems.append(problem)
                    row.untrusted = row.untrusted or problem
        rows = sort_and_rank(rows, expected)
        table_warnings = []
        if protocol is not None:
            table_warnings.append(f"Protocol {protocol['name']}: {protocol['paper']}. Its own items, ranked only among "
                                  "themselves by musicbench's recipe"
                                  + (" (localization alone: mean cIoU, the LVS median rule, a failed item counting 0)"
                                     if localization_table else "")
                                  + "; the paper's recipe is shown beside, never ranked"
                                  + ("." if protocol["checked"] == "yes" else f" (label checked: {protocol['checked']})."))
            if localization_table:
                table_warnings.append("Its boxes are public (DSOL's repository). Models never see the copy this protocol was "
                                      "built from and get its items in a secret order, but a model that finds or carries "
                                      "another copy (a git history, a download) and recognises the videos cannot be told "
                                      "apart: read a method's code before trusting a near-perfect score here."
                                      + (" NSA thresholds the maps at an absolute 0.2 while the cIoU is relative: maps "
                                         "scaled down raise NSA alone, so it compares only maps calibrated alike (DSOL's: "
                                         "a softmax over classes)." if protocol.get("scoring") == "dsol-duet" else ""))
            built = {each.protocol["name"]: each.version for each in protocol_rescorers if each.protocol}
            if table_rescorer is None and protocol["name"] in built:
                table_warnings.append(f"Not the current build of protocol {protocol['name']}: the data root holds version "
                                      f"{built[protocol['name']]}; these runs were scored on other items, are not "
                                      "re-scored and are ranked only among themselves.")
            heard = table_rescorer.protocol.get("train_videos") if table_rescorer is not None else None
            if heard:
                table_warnings.append(f"{len(heard)} of its videos are in the data root's train split "
                                      f"({', '.join(map(plain, heard[:5]))}{', …' if len(heard) > 5 else ''}): "
                                      "a model trained on this data root has heard them.")
        elif version != current_version:
            table_warnings.append(f"Benchmark version {version} is not the current one ({current_version}): these runs "
                                  "were scored on other items and are ranked only among themselves.")
        for row in rows:
            table_warnings += [f"{row.name} ({row.folder}): {problem}" for problem in row.problems]
        video_frames = {run.run.folder: frames for run in checked if (frames := _video_frames(run.run)) is not None}
        current = version == current_version
        table_warnings += _mark_frames(rows, current_frames if current else None, video_frames,
                                       (current_video_frames or {}).get(split) if current else None)
        unseen = unseen_classes([run.run for run in checked], train_classes if version == current_version else None)
        table_warnings += [f"The {track} track has classes that the training split lacks: {', '.join(classes)} "
                           "(scores on them measure generalization to unheard classes)" for track, classes in unseen.items()]
        chosen, why = choose_baseline(rows, baseline)
        _add_tests(rows, chosen, seed)
        tables.append(Table(
            id=f"table-{number}", benchmark_version=version, split=split, metric_version=metric_version,
            current=version == current_version, warnings=table_warnings,
            baseline=None if chosen is None else BaselineChoice(chosen.name, chosen.folder, why),
            instruments=sorted({name for row in rows for name in row.per_instrument}), rows=rows, unseen_classes=unseen,
            protocol=protocol,
        ))
    return Board(current_benchmark_version=current_version, warnings=warnings, tables=tables)
