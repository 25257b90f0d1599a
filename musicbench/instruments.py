"""The instruments of MUSIC (v1.0, 11 classes) and how MUSIC-Synth plays them; the one vocabulary.

Every source's labels map to one canonical class name (`canonical_instrument`): MUSIC-11 and
MUSIC-21 keep their own names (``acoustic_guitar``, ``saxophone``), Solos' ``DoubleBass`` and
URMP's ``db`` are ``double_bass``, and so on (`CANONICAL_INSTRUMENTS`, `URMP_CODES`).

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


# URMP's classes that MUSIC v1.0 lacks, which MUSIC-Synth renders only when `synth.instruments`
# names them (the default list stays MUSIC's 11, so the default set does not change).
URMP_EXTRA_INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("bassoon", 70, 36, 67, True),
        Instrument("double_bass", 43, 28, 55, True),   # GM 43 "Contrabass"
        Instrument("horn", 60, 45, 72, True),          # GM 60 "French Horn"
        Instrument("oboe", 68, 60, 86, True),
        Instrument("trombone", 57, 40, 67, True),
        Instrument("viola", 41, 48, 79, True),
    )
}

#: Every class MUSIC-Synth can render: MUSIC's 11 and URMP's 6 others (URMP's 13 are all among them).
SYNTH_INSTRUMENTS: tuple[str, ...] = tuple(sorted({*INSTRUMENTS, *URMP_EXTRA_INSTRUMENTS}))


def get_instrument(name: str, where: str = "instrument") -> Instrument:
    """Return the Instrument called `name` (a MUSIC class or one of URMP's others); raise
    MusicbenchError naming `where` if unknown."""
    instrument = INSTRUMENTS.get(name) or URMP_EXTRA_INSTRUMENTS.get(name)
    if instrument is None:
        raise MusicbenchError(f"{where}: unknown instrument {name!r}; choose from {', '.join(SYNTH_INSTRUMENTS)}")
    return instrument

# The 21 classes of MUSIC-21 (v2.0 solo list); MUSIC-Synth renders only the 11 of MUSIC v1.0.
MUSIC21_INSTRUMENTS: tuple[str, ...] = (
    "accordion", "acoustic_guitar", "bagpipe", "banjo", "bassoon", "cello", "clarinet", "congas",
    "drum", "electric_bass", "erhu", "flute", "guzheng", "piano", "pipa", "saxophone", "trumpet",
    "tuba", "ukulele", "violin", "xylophone",
)


# ------------------------------------------------------------------------------------ one vocabulary

# The 13 classes of Solos, which are URMP's (Montesinos et al. 2020), in canonical names.
SOLOS_INSTRUMENTS: tuple[str, ...] = (
    "bassoon", "cello", "clarinet", "double_bass", "flute", "horn", "oboe", "saxophone", "trombone",
    "trumpet", "tuba", "viola", "violin",
)

# URMP's instrument codes (the <inst> of its AuSep_<n>_<inst>_<piece>.wav file names).
URMP_CODES: dict[str, str] = {
    "vn": "violin", "va": "viola", "vc": "cello", "db": "double_bass", "fl": "flute", "ob": "oboe",
    "cl": "clarinet", "sax": "saxophone", "bn": "bassoon", "tpt": "trumpet", "hn": "horn",
    "tbn": "trombone", "tba": "tuba",
}

#: Every canonical class name: MUSIC-21's 21 (which include MUSIC-11's 11) and Solos/URMP's 13.
CANONICAL_INSTRUMENTS: tuple[str, ...] = tuple(sorted(set(MUSIC21_INSTRUMENTS) | set(SOLOS_INSTRUMENTS)))

# Other spellings met in the lists, keyed by `_label_key` (case, spaces, '-' and '_' folded away).
_ALIASES: dict[str, str] = {
    "contrabass": "double_bass", "stringbass": "double_bass", "upright_bass": "double_bass",
    "frenchhorn": "horn", "sax": "saxophone", "guitar": "acoustic_guitar", "drums": "drum",
    "drumkit": "drum", "conga": "congas", "bassguitar": "electric_bass", "xylo": "xylophone",
}


def _label_key(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch not in " _-")


_BY_KEY: dict[str, str] = {
    **{_label_key(name): name for name in CANONICAL_INSTRUMENTS},
    **{_label_key(alias): name for alias, name in _ALIASES.items()},
}


def canonical_instrument(label: str, where: str = "instrument") -> str:
    """The canonical class name of a label from any source: MUSIC's ``acoustic_guitar``, Solos'
    ``DoubleBass``, ``double bass``, ``contrabass``, URMP's ``db``; raise MusicbenchError naming
    `where` (one line) for an unknown label."""
    if isinstance(label, str):
        name = _BY_KEY.get(_label_key(label)) or URMP_CODES.get(label.strip().lower())
        if name is not None:
            return name
    raise MusicbenchError(
        f"{where}: unknown instrument {label!r}; use a class of {', '.join(CANONICAL_INSTRUMENTS)} "
        "(or a known alias, e.g. DoubleBass, contrabass, URMP's db)"
    )
