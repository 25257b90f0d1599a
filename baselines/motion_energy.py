"""Example model for `musicbench evaluate`: give each source the share of the mixture that its
video's motion claims, frame by frame. Audio-visual, label-free, no training, a few lines.

The whole model API in one file:

- ``load_model(**options)`` returns the model; options come from ``--option key=value`` and
  always include ``device`` (``cpu`` or ``cuda``).
- ``separate(mixture, frames, sample_rate)``: mixture float32 ``(n_samples,)`` at 11025 Hz;
  frames uint8 ``(n_sources, n_frames, H, W, 3)`` at 8 fps, one video per source; returns
  estimates ``(n_sources, n_samples)``.
- optional ``localize(mixture, frames, sample_rate)`` returns heatmaps ``(n_sources, h, w)``.
- optional ``separate_at(mixture, frames, points)``: frames uint8 ``(n_frames, H, W, 3)`` of ONE
  video with several players, points a list of ``(x, y)`` pixel positions; returns
  ``(n_points, n_samples)``, the sound under each point (scored on the duet track).
- optional ``uses_labels = True`` makes the harness pass ``labels`` (instrument names) too.
"""

from __future__ import annotations

import numpy as np


class MotionEnergySplit:
    """Mask of source k at time t = (its video's motion at t + floor) / (sum over sources)."""

    uses_labels = False

    def __init__(self, floor: float = 0.2, radius: int = 12):
        self.floor, self.radius = float(floor), int(radius)

    def _motion(self, frames: np.ndarray) -> np.ndarray:
        """Mean absolute frame difference per source and frame: ``(n_sources, n_frames)``."""
        diffs = np.abs(np.diff(frames.astype(np.float32), axis=1)).mean(axis=(2, 3, 4))
        return np.concatenate([diffs[:, :1], diffs], axis=1)

    def _split(self, mixture: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """Share the mixture among sources in proportion to their motion ``(n_sources, n_frames)``."""
        weights = motion + self.floor * motion.mean() + 1e-6
        weights /= weights.sum(axis=0, keepdims=True)
        frame_times = (np.arange(weights.shape[1]) + 0.5) * len(mixture) / weights.shape[1]
        samples = np.arange(len(mixture))
        masks = np.stack([np.interp(samples, frame_times, w) for w in weights])
        return (masks * mixture[None, :]).astype(np.float32)

    def separate(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int) -> np.ndarray:
        return self._split(mixture, self._motion(frames))

    def separate_at(self, mixture: np.ndarray, frames: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
        """Each point claims the motion of a square of ``radius`` pixels around it."""
        height, width = frames.shape[1:3]
        windows = []
        for x, y in points:
            x0, x1 = int(np.clip(x - self.radius, 0, width - 1)), int(np.clip(x + self.radius, 1, width))
            y0, y1 = int(np.clip(y - self.radius, 0, height - 1)), int(np.clip(y + self.radius, 1, height))
            windows.append(frames[:, y0:y1, x0:x1])
        return self._split(mixture, np.concatenate([self._motion(w[None]) for w in windows]))

    def localize(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int) -> np.ndarray:
        """Where pixels change most over the clip: ``(n_sources, H, W)``."""
        return np.abs(np.diff(frames.astype(np.float32), axis=1)).mean(axis=(1, 4))


def load_model(device: str = "cpu", floor: str | float = 0.2, radius: str | int = 12) -> MotionEnergySplit:
    return MotionEnergySplit(floor=float(floor), radius=int(radius))
