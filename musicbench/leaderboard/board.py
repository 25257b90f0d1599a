"""The board model: typed rows and tables built from run folders (`make_board`), as leaderboard.json holds them.

Runs are ranked together only when they share the benchmark version, the split and the metric version:
each such group is a `Table`. Reference rows (oracles) are shown, never ranked; methods that read the
instrument labels are ranked in their own track. Only complete runs are ranked: a run with a failed
item, or one that scored fewer items than the table's others (``--limit``), is listed below the ranked
rows with what is missing, so that failing on chosen items can never raise a rank. Every row is
compared with its table's baseline by `musicbench.leaderboard.stats.paired_test` (a video bootstrap),
the p-values Holm-adjusted per table.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from musicbench.leaderboard.runs import Run
from musicbench.leaderboard.stats import (
    ALPHA,
    SIGNIFICANCE_TEST,
    PairedTest,
    holm,
    item_videos,
    paired_test,
    per_item_values,
)
from musicbench.metrics import ITEM_METRICS, PER_INSTRUMENT_METRICS, charge_failures, finite_or_none
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
    "no significant difference" or "not tested")."""

    against: str
    verdict: str
    p_holm: float | None = None


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
    video), items, items scored, the track's version, and whether it went through ``separate_at``."""

    metrics: dict[str, MetricBlock | None]
    n_items: int | None
    n_scored: int | None
    version: str | None
    separate_at: bool | None


