"""Reference baseline: "sound follows motion". Label-free, audio-visual, no training.

Each source's video gives a motion envelope: the mean absolute difference between its consecutive
frames (8 fps), over the clip. Each STFT bin of the mixture (the benchmark's STFT,
`musicbench.stft`: Hann 1022, hop 256 at 11025 Hz) gives a loudness envelope: log(1 + |X| / mean
|X|) over the clip's STFT frames. The mask of source k at bin f and frame t is

    r²(f, k) · motion_k(t) / mean(motion_k),   with r(f, k) the Pearson correlation of the bin's
                                               envelope with source k's motion (negative: 0),

normalised over the sources (the masks sum to one wherever any is positive). So a bin goes to the
player whose motion rises and falls with it, and within the clip to that player when it moves.
Localization is where the picture changes: the mean absolute frame difference per pixel.
``separate_at`` (duets) takes the motion of a square of ``radius`` pixels around each point.

It is strong wherever sound and motion are one: on MUSIC-Synth a player moves exactly when it plays
and nothing else in the picture moves (docs/baselines.md). A method is measured against what motion
alone gives by comparing it with this row.
"""

from __future__ import annotations

import numpy as np


class SoundFollowsMotion:
    """Per-bin envelope against each video's motion, as a mask (module docstring)."""

    uses_labels = False

    def __init__(self, radius: int = 12):
        import torch

        from musicbench.stft import hann_window

        self.radius = int(radius)
        self.torch = torch
        self.window = hann_window()

    @staticmethod
    def _motion(frames: np.ndarray) -> np.ndarray:
        """Mean absolute frame difference per source and frame ``(n_sources, n_frames)`` (the first frame repeats the second)."""
        diffs = np.abs(np.diff(frames.astype(np.float32), axis=1)).mean(axis=(2, 3, 4))
        return np.concatenate([diffs[:, :1], diffs], axis=1)

    def _split(self, mixture: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """Masks from `motion` ``(n_sources, n_frames)`` applied to the mixture's STFT: ``(n_sources, n_samples)``."""
        from musicbench.stft import istft, stft

        spectrum = stft(mixture, self.window)  # (F, T), float64 window
        magnitude = spectrum.abs().numpy()
        n_frames = magnitude.shape[1]
        times = (np.arange(n_frames) + 0.5) / n_frames
        frame_times = (np.arange(motion.shape[1]) + 0.5) / motion.shape[1]
        moving = np.stack([np.interp(times, frame_times, m) for m in motion])  # (K, T)
        envelope = np.log1p(magnitude / (magnitude.mean() + 1e-12))
        envelope = envelope - envelope.mean(axis=1, keepdims=True)
        envelope /= np.linalg.norm(envelope, axis=1, keepdims=True) + 1e-12
        centred = moving - moving.mean(axis=1, keepdims=True)
        centred /= np.linalg.norm(centred, axis=1, keepdims=True) + 1e-12
        share = np.clip(envelope @ centred.T, 0.0, None) ** 2  # (F, K): r², negative correlations count 0
        masks = share.T[:, :, None] * (moving / (moving.mean(axis=1, keepdims=True) + 1e-12))[:, None, :]  # (K, F, T)
        masks /= masks.sum(axis=0, keepdims=True) + 1e-12
        estimates = istft(self.torch.as_tensor(masks) * spectrum[None], self.window, len(mixture))
        return estimates.numpy().astype(np.float32)

    def separate(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int) -> np.ndarray:
        return self._split(mixture, self._motion(frames))

    def separate_at(self, mixture: np.ndarray, frames: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
        height, width = frames.shape[1:3]
        windows = []
        for x, y in points:
            x0, x1 = int(np.clip(x - self.radius, 0, width - 1)), int(np.clip(x + self.radius, 1, width))
            y0, y1 = int(np.clip(y - self.radius, 0, height - 1)), int(np.clip(y + self.radius, 1, height))
            windows.append(self._motion(frames[None, :, y0:y1, x0:x1]))
        return self._split(mixture, np.concatenate(windows))

    def localize(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int) -> np.ndarray:
        """Where pixels change most over the clip: ``(n_sources, H, W)``."""
        return np.abs(np.diff(frames.astype(np.float32), axis=1)).mean(axis=(1, 4))


def load_model(device: str = "cpu", radius: str | int = 12) -> SoundFollowsMotion:
    return SoundFollowsMotion(radius=int(radius))
