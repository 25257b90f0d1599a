"""The `musicbench` command line: argument parsing only; every command calls a package function.

Each command turns a MusicbenchError into one line on stderr and exit code 2. Everything printed is
text: the consoles read no Rich markup and no emoji codes, and every string that may carry untrusted
text (a model's reason, a run, file or video name, a path, a problem found in a manifest, a copy or
a run folder) goes through `musicbench.progress.plain`, so no control character (ESC) or
bidirectional override reaches the terminal.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, TypeVar

import typer
from rich.console import Console

from musicbench.errors import MusicbenchError
from musicbench.progress import plain

app = typer.Typer(
    help="musicbench: reproducible audio-visual music separation benchmark (MUSIC / Sound of Pixels).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
manifest_app = typer.Typer(help="Inspect canonical manifests.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")

console = Console(stderr=True, markup=False, emoji=False)  # progress and notes
report = Console(width=None if sys.stdout.isatty() else 160, markup=False, emoji=False)  # result tables (stdout); wide in logs
F = TypeVar("F", bound=Callable)

PARAMS_OPTION = typer.Option(
    None, "--params", show_default=False,
    help="params.yaml to read; its relative paths (dataset.root, ...) are relative to its folder "
         "[default: the project's: ./params.yaml or the nearest folder above with params.yaml and dvc.yaml]")


def user_errors(func: F) -> F:
    """Report MusicbenchError as one line `error: ...` on stderr with exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MusicbenchError as exc:
            # one line even where a message quotes a library's multi-line text
            message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            print(f"error: {plain(message)}", file=sys.stderr)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def synth(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root); writes ROOT/synth"),
    jobs: int = typer.Option(None, "--jobs", help="parallel videos (default: synth.jobs)"),
    force: bool = typer.Option(False, "--force", help="generate even when dataset.source is music"),
    protocol: str = typer.Option(None, "--protocol", help="generate a protocol's videos instead, under their official "
                                 "YouTube ids and listed lengths (an offline fixture; `musicbench protocol list`)"),
    items: int = typer.Option(None, "--items", help="with --protocol: only the videos of its first N items"),
    lists: Path = typer.Option(None, "--lists", help="folder of the published lists (default: the project's manifests/published)"),
) -> None:
    """Generate the embedded MUSIC-Synth dataset (videos, clean stems, player boxes, manifest)."""
    from musicbench.config import data_root, load_params
    from musicbench.synth import synth_stage

    loaded = load_params(params)
    if protocol is not None:
        from musicbench.protocols import generate_protocol_videos

        entries = generate_protocol_videos(loaded, root or data_root(loaded), protocol, lists or default_lists(params),
                                           items, jobs=jobs, force=force)
        console.print(plain(f"{len(entries)} videos of protocol {protocol} under their official ids, added to the "
                            "MUSIC-Synth manifest"))
        return
    if synth_stage(loaded, root or data_root(loaded), jobs=jobs, force=force) is None:
        console.print("dataset.source is music: MUSIC-Synth not generated (use --force to generate it anyway)")


@app.command()
@user_errors
def process(
    params: Path = PARAMS_OPTION,
    manifest: list[Path] = typer.Option(
        None, "--manifest", help="manifest CSV, repeatable (default: ROOT/synth/manifest.csv for dataset.source synth)"),
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root); manifest paths are relative to it"),
    out: Path = typer.Option(None, "--out", help="output folder inside the data root (default: ROOT/processed)"),
    jobs: int = typer.Option(None, "--jobs", help="videos processed in parallel (default: process.jobs)"),
) -> None:
    """Decode every manifest video to 11025 Hz mono FLAC + 8 fps JPEG frame archives, with an index."""
    from musicbench.config import data_root, load_params
    from musicbench.process import ProcessConfig, default_manifest, process_manifest

    loaded = load_params(params)
    data = root or data_root(loaded)
    summary = process_manifest(
        manifest or default_manifest(loaded, data), data, ProcessConfig.from_params(loaded), out, jobs=jobs, progress=True
    )
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.reasons.items()))
    console.print(plain(
        f"processed {summary.processed}, skipped {summary.skipped} (already done), rejected {summary.rejected}"
        + (f" ({reasons})" if reasons else "") + f"; index {summary.index_path}, rejects {summary.rejects_path}"
    ))