@dataclass
class Row:
    """One run on the board. `metrics` and `duets` map metric names to blocks (None: not scored),
    `per_instrument` instrument → metric → mean (dB), `per_item_nsdr` item_id → NSDR (dB).
    `item_videos` item_id → the videos of its sources (the unit of the tests' resampling).
    `per_instrument_nsdr_ci95` instrument → the 95% video-bootstrap CI of that mean NSDR.
    `rank`, `unranked` (why the row has no rank: failed or missing items; "" when ranked) and `test` are
    set by `make_board`, `demo` (page path) or `demo_note` (why none) by the demo writer."""

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
    item_videos: dict[str, list[str]] = field(default_factory=dict)
    unranked: str = ""
    frames_differ: bool = False
    test: Comparison | None = None
    provenance: RunProvenance = field(default_factory=RunProvenance)
    problems: list[str] = field(default_factory=list)
    demo: str | None = None
    demo_note: str = ""
    urmp: UrmpResult | None = None  # the real-ensembles track, when the run has one (left out of the JSON otherwise)

    @property
    def nsdr_mean(self) -> float | None:
        """The headline: mean NSDR over all items (−inf when an item failed), None when not scored."""
        block = self.metrics.get("nsdr")
        return None if block is None or np.isnan(block.headline) else block.headline


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
        ``urmp`` only where it has the real-ensembles track."""
        doc = json_safe(asdict(self))
        for table in doc["tables"]:
            for row in table["rows"]:
                if row.get("urmp") is None:
                    row.pop("urmp", None)
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


def _seconds_per_item(run: Run) -> float | None:
    items = run.items
    if items is not None and "seconds" in items.columns:
        rows = items[(items["track"] == "mixtures") & (items["status"] == "ok")].drop_duplicates("item_id")
        seconds = pd.to_numeric(rows["seconds"], errors="coerce").dropna()
        if len(seconds):
            return float(seconds.mean())
    wall, n = finite_or_none(run.provenance.get("wall_seconds")), run.summary.get("n_items")
    return wall / n if wall is not None and isinstance(n, int) and n > 0 else None


def _run_date(run: Run) -> str | None:
    for key in ("date", "created", "timestamp"):
        value = run.provenance.get(key)
        if isinstance(value, str) and value:
            return value
    for name in ("provenance.json", "summary.json"):
        try:
            mtime = (run.path / name).stat().st_mtime
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


def _per_instrument(run: Run, rows: pd.DataFrame | None) -> dict[str, dict[str, float]]:
    """instrument → metric → mean over sources, from the charged `rows`, else from summary.json."""
    if rows is not None:
        result: dict[str, dict[str, float]] = {}
        for instrument, group in rows.groupby("instrument"):
            means = {}
            for metric in PER_INSTRUMENT_METRICS:
                if metric in group.columns:
                    values = pd.to_numeric(group[metric], errors="coerce").dropna()
                    if len(values):
                        means[metric] = float(values.mean())
            result[str(instrument)] = means
        return result
    stored = run.summary.get("per_instrument")
    if not isinstance(stored, dict):
        return {}
    return {str(k): {m: float(v[m]) for m in PER_INSTRUMENT_METRICS
                     if isinstance(v, dict) and finite_or_none(v.get(m)) is not None}
            for k, v in stored.items()}


def _provenance(run: Run) -> RunProvenance:
    prov = run.provenance
    n_parameters, revision = prov.get("n_parameters"), prov.get("git_revision")
    return RunProvenance(
        benchmark_version=run.benchmark_version, metric_version=run.metric_version, split=run.split,
        git_revision=str(revision) if revision else None, date=_run_date(run),
        device=str(prov["device"]) if prov.get("device") else None,
        n_parameters=int(n_parameters) if isinstance(n_parameters, (int, float)) and not isinstance(n_parameters, bool) else None,
        seconds_per_item=_seconds_per_item(run), wall_seconds=finite_or_none(prov.get("wall_seconds")),
        model_file=str(prov["model_file"]) if prov.get("model_file") else None,
        model_sha256=str(prov["model_sha256"]) if prov.get("model_sha256") else None,
        options=prov.get("options") if isinstance(prov.get("options"), dict) else {},
        confined=prov["confined"] if isinstance(prov.get("confined"), bool) else None,
        confinement=str(prov["confinement"]) if prov.get("confinement") else None,
        frames_fingerprint=str(prov["frames_fingerprint"]) if prov.get("frames_fingerprint") else None,
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
            result[str(instrument)] = list(video_bootstrap_ci(values.to_numpy(), unit_videos, seed))
        else:
            result[str(instrument)] = [None, None]
    return result


def row_of(run: Run, seed: int = 1234) -> Row:
    """A run's row, unranked and untested: every metric's block, duet blocks, localization variants,
    per-instrument means, per-item NSDR and provenance."""
    summary = run.summary
    metrics = _dict_of(summary, "metrics") or {}
    duets = _dict_of(summary, "duets")
    localization = _dict_of(summary, "localization")
    charged = _charged_mixture_rows(run)
    duet_metrics = None
    if duets is not None:
        stored = _dict_of(duets, "metrics") or {}
        duet_metrics = {key: _metric_block(stored.get(key)) for key in PER_INSTRUMENT_METRICS}
    return Row(
        name=run.name, folder=run.folder, kind=run.kind, oracle=run.oracle, uses_labels=run.uses_labels,
        baseline=run.is_baseline, metrics={key: _metric_block(metrics.get(key)) for key in ITEM_METRICS},
        localization=None if localization is None else {str(k): finite_or_none(v) for k, v in localization.items()},
        duets=duet_metrics,
        duet_items=int(duets["n_items"]) if duets is not None and isinstance(duets.get("n_items"), int) else None,
        n_items=summary.get("n_items"), n_scored=summary.get("n_scored"), n_excluded=summary.get("n_excluded"),
        excluded_reasons=_dict_of(summary, "excluded_reasons") or {},
        per_instrument=_per_instrument(run, charged), per_instrument_nsdr_ci95=_per_instrument_ci(charged, seed),
        per_item_nsdr={str(k): float(v) for k, v in per_item_values(run.items).items()},
        item_videos=item_videos(run.items),
        provenance=_provenance(run), problems=list(run.problems), urmp=_urmp_result(run),
    )


def _urmp_result(run: Run) -> UrmpResult | None:
    urmp = _dict_of(run.summary, "urmp")
    if urmp is None:
        return None
    stored = _dict_of(urmp, "metrics") or {}
    count = lambda key: int(urmp[key]) if isinstance(urmp.get(key), int) else None  # noqa: E731
    version = (run.provenance or {}).get("urmp_version")
    tracks = run.items["track"] if run.items is not None and "track" in run.items.columns else pd.Series(dtype=str)
    return UrmpResult({key: _metric_block(stored.get(key)) for key, _ in URMP_METRICS}, count("n_items"), count("n_scored"),
                      version if isinstance(version, str) else None, bool((tracks == "duets").any()) if len(tracks) else None)


# ----------------------------------------------------------------------------- ranking and tests


def _unranked_reason(row: Row, n_items: int) -> str:
    """Why `row` gets no rank ("" if it is complete): failed items, or fewer items than the table's runs."""
    failed = row.n_excluded if isinstance(row.n_excluded, int) else 0
    scored = row.n_items if isinstance(row.n_items, int) else 0
    if failed:
        return f"incomplete: {failed} of {scored} items failed"
    if scored < n_items:
        return f"incomplete: scored {scored} of the {n_items} items"
    if row.nsdr_mean is None:
        return "no NSDR"
    return ""


