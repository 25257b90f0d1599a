"""URMP as a real-ensembles source: import a local copy, process it, build its evaluation items.

URMP (University of Rochester Multi-Modal Music Performance; Li et al. 2019) cannot be fetched
here: its authors distribute an archive, and the user points musicbench at their own unpacked copy.
Its layout (`musicbench.synth.urmp_layout` writes the same, as the test fixture): one folder per
piece, ``<NN>_<Piece>_<code>_<code>...`` with the players' URMP instrument codes in order, holding
``Vid_<folder>.mp4`` (the players side by side), ``AuMix_<folder>.wav`` (the mixture) and
``AuSep_<k>_<code>_<NN>_<Piece>.wav`` (player k's own recording, k from 1), plus score and
annotation files that musicbench does not read.

`import_urmp(copy, data_root)` checks every piece and writes ``<data_root>/urmp/manifest.json``:
per piece its id (``urmp_<NN>_<Piece>``), players in order with their URMP code and canonical class
(`musicbench.instruments.canonical_instrument`), the video, the mixture and every stem (paths
relative to the copy, with the audio's SHA-256), sample rate and length. Problems (a missing stem,
video or mixture, stems of other lengths or rates, an unknown instrument code, a path that leaves
the copy through a symlink, a symlink loop) are collected over the whole copy, one line each, and nothing is
written while there is any. The copy is only read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import signal

from musicbench.benchmark import (
    URMP_DIR,
    URMP_ITEM_COLUMNS,
    URMP_PIECE_COLUMNS,
    URMP_PROCESSED_KINDS,
    DataRoot,
    pcm_sha256,
    urmp_processed_relpath,
    urmp_version,
)
from musicbench.concurrency import holds_data_root, worker_pool
from musicbench.config import config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import (
    SymlinkLoopError,
    atomic_path,
    atomic_write_text,
    ensure_writable_dir,
    resolve_in_root,
    sha256_file,
    write_parquet,
)
from musicbench.instruments import URMP_CODES, canonical_instrument
from musicbench.process import PROCESS_FORMAT_VERSION, ProcessConfig, extract_frames, ffmpeg_version
from musicbench.progress import progress_bar

MANIFEST_FORMAT = 1
PIECE_FOLDER = re.compile(r"(?P<number>[0-9]{2})_(?P<name>[A-Za-z0-9]+)_(?P<codes>[A-Za-z]+(?:_[A-Za-z]+)*)")
STEM_FILE = re.compile(r"AuSep_(?P<player>[0-9]+)_(?P<code>[A-Za-z]+)_(?P<number>[0-9]{2})_(?P<name>[A-Za-z0-9]+)\.wav")
MAX_PLAYERS = 5
URMP_SEED_KEY = 0x55524D50  # "URMP": keeps the clip draws apart from the mixtures stage's (seed, split, item)
URMP_DRAW_RULE = "the benchmark's pieces from urmp.pieces, clips from each piece's own audio"

# URMP's 44 pieces by their folder names, as the dataset distributes them (Li, Liu, Dinesh, Duan and
# Sharma, "Creating a multitrack classical music performance dataset for multimodal music analysis",
# IEEE TMM 2019; doi:10.5061/dryad.ng3r749): 11 duets, 12 trios, 14 quartets and 7 quintets. The
# real-ensembles track's benchmark is these pieces (``urmp.pieces`` empty), whichever a copy holds.
URMP_PIECE_FOLDERS: tuple[str, ...] = (
    "01_Jupiter_vn_vc", "02_Sonata_vn_vn", "03_Dance_fl_cl", "04_Allegro_fl_fl", "05_Entertainer_tpt_tpt",
    "06_Entertainer_sax_sax", "07_GString_tpt_tbn", "08_Spring_fl_vn", "09_Jesus_tpt_vn", "10_March_tpt_sax",
    "11_Maria_ob_vc", "12_Spring_vn_vn_vc", "13_Hark_vn_vn_va", "14_Waltz_fl_fl_cl", "15_Surprise_tpt_tpt_tbn",
    "16_Surprise_tpt_tpt_sax", "17_Nocturne_vn_fl_cl", "18_Nocturne_vn_fl_tpt", "19_Pavane_cl_vn_vc",
    "20_Pavane_tpt_vn_vc", "21_Rejouissance_cl_tbn_tba", "22_Rejouissance_sax_tbn_tba", "23_Rejouissance_cl_sax_tba",
    "24_Pirates_vn_vn_va_vc", "25_Pirates_vn_vn_va_sax", "26_King_vn_vn_va_vc", "27_King_vn_vn_va_sax",
    "28_Fugue_fl_ob_cl_bn", "29_Fugue_fl_fl_ob_cl", "30_Fugue_fl_fl_ob_sax", "31_Slavonic_tpt_tpt_hn_tbn",
    "32_Fugue_vn_vn_va_vc", "33_Elise_tpt_tpt_hn_tbn", "34_Fugue_tpt_tpt_hn_tbn", "35_Rondeau_vn_vn_va_db",
    "36_Rondeau_vn_vn_va_vc", "37_Rondeau_fl_vn_va_cl", "38_Jerusalem_vn_vn_va_vc_db", "39_Jerusalem_vn_vn_va_sax_db",
    "40_Miserere_fl_fl_ob_cl_bn", "41_Miserere_fl_fl_ob_sax_bn", "42_Arioso_tpt_tpt_hn_tbn_tba",
    "43_Chorale_tpt_tpt_hn_tbn_tba", "44_K515_vn_vn_va_va_vc",
)


@dataclass(frozen=True)
class UrmpPlayer:
    """One player of a piece: 1-based position (left to right), URMP code, canonical class, stem."""

    index: int
    code: str
    instrument: str
    stem_path: str
    stem_sha256: str


@dataclass(frozen=True)
class UrmpPiece:
    """One URMP piece: id ``urmp_<NN>_<Piece>``, its folder, players in order, the video and the
    mixture (paths relative to the copy), sample rate (Hz) and length (samples) of its audio."""

    piece_id: str
    folder: str
    players: tuple[UrmpPlayer, ...]
    video_path: str
    mixture_path: str
    mixture_sha256: str
    sample_rate: int
    n_samples: int

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(player.instrument for player in self.players)


@dataclass
class UrmpImport:
    """What `import_urmp` found: the pieces (in folder order) and one line per problem."""

    copy: Path
    pieces: list[UrmpPiece] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    manifest_path: Path | None = None


def _audio_info(path: Path) -> tuple[int, int, int]:
    """(sample rate Hz, frames, channels) of an audio file; raises MusicbenchError if unreadable."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise MusicbenchError(f"cannot read audio: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def _piece(copy: Path, folder: Path) -> tuple[UrmpPiece | None, list[str]]:
    """Check one piece folder; (piece, []) or (None, problems)."""
    problems: list[str] = []
    where = folder.name
    match = PIECE_FOLDER.fullmatch(folder.name)
    if match is None:
        return None, [f"{where}: not a URMP piece folder name (expected NN_Piece_code_code..., e.g. 01_Jupiter_vn_vc)"]
    number, name, codes = match["number"], match["name"], match["codes"].split("_")
    if not 2 <= len(codes) <= MAX_PLAYERS:
        problems.append(f"{where}: {len(codes)} player(s); URMP pieces have 2 to {MAX_PLAYERS}")
    instruments = [URMP_CODES.get(code) for code in codes]  # URMP's codes, in the one vocabulary
    problems += [f"{where}: unknown instrument code {code!r}; URMP's codes are {', '.join(URMP_CODES)}"
                 for code, instrument in zip(codes, instruments) if instrument is None]

    def existing(relative: str, what: str) -> Path | None:
        try:
            path = resolve_in_root(copy, relative)
        except SymlinkLoopError:
            problems.append(f"{relative}: {what} is a symlink loop (its links lead back to each other); "
                            "replace the link with the real file from the URMP archive")
            return None
        except MusicbenchError:
            problems.append(f"{relative}: {what} leaves the URMP copy {str(copy)!r} (a symlink?); "
                            "put the real file inside the copy")
            return None
        if not path.is_file():
            problems.append(f"{relative}: {what} missing; restore it from the URMP archive")
            return None
        return path

    stem_re = f"{number}_{name}"
    expected = {f"AuSep_{k}_{code}_{stem_re}.wav" for k, code in enumerate(codes, 1)}
    for extra in sorted(p.name for p in folder.glob("AuSep_*.wav") if p.name not in expected):
        problems.append(f"{where}/{extra}: a stem that is not one of the folder's players ({' '.join(codes)}); "
                        "rename or remove it")
    video = existing(f"{folder.name}/Vid_{folder.name}.mp4", "video")
    mixture = existing(f"{folder.name}/AuMix_{folder.name}.wav", "mixture")
    stems = [existing(f"{folder.name}/AuSep_{k}_{code}_{stem_re}.wav", f"stem of player {k} ({code})")
             for k, code in enumerate(codes, 1)]
    formats: dict[str, tuple[int, int, int]] = {}
    for path in [mixture, *stems]:
        if path is None:
            continue
        relative = path.relative_to(copy.resolve()).as_posix()
        try:
            formats[relative] = _audio_info(path)
        except MusicbenchError as exc:
            problems.append(f"{relative}: {exc}; restore it from the URMP archive")
    if len({(rate, frames) for rate, frames, _ in formats.values()}) > 1:
        lengths = ", ".join(f"{Path(rel).name} {frames} samples at {rate} Hz" for rel, (rate, frames, _) in formats.items())
        problems.append(f"{where}: the mixture and stems differ in length or rate ({lengths}); "
                        "restore the piece from the URMP archive")
    if problems or video is None or mixture is None or None in stems:
        return None, problems
    rate, n_samples, _ = formats[mixture.relative_to(copy.resolve()).as_posix()]
    root = copy.resolve()
    players = tuple(UrmpPlayer(k, code, instrument, stem.relative_to(root).as_posix(), sha256_file(stem))
                    for k, (code, instrument, stem) in enumerate(zip(codes, instruments, stems), 1))
    return UrmpPiece(f"urmp_{number}_{name}", folder.name, players, video.relative_to(root).as_posix(),
                     mixture.relative_to(root).as_posix(), sha256_file(mixture), rate, n_samples), []


