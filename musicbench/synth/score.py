"""Composing MUSIC-Synth pieces: tonal phrases with rhythm, dynamics, articulation and vibrato.

A piece has one tempo, key, meter and chord progression. A solo is a melody (with chords for
instruments that play them, guitar and accordion); a duet is two voices of the same piece, a
melody and a second part (accompaniment, bass line or counter-melody) that overlap in time and
harmony, with occasional rests so that each player has moments of their own. Times are in
seconds, pitches MIDI note numbers, velocities 1-127.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from musicbench.instruments import Instrument

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor; the dominant chord is raised below

# Progressions as scale degrees (0 = tonic) of each bar's chord root.
PROGRESSIONS = (
    (0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (1, 4, 0, 0), (0, 5, 3, 4), (0, 3, 0, 4),
    (0, 0, 3, 4), (5, 1, 4, 0),
)

# Rhythm cells in beats, each summing to one bar (4/4 or 3/4); negative = rest.
RHYTHMS_4 = (
    (1, 1, 1, 1), (2, 1, 1), (1, 1, 2), (0.5, 0.5, 1, 1, 1), (1.5, 0.5, 1, 1), (1, 0.5, 0.5, 2),
    (0.5, 0.5, 0.5, 0.5, 1, 1), (3, 1), (2, 2), (1, 1, 1, -1), (0.75, 0.25, 1, 0.5, 0.5, 1),
    (4,), (1, 2, 1), (0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1),
)
RHYTHMS_3 = (
    (1, 1, 1), (2, 1), (1, 2), (0.5, 0.5, 1, 1), (1.5, 0.5, 1), (3,), (1, 0.5, 0.5, 1),
    (0.5, 0.5, 0.5, 0.5, 1), (2, -1),
)

ARTICULATIONS = {"legato": 0.97, "normal": 0.85, "staccato": 0.45}
VIBRATO_FREE = {"accordion", "clarinet"}  # sustained, but played without vibrato
CHORDAL = {"acoustic_guitar", "accordion"}


@dataclass(frozen=True)
class Note:
    """One note: onset and length in seconds, MIDI pitch, MIDI velocity."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """Everything one player performs.

    notes: the notes; expression: (time s, CC11 value 0-127) breakpoints for sustained dynamics;
    vibrato: (rate Hz, depth cents) or None; glide: portamento time in seconds (0 = none).
    """

    instrument: Instrument
    notes: list[Note] = field(default_factory=list)
    expression: list[tuple[float, int]] = field(default_factory=list)
    vibrato: tuple[float, float] | None = None
    glide: float = 0.0


@dataclass(frozen=True)
class PieceFrame:
    """The shared skeleton of a piece: tempo (s per beat), meter, key and chord per bar."""

    beat: float
    beats_per_bar: int
    tonic: int
    scale: tuple[int, ...]
    chords: tuple[int, ...]  # scale degree of each bar's chord root
    n_bars: int


def plan_piece(rng: np.random.Generator, duration: float) -> PieceFrame:
    """Draw tempo (66-132 bpm), meter, key and a chord per bar covering `duration` seconds."""
    bpm = float(rng.uniform(66, 132))
    beat = 60.0 / bpm
    beats_per_bar = int(rng.choice([4, 4, 3]))
    tonic = int(rng.integers(0, 12))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    n_bars = int(np.ceil(duration / (beat * beats_per_bar))) + 1
    chords: list[int] = []
    while len(chords) < n_bars:
        chords.extend(PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))])
    return PieceFrame(beat, beats_per_bar, tonic, scale, tuple(chords[:n_bars]), n_bars)


def _degree_to_pitch(frame: PieceFrame, degree: int, octave_base: int) -> int:
    """MIDI pitch of scale `degree` (any integer, 7 = next octave) above C of `octave_base`."""
    octave, step = divmod(degree, 7)
    semitone = frame.scale[step]
    if frame.scale is MINOR and step == 6 and degree % 7 == 6:
        semitone = 11  # leading tone, harmonic minor
    return octave_base + 12 * octave + frame.tonic + semitone


def _pitch_range_degrees(frame: PieceFrame, low: int, high: int, octave_base: int) -> list[int]:
    return [d for d in range(-28, 50) if low <= _degree_to_pitch(frame, d, octave_base) <= high]


def _tessitura(rng: np.random.Generator, instrument: Instrument, span: int = 17) -> tuple[int, int]:
    """A window of about `span` semitones inside the instrument's register, drawn per video."""
    span = min(span, instrument.high - instrument.low)
    low = int(rng.integers(instrument.low, instrument.high - span + 1))
    return low, low + span


