"""How a MUSIC-Synth player was recorded: which make of the instrument, its tuning, the microphone, the room.

Real MUSIC videos are filmed by different people with different instruments in different rooms, so
one class sounds different from video to video. MUSIC-Synth draws, per video (``synth.recording:
varied``):

- the instrument's variant, where General MIDI has several of one MUSIC class (nylon or steel
  acoustic guitar; soprano, alto, tenor or baritone saxophone; accordion or tango accordion);
- the player's tuning against A440, ±30 cents;
- per player, the microphone and body colour: three peaking bands of ±8 dB between 100 Hz and 4 kHz
  and a high shelf of -10 to +3 dB;
- one room per video: a reverberation time of 0.15-0.9 s and a direct-to-reverberant ratio of
  0-12 dB (each player gets their own impulse response of that room).

``synth.recording: clean`` keeps every class at one preset, in tune, dry and flat (the benchmark
definitions before this option). All draws come from the video's own generator for them (`video_rng` of
"<video_id>/recording"), so the score, the players and the backdrop of a video do not depend on this
setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from musicbench.instruments import Instrument

# General MIDI programs that are the same MUSIC class (0-based); classes not listed have one.
PROGRAM_VARIANTS: dict[str, tuple[int, ...]] = {
    "acoustic_guitar": (24, 25),      # nylon, steel
    "saxophone": (64, 65, 66, 67),    # soprano, alto, tenor, baritone
    "accordion": (21, 23),            # accordion, tango accordion
}

TUNING_CENTS = 30.0
EQ_BANDS = 3
EQ_GAIN_DB = 8.0
EQ_LOW_HZ, EQ_HIGH_HZ = 100.0, 4000.0
SHELF_GAIN_DB = (-10.0, 3.0)
SHELF_HZ = (2000.0, 4000.0)
RT60_S = (0.15, 0.9)
DRR_DB = (0.0, 12.0)


@dataclass(frozen=True)
class Room:
    """A room: reverberation time RT60 in seconds and direct-to-reverberant energy ratio in dB."""

    rt60: float
    drr_db: float


@dataclass(frozen=True)
class Recording:
    """How one player sounds on the record.

    program: 0-based General MIDI program; tuning_cents: offset from A440; eq: peaking bands
    (centre Hz, gain dB, Q); shelf: high shelf (corner Hz, gain dB); room: None when dry;
    ir_seed: seed of this player's impulse response in the room.
    """

    program: int
    tuning_cents: float = 0.0
    eq: tuple[tuple[float, float, float], ...] = ()
    shelf: tuple[float, float] | None = None
    room: Room | None = None
    ir_seed: int = 0


def clean_recording(instrument: Instrument) -> Recording:
    """The class's one preset, in tune, flat and dry."""
    return Recording(program=instrument.program)


def draw_room(rng: np.random.Generator) -> Room:
    """A room with RT60 uniform in 0.15-0.9 s and a direct-to-reverberant ratio uniform in 0-12 dB."""
    return Room(rt60=float(rng.uniform(*RT60_S)), drr_db=float(rng.uniform(*DRR_DB)))


def draw_recording(rng: np.random.Generator, instrument: Instrument, room: Room) -> Recording:
    """One player's variant, tuning and microphone colour, recorded in `room`."""
    variants = PROGRAM_VARIANTS.get(instrument.name, (instrument.program,))
    program = int(variants[int(rng.integers(len(variants)))])
    tuning = float(rng.uniform(-TUNING_CENTS, TUNING_CENTS))
    eq = tuple(
        (float(np.exp(rng.uniform(np.log(EQ_LOW_HZ), np.log(EQ_HIGH_HZ)))),
         float(rng.uniform(-EQ_GAIN_DB, EQ_GAIN_DB)), float(rng.uniform(0.7, 2.0)))
        for _ in range(EQ_BANDS)
    )
    shelf = (float(rng.uniform(*SHELF_HZ)), float(rng.uniform(*SHELF_GAIN_DB)))
    return Recording(program, tuning, eq, shelf, room, int(rng.integers(2**31)))


def peaking_biquad(centre: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """Second-order sections ``(1, 6)`` of a peaking EQ (Audio EQ Cookbook): `gain_db` at `centre` Hz."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * centre / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None]


def high_shelf_biquad(corner: float, gain_db: float, sample_rate: int) -> np.ndarray:
    """Second-order sections ``(1, 6)`` of a high shelf (Audio EQ Cookbook, slope 1): `gain_db` above `corner` Hz."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * corner / sample_rate
    alpha = np.sin(w0) / 2 * np.sqrt(2)
    cos, root = np.cos(w0), 2 * np.sqrt(a) * alpha
    b = np.array([a * ((a + 1) + (a - 1) * cos + root), -2 * a * ((a - 1) + (a + 1) * cos),
                  a * ((a + 1) + (a - 1) * cos - root)])
    den = np.array([(a + 1) - (a - 1) * cos + root, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - root])
    return np.concatenate([b / den[0], den / den[0]])[None]


def room_impulse_response(room: Room, sample_rate: int, seed: int) -> np.ndarray:
    """An impulse response ``(n,)`` of `room`: a unit direct path, then after a 5-25 ms gap an
    exponentially decaying noise tail (-60 dB at RT60) whose energy is `drr_db` below the direct path."""
    rng = np.random.default_rng(seed)
    gap = int(rng.uniform(0.005, 0.025) * sample_rate)
    t = np.arange(int(room.rt60 * sample_rate)) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-3 * np.log(10) * t / room.rt60)
    tail *= 10 ** (-room.drr_db / 20) / np.sqrt(np.sum(tail**2))
    response = np.zeros(1 + gap + t.size)
    response[0] = 1.0
    response[1 + gap:] = tail
    return response


def apply_recording(audio: np.ndarray, recording: Recording, sample_rate: int) -> np.ndarray:
    """The dry rendering `audio` ``(n_samples,)`` as recorded: EQ, then the room; same length, float64."""
    out = np.asarray(audio, dtype=np.float64)
    sections = [peaking_biquad(f, g, q, sample_rate) for f, g, q in recording.eq]
    if recording.shelf is not None:
        sections.append(high_shelf_biquad(*recording.shelf, sample_rate))
    if sections:
        out = signal.sosfilt(np.concatenate(sections), out)
    if recording.room is not None:
        out = signal.fftconvolve(out, room_impulse_response(recording.room, sample_rate, recording.ir_seed))[: out.size]
    return out
