"""Drawing MUSIC-Synth videos: players as instrument-specific figures that move with their sound.

Each player is a person holding an instrument whose shape, colour and texture are specific to the
instrument class, with per-video variation (colour jitter, size, proportions, clothes). Motion is
driven by the player's own audio: the loudness envelope lifts and sways the figure, onsets make it
kick, and each instrument has its playing action (bow strokes, strumming hand, mallets, bellows,
rocking winds). A lively scene adds motion that does not sound (`draw_scene_motion`): idling and
gestures, light, camera shake and a bystander. Frames are uint8 RGB ``(height, width, 3)``; boxes are ``[x, y, w, h]`` pixels
(top-left origin, as DSOL's annotations) of the whole player, clipped to the frame.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Base colours (RGB 0-1) and relative width of each instrument's figure.
INSTRUMENT_LOOK: dict[str, tuple[tuple[float, float, float], float]] = {
    "accordion": ((0.80, 0.10, 0.15), 0.80),
    "acoustic_guitar": ((0.85, 0.65, 0.35), 0.85),
    "cello": ((0.45, 0.20, 0.08), 0.75),
    "clarinet": ((0.08, 0.08, 0.10), 0.60),
    "erhu": ((0.30, 0.12, 0.10), 0.60),
    "flute": ((0.82, 0.84, 0.88), 0.85),
    "saxophone": ((0.90, 0.70, 0.15), 0.70),
    "trumpet": ((0.95, 0.78, 0.25), 0.85),
    "tuba": ((0.75, 0.60, 0.20), 0.90),
    "violin": ((0.75, 0.35, 0.10), 0.75),
    "xylophone": ((0.55, 0.30, 0.55), 1.15),
    # URMP's other classes (drawn like their nearest MUSIC relative, in their own colour and size)
    "bassoon": ((0.40, 0.22, 0.12), 0.60),
    "double_bass": ((0.35, 0.16, 0.06), 0.85),
    "horn": ((0.85, 0.62, 0.22), 0.85),
    "oboe": ((0.12, 0.10, 0.10), 0.55),
    "trombone": ((0.92, 0.80, 0.35), 0.95),
    "viola": ((0.62, 0.28, 0.08), 0.78),
    # a person in the picture who does not play (the lively scene's bystander)
    "bystander": ((0.50, 0.50, 0.50), 0.45),
}


def _jitter(rgb: tuple[float, float, float], rng: np.random.Generator, amount: float = 1.0) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    h = (h + rng.uniform(-0.03, 0.03) * amount) % 1.0
    s = float(np.clip(s + rng.uniform(-0.12, 0.12) * amount, 0, 1))
    v = float(np.clip(v + rng.uniform(-0.12, 0.12) * amount, 0.05, 1))
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _random_colour(rng: np.random.Generator, low: float = 0.15, high: float = 0.9) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(int(255 * low), int(255 * high), size=3))  # type: ignore[return-value]


class _Pen:
    """Draws in a figure's normalised coordinates (u, v in [0, 1] of its box) and records extents."""

    def __init__(self, draw: ImageDraw.ImageDraw, x: float, y: float, width: float, height: float):
        self.draw, self.x, self.y, self.w, self.h = draw, x, y, width, height
        self.extent = [np.inf, np.inf, -np.inf, -np.inf]

    def _p(self, u: float, v: float) -> tuple[float, float]:
        px, py = self.x + u * self.w, self.y + v * self.h
        e = self.extent
        e[0], e[1], e[2], e[3] = min(e[0], px), min(e[1], py), max(e[2], px), max(e[3], py)
        return px, py

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, fill, outline=None) -> None:
        a, b = self._p(cu - ru, cv - rv), self._p(cu + ru, cv + rv)
        self.draw.ellipse([a, b], fill=fill, outline=outline)

    def rect(self, u0: float, v0: float, u1: float, v1: float, fill, outline=None) -> None:
        a, b = self._p(min(u0, u1), min(v0, v1)), self._p(max(u0, u1), max(v0, v1))
        self.draw.rectangle([a, b], fill=fill, outline=outline)

    def line(self, points: list[tuple[float, float]], fill, width: float = 0.02) -> None:
        self.draw.line([self._p(u, v) for u, v in points], fill=fill, width=max(1, int(round(width * self.w))))

    def polygon(self, points: list[tuple[float, float]], fill, outline=None) -> None:
        self.draw.polygon([self._p(u, v) for u, v in points], fill=fill, outline=outline)


