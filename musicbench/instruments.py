"""The instruments of MUSIC (v1.0, 11 classes) and how MUSIC-Synth plays them.

General MIDI programs are 0-based (0 = Acoustic Grand Piano). Registers are MIDI note numbers
(60 = C4) of the comfortable range a player of that instrument uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from musicbench.errors import MusicbenchError


@dataclass(frozen=True)
class Instrument:
    """How MUSIC-Synth renders one MUSIC instrument.

    name: the MUSIC list's class name; program: 0-based General MIDI program;
    low, high: MIDI register; sustained: whether notes are held (bowed/blown: vibrato and
    dynamics within a note) rather than struck/plucked (decaying).
    """

    name: str
    program: int
    low: int
    high: int
    sustained: bool


# Erhu has no General MIDI program: it is rendered with GM 110 "Fiddle" (a bowed string)
# in the erhu's register (D4 up), with portamento glides between notes added by the composer.
INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("accordion", 21, 53, 81, True),
        Instrument("acoustic_guitar", 24, 40, 76, False),
        Instrument("cello", 42, 36, 69, True),
        Instrument("clarinet", 71, 52, 84, True),
        Instrument("erhu", 110, 62, 88, True),
        Instrument("flute", 73, 62, 91, True),
        Instrument("saxophone", 65, 49, 80, True),
        Instrument("trumpet", 56, 55, 79, True),
        Instrument("tuba", 58, 29, 55, True),
        Instrument("violin", 40, 55, 88, True),
        Instrument("xylophone", 13, 65, 96, False),
    )
}

MUSIC_INSTRUMENTS: tuple[str, ...] = tuple(sorted(INSTRUMENTS))

# The 9 instrument pairs of the MUSIC v1.0 duet list, in the list's own key order.
MUSIC_DUET_PAIRS: tuple[tuple[str, str], ...] = (
    ("acoustic_guitar", "violin"),
    ("saxophone", "acoustic_guitar"),
    ("clarinet", "acoustic_guitar"),
    ("cello", "acoustic_guitar"),
    ("flute", "violin"),
    ("flute", "trumpet"),
    ("xylophone", "acoustic_guitar"),
    ("xylophone", "flute"),
    ("trumpet", "tuba"),
)


def get_instrument(name: str, where: str = "instrument") -> Instrument:
    """Return the Instrument called `name`; raise MusicbenchError naming `where` if unknown."""
    try:
        return INSTRUMENTS[name]
    except KeyError:
        raise MusicbenchError(
            f"{where}: unknown instrument {name!r}; choose from {', '.join(MUSIC_INSTRUMENTS)}"
        ) from None

# The 21 classes of MUSIC-21 (v2.0 solo list); MUSIC-Synth renders only the 11 of MUSIC v1.0.
MUSIC21_INSTRUMENTS: tuple[str, ...] = (
    "accordion", "acoustic_guitar", "bagpipe", "banjo", "bassoon", "cello", "clarinet", "congas",
    "drum", "electric_bass", "erhu", "flute", "guzheng", "piano", "pipa", "saxophone", "trumpet",
    "tuba", "ukulele", "violin", "xylophone",
)
