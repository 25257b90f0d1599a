"""MUSIC-Synth ensembles written in URMP's exact layout and file naming (the URMP test fixture).

URMP (University of Rochester Multi-Modal Music Performance) holds one folder per piece, named
``<NN>_<Piece>_<code>_<code>...`` (players in order, URMP's instrument codes,
`musicbench.instruments.URMP_CODES`), with::

    Vid_<NN>_<Piece>_<codes>.mp4        the players side by side, with the mixture as its audio
    AuMix_<NN>_<Piece>_<codes>.wav      the mixture
    AuSep_<k>_<code>_<NN>_<Piece>.wav   player k's own recording (k from 1)
    Notes_<k>_<code>_<NN>_<Piece>.txt   player k's notes: onset s, pitch Hz, duration s (tab-separated)
    F0s_<k>_<code>_<NN>_<Piece>.txt     player k's pitch track: time s, f0 Hz (0 when silent), 5 ms hop
    Sco_<NN>_<Piece>_<codes>.mid        the score, one MIDI track per player

`write_urmp_copy` renders each piece as a MUSIC-Synth ensemble (`kind="ensemble"`: player k of N
drawn in the k-th of N equal vertical strips) and writes these files, the WAVs at `wav_rate` Hz.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from musicbench.errors import MusicbenchError
from musicbench.instruments import URMP_CODES
from musicbench.media import write_video
from musicbench.synth.generate import SynthConfig, VideoSpec, render_frames, render_performance, video_rng
from musicbench.synth.score import Part

F0_HOP_S = 0.005


def piece_folder_name(number: int, piece: str, codes: Sequence[str]) -> str:
    """``01_Jupiter_vn_vc``: URMP's folder (and Vid/AuMix/Sco stem) name of a piece."""
    return f"{number:02d}_{piece}_{'_'.join(codes)}"


def _resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    ratio = Fraction(new_rate, rate)
    return audio if ratio == 1 else signal.resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1)


def _notes_text(part: Part) -> str:
    return "".join(f"{n.start:.4f}\t{440.0 * 2 ** ((n.pitch - 69) / 12):.3f}\t{n.duration:.4f}\n" for n in part.notes)


def _f0s_text(part: Part, duration: float) -> str:
    times = np.arange(int(duration / F0_HOP_S)) * F0_HOP_S
    f0 = np.zeros_like(times)
    for n in part.notes:
        f0[(times >= n.start) & (times < n.start + n.duration)] = 440.0 * 2 ** ((n.pitch - 69) / 12)
    return "".join(f"{t:.3f}\t{f:.3f}\n" for t, f in zip(times, f0))


def _write_score(path: Path, parts: list[Part]) -> None:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for part in parts:
        track = pretty_midi.Instrument(program=part.instrument.program, name=part.instrument.name)
        track.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start, end=n.start + n.duration)
                       for n in part.notes]
        midi.instruments.append(track)
    midi.write(os.fspath(path))


def write_urmp_copy(folder: str | os.PathLike, pieces: Sequence[tuple[str, Sequence[str]]], config: SynthConfig,
                    wav_rate: int = 48000) -> list[Path]:
    """Write one URMP-layout piece folder per ``(piece name, instrument codes)`` under `folder`
    (numbered 01, 02, ... in order); return the piece folders.

    Audio is rendered at ``config.audio.sample_rate`` and written as 16-bit WAV at `wav_rate` Hz
    (URMP's is 48 kHz); the AuSep stems sum to AuMix. The video is ``config.width`` x
    ``config.height`` at ``config.fps``. Deterministic in ``config.seed`` and the piece names.
    """
    folder = Path(folder)
    written = []
    for number, (piece, codes) in enumerate(pieces, start=1):
        unknown = [code for code in codes if code not in URMP_CODES]
        if unknown or not 2 <= len(codes) <= 5:
            raise MusicbenchError(f"piece {piece!r}: 2 to 5 of URMP's codes ({', '.join(URMP_CODES)}) needed, got {list(codes)}")
        name = piece_folder_name(number, piece, codes)
        spec = VideoSpec(f"urmp_{name}", "ensemble", tuple(URMP_CODES[code] for code in codes))
        rng = video_rng(config.seed, spec.video_id)
        stems, dry, parts = render_performance(spec, config, rng)
        frames, _ = render_frames(spec, config, dry, rng)
        out = folder / name
        out.mkdir(parents=True, exist_ok=True)
        rate = config.audio.sample_rate
        wav_stems = _resample(stems.astype(np.float64), rate, wav_rate)
        peak = max(1.0, float(np.abs(wav_stems.sum(axis=0)).max()) / 0.99)
        wav_stems /= peak
        for k, (code, stem, part) in enumerate(zip(codes, wav_stems, parts), start=1):
            sf.write(out / f"AuSep_{k}_{code}_{number:02d}_{piece}.wav", stem, wav_rate, subtype="PCM_16")
            (out / f"Notes_{k}_{code}_{number:02d}_{piece}.txt").write_text(_notes_text(part))
            (out / f"F0s_{k}_{code}_{number:02d}_{piece}.txt").write_text(_f0s_text(part, config.duration))
        sf.write(out / f"AuMix_{name}.wav", wav_stems.sum(axis=0), wav_rate, subtype="PCM_16")
        write_video(out / f"Vid_{name}.mp4", frames, config.fps, config.width, config.height, stems.sum(axis=0) / peak, rate)
        _write_score(out / f"Sco_{name}.mid", parts)
        written.append(out)
    return written