@dataclass
class PlayerFigure:
    """One player's look and rest position; `draw` renders it for one frame and returns its box."""

    instrument: str
    x: float  # rest position, top-left, pixels
    y: float
    width: float
    height: float
    colour: tuple[int, int, int]
    accent: tuple[int, int, int]
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    sway_phase: float
    texture_phase: float

    @classmethod
    def random(cls, rng: np.random.Generator, instrument: str, height: float, centre_x: float, floor_y: float) -> "PlayerFigure":
        base, aspect = INSTRUMENT_LOOK[instrument]
        height *= rng.uniform(0.9, 1.1)
        width = height * aspect * rng.uniform(0.92, 1.08)
        skin = _jitter((0.85, 0.65, 0.5), rng, 1.5)
        return cls(
            instrument, centre_x - width / 2, floor_y - height, width, height,
            _jitter(base, rng), _jitter(tuple(1 - c * 0.5 for c in base), rng),  # type: ignore[arg-type]
            skin, _random_colour(rng), _random_colour(rng, 0.05, 0.5),
            float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 1)),
        )

    def draw(self, draw: ImageDraw.ImageDraw, frame_index: int, fps: float, envelope: float, onset: float,
             action: float, frame_size: tuple[int, int], offset: tuple[float, float] = (0.0, 0.0)) -> list[int]:
        """Draw the player for one frame; return its box [x, y, w, h] clipped to the frame.

        envelope and onset in [0, 1] (the player's own loudness and attack at this frame);
        action in [-1, 1]: position of the periodic playing motion (bow, strum, mallets); offset
        (pixels): motion that does not follow the sound (the lively scene's idling, `SceneMotion`).
        """
        t = frame_index / fps
        dx = 0.08 * self.width * envelope * np.sin(2 * np.pi * 2.2 * t + self.sway_phase) + offset[0]
        dy = -0.06 * self.height * envelope - 0.06 * self.height * onset + offset[1]
        pen = _Pen(draw, self.x + dx, self.y + dy, self.width, self.height)
        # The person: legs, torso, head (nodding with the onsets).
        pen.rect(0.34, 0.62, 0.47, 0.98, self.trousers)
        pen.rect(0.53, 0.62, 0.66, 0.98, self.trousers)
        pen.rect(0.30, 0.24, 0.70, 0.64, self.shirt)
        pen.ellipse(0.5, 0.13 + 0.02 * onset, 0.11, 0.09, self.skin)
        getattr(self, f"_draw_{self.instrument}")(pen, envelope, onset, action)
        x0, y0, x1, y1 = pen.extent
        width, height = frame_size
        x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        x1, y1 = min(width, int(np.ceil(x1)) + 1), min(height, int(np.ceil(y1)) + 1)
        return [x0, y0, max(0, x1 - x0), max(0, y1 - y0)]

    # Instrument drawings: normalised coordinates of the player's box.
    def _wood_grain(self, pen: _Pen, cu: float, cv: float, ru: float, rv: float) -> None:
        for k in range(3):
            offset = (k - 1 + self.texture_phase - 0.5) * rv * 0.5
            pen.line([(cu - ru * 0.6, cv + offset), (cu + ru * 0.6, cv + offset * 0.8)], self.accent, 0.01)

    def _bow(self, pen: _Pen, cu: float, cv: float, length: float, action: float) -> None:
        shift = 0.5 * length * action
        pen.line([(cu - length / 2 + shift, cv - 0.02), (cu + length / 2 + shift, cv + 0.02)], (235, 225, 200), 0.025)
        pen.ellipse(cu + length / 2 + shift, cv + 0.02, 0.03, 0.02, self.skin)

    def _draw_violin(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.line([(0.62, 0.28), (0.30, 0.20)], (40, 25, 15), 0.04)
        pen.ellipse(0.66, 0.30, 0.15, 0.08, self.colour)
        self._wood_grain(pen, 0.66, 0.30, 0.15, 0.08)
        self._bow(pen, 0.70, 0.36, 0.55, action)

    def _draw_viola(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        self._draw_violin(pen, envelope, onset, action)

    def _draw_double_bass(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        self._draw_cello(pen, envelope, onset, action)

    def _draw_oboe(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        self._draw_clarinet(pen, envelope, onset, action)

    def _draw_bassoon(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        tilt = 0.04 * envelope * action
        pen.line([(0.48, 0.20), (0.42, 0.26)], self.accent, 0.02)  # bocal
        pen.rect(0.40 + tilt, 0.04, 0.50 + tilt, 0.80, self.colour)

    def _draw_horn(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.ellipse(0.55, 0.42, 0.18, 0.14, self.colour, outline=self.accent)
        pen.ellipse(0.55, 0.42, 0.09, 0.07, self.accent)
        pen.ellipse(0.74, 0.50 - 0.02 * envelope, 0.08, 0.10, self.colour, outline=self.accent)  # bell

    def _draw_trombone(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        lift, slide = -0.04 * envelope, 0.12 * (0.5 + 0.5 * action)
        pen.rect(0.50, 0.16 + lift, 0.80, 0.19 + lift, self.colour)
        pen.rect(0.50, 0.24 + lift, 0.80 + slide, 0.27 + lift, self.colour)  # the slide
        pen.polygon([(0.40, 0.18 + lift), (0.28, 0.10 + lift), (0.28, 0.26 + lift)], self.colour, outline=self.accent)

    def _draw_cello(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.line([(0.5, 0.12), (0.5, 0.45)], (35, 20, 10), 0.05)
        pen.ellipse(0.5, 0.50, 0.20, 0.11, self.colour)
        pen.ellipse(0.5, 0.70, 0.26, 0.16, self.colour)
        self._wood_grain(pen, 0.5, 0.70, 0.26, 0.16)
        pen.line([(0.5, 0.86), (0.5, 0.99)], (120, 120, 120), 0.02)
        self._bow(pen, 0.5, 0.62, 0.75, action)

    def _draw_acoustic_guitar(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.line([(0.55, 0.45), (1.0, 0.28)], (60, 40, 20), 0.05)
        pen.ellipse(0.40, 0.52, 0.20, 0.15, self.colour)
        pen.ellipse(0.55, 0.45, 0.15, 0.11, self.colour)
        pen.ellipse(0.47, 0.48, 0.06, 0.045, (30, 20, 10))
        self._wood_grain(pen, 0.40, 0.55, 0.18, 0.1)
        pen.ellipse(0.47, 0.48 + 0.12 * action, 0.06, 0.045, self.skin)  # strumming hand

    def _draw_flute(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        lift = -0.03 * envelope
        pen.rect(0.45, 0.17 + lift, 1.0, 0.21 + lift, self.colour)
        for k in range(6):
            pen.ellipse(0.6 + 0.06 * k, 0.19 + lift, 0.012, 0.012, self.accent)
        pen.ellipse(0.78, 0.26 + lift + 0.02 * action, 0.05, 0.035, self.skin)

    def _draw_clarinet(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        tilt = 0.05 * envelope * action
        pen.polygon([(0.47, 0.18), (0.53, 0.18), (0.58 + tilt, 0.62), (0.52 + tilt, 0.62)], self.colour)
        pen.polygon([(0.50 + tilt, 0.60), (0.60 + tilt, 0.60), (0.64 + tilt, 0.70), (0.46 + tilt, 0.70)], self.colour)
        for k in range(5):
            pen.ellipse(0.51 + tilt * k / 5, 0.27 + 0.07 * k, 0.012, 0.01, self.accent)

    def _draw_saxophone(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        tilt = 0.04 * envelope * action
        pen.line([(0.50, 0.20), (0.46, 0.30), (0.46 + tilt, 0.62), (0.58 + tilt, 0.70), (0.70 + tilt, 0.55)], self.colour, 0.09)
        pen.ellipse(0.70 + tilt, 0.52, 0.09, 0.06, self.colour, outline=self.accent)
        for k in range(4):
            pen.ellipse(0.46 + tilt * k / 4, 0.36 + 0.06 * k, 0.015, 0.012, self.accent)

    def _draw_trumpet(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        lift = -0.06 * envelope
        pen.rect(0.50, 0.16 + lift, 0.85, 0.20 + lift, self.colour)
        pen.polygon([(0.85, 0.18 + lift), (1.0, 0.10 + lift), (1.0, 0.26 + lift)], self.colour, outline=self.accent)
        for k in range(3):
            pen.rect(0.60 + 0.06 * k, 0.10 + lift + 0.02 * onset, 0.63 + 0.06 * k, 0.16 + lift, self.accent)

    def _draw_tuba(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.ellipse(0.5, 0.48, 0.24, 0.16, self.colour, outline=self.accent)
        pen.ellipse(0.5, 0.48, 0.12, 0.08, self.accent)
        pen.line([(0.56, 0.40), (0.66, 0.10 - 0.03 * envelope)], self.colour, 0.12)
        pen.ellipse(0.68, 0.06 - 0.03 * envelope, 0.22, 0.07, self.colour, outline=self.accent)

    def _draw_accordion(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        spread = 0.08 * (0.5 + 0.5 * action) * (0.3 + envelope)
        pen.rect(0.18, 0.28, 0.30, 0.60, (235, 235, 235))
        for k in range(5):
            pen.rect(0.18, 0.31 + 0.06 * k, 0.25, 0.33 + 0.06 * k, (20, 20, 20))
        left, right = 0.30, 0.70 + spread
        pen.rect(left, 0.28, right, 0.60, self.colour)
        for k in range(6):
            u = left + (right - left) * (k + 0.5) / 6
            pen.line([(u, 0.29), (u, 0.59)], self.accent, 0.015)
        pen.rect(right, 0.28, right + 0.10, 0.60, (30, 30, 30))

    def _draw_xylophone(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.rect(0.0, 0.60, 1.0, 0.64, (60, 40, 25))
        for k in range(8):
            u = 0.04 + 0.12 * k
            length = 0.16 - 0.012 * k
            shade = _shade(self.colour, 0.75 + 0.05 * ((k + int(self.texture_phase * 8)) % 5))
            pen.rect(u, 0.52 - length / 2, u + 0.09, 0.52 + length / 2, shade)
        for side, u in ((-1, 0.35), (1, 0.65)):
            head_v = 0.38 - 0.10 * onset + 0.04 * side * action
            pen.line([(u, 0.42), (u + 0.05 * side, head_v)], (200, 180, 140), 0.02)
            pen.ellipse(u + 0.05 * side, head_v, 0.03, 0.025, self.accent)

    def _draw_erhu(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        pen.line([(0.50, 0.02), (0.50, 0.62)], (30, 20, 15), 0.03)
        pen.rect(0.47, 0.08, 0.53, 0.10, self.accent)
        pen.rect(0.47, 0.14, 0.53, 0.16, self.accent)
        pen.polygon([(0.42, 0.60), (0.58, 0.60), (0.62, 0.66), (0.58, 0.72), (0.42, 0.72), (0.38, 0.66)], self.colour)
        self._bow(pen, 0.50, 0.56, 0.60, action)


    def _draw_bystander(self, pen: _Pen, envelope: float, onset: float, action: float) -> None:
        """No instrument: arms that swing with the person's own gesture (`action`)."""
        pen.line([(0.30, 0.30), (0.18, 0.55 + 0.12 * action)], self.shirt, 0.08)
        pen.line([(0.70, 0.30), (0.82, 0.55 - 0.12 * action)], self.shirt, 0.08)


@dataclass
class SceneMotion:
    """What moves in a lively MUSIC-Synth video without sounding, frame by frame: each player's idle
    offset ``(n_players, n_frames, 2)`` pixels (breathing and swaying, and a few quick gestures, bow
    lifts or page turns, while silent), the light's gain ``(n_frames,)``, the camera's shake
    ``(n_frames, 2)`` whole pixels, and a bystander (a person who moves and never plays) or None."""

    idle: np.ndarray
    light: np.ndarray
    shake: np.ndarray
    bystander: PlayerFigure | None
    bystander_motion: np.ndarray  # (n_frames, 3): dx, dy in pixels and the arms' gesture in [-1, 1]


def draw_scene_motion(rng: np.random.Generator, figures: list[PlayerFigure], envelopes: list[np.ndarray], fps: float,
                      width: int, height: int) -> SceneMotion:
    """Draw a video's non-sounding motion (`SceneMotion`) from its own generator. Every player idles;
    the light drifts in every video and is switched once in about a third; the camera shakes in
    about 40%; a bystander walks and gestures in about 30%."""
    n_frames = len(envelopes[0])
    t = np.arange(n_frames) / fps
    idle = np.zeros((len(figures), n_frames, 2))
    for k, (figure, envelope) in enumerate(zip(figures, envelopes)):
        breathe, sway = rng.uniform(0.2, 0.4), rng.uniform(0.1, 0.3)  # Hz
        idle[k, :, 0] = rng.uniform(0.02, 0.05) * figure.width * np.sin(2 * np.pi * sway * t + rng.uniform(0, 2 * np.pi))
        idle[k, :, 1] = rng.uniform(0.01, 0.025) * figure.height * np.sin(2 * np.pi * breathe * t + rng.uniform(0, 2 * np.pi))
        silent = np.flatnonzero(envelope == 0)
        for _ in range(int(rng.integers(1, 4))):  # quick gestures, where the player is silent if it ever is
            start = int(rng.choice(silent)) if len(silent) else int(rng.integers(n_frames))
            length = max(2, int(round(rng.uniform(0.3, 0.8) * fps)))
            bump = np.sin(np.linspace(0, np.pi, length)) * rng.uniform(0.04, 0.1) * figure.height
            span = slice(start, min(n_frames, start + length))
            idle[k, span, 1] -= bump[: span.stop - span.start]
            idle[k, span, 0] += rng.uniform(-0.5, 0.5) * bump[: span.stop - span.start]
    light = 1 + rng.uniform(0.04, 0.12) * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.35:  # a light switched on or off
        light = np.where(t >= rng.uniform(0.2, 0.8) * t[-1], light * rng.choice([0.8, 1.2]), light)
    shake = np.zeros((n_frames, 2))
    if rng.random() < 0.4:
        walk = np.cumsum(rng.normal(0, 0.8, size=(n_frames, 2)), axis=0)  # a hand-held camera: jitter about a drifting aim
        aim = np.stack([np.convolve(walk[:, j], np.ones(9) / 9, "same") for j in range(2)], axis=1)
        shake = np.clip(walk - aim, -3, 3)
    shake = np.round(shake)
    bystander, bystander_motion = None, np.zeros((n_frames, 3))
    if rng.random() < 0.3:
        side = rng.choice([0.08, 0.92])
        bystander = PlayerFigure.random(rng, "bystander", rng.uniform(0.45, 0.6) * height, side * width,
                                        rng.uniform(0.8, 0.92) * height)
        walk_x = np.cumsum(rng.normal(0, 0.6, n_frames)) + 0.04 * width * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t)
        bystander_motion[:, 0] = np.clip(walk_x, -0.12 * width, 0.12 * width)
        bystander_motion[:, 1] = 0.02 * height * np.abs(np.sin(2 * np.pi * rng.uniform(0.8, 1.5) * t))  # steps
        bystander_motion[:, 2] = np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 2 * np.pi))
    return SceneMotion(idle, light, shake, bystander, bystander_motion)


def light_and_shake(frame: np.ndarray, gain: float, shake: tuple[float, float]) -> np.ndarray:
    """The frame seen in light of `gain` by a camera displaced by `shake` (whole pixels; edges repeated)."""
    lit = np.clip(np.rint(frame.astype(np.float32) * np.float32(gain)), 0, 255).astype(np.uint8)
    dx, dy = int(shake[0]), int(shake[1])
    if dx == 0 and dy == 0:
        return lit
    pad = max(abs(dx), abs(dy))
    padded = np.pad(lit, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    height, width = frame.shape[:2]
    return padded[pad - dy: pad - dy + height, pad - dx: pad - dx + width]


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)  # type: ignore[return-value]


def random_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A stage-like background uint8 ``(height, width, 3)``: wall and floor in one of four styles."""
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    wall, wall2, floor = (np.array(_random_colour(rng, 0.1, 0.85), dtype=float) for _ in range(3))
    style = int(rng.integers(4))
    if style == 0:  # vertical gradient
        image = wall * (1 - y) + wall2 * y + 0 * x
    elif style == 1:  # curtain stripes
        period = rng.uniform(0.04, 0.12)
        image = np.where(np.sin(2 * np.pi * x / period) > 0, wall, wall2) + 0 * y
    elif style == 2:  # smooth blotchy texture
        coarse = rng.uniform(0, 1, size=(4, 5, 1))
        image = wall * (1 - _upsample(coarse, height, width)) + wall2 * _upsample(coarse, height, width)
    else:  # tiles
        tiles = ((np.floor(x * rng.integers(4, 10)) + np.floor(y * rng.integers(3, 8))) % 2)
        image = wall * tiles + wall2 * (1 - tiles)
    horizon = rng.uniform(0.55, 0.8)
    image = np.where(y > horizon, floor * (0.7 + 0.3 * y), image)
    image = image + rng.normal(0, 4, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _upsample(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    img = Image.fromarray((coarse[..., 0] * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(img, dtype=float)[..., None] / 255.0


def add_distractors(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Static non-sounding props (music stands, chairs, frames) drawn on the background."""
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    height, width = background.shape[:2]
    for _ in range(int(rng.integers(0, 4))):
        x, y = rng.uniform(0, width), rng.uniform(0.2 * height, 0.9 * height)
        w, h = rng.uniform(0.05, 0.15) * width, rng.uniform(0.05, 0.2) * height
        colour = _random_colour(rng)
        if rng.random() < 0.5:
            draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
        else:
            draw.line([x + w / 2, y, x + w / 2, y + h * 2], fill=colour, width=2)
            draw.polygon([(x, y), (x + w, y), (x + w * 0.8, y + h * 0.5), (x + w * 0.2, y + h * 0.5)], fill=colour)
    return np.asarray(image)


def motion_signals(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (envelope, onset, action) of one source ``(n_samples,)``, each ``(n_frames,)``.

    envelope: RMS around each frame time, normalised to the source's maximum, compressed (sqrt)
    and smoothed; onset: rectified rise of the envelope; action: position in [-1, 1] of a playing
    motion that advances only while the source sounds (speed ∝ loudness).
    """
    hop = sample_rate / fps
    window = int(round(hop))
    rms = np.zeros(n_frames)
    for i in range(n_frames):
        centre = int(round(i * hop + hop / 2))
        chunk = audio[max(0, centre - window): centre + window]
        rms[i] = np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) if chunk.size else 0.0
    peak = rms.max()
    envelope = np.sqrt(rms / peak) if peak > 0 else rms
    envelope = np.where(envelope < 0.12, 0.0, envelope)  # below about -37 dB of the peak: still
    smooth = np.zeros_like(envelope)
    for i, e in enumerate(envelope):
        smooth[i] = e if i == 0 else 0.5 * smooth[i - 1] + 0.5 * e
    onset = np.clip(np.diff(envelope, prepend=envelope[:1]) * 4.0, 0.0, 1.0)
    phase = np.cumsum(smooth) * (2 * np.pi * 1.2 / fps) * 2.0
    return smooth, onset, np.sin(phase)