def _rhythm_cells(frame: PieceFrame) -> tuple[tuple[float, ...], ...]:
    return RHYTHMS_4 if frame.beats_per_bar == 4 else RHYTHMS_3


def _phrase_dynamics(rng: np.random.Generator, n_phrases: int) -> list[tuple[int, int]]:
    """(start velocity, end velocity) per phrase: crescendo, diminuendo or steady."""
    shapes = []
    for _ in range(n_phrases):
        base = int(rng.integers(55, 105))
        delta = int(rng.choice([-25, -12, 0, 12, 25]))
        shapes.append((int(np.clip(base, 30, 120)), int(np.clip(base + delta, 30, 120))))
    return shapes


def compose_melody(
    rng: np.random.Generator, frame: PieceFrame, instrument: Instrument, duration: float,
    rest_probability: float = 0.1,
) -> Part:
    """A melodic line: stepwise motion with leaps, chord tones on downbeats, 4-bar phrases.

    Phrases differ in articulation and dynamics; a phrase may be followed by a rest bar.
    """
    low, high = _tessitura(rng, instrument)
    octave_base = 12 * ((low + high) // 24) - 12
    degrees = _pitch_range_degrees(frame, low, high, octave_base)
    part = _new_part(rng, instrument)
    bar_seconds = frame.beat * frame.beats_per_bar
    n_phrases = int(np.ceil(frame.n_bars / 4))
    dynamics = _phrase_dynamics(rng, n_phrases)
    degree = degrees[len(degrees) // 2]
    for bar in range(frame.n_bars):
        phrase, bar_in_phrase = divmod(bar, 4)
        if bar_in_phrase == 0:
            articulation = ARTICULATIONS[str(rng.choice(list(ARTICULATIONS), p=[0.35, 0.45, 0.2]))]
        bar_start = bar * bar_seconds
        if bar_start >= duration:
            break
        if (bar_in_phrase == 3 and rng.random() < rest_probability * 2) or rng.random() < rest_probability / 2:
            continue  # breathing space between phrases
        cell = _rhythm_cells(frame)[int(rng.integers(len(_rhythm_cells(frame))))]
        if bar_in_phrase == 3:
            cell = (frame.beats_per_bar - 1, -1) if rng.random() < 0.5 else cell
        chord_root = frame.chords[bar]
        v0, v1 = dynamics[phrase]
        t = 0.0
        for _i, length in enumerate(cell):
            if length < 0:
                t += -length
                continue
            on_strong_beat = t % 2 == 0 if frame.beats_per_bar == 4 else t == 0
            if on_strong_beat:
                degree = _nearest_chord_tone(degree, chord_root, degrees)
            else:
                degree = _step(rng, degree, degrees)
            progress = (bar_in_phrase + t / frame.beats_per_bar) / 4
            velocity = v0 + (v1 - v0) * progress + (10 if t == 0 else 0) + rng.normal(0, 4)
            start = bar_start + t * frame.beat
            if start < duration:
                part.notes.append(Note(
                    start, max(0.06, length * frame.beat * articulation),
                    _degree_to_pitch(frame, degree, octave_base), int(np.clip(velocity, 20, 127)),
                ))
            t += length
    _add_expression(rng, part, frame, duration, dynamics)
    return part


def _new_part(rng: np.random.Generator, instrument: Instrument) -> Part:
    part = Part(instrument)
    if instrument.sustained and instrument.name not in VIBRATO_FREE:
        part.vibrato = (float(rng.uniform(4.8, 6.5)), float(rng.uniform(12, 35)))
    if instrument.name == "erhu":
        part.glide = float(rng.uniform(0.05, 0.09))
        part.vibrato = (float(rng.uniform(5.5, 7.0)), float(rng.uniform(30, 55)))
    return part


def _nearest_chord_tone(degree: int, chord_root: int, allowed: list[int]) -> int:
    candidates = [d for d in allowed if (d - chord_root) % 7 in (0, 2, 4)]
    return min(candidates, key=lambda d: (abs(d - degree), d)) if candidates else degree


def _step(rng: np.random.Generator, degree: int, allowed: list[int]) -> int:
    move = int(rng.choice([-2, -1, 1, 2, -3, 3, 0, -4, 4], p=[.1, .22, .22, .1, .06, .06, .12, .06, .06]))
    target = degree + move
    if target < allowed[0] or target > allowed[-1]:
        target = degree - move
    return int(np.clip(target, allowed[0], allowed[-1]))


def _add_expression(
    rng: np.random.Generator, part: Part, frame: PieceFrame, duration: float, dynamics: list[tuple[int, int]]
) -> None:
    """CC11 breakpoints following the phrase dynamics (sustained instruments swell within notes)."""
    if not part.instrument.sustained:
        return
    phrase_seconds = 4 * frame.beat * frame.beats_per_bar
    for i, (v0, v1) in enumerate(dynamics):
        t0 = i * phrase_seconds
        if t0 >= duration:
            break
        part.expression.append((t0, int(np.clip(v0 + 10, 40, 127))))
        part.expression.append((min(duration, t0 + phrase_seconds * 0.95), int(np.clip(v1 + 10, 40, 127))))


def compose_accompaniment(
    rng: np.random.Generator, frame: PieceFrame, instrument: Instrument, duration: float, style: str,
) -> Part:
    """A second part on the piece's chords.

    style: ``arpeggio`` (broken chords, guitar-like), ``bass`` (roots and fifths on strong beats),
    ``chords`` (block chords on the beat, accordion-like).
    """
    low, high = _tessitura(rng, instrument, span=19 if style != "bass" else 14)
    if style == "bass":
        low, high = instrument.low, min(instrument.high, instrument.low + 16)
    octave_base = 12 * ((low + high) // 24) - 12
    degrees = _pitch_range_degrees(frame, low, high, octave_base)
    part = _new_part(rng, instrument)
    if style != "bass":
        part.vibrato = None  # chordal playing: no vibrato on the shared pitch wheel
    bar_seconds = frame.beat * frame.beats_per_bar
    dynamics = _phrase_dynamics(rng, int(np.ceil(frame.n_bars / 4)))
    pattern_step = float(rng.choice([0.5, 1.0])) if style == "arpeggio" else 1.0
    for bar in range(frame.n_bars):
        bar_start = bar * bar_seconds
        if bar_start >= duration:
            break
        if bar % 8 == 7 and rng.random() < 0.5:
            continue  # a bar's rest now and then
        root = frame.chords[bar]
        tones = sorted(d for d in degrees if (d - root) % 7 in (0, 2, 4))
        if not tones:
            continue
        v0, v1 = dynamics[bar // 4]
        velocity_bar = v0 + (v1 - v0) * (bar % 4) / 4
        if style == "bass":
            roots = [d for d in tones if (d - root) % 7 == 0] or tones
            fifths = [d for d in tones if (d - root) % 7 == 4] or roots
            beats = range(0, frame.beats_per_bar, 2 if frame.beats_per_bar == 4 else 3)
            for j, beat in enumerate(beats):
                degree = roots[0] if j % 2 == 0 else fifths[0]
                length = (2 if frame.beats_per_bar == 4 else 3) * frame.beat * 0.9
                _append(part, frame, bar_start + beat * frame.beat, length, degree, octave_base, velocity_bar, rng, duration)
        elif style == "chords":
            voicing = tones[:3]
            for beat in range(frame.beats_per_bar):
                for degree in voicing:
                    _append(part, frame, bar_start + beat * frame.beat, frame.beat * 0.8, degree, octave_base,
                            velocity_bar - (8 if beat else 0), rng, duration)
        else:
            sequence = tones[:4]
            order = sequence + sequence[-2:0:-1]
            n_steps = int(round(frame.beats_per_bar / pattern_step))
            for k in range(n_steps):
                degree = order[k % len(order)]
                _append(part, frame, bar_start + k * pattern_step * frame.beat, pattern_step * frame.beat * 1.6,
                        degree, octave_base, velocity_bar - (6 if k else 0), rng, duration)
    _add_expression(rng, part, frame, duration, dynamics)
    return part


def _append(part: Part, frame: PieceFrame, start: float, length: float, degree: int, octave_base: int,
            velocity: float, rng: np.random.Generator, duration: float) -> None:
    if start < duration:
        part.notes.append(Note(start, max(0.06, length), _degree_to_pitch(frame, degree, octave_base),
                               int(np.clip(velocity + rng.normal(0, 4), 20, 127))))


def solo_parts(rng: np.random.Generator, instrument: Instrument, duration: float) -> list[Part]:
    """A solo piece for one player; chordal instruments mix melody and chords in one part."""
    frame = plan_piece(rng, duration)
    melody = compose_melody(rng, frame, instrument, duration)
    if instrument.name in CHORDAL and rng.random() < 0.7:
        style = "arpeggio" if instrument.name == "acoustic_guitar" else "chords"
        backing = compose_accompaniment(rng, frame, instrument, duration, style)
        backing_notes = [Note(n.start, n.duration, n.pitch, max(20, n.velocity - 20)) for n in backing.notes]
        melody.notes = sorted(melody.notes + backing_notes, key=lambda n: (n.start, n.pitch))
        melody.vibrato = None
    return [melody]


DUET_ROLES = {"acoustic_guitar": "arpeggio", "tuba": "bass", "accordion": "chords", "cello": "bass"}


def duet_parts(
    rng: np.random.Generator, first: Instrument, second: Instrument, duration: float
) -> list[Part]:
    """Two voices of one piece: the accompanying instrument (guitar, tuba, ...) takes the chords.

    The returned parts follow the order (first, second).
    """
    frame = plan_piece(rng, duration)
    if second.name in DUET_ROLES:
        lead = compose_melody(rng, frame, first, duration)
        return [lead, compose_accompaniment(rng, frame, second, duration, DUET_ROLES[second.name])]
    if first.name in DUET_ROLES:
        lead = compose_melody(rng, frame, second, duration)
        return [compose_accompaniment(rng, frame, first, duration, DUET_ROLES[first.name]), lead]
    # Two melodic instruments: a lead and a counter-melody with its own rhythm on the same
    # chords (chord tones on strong beats), resting more often so the voices trade phrases.
    return [compose_melody(rng, frame, first, duration), compose_melody(rng, frame, second, duration, 0.2)]


def ensemble_parts(rng: np.random.Generator, instruments: list[Instrument], duration: float) -> list[Part]:
    """Voices of one piece for 2-5 players (URMP's ensembles), in the given order.

    Two players are a duet (`duet_parts`). From three on, the player with the lowest register takes
    the bass line, the first other player the melody and the rest counter-melodies that rest more
    often, so that the voices trade phrases.
    """
    if not 2 <= len(instruments) <= 5:
        raise ValueError(f"an ensemble has 2 to 5 players, got {len(instruments)}")
    if len(instruments) == 2:
        return duet_parts(rng, instruments[0], instruments[1], duration)
    frame = plan_piece(rng, duration)
    bass = min(range(len(instruments)), key=lambda k: (instruments[k].low, k))
    lead = min(k for k in range(len(instruments)) if k != bass)
    return [
        compose_accompaniment(rng, frame, instrument, duration, "bass") if k == bass
        else compose_melody(rng, frame, instrument, duration, 0.1 if k == lead else 0.2)
        for k, instrument in enumerate(instruments)
    ]