@app.command()
@user_errors
def validate(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    index: Path = typer.Option(None, "--index", help="index to check (default: ROOT/processed/videos.parquet)"),
) -> None:
    """Re-check every file the benchmark reads (media, mixture and protocol tables, stems, boxes, URMP); exit 1 on any mismatch."""
    from rich.table import Table

    from musicbench.benchmark import DataRoot
    from musicbench.config import data_root, load_params
    from musicbench.process import validate_index

    data = root or data_root(load_params(params))
    from musicbench.protocols import protocol_views

    index_path = index or DataRoot(data).index_path
    problems = validate_index(index_path, data)
    has_urmp = DataRoot(data).has_urmp_track()
    protocols = [view.protocol for view in protocol_views(data)]
    if not problems:
        benchmark = "; so do the mixture tables and the stems and boxes of their items" if DataRoot(data).has_definition() else ""
        built = f"; so do the tables of protocol(s) {', '.join(protocols)}" if protocols else ""
        urmp = "; so does the real-ensembles (URMP) track" if has_urmp else ""
        console.print(plain(f"ok: every file listed in {index_path} matches its size and sha256{benchmark}{built}{urmp}"))
        return
    table = Table(title=plain(f"{len(problems)} file(s) do not match {index_path}"))
    for column in ("video_id", "path", "problem", "detail"):
        table.add_column(column)
    for problem in problems:
        table.add_row(plain(problem.video_id), plain(problem.path), plain(problem.problem), plain(problem.detail))
    console.print(table)
    console.print("rerun `musicbench process` to rebuild processed files, `musicbench synth` for stems and boxes (`musicbench "
                  "synth --protocol NAME` for a protocol's fixture), then `musicbench mixtures`"
                  + (f" and `musicbench protocol build NAME` for {', '.join(protocols)}" if protocols else "")
                  + ("; `musicbench urmp process` for the real-ensembles track" if has_urmp else ""))
    raise typer.Exit(code=1)


@manifest_app.command("build")
@user_errors
def manifest_build(
    lists: Path = typer.Option(..., "--lists", help="folder of the official MUSIC lists (MUSIC_solo_videos.json, ...)"),
    out: Path = typer.Option(Path("manifests"), "--out", help="folder of the manifest CSVs to write"),
) -> None:
    """Convert the official MUSIC lists into manifests/music_solo.csv, music_duet.csv, music21_solo.csv."""
    from musicbench.music_lists import build_music_manifests

    for path in build_music_manifests(lists, out):
        print(plain(path))


@manifest_app.command("build-solos")
@user_errors
def manifest_build_solos(
    lists: Path = typer.Option(Path("manifests/published/solos_juanfmontesinos"), "--lists",
                               help="folder of the Solos lists (solos_ids.json, solos_timestamps.json)"),
    out: Path = typer.Option(Path("manifests/solos.csv"), "--out", help="manifest CSV to write"),
) -> None:
    """Convert the Solos lists into manifests/solos.csv: one trimmed clip per listed segment."""
    from musicbench.solos import build_solos_manifest

    print(plain(build_solos_manifest(lists, out)))


@manifest_app.command("stats")
@user_errors
def manifest_stats(
    paths: list[Path] = typer.Argument(None, help="manifest CSVs (default: manifests/*.csv)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (one object per manifest, subset and kind)"),
) -> None:
    """Print the number of rows (clips: and videos) per instrument and kind of each manifest."""
    import json

    from musicbench.music_lists import manifest_counts, manifest_stats_table

    chosen = paths or sorted(Path("manifests").glob("*.csv"))
    if as_json:
        print(json.dumps([group.to_json() for group in manifest_counts(chosen)], indent=2))
        return
    report.print(manifest_stats_table(chosen))


