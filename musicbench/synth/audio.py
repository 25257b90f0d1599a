"""Rendering composed parts to audio with a sampled General MIDI soundfont (tinysoundfont).

Output is mono float32 at the requested rate, shape ``(n_samples,)``. Vibrato and portamento are
pitch-wheel motion (default wheel range: 2 semitones), dynamics are CC11 (expression) plus note
velocity. Rendering is deterministic: the same part gives the same samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from musicbench.errors import MusicbenchError
from musicbench.synth.score import Part

CONTROL_STEP = 0.01  # seconds between pitch-wheel / expression updates
BEND_RANGE_CENTS = 200.0


def default_soundfont() -> Path:
    """The TimGM6mb.sf2 General MIDI soundfont shipped inside the pretty_midi wheel."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def _tinysoundfont():
    try:
        import tinysoundfont
    except ImportError:
        raise MusicbenchError(
            "tinysoundfont is not installed; run `pip install --no-deps tinysoundfont==0.3.7` "
            "(its pyaudio requirement is only for live playback)"
        ) from None
    return tinysoundfont


def check_soundfont(path: str | os.PathLike, sample_rate: int) -> Path:
    """Return `path` if it is a SoundFont 2 file that loads for rendering at `sample_rate` Hz, else
    raise MusicbenchError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
    except OSError as exc:
        raise MusicbenchError(f"soundfont {str(path)!r} is unreadable ({exc.strerror}); set synth.soundfont to a .sf2 file") from None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise MusicbenchError(f"soundfont {str(path)!r} is not a SoundFont 2 (.sf2) file; set synth.soundfont to a .sf2 file")
    tsf = _tinysoundfont()
    synth = tsf.Synth(samplerate=sample_rate)
    try:
        synth.sfload(str(path))
    except Exception as exc:  # tinysoundfont raises its own exception type on a broken file
        raise MusicbenchError(f"soundfont {str(path)!r} cannot be loaded ({exc}); set synth.soundfont to a valid .sf2 file") from None
    return path


def _control_events(part: Part, duration: float, tuning_cents: float = 0.0) -> list[tuple[float, str, int]]:
    """(time s, kind, value) for expression (CC11) and pitch-wheel updates (`tuning_cents` offsets the wheel)."""
    events: list[tuple[float, str, int]] = []
    times = np.arange(0.0, duration, CONTROL_STEP)
    if part.expression:
        points_t = np.array([t for t, _ in part.expression])
        points_v = np.array([v for _, v in part.expression], dtype=float)
        values = np.rint(np.interp(times, points_t, points_v)).astype(int)
        last = -1
        for t, v in zip(times, values):
            if v != last:
                events.append((float(t), "cc11", int(v)))
                last = v
    if part.vibrato is None and part.glide == 0.0 and tuning_cents == 0.0:
        return events
    notes = sorted(part.notes, key=lambda n: n.start)
    starts = np.array([n.start for n in notes])
    rate, depth = part.vibrato or (0.0, 0.0)
    last_bend = 8192
    for t in times:
        index = int(np.searchsorted(starts, t, side="right")) - 1
        cents = tuning_cents
        if index >= 0 and t < notes[index].start + notes[index].duration:
            note, age = notes[index], t - notes[index].start
            if depth:
                ramp = float(np.clip((age - 0.12) / 0.25, 0.0, 1.0))
                cents += depth * ramp * np.sin(2 * np.pi * rate * age)
            if part.glide and index > 0 and age < part.glide:
                offset = 100.0 * (notes[index - 1].pitch - note.pitch)
                cents += float(np.clip(offset, -BEND_RANGE_CENTS, BEND_RANGE_CENTS)) * (1 - age / part.glide)
        bend = int(np.clip(round(8192 + cents / BEND_RANGE_CENTS * 8191), 0, 16383))
        if bend != last_bend:
            events.append((float(t), "bend", bend))
            last_bend = bend
    return events


def render_part(part: Part, duration: float, sample_rate: int, soundfont: str | os.PathLike,
                program: int | None = None, tuning_cents: float = 0.0) -> np.ndarray:
    """Render one player's part to mono float32 ``(round(duration * sample_rate),)``.

    program: 0-based General MIDI program (default: the part's instrument's); tuning_cents: the
    player's pitch offset from A440 (within the wheel's ±200 cents, with any vibrato or glide).
    """
    tsf = _tinysoundfont()
    n_samples = int(round(duration * sample_rate))
    synth = tsf.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(soundfont))
    synth.program_select(0, sfid, 0, part.instrument.program if program is None else program)
    events: list[tuple[int, int, str, int, int]] = []  # (sample, order, kind, a, b)
    for note in part.notes:
        on = int(round(note.start * sample_rate))
        off = int(round((note.start + note.duration) * sample_rate))
        events.append((on, 2, "on", note.pitch, note.velocity))
        events.append((off, 0, "off", note.pitch, 0))
    for t, kind, value in _control_events(part, duration, tuning_cents):
        events.append((int(round(t * sample_rate)), 1, kind, value, 0))
    events.sort()
    out = np.zeros((n_samples, 2), dtype=np.float32)
    cursor = 0
    for sample, _, kind, a, b in events:
        sample = min(sample, n_samples)
        if sample > cursor:
            out[cursor:sample] = np.frombuffer(synth.generate(sample - cursor), dtype=np.float32).reshape(-1, 2)
            cursor = sample
        if kind == "on":
            synth.noteon(0, a, b)
        elif kind == "off":
            synth.noteoff(0, a)
        elif kind == "cc11":
            synth.control_change(0, 11, a)
        else:
            synth.pitchbend(0, a)
    if cursor < n_samples:
        out[cursor:] = np.frombuffer(synth.generate(n_samples - cursor), dtype=np.float32).reshape(-1, 2)
    return out.mean(axis=1)
