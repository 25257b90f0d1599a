"""musicbench: the reproducible benchmark for audio-visual music source separation (MUSIC)."""

__version__ = "0.1.0"