@app.command()
@user_errors
def download(
    manifests: list[Path] = typer.Argument(None, help="manifest CSVs (default: download.manifests of params)"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    jobs: int = typer.Option(None, "--jobs", help="videos fetched in parallel"),
    limit: int = typer.Option(None, "--limit", help="fetch at most this many videos (0 = all)"),
    instruments: str = typer.Option(None, "--instruments", help="comma-separated instruments to keep"),
    subset: str = typer.Option(None, "--subset", help="comma-separated subsets to keep (MUSIC-11, MUSIC-21)"),
    url_template: str = typer.Option(None, "--url-template", help="video URL with {id}"),
    video_format: str = typer.Option(None, "--format", help="yt-dlp format selector"),
    sleep: float = typer.Option(None, "--sleep", help="seconds between the starts of two videos"),
    retries: int = typer.Option(None, "--retries", help="extra attempts per video on transient errors"),
    cookies: str = typer.Option(None, "--cookies", help="Netscape cookies file for yt-dlp"),
    proxy: str = typer.Option(None, "--proxy", help="proxy URL for yt-dlp"),
    retry_unavailable: bool = typer.Option(None, "--retry-unavailable", help="try again videos recorded as unavailable"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Download real MUSIC videos with yt-dlp (resumable), trim them, and update the availability report."""
    from musicbench.acquire import download_from_params
    from musicbench.config import load_params

    table = download_from_params(
        load_params(params), root, manifests or None, show_progress=not quiet,
        jobs=jobs, limit=limit, instruments=instruments, subsets=subset, url_template=url_template,
        format=video_format, sleep=sleep, retries=retries, cookies=cookies, proxy=proxy,
        retry_unavailable=retry_unavailable,
    )
    report.print(table)


@app.command()
@user_errors
def acquire(params: Path = PARAMS_OPTION, quiet: bool = typer.Option(False, "--quiet", help="no progress bar")) -> None:
    """DVC stage: download real MUSIC (dataset.source music) or Solos' clips (solos); with 'synth', only note the skip."""
    from musicbench.acquire import acquire_music
    from musicbench.config import load_params

    print(plain(acquire_music(load_params(params), show_progress=not quiet)))


urmp_app = typer.Typer(help="URMP (real ensembles with real stems) from your local copy.", no_args_is_help=True)
app.add_typer(urmp_app, name="urmp")


@urmp_app.command("import")
@user_errors
def urmp_import(
    copy: Path = typer.Argument(..., help="the unpacked URMP folder (holding 01_Jupiter_vn_vc/, ...); only read"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root); writes ROOT/urmp/manifest.json"),
) -> None:
    """Check every piece of a URMP copy and write its manifest; exit 1 listing every problem (nothing written)."""
    from musicbench.config import data_root, load_params
    from musicbench.urmp import import_urmp

    result = import_urmp(copy, root or data_root(load_params(params)))
    if result.problems:
        for problem in result.problems:
            print(f"error: {plain(problem)}", file=sys.stderr)
        console.print(plain(f"{len(result.problems)} problem(s) in {copy}: no manifest written"))
        raise typer.Exit(code=1)
    players = sum(len(piece.players) for piece in result.pieces)
    print(plain(f"{len(result.pieces)} pieces, {players} players: {result.manifest_path}"))


@urmp_app.command("process")
@user_errors
def urmp_process(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root) holding urmp/manifest.json"),
) -> None:
    """Decode every imported piece (mixture, stems, frames) and draw the real-ensembles track's clips; exit 1 if a piece failed."""
    from musicbench.config import data_root, load_params
    from musicbench.urmp import process_urmp

    loaded = load_params(params)
    result = process_urmp(loaded, root or data_root(loaded))
    for problem in result.problems:
        print(f"error: {plain(problem)}", file=sys.stderr)
    cover = result.coverage
    missing = f"; not held: {', '.join(cover['not_held'])}" if cover["not_held"] else ""
    print(plain(f"{len(result.pieces)} pieces, {len(result.items)} items, real-ensembles track {result.version}; "
                f"{cover['held']} of its {cover['pieces']} pieces held{missing}"))
    if result.problems:
        raise typer.Exit(code=1)


splits_app = typer.Typer(help="Train/val/test splits: build, import published sets, check leakage.", no_args_is_help=True)
app.add_typer(splits_app, name="splits")


@splits_app.command("build")
@user_errors
def splits_build(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
) -> None:
    """Stage `splits`: write ROOT/splits/splits.csv for dataset.source (or splits.file)."""
    from musicbench.config import data_root, load_params, project_dir
    from musicbench.splits import make_splits

    loaded = load_params(params)
    console.print(plain(f"splits written to {make_splits(loaded, root or data_root(loaded), repo=project_dir(params))}"))


@splits_app.command("published")
@user_errors
def splits_published(
    name: str = typer.Argument(..., help="ccol, iquery_music, iquery_music21 or dsol"),
    lists: Path = typer.Option(Path("manifests/published"), "--lists", help="folder of the published lists"),
    out: Path = typer.Option(None, "--out", help="split file to write (default manifests/splits/published_NAME.csv)"),
) -> None:
    """Convert a published split set to a musicbench split file and report its leakage."""
    from musicbench.published_splits import load_published_splits
    from musicbench.splits import find_leakage, write_splits

    rows = load_published_splits(name, lists)
    target = out or Path("manifests/splits") / f"published_{name}.csv"
    write_splits(rows, target)
    _print_leakage(name, find_leakage(rows))
    console.print(plain(f"{len(rows)} rows written to {target}"))


@splits_app.command("check")
@user_errors
def splits_check(files: list[Path] = typer.Argument(..., help="split files to check")) -> None:
    """Report videos that a split file puts in more than one split; exit 1 if any."""
    from musicbench.splits import find_leakage, read_splits

    leaking = False
    for path in files:
        leaks = find_leakage(read_splits(path))
        _print_leakage(str(path), leaks)
        leaking |= bool(leaks)
    if leaking:
        raise typer.Exit(code=1)


def _print_leakage(name: str, leaks: dict[str, tuple[str, ...]]) -> None:
    from rich.table import Table

    if not leaks:
        console.print(plain(f"{name}: no video in two splits"))
        return
    table = Table(title=plain(f"{name}: {len(leaks)} video(s) in more than one split"))
    table.add_column("video_id")
    table.add_column("splits")
    for video_id, splits in leaks.items():
        table.add_row(plain(video_id), plain(" + ".join(splits)))
    console.print(table)


@app.command()
@user_errors
def mixtures(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    definition: Path = typer.Option(None, "--definition", help="a published definition (from --publish) whose items to "
                                    "build here instead of drawing them; clips whose audio differs are reported"),
    publish: Path = typer.Option(None, "--publish", help="write this data root's items, with their clip starts and "
                                 "fingerprints, as a definition other data roots can build (--definition)"),
    compare: Path = typer.Option(None, "--compare", help="a published mixtures.parquet, or another data root, to compare "
                                 "this data with (per clip: missing, other samples, or only other frames)"),
) -> None:
    """Stage `mixtures`: the fixed val/test items this data root holds, its coverage and the benchmark identity."""
    from musicbench.benchmark import DataRoot, read_mixtures
    from musicbench.config import data_root, load_params
    from musicbench.definition import coverage_lines
    from musicbench.mixtures import compare_clips, compare_mixtures, make_mixtures

    loaded = load_params(params)
    data = DataRoot(root or data_root(loaded))
    summary = make_mixtures(loaded, data.root, definition=definition, publish=publish)
    built = f"built from the definition {summary['definition']['file']}" if summary["definition"] else "drawn"
    console.print(plain(f"benchmark version {summary['benchmark_version']} (frames {summary['frames_fingerprint']}), "
                        f"items {built}; coverage:"))
    for line in coverage_lines(summary["coverage"]):
        console.print(plain(f"  {line}"))
    if publish is not None:
        console.print(plain(f"published the definition of the held items to {publish}"))
    if compare is None:
        return
    if compare.is_dir():
        _print_clip_comparison(compare_clips(data, DataRoot(compare)), compare)
        return
    problems = compare_mixtures(read_mixtures(compare), data)
    if len(problems):
        console.print(f"{problems['item_id'].nunique()} published item(s) differ here:")
        for row in problems.itertuples(index=False):
            console.print(plain(f"  {row.item_id}: clip {row.video_id} {row.problem}"))
    else:
        console.print("the published definition is fully available here")


protocol_app = typer.Typer(help="The papers' own test sets (iQuery, ...), built beside the main benchmark.",
                           no_args_is_help=True)
app.add_typer(protocol_app, name="protocol")
def run_folder_name(name: str, protocol: str | None) -> str:
    """The default folder under runs/ of a run: its name, and ``--PROTOCOL`` after it for a protocol run
    (the same model on the main benchmark and on a paper's test set are two runs)."""
    return name if protocol is None else f"{name}--{protocol}"


def default_lists(params: Path | None) -> Path:
    """The project's folder of published lists (``manifests/published`` beside params.yaml)."""
    from musicbench.config import project_dir

    return project_dir(params) / "manifests" / "published"


PROTOCOL_OPTION = typer.Option(None, "--protocol", help="a paper's test set built here (`musicbench protocol list`) "
                               "instead of the main benchmark")


@protocol_app.command("list")
@user_errors
def protocol_list() -> None:
    """Every protocol: its name, paper and source code."""
    from musicbench.protocols import PROTOCOLS, RECIPES

    for protocol in PROTOCOLS.values():
        report.print(plain(f"{protocol.name}: {protocol.paper}; scored also by {RECIPES[protocol.recipe]}"))


@protocol_app.command("build")
@user_errors
def protocol_build(
    name: str = typer.Argument(..., help="the protocol (`musicbench protocol list`)"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    lists: Path = typer.Option(None, "--lists", help="folder of the published lists (default: the project's manifests/published)"),
) -> None:
    """Build a protocol's items from the videos this data root holds: its identity and coverage."""
    from musicbench.benchmark import DataRoot
    from musicbench.config import data_root, load_params
    from musicbench.definition import coverage_lines
    from musicbench.protocols import build_protocol, get_protocol

    get_protocol(name)
    loaded = load_params(params)
    view = DataRoot(root or data_root(loaded), protocol=name)
    try:
        previous = view.version() if view.has_definition() else None
    except MusicbenchError:
        previous = None
    document = build_protocol(loaded, view.root, name, lists or default_lists(params))
    console.print(plain(f"protocol {name}: benchmark version {document['benchmark_version']} "
                        f"(frames {document['frames_fingerprint']}); coverage:"))
    for line in coverage_lines(document["coverage"]):
        console.print(plain(f"  {line}"))
    if document["protocol"].get("train_videos"):
        console.print(plain(f"  note: {len(document['protocol']['train_videos'])} of its videos are in this data root's "
                            "train split (a model trained here has heard them)"))
    if previous is not None and previous != document["benchmark_version"]:
        console.print(plain(f"note: this replaces protocol {name} version {previous}: runs on that version are no "
                            "longer re-scored here"))


def _print_clip_comparison(clips, other: Path) -> None:
    from rich.table import Table

    counts = clips["verdict"].value_counts()
    table = Table(title=plain(f"clips of this benchmark against {other} ({len(clips)} clips)"))
    for column in ("item", "source", "video", "max |Δ sample|", "frames PSNR (dB)", "verdict"):
        table.add_column(column, justify="right" if column in ("source", "max |Δ sample|", "frames PSNR (dB)") else "left")
    for row in clips[clips["verdict"] != "identical"].itertuples(index=False):
        table.add_row(plain(row.item_id), str(row.source_index), plain(row.video_id),
                      "n/a" if row.max_abs_diff is None or row.max_abs_diff != row.max_abs_diff else f"{row.max_abs_diff:.3g}",
                      "n/a" if row.frames_psnr_db is None or row.frames_psnr_db != row.frames_psnr_db else f"{row.frames_psnr_db:.1f}",
                      plain(row.verdict))
    if table.row_count:
        report.print(table)
    report.print(plain(", ".join(f"{count} {verdict}" for verdict, count in counts.items())))


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise MusicbenchError(f"--option {pair!r} must look like key=value with a Python identifier as key")
        options[key] = value
    return options


@app.command()
@user_errors
def evaluate(
    model: Path = typer.Argument(None, help="model file defining load_model(**options); omit with --oracle"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    split: str = typer.Option("test", "--split", help="val or test"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    jobs: int = typer.Option(1, "--jobs", help="processes that score items in parallel"),
    out: Path = typer.Option(None, "--out", help="run folder (default runs/NAME, runs/NAME--PROTOCOL with --protocol); "
                             "an existing run there is refused"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run at --out, once the new run is complete"),
    option: list[str] = typer.Option(None, "--option", help="key=value passed to load_model (repeatable)"),
    oracle: str = typer.Option(None, "--oracle", help="ibm or irm (ideal-mask ceilings) or mixture (the floor) instead of a model"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds allowed per item before the model is killed"),
    load_timeout: float = typer.Option(300.0, "--load-timeout", help="seconds allowed for importing the model file "
                                       "and load_model before the model is killed"),
    limit: int = typer.Option(None, "--limit", help="score only the first N items (smoke tests)"),
    name: str = typer.Option(None, "--name", help="name on the leaderboard (default: file stem or oracle-KIND)"),
    boxes: Path = typer.Option(None, "--boxes", help="localization boxes for videos without their own, DSOL format "
                               "(e.g. manifests/published/dsol_DTaoo/solotest.json)"),
    no_confine: bool = typer.Option(False, "--no-confine", help="run the model process unconfined (debugging; "
                                    "provenance and the board say so)"),
    python: Path = typer.Option(None, "--python", help="run the model under this interpreter (the method's own "
                                "environment; it needs only numpy)"),
    hide: list[Path] = typer.Option(None, "--hide", help="a folder or file the model must not see either (repeatable), "
                                    "e.g. one holding hardlinks or copies of the data"),
    scratch_mb: int = typer.Option(2048, "--scratch-mb", help="MiB the confined model may write (to its TMPDIR, in "
                                   "memory; as much again to /dev/shm)"),
    protocol: str = PROTOCOL_OPTION,
) -> None:
    """Score a model file (or an oracle) on the fixed benchmark items; writes runs/NAME/."""
    from musicbench.config import data_root, load_params, project_dir, statistics_seed
    from musicbench.evaluate import evaluate as run_evaluation
    from musicbench.evaluate import run_name
    from musicbench.protocols import protocol_root

    if (model is None) == (oracle is None):
        raise MusicbenchError("give either a model file or --oracle ibm|irm")
    loaded = load_params(params)
    name = name or run_name(model, oracle)
    out_dir = out or project_dir(params) / "runs" / run_folder_name(name, protocol)
    summary = run_evaluation(model, protocol_root(root or data_root(loaded), protocol, split), out_dir, split=split, device=device,
                             options=_parse_options(option), timeout=timeout, load_timeout=load_timeout, limit=limit,
                             oracle=oracle, name=name, jobs=jobs, boxes_file=boxes, overwrite=overwrite,
                             confine=not no_confine, python=python, hide=tuple(hide or ()),
                             scratch_bytes=scratch_mb << 20, seed=statistics_seed(loaded))
    _print_summary(summary, out_dir)


@app.command()
@user_errors
def export(
    out: Path = typer.Argument(..., help="folder to write the items to (outside the data root and runs/)"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    split: str = typer.Option("test", "--split", help="val or test"),
    limit: int = typer.Option(None, "--limit", help="export only the first N items of each track"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="the runs folder, which the export may not overlap"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a non-empty OUT once the new export is complete"),
    protocol: str = PROTOCOL_OPTION,
) -> None:
    """Write every item as plain files (mixture.wav, frames, points) for methods run elsewhere; OUT/README.txt says how."""
    from musicbench.config import data_root, load_params
    from musicbench.export import export_items
    from musicbench.protocols import protocol_root

    data = protocol_root(root or data_root(load_params(params)), protocol, split)
    table = export_items(data, out, split=split, limit=limit, protected=(runs,),
                         overwrite=overwrite)
    counts = table["track"].value_counts()
    localization = [f"{counts[track]} {track} items" for track in ("localization", "class-localization") if track in counts]
    report.print(plain((", ".join(localization) if localization else
                        f"{counts.get('mixtures', 0)} mixture items and {counts.get('duets', 0)} duet items") + f" in {out}/ "
                       f"(see {out / 'README.txt'})"))


@app.command()
@user_errors
def score(
    estimates: Path = typer.Argument(..., help="folder of <item>/source<k>.wav (and heatmap<k>.npy) estimate files"),
    name: str = typer.Option(..., "--name", help="name on the leaderboard and of the run folder runs/NAME"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    split: str = typer.Option("test", "--split", help="val or test"),
    uses_labels: bool = typer.Option(False, "--uses-labels", help="the method used labels.csv (ranked apart)"),
    out: Path = typer.Option(None, "--out", help="run folder (default runs/NAME, runs/NAME--PROTOCOL with --protocol); "
                             "an existing run there is refused"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run at --out, once the new run is complete"),
    limit: int = typer.Option(None, "--limit", help="score only the first N items of each track"),
    jobs: int = typer.Option(1, "--jobs", help="processes that score items in parallel"),
    boxes: Path = typer.Option(None, "--boxes", help="localization boxes for videos without their own, DSOL format"),
    protocol: str = PROTOCOL_OPTION,
) -> None:
    """Score estimate files made outside the harness (see `musicbench export`); writes runs/NAME/ like evaluate."""
    from musicbench.config import data_root, load_params, project_dir, statistics_seed
    from musicbench.export import score_estimates
    from musicbench.protocols import protocol_root

    loaded = load_params(params)
    out_dir = out or project_dir(params) / "runs" / run_folder_name(name, protocol)
    data = protocol_root(root or data_root(loaded), protocol, split)
    summary = score_estimates(estimates, data, out_dir, name=name, split=split, uses_labels=uses_labels,
                              limit=limit, jobs=jobs, boxes_file=boxes, overwrite=overwrite,
                              seed=statistics_seed(loaded))
    _print_summary(summary, out_dir)


@app.command("validate-model")
@user_errors
def validate_model_command(
    model: Path = typer.Argument(..., help="model file defining load_model(**options)"),
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root); its val items are used if built"),
    option: list[str] = typer.Option(None, "--option", help="key=value passed to load_model (repeatable)"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds allowed per call"),
    load_timeout: float = typer.Option(300.0, "--load-timeout", help="seconds allowed for importing the model file "
                                       "and load_model"),
    no_confine: bool = typer.Option(False, "--no-confine", help="run the model process unconfined (debugging)"),
    python: Path = typer.Option(None, "--python", help="run the model under this interpreter (it needs only numpy)"),
    hide: list[Path] = typer.Option(None, "--hide", help="a folder or file the model must not see either (repeatable)"),
) -> None:
    """Run a model file on two tiny items; check shapes, dtypes, finiteness and time per item."""
    from rich.table import Table
    from rich.text import Text

    from musicbench.config import AudioConfig, data_root, load_params
    from musicbench.model_check import validate_model

    loaded = load_params(params)
    checks, source = validate_model(model, AudioConfig.from_params(loaded), root or data_root(loaded),
                                    _parse_options(option), timeout, load_timeout, confine=not no_confine,
                                    python=python, hide=tuple(hide or ()))
    table = Table(title=plain(f"validate-model {model.name} on {source}"))
    for column in ("check", "result", "detail"):
        table.add_column(column)
    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        table.add_row(plain(check.name), Text(plain(check.status), style=colours.get(check.status, "")), plain(check.detail))
    report.print(table)
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        report.print(f"{len(failed)} check(s) failed: `musicbench evaluate` would record those items as failed")
        raise typer.Exit(1)
    report.print("all checks passed")


@app.command("train-nmf")
@user_errors
def train_nmf(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    out: Path = typer.Option(Path("models/nmf/nmf.npz"), "--out", help="checkpoint written (nmf.json beside it)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Stage `train_nmf`: learn one NMF dictionary per instrument from the train-split solo videos."""
    from musicbench.config import data_root, load_params
    from musicbench.nmf import train_nmf as run_training

    loaded = load_params(params)
    stats = run_training(loaded, root or data_root(loaded), out, progress=not quiet)
    frames = sum(stats["train_frames"].values())
    console.print(plain(f"NMF: {len(stats['instruments'])} instrument dictionaries from {frames} STFT frames "
                        f"in {stats['seconds']:.1f} s: {out}"))


@app.command("train-pixelplayer")
@user_errors
def train_pixelplayer(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    out: Path = typer.Option(Path("models/pixelplayer"), "--out", help="folder of checkpoint.pt, best.pt, curves, summary.json"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (under torchrun: one GPU per process)"),
    profile: str = typer.Option(None, "--profile", help="params block pixelplayer.PROFILE (default: pixelplayer.profile)"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue from OUT/checkpoint.pt if present"),
    max_steps: int = typer.Option(None, "--max-steps", help="stop at this step (resumable later)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Stage `train_pixelplayer`: Mix-and-Separate training of PixelPlayer (torchrun for DDP, see README)."""
    import os

    import torch.distributed as dist

    from musicbench.config import data_root, load_params
    from musicbench.pixelplayer.train import train_pixelplayer as run_training

    loaded = load_params(params)
    try:
        summary = run_training(loaded, root or data_root(loaded), out, device=device, resume=resume, profile=profile,
                               max_steps=max_steps, progress=not quiet)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        keys = ("profile", "device", "world_size", "steps", "train_seconds", "first_loss", "last_loss",
                "best_val_nsdr", "best_step")
        console.print(plain("PixelPlayer: " + ", ".join(f"{k} {summary[k]:.4g}" if isinstance(summary.get(k), float)
                                                        else f"{k} {summary.get(k)}" for k in keys) + f": {out}"))


@app.command("pixelplayer-weights")
@user_errors
def pixelplayer_weights(
    params: Path = PARAMS_OPTION,
    root: Path = typer.Option(None, "--root", help="data root (default: dataset.root)"),
    out: Path = typer.Option(Path("models/pixelplayer"), "--out", help="folder of weights.safetensors and its card weights.json"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (training only)"),
    publish: bool = typer.Option(False, "--publish", help="then copy the weights trained here into baselines/weights (maintainers)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Stage `train_pixelplayer`: PixelPlayer's weights, published (checked) or trained here (pixelplayer.weights)."""
    from musicbench.config import data_root, load_params
    from musicbench.pixelplayer.weights import prepare_weights, publish_weights

    loaded = load_params(params)
    card = prepare_weights(loaded, root or data_root(loaded), out, device=device, progress=not quiet)
    console.print(plain(f"PixelPlayer weights ({card.get('source')}), profile {card['config'].get('profile')}, "
                        f"sha256 {card['sha256'][:16]}…: {out}"))
    if card.get("recipe_differs"):
        console.print(plain(f"note: pixelplayer.{card['config'].get('profile')} differs from the published weights' recipe in "
                            f"{', '.join(card['recipe_differs'])}; the published weights are used as they are "
                            "(pixelplayer.weights: train trains yours)"))
    if publish:
        console.print(plain(f"published: {publish_weights(out)}"))


@app.command()
@user_errors
def compare(
    runs: list[Path] = typer.Argument(..., help="run folders: the first is A, each other is compared against it"),
    params: Path = PARAMS_OPTION,
    top: int = typer.Option(5, "--top", help="items listed whose NSDR differs most, each way"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON instead of tables"),
    plot: Path = typer.Option(None, "--plot", help="also write the per-item NSDR differences as an SVG here"),
) -> None:
    """Compare runs: paired video-bootstrap tests per metric (separation, cIoU, pointing game, duets), per instrument, largest items."""
    import json

    from musicbench.config import load_params, statistics_seed
    from musicbench.fsutil import atomic_write_text
    from musicbench.leaderboard.compare import compare_runs, compare_svg, compare_tables

    result = compare_runs(runs, seed=statistics_seed(load_params(params)), top=top)
    if plot is not None:
        atomic_write_text(plot, compare_svg(result))
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    for table in compare_tables(result):
        report.print(table)
    report.print(plain(result["test"] + f"; seed {result['seed']}"))


@app.command()
@user_errors
def leaderboard(
    params: Path = PARAMS_OPTION,
    runs: Path = typer.Option(None, "--runs", help="folder of run folders written by `musicbench evaluate` [default: the project's runs]"),
    out: Path = typer.Option(None, "--out", help="folder the leaderboard is written to [default: the project's leaderboard]"),
    root: Path = typer.Option(
        None, "--root", help="data root: current benchmark version and the demo pages' audio and frames (default: dataset.root)"),
    demo_items: str = typer.Option("all", "--demo-items", help="test mixtures (and duets) per demo page: all or a count; 0: none"),
    baseline: str = typer.Option(
        None, "--baseline", help="run name the significance tests compare against (default: each table's best baseline)"),
    table_format: str = typer.Option(
        None, "--format", help="latex or markdown: print the current table for a paper instead of writing the board"),
    columns: str = typer.Option(None, "--columns", help="with --format: columns, e.g. sdr,sir,sar,nsdr,ciou,pointing,duet_nsdr"),
    ci: bool = typer.Option(False, "--ci", help="with --format: add each mean's 95%% confidence interval"),
) -> None:
    """Stage `leaderboard`: rank every run under runs/ (Markdown, JSON, Parquet, DVC metrics and plots, static site with demos)."""
    from musicbench.config import data_root, load_params, project_dir, statistics_seed
    from musicbench.leaderboard import assemble_board, build_leaderboard, parse_demo_items
    from musicbench.leaderboard.paper import paper_table, parse_columns

    loaded = load_params(params)
    runs, out = runs or project_dir(params) / "runs", out or project_dir(params) / "leaderboard"
    if table_format is not None:
        chosen = parse_columns(columns)
        board, _, _ = assemble_board(runs, root or data_root(loaded), baseline=baseline, seed=statistics_seed(loaded))
        for warning in board.warnings:
            console.print(plain(f"warning: {warning}"))
        print(paper_table(board, table_format, chosen, ci), end="")
        return
    board = build_leaderboard(runs, out, root or data_root(loaded), demo_items=parse_demo_items(demo_items), baseline=baseline,
                              seed=statistics_seed(loaded))
    for warning in board["warnings"]:
        console.print(plain(f"warning: {warning}"))
    n_runs = sum(len(table["rows"]) for table in board["tables"])
    console.print(plain(f"{n_runs} run(s) in {len(board['tables'])} table(s): open {out / 'index.html'}; "
                        f"also {out / 'leaderboard.md'}, leaderboard.json, leaderboard.parquet, metrics/, plots/"))


def _print_summary(summary: dict, out_dir: Path) -> None:
    from rich.table import Table

    from musicbench.leaderboard.board import MetricBlock
    from musicbench.leaderboard.text import ci_text, fmt, fmt_mean

    protocol = summary.get("protocol")
    tracks = [(f"protocol {protocol}" if protocol else "mixtures track", summary)]
    tracks += [("duet track (separate_at)", summary["duets"])] if summary.get("duets") else []
    tracks += [("real-ensembles track (URMP)", summary["urmp"])] if summary.get("urmp") else []
    for title, track in tracks:
        table = Table(title=plain(f"{summary['name']} on {summary['benchmark_version']} ({summary['split']}), {title}: "
                                  f"{track['n_scored']}/{track['n_items']} items scored"))
        for column in ("metric", "mean", "95% CI", "median", "n"):
            table.add_column(column, justify="right")
        for metric, values in track["metrics"].items():
            block = MetricBlock(**values)
            table.add_row(plain(metric), fmt_mean(block), ci_text(block.ci95).strip() or "n/a",
                          fmt(block.median), str(block.n))
        report.print(table)
        for reason, count in track["excluded_reasons"].items():
            report.print(plain(f"{title}: excluded {count}: {reason}"))
    recipe = summary.get("paper_recipe") or {}
    if recipe:  # a protocol run: its figures by the paper's own recipe, beside musicbench's
        figures = ", ".join(f"{key} {fmt(value) if isinstance(value, float) else value}" for key, value in recipe.items()
                            if key not in ("recipe", "n_not_held"))
        report.print(plain(f"by the paper's recipe ({recipe.get('recipe')}): {figures}"))
    elif not summary.get("duets"):
        report.print("duet track: n/a (the model has no separate_at, or the benchmark has no duet items with stems)")
    report.print(plain(f"results in {out_dir}/ (items.parquet, summary.json, provenance.json)"))


def main() -> None:  # pragma: no cover - console entry point alias
    app()
