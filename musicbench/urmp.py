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
the copy through a symlink) are collected over the whole copy, one line each, and nothing is
written while there is any. The copy is only read.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_write_text, ensure_writable_dir, resolve_in_root, sha256_file
from musicbench.instruments import URMP_CODES, canonical_instrument

MANIFEST_FORMAT = 1
PIECE_FOLDER = re.compile(r"(?P<number>[0-9]{2})_(?P<name>[A-Za-z0-9]+)_(?P<codes>[A-Za-z]+(?:_[A-Za-z]+)*)")
STEM_FILE = re.compile(r"AuSep_(?P<player>[0-9]+)_(?P<code>[A-Za-z]+)_(?P<number>[0-9]{2})_(?P<name>[A-Za-z0-9]+)\.wav")
MAX_PLAYERS = 5


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


def scan_urmp(copy: str | os.PathLike) -> UrmpImport:
    """Check every piece folder of a URMP copy (folders beginning with two digits); never raises
    for a bad piece: its problems are listed and the other pieces are still checked."""
    copy = Path(copy)
    if not copy.is_dir():
        raise MusicbenchError(f"URMP copy {str(copy)!r} is not a folder; pass the folder that holds "
                              "01_Jupiter_vn_vc/ and the other pieces")
    result = UrmpImport(copy)
    folders = sorted(p for p in copy.iterdir() if p.is_dir() and re.match(r"[0-9]{2}_", p.name))
    if not folders:
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


def import_urmp(copy: str | os.PathLike, data_root: str | os.PathLike) -> UrmpImport:
    """Scan a URMP copy (`scan_urmp`) and, when it has no problem, write ``<data_root>/urmp/manifest.json``
    (atomically; an earlier manifest stays untouched otherwise). Returns the scan with
    ``manifest_path`` set when written."""
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
            resolve_in_root(copy, relative)
    return copy, pieces