def _is_symlink_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def scan_urmp(copy: str | os.PathLike) -> UrmpImport:
    """Check every piece folder of a URMP copy (folders beginning with two digits); never raises
    for a bad piece: its problems are listed and the other pieces are still checked."""
    copy = Path(copy)
    if not copy.is_dir():
        raise MusicbenchError(f"URMP copy {str(copy)!r} is not a folder; pass the folder that holds "
                              "01_Jupiter_vn_vc/ and the other pieces")
    result = UrmpImport(copy)
    named = sorted(p for p in copy.iterdir() if re.match(r"[0-9]{2}_", p.name))
    for path in named:
        if path.is_symlink() and _is_symlink_loop(path):
            result.problems.append(f"{path.name}: the piece folder is a symlink loop (its links lead back to each other); "
                                   "replace the link with the piece's folder from the URMP archive")
    folders = [p for p in named if p.is_dir()]
    if not folders and not result.problems:
        result.problems.append(f"{copy}: no piece folders (NN_Piece_codes/); is this the unpacked URMP archive?")
    numbers: dict[str, str] = {}
    for folder in folders:
        piece, problems = _piece(copy, folder)
        result.problems += problems
        if piece is not None:
            if piece.piece_id in numbers:
                result.problems.append(f"{folder.name}: piece {piece.piece_id} also in {numbers[piece.piece_id]}; keep one")
                continue
            numbers[piece.piece_id] = folder.name
            result.pieces.append(piece)
    return result