def sort_and_rank(rows: list[Row]) -> list[Row]:
    """Rows ordered main track, labels track, references. Within each, the complete rows first by
    mean NSDR (descending), with competition ranks (ties share a rank) in the main and labels
    tracks; then the incomplete ones (a failed item, or fewer items than the table's most: see
    `_unranked_reason`), unranked, fewest failures first. Failing can only move a row down."""
    n_items = max((row.n_items for row in rows if isinstance(row.n_items, int)), default=0)
    ordered = []
    for kind in KINDS:
        group = [r for r in rows if r.kind == kind]
        for row in group:
            row.unranked = _unranked_reason(row, n_items)
        group.sort(key=lambda r: (bool(r.unranked), r.n_excluded if isinstance(r.n_excluded, int) else 0,
                                  -(r.nsdr_mean if r.nsdr_mean is not None and not r.unranked else 0.0), r.name, r.folder))
        previous, rank = None, 0
        for position, row in enumerate(group, start=1):
            if kind == "reference" or row.unranked:
                continue
            if row.nsdr_mean != previous:
                rank, previous = position, row.nsdr_mean
            row.rank = rank
        ordered += group
    return ordered


def choose_baseline(rows: list[Row], requested: str | None) -> tuple[Row | None, str]:
    """The row a table's tests compare against, and why: the row named `requested` (name or folder),
    else the best label-free musicbench baseline, else the best baseline, else the best-ranked method."""
    candidates = [r for r in rows if r.kind != "reference" and not r.unranked and r.per_item_nsdr]
    if requested is not None:
        chosen = [r for r in rows if requested in (r.name, r.folder) and r.per_item_nsdr]
        if chosen:
            return chosen[0], "the baseline requested with --baseline"
    baselines = [r for r in candidates if r.baseline]
    if baselines:
        best = max(baselines, key=lambda r: (r.kind == "main", r.nsdr_mean, r.name))
        track = "label-free " if best.kind == "main" else ""
        return best, f"the best {track}musicbench baseline (model file in baselines/) by mean NSDR"
    if candidates:
        best = max(candidates, key=lambda r: (r.kind == "main", r.nsdr_mean, r.name))
        return best, "no musicbench baseline in this table: the best-ranked method instead"
    return None, "no ranked method with per-item scores in this table"


def _verdict(comparison: Comparison) -> str:
    if comparison.p_holm is None:
        return "not tested"
    if comparison.p_holm < ALPHA and comparison.direction != 0:
        return "better" if comparison.direction > 0 else "worse"
    return "no significant difference"


def _add_tests(rows: list[Row], baseline: Row | None, seed: int) -> None:
    if baseline is None:
        return
    reference = pd.Series(baseline.per_item_nsdr, dtype=float)
    videos = {**baseline.item_videos}
    tested = []
    for row in rows:
        if row is baseline:
            row.test = Comparison(against=baseline.name, verdict="baseline", n=len(reference),
                                  note="the baseline of this table")
            continue
        paired = paired_test(pd.Series(row.per_item_nsdr, dtype=float), reference, {**row.item_videos, **videos}, seed)
        row.test = Comparison(against=baseline.name, verdict="", **asdict(paired))
        tested.append(row)
    for row, p_holm in zip(tested, holm([r.test.p for r in tested]), strict=True):
        row.test.p_holm = p_holm
        row.test.verdict = _verdict(row.test)