def manifest_doc(result: UrmpImport) -> dict[str, Any]:
    """The JSON document of ``urmp/manifest.json`` for a problem-free scan."""
    return {
        "format": MANIFEST_FORMAT, "copy": os.fspath(result.copy.resolve()),
        "pieces": [{
            "piece_id": piece.piece_id, "folder": piece.folder, "instruments": list(piece.instruments),
            "video_path": piece.video_path, "mixture_path": piece.mixture_path, "mixture_sha256": piece.mixture_sha256,
            "sample_rate": piece.sample_rate, "n_samples": piece.n_samples,
            "players": [{"index": p.index, "code": p.code, "instrument": p.instrument, "stem_path": p.stem_path,
                         "stem_sha256": p.stem_sha256} for p in piece.players],
        } for piece in result.pieces],
    }


@holds_data_root("urmp import", "data_root")
def import_urmp(copy: str | os.PathLike, data_root: str | os.PathLike) -> UrmpImport:
    """Scan a URMP copy (`scan_urmp`) and, when it has no problem, write ``<data_root>/urmp/manifest.json``
    (atomically; an earlier manifest stays untouched otherwise), holding the data root's lock.
    Returns the scan with ``manifest_path`` set when written."""
    result = scan_urmp(copy)
    if result.problems:
        return result
    path = DataRoot(data_root).urmp_manifest_path
    ensure_writable_dir(path.parent)
    atomic_write_text(path, json.dumps(manifest_doc(result), indent=2) + "\n")
    result.manifest_path = path
    return result


def read_urmp_manifest(data_root: str | os.PathLike) -> tuple[Path, list[UrmpPiece]]:
    """(the copy's folder, its pieces) from ``urmp/manifest.json``; the file is untrusted: every id,
    class and path is checked again (paths must stay inside the copy)."""
    path = DataRoot(data_root).urmp_manifest_path
    hint = "run `musicbench urmp import ROOT`"
    try:
        doc = json.loads(path.read_text())
        copy = Path(doc["copy"])
        pieces = []
        for entry in doc["pieces"]:
            if not re.fullmatch(r"urmp_[0-9]{2}_[A-Za-z0-9]+", entry["piece_id"]):
                raise ValueError(f"bad piece id {entry['piece_id']!r}")
            players = tuple(UrmpPlayer(int(p["index"]), str(p["code"]), canonical_instrument(p["instrument"], str(path)),
                                       str(p["stem_path"]), str(p["stem_sha256"])) for p in entry["players"])
            pieces.append(UrmpPiece(entry["piece_id"], str(entry["folder"]), players, str(entry["video_path"]),
                                    str(entry["mixture_path"]), str(entry["mixture_sha256"]), int(entry["sample_rate"]),
                                    int(entry["n_samples"])))
    except OSError:
        raise MusicbenchError(f"no URMP manifest at {str(path)!r}; {hint}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise MusicbenchError(f"URMP manifest {str(path)!r} is malformed ({exc}); {hint}") from None
    for piece in pieces:
        for relative in (piece.video_path, piece.mixture_path, *(p.stem_path for p in piece.players)):
            try:
                resolve_in_root(copy, relative)
            except SymlinkLoopError:
                pass  # the copy, not the manifest, is damaged: processing lists that piece and goes on
    return copy, pieces


# ------------------------------------------------------------------------------------ processing


@dataclass(frozen=True)
class UrmpConfig:
    """params.yaml section ``urmp`` (optional; defaults below): up to `clips_per_piece` fixed clips of
    ``audio.clip_samples`` per piece (`urmp_clips`), drawn with a generator seeded from
    ``mixtures.seed`` and the piece; the processing of the rest of the benchmark (``audio``, ``frames``, ``process``), except
    that frames keep the whole picture (``crop: none``) so that every player stays in view. `pieces`:
    the folder names of the track's pieces (empty: URMP's 44, `URMP_PIECE_FOLDERS`)."""

    process: ProcessConfig
    seed: int = knob(1234, non_negative=True, key="mixtures.seed")
    clips_per_piece: int = knob(4, positive=True)
    min_rms_db: float = knob(-45.0, key="mixtures.min_rms_db")
    min_active: float = knob(0.5, key="mixtures.min_active")
    pieces: tuple[str, ...] = knob(())

    @property
    def benchmark_pieces(self) -> tuple[str, ...]:
        """The folder names of the track's pieces: `pieces`, else URMP's 44."""
        return tuple(self.pieces) or URMP_PIECE_FOLDERS

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> UrmpConfig:
        process = replace(ProcessConfig.from_params(params), crop="none")
        return config_from_params(cls, params, "urmp", optional=True, process=process)


@dataclass
class UrmpProcessing:
    """What `process_urmp` did: the processed pieces table, the clip items, one line per problem, the
    track's identity and the copy's coverage (benchmark.json's)."""

    pieces: pd.DataFrame
    items: pd.DataFrame
    problems: list[str]
    version: str
    coverage: dict[str, Any] = field(default_factory=dict)


def _resampled(path: Path, rate: int) -> np.ndarray:
    """float64 ``(n_samples,)`` of an audio file (channels averaged) at `rate` Hz."""
    import soundfile as sf

    audio, file_rate = sf.read(os.fspath(path), dtype="float64", always_2d=True)
    ratio = Fraction(rate, int(file_rate))
    mono = audio.mean(axis=1)
    return mono if ratio == 1 else signal.resample_poly(mono, ratio.numerator, ratio.denominator)


def _piece_fingerprint(copy: Path, piece: UrmpPiece, config: UrmpConfig, ffmpeg_build: str) -> str:
    """What a piece's processed files depend on: the piece (paths, audio hashes), the video's size and
    modification time, the processing settings and the ffmpeg build."""
    video = resolve_in_root(copy, piece.video_path).stat()
    payload = {"format": MANIFEST_FORMAT, "piece": asdict(piece), "video": [video.st_size, video.st_mtime_ns],
               "config": config.process.fingerprint_fields(), "ffmpeg": ffmpeg_build, "process_format": PROCESS_FORMAT_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _finished_row(data: DataRoot, record: Path, fingerprint: str) -> dict[str, Any] | None:
    """The pieces-table row of a piece processed before with these inputs and settings, if its files are intact."""
    try:
        doc = json.loads(record.read_text())
        row = doc["row"] if doc["fingerprint"] == fingerprint else None
        if row is not None and all(sha256_file(data.resolve(row[f"{kind}_path"])) == row[f"{kind}_sha256"]
                                   for kind in URMP_PROCESSED_KINDS):
            return row
    except (OSError, KeyError, TypeError, ValueError, MusicbenchError):
        pass
    return None


def _process_piece(copy: Path, piece: UrmpPiece, root: Path, config: UrmpConfig, ffmpeg_build: str) -> dict[str, Any]:
    """Write one piece's mixture FLAC (mono), stems FLAC (one channel per player) and frame archive,
    then its record (``urmp/processed/records/<piece>.json``); return its row of ``urmp/pieces.parquet``.
    A piece whose record matches its inputs and settings, with intact files, is skipped. Raises
    MusicbenchError (one line) for a bad input."""
    import soundfile as sf

    data = DataRoot(root)
    record = data.root / urmp_processed_relpath("records", piece.piece_id)
    for relative, sha in [(piece.mixture_path, piece.mixture_sha256), *((p.stem_path, p.stem_sha256) for p in piece.players)]:
        if sha256_file(resolve_in_root(copy, relative)) != sha:
            raise MusicbenchError(f"{relative}: changed since `musicbench urmp import` (sha256 differs); import the copy again")
    fingerprint = _piece_fingerprint(copy, piece, config, ffmpeg_build)
    if (row := _finished_row(data, record, fingerprint)) is not None:
        return row
    rate = config.process.audio.sample_rate
    mixture = _resampled(resolve_in_root(copy, piece.mixture_path), rate)
    stems = np.stack([_resampled(resolve_in_root(copy, p.stem_path), rate) for p in piece.players])
    paths = {kind: data.root / urmp_processed_relpath(kind, piece.piece_id) for kind in URMP_PROCESSED_KINDS}
    for kind, audio in (("audio", mixture), ("stems", stems.T)):
        ensure_writable_dir(paths[kind].parent)
        with atomic_path(paths[kind]) as tmp:
            sf.write(tmp, np.clip(audio, -1.0, 1.0), rate, format="FLAC", subtype="PCM_24")
    ensure_writable_dir(paths["frames"].parent)
    work = data.root / URMP_DIR / ".work" / f"{piece.piece_id}.{os.getpid()}"
    try:
        n_frames, width, height = extract_frames(resolve_in_root(copy, piece.video_path), paths["frames"], config.process, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = {"piece_id": piece.piece_id, "instruments": " ".join(piece.instruments), "n_players": len(piece.players),
           "sample_rate": rate, "n_samples": int(mixture.size), "fps": float(config.process.audio.fps),
           "n_frames": n_frames, "frame_width": width, "frame_height": height}
    for kind, path in paths.items():
        row[f"{kind}_path"], row[f"{kind}_sha256"] = path.relative_to(data.root).as_posix(), sha256_file(path)
    ensure_writable_dir(record.parent)
    atomic_write_text(record, json.dumps({"fingerprint": fingerprint, "row": row}, sort_keys=True, indent=1) + "\n")
    return row


def urmp_identity(pieces: tuple[str, ...], recipe: dict[str, Any]) -> str:
    """``mbu-`` + 16 hex digits of the SHA-256 over the track's pieces (folder names) and its recipe as
    canonical JSON: the real-ensembles track's identity, the same for every copy whatever pieces it lacks."""
    digest = hashlib.sha256("\n".join(pieces).encode())
    digest.update(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode())
    return "mbu-" + digest.hexdigest()[:16]


def urmp_clips(piece: dict[str, Any], mixture: np.ndarray, config: UrmpConfig, number: int) -> list[tuple[int, int]]:
    """The fixed clips of one piece, (start sample, start frame) in time order: the piece is cut into
    `clips_per_piece` equal parts and each part gives one clip of ``audio.clip_samples`` samples
    that lies wholly inside it, drawn uniformly (a generator seeded from (seed, piece number)) among
    the sounding windows (the mixtures stage's rule: RMS and active frames, quarter-clip hop) that
    the frames cover; a part too short or silent gives none."""
    from musicbench.mixtures import MixturesConfig, sounding_starts

    audio = config.process.audio
    rule = MixturesConfig(audio=audio, seed=config.seed, min_rms_db=config.min_rms_db, min_active=config.min_active)
    starts = [int(s) for s in sounding_starts(mixture, rule)
              if round(s / audio.sample_rate * audio.fps) + rule.clip_frames <= int(piece["n_frames"])]
    rng = np.random.default_rng(np.random.SeedSequence(entropy=config.seed, spawn_key=(URMP_SEED_KEY, number)))
    part = len(mixture) / config.clips_per_piece
    clips = []
    for k in range(config.clips_per_piece):
        inside = [s for s in starts if k * part <= s and s + audio.clip_samples <= (k + 1) * part]
        if inside:
            start = inside[int(rng.integers(len(inside)))]
            clips.append((start, int(round(start / audio.sample_rate * audio.fps))))
    return clips


@holds_data_root("urmp process", "data_root")
def process_urmp(params: dict[str, Any], data_root: str | os.PathLike) -> UrmpProcessing:
    """Process every imported piece (`read_urmp_manifest`) and draw the real-ensembles items.

    The track's pieces are ``urmp.pieces`` (URMP's 44 by default): a piece of the copy outside them is
    a problem and left out. Writes, under ``<data_root>/urmp/``: ``processed/{audio,stems,frames}/<piece>.{flac,flac,tar}``
    (mixture and stems at ``audio.sample_rate``, 24-bit; frames at ``frames.fps``, shorter side
    ``frames.size``, uncropped; ``process.jobs`` pieces at a time; a piece already processed with the
    same inputs and settings is skipped, `_process_piece`), ``pieces.parquet`` (URMP_PIECE_COLUMNS), ``items.parquet``
    (URMP_ITEM_COLUMNS: every clip is a test item) and ``benchmark.json``: the track's identity
    (`urmp_identity`: its pieces and recipe, whatever the copy holds) and the copy's coverage
    (``coverage``: the pieces held, those not held, and the fingerprint of the items table with the
    pieces' decoded samples, `musicbench.benchmark.urmp_version`). A bad piece is listed in `problems` and the others go on; the
    tables list only the good ones.
    """
    import soundfile as sf

    data = DataRoot(data_root)
    config = UrmpConfig.from_params(params)
    copy, pieces = read_urmp_manifest(data_root)
    rows, items, problems = [], [], []
    build = ffmpeg_version()
    with progress_bar("URMP pieces", total=len(pieces)) as advance, worker_pool(max(1, min(config.process.jobs, len(pieces)))) as pool:
        futures = [pool.submit(_process_piece, copy, piece, data.root, config, build) for piece in pieces]
        for piece, future in zip(pieces, futures):  # in manifest order, whatever finishes first
            try:
                rows.append(future.result())
            except MusicbenchError as exc:
                problems.append(f"{piece.piece_id}: {exc}")
            advance()
    audio = config.process.audio
    clip_frames = int(np.floor(audio.clip_samples / audio.sample_rate * audio.fps))
    benchmark = config.benchmark_pieces
    folder_of = {piece.piece_id: piece.folder for piece in pieces}
    outside = sorted(row["piece_id"] for row in rows if folder_of[row["piece_id"]] not in benchmark)
    problems += [f"{piece}: not one of the track's pieces (urmp.pieces); it is left out" for piece in outside]
    rows = [row for row in rows if row["piece_id"] not in outside]
    for row in rows:
        mixture, _ = sf.read(data.resolve(row["audio_path"]), dtype="float32")
        number = int(row["piece_id"].split("_")[1])
        clips = urmp_clips(row, mixture, config, number)
        if not clips:
            problems.append(f"{row['piece_id']}: no sounding clip of {config.process.audio.clip_samples} samples; "
                            "it is left out of the track")
        for k, (start, start_frame) in enumerate(clips):
            items.append({"item_id": f"urmp-{row['piece_id'][5:]}-{k:02d}", "split": "test", "piece_id": row["piece_id"],
                          "instruments": row["instruments"], "start_sample": start,
                          "n_samples": config.process.audio.clip_samples, "start_frame": start_frame,
                          "n_frames": clip_frames,
                          **{column: row[column] for column in URMP_ITEM_COLUMNS if column.endswith(("_path", "_sha256"))}})
    pieces_table = pd.DataFrame.from_records(rows, columns=list(URMP_PIECE_COLUMNS))
    items_table = pd.DataFrame.from_records(items, columns=list(URMP_ITEM_COLUMNS))
    write_parquet(pieces_table, data.urmp_pieces_path)
    write_parquet(items_table, data.urmp_items_path)
    recipe = {"track": "urmp", "draw": URMP_DRAW_RULE, "sample_rate": config.process.audio.sample_rate,
              "clip_samples": config.process.audio.clip_samples, "fps": config.process.audio.fps,
              "frame_size": config.process.size, "crop": "none", "seed": config.seed, "clips_per_piece": config.clips_per_piece,
              "min_rms_db": config.min_rms_db, "min_active": config.min_active}
    version = urmp_identity(benchmark, recipe)
    tables_recipe = {"stems_pcm_sha256": {row["piece_id"]: pcm_sha256(data.resolve(row["stems_path"])) for row in rows},
                     "audio_pcm_sha256": {row["piece_id"]: pcm_sha256(data.resolve(row["audio_path"])) for row in rows}}
    held = {folder_of[row["piece_id"]] for row in rows if (items_table["piece_id"] == row["piece_id"]).any()}
    coverage = {"pieces": len(benchmark), "held": len(held), "not_held": [folder for folder in benchmark if folder not in held],
                "tables_recipe": tables_recipe, "tables_fingerprint": urmp_version(items_table, tables_recipe)}
    atomic_write_text(data.urmp_definition_path, json.dumps(
        {"benchmark_version": version, "recipe": recipe, "coverage": coverage, "n_pieces": len(rows), "n_items": len(items)},
        indent=2, sort_keys=True) + "\n")
    return UrmpProcessing(pieces_table, items_table, problems, version, coverage)