def _mark_frames(rows: list[Row], expected: str | None) -> list[str]:
    """Flag the rows whose models saw frames with another fingerprint than `expected` (else the rows'
    most common one): same benchmark version and references, other model inputs. Returns warnings."""
    seen = [row.provenance.frames_fingerprint for row in rows if row.provenance.frames_fingerprint]
    if expected is None and seen:
        expected = max(sorted(set(seen)), key=seen.count)
    warnings = []
    for row in rows:
        fingerprint = row.provenance.frames_fingerprint
        if expected and fingerprint and fingerprint != expected:
            row.frames_differ = True
            warnings.append(f"{row.name} ({row.folder}) was given frames encoded otherwise ({fingerprint}, not {expected}): "
                            "the same items and references, but the model's visual input differs (e.g. another ffmpeg build)")
    return warnings


def unseen_classes(runs: list[Run], train_classes: set[str] | None) -> dict[str, list[str]]:
    """track → the classes its items have (over `runs`' items.parquet) that `train_classes` lacks
    (empty without `train_classes`, or when every class was in training)."""
    if train_classes is None:
        return {}
    by_track: dict[str, set[str]] = {}
    for run in runs:
        if run.items is not None and {"track", "instrument"} <= set(run.items.columns):
            for track, group in run.items.groupby("track"):
                by_track.setdefault(str(track), set()).update(map(str, group["instrument"].dropna()))
    return {track: sorted(classes - train_classes) for track, classes in sorted(by_track.items()) if classes - train_classes}


def make_board(runs: list[Run], current_version: str | None = None, baseline: str | None = None,
               warnings: list[str] | None = None, seed: int = 1234, current_frames: str | None = None,
               train_classes: set[str] | None = None) -> Board:
    """The leaderboard: a table per (benchmark version, split, metric version), the current benchmark
    version's first (`current_version`, else the version with most runs); rows ranked by
    `sort_and_rank`, each tested against the baseline of `choose_baseline` (bootstrap `seed`); rows
    whose frames fingerprint differs from `current_frames` (the data root's) are marked (`_mark_frames`);
    each table names the classes of its tracks that `train_classes` (the data root's training split) lacks."""
    warnings = list(warnings or [])
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.benchmark_version, run.split, run.metric_version), []).append(run)
    counts: dict[str, int] = {}
    for (version, _, _), members in groups.items():
        counts[version] = counts.get(version, 0) + len(members)
    if current_version is None and counts:
        current_version = max(counts, key=lambda v: (counts[v], v))
    versions = sorted(counts)
    if len(versions) > 1:
        warnings.insert(0, f"Runs on {len(versions)} benchmark versions ({', '.join(versions)}): each version is "
                           "ranked in its own table; numbers from different tables are not comparable.")
    if len(groups) > len(versions):
        warnings.insert(0, "Runs on different splits or metric versions: each combination is ranked in its own table.")
    tables = []
    keys = sorted(groups, key=lambda k: (k[0] != current_version, k[1] != "test", -counts[k[0]], k))
    for number, key in enumerate(keys, start=1):
        version, split, metric_version = key
        rows = sort_and_rank([row_of(run, seed) for run in groups[key]])
        table_warnings = []
        if version != current_version:
            table_warnings.append(f"Benchmark version {version} is not the current one ({current_version}): these runs "
                                  "were scored on other items and are ranked only among themselves.")
        for row in rows:
            table_warnings += [f"{row.name} ({row.folder}): {problem}" for problem in row.problems]
        table_warnings += _mark_frames(rows, current_frames if version == current_version else None)
        unseen = unseen_classes(groups[key], train_classes if version == current_version else None)
        table_warnings += [f"The {track} track has classes that the training split lacks: {', '.join(classes)} "
                           "(scores on them measure generalization to unheard classes)" for track, classes in unseen.items()]
        chosen, why = choose_baseline(rows, baseline)
        _add_tests(rows, chosen, seed)
        tables.append(Table(
            id=f"table-{number}", benchmark_version=version, split=split, metric_version=metric_version,
            current=version == current_version, warnings=table_warnings,
            baseline=None if chosen is None else BaselineChoice(chosen.name, chosen.folder, why),
            instruments=sorted({name for row in rows for name in row.per_instrument}), rows=rows, unseen_classes=unseen,
        ))
    return Board(current_benchmark_version=current_version, warnings=warnings, tables=tables)
