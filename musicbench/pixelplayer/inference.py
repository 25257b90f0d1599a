"""PixelPlayer at inference: separation, per-pixel sound energy maps and click-to-hear, on numpy arrays.

`Separator` wraps a trained `PixelPlayer` (from a checkpoint written by `musicbench.pixelplayer.train`)
and implements the harness's model API (`baselines/pixelplayer.py` only forwards to it):

- ``separate(mixture, frames, sample_rate)``: one mask per source video, from the video's clip
  feature (K maps max-pooled over its 3 frames and over space, sigmoid); binary masks are
  thresholded at ``mask_threshold`` after unwarping to linear frequency (as the reference does;
  with ``hard_masks: false`` the sigmoid is used as a soft mask), applied to the mixture's STFT and
  inverted with the mixture's phase.
- ``localize(mixture, frames, sample_rate)``: per source video, the sound energy of every pixel
  (the paper's "volume of each pixel"): each pixel's feature gives its own soft mask, applied to the
  (warped) mixture magnitude; the energy sum(|mask · X|²) per pixel, resized to the frame.
- ``separate_at(mixture, frames, points)``: the sound of the pixel under each (x, y) point of ONE
  video, from the feature bilinearly sampled at that point (a pixel-sized region of the feature map).

With ``windows`` (square window sides in frame pixels, e.g. ``(24, 48, 96)``; by default the
checkpoint's ``PixelPlayerConfig.windows``), pixel-level outputs read a pixel's feature from a
window around it instead: the window is cut from the frame (edges replicated), resized to
``image_size`` and given to the visual net as a picture of its own, whose clip feature (max over
space and time, sigmoid) becomes the pixel's. A feature computed from the whole frame may
describe the player from anywhere in it (every output cell of the small net sees the whole frame);
a window's cannot see beyond the window. `localize` then sums each window size's min-max normalised
energy map over a grid of one point per output cell; `separate_at` uses ``windows[0]``.

Frames are chosen the way training chooses them: the frame at the audio window's centre (at
``fps``) plus ``frame_offsets``, clipped to the available frames. A mixture of exactly
``clip_samples`` samples is one window; longer ones are cut into consecutive windows (the
last zero-padded), shorter ones zero-padded; the output always has the input's length. Pixel-level
outputs see the whole frame (resized so its shorter side is ``resize`` px, no crop), so their maps
cover the frame; separation uses the training view (resize + centre crop to ``image_size``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from musicbench.config import AudioConfig
from musicbench.errors import MusicbenchError
from musicbench.pixelplayer.config import PixelPlayerConfig
from musicbench.pixelplayer.model import OUTPUT_STRIDE, PixelPlayer

CHECKPOINT_FORMAT = 1
#: window pictures per visual-net call (bounds the memory of `Separator.window_features`)
WINDOW_BATCH = 64


def parse_windows(text: str) -> tuple[int, ...] | None:
    """``"24,48,96"`` → ``(24, 48, 96)`` (window sides in frame pixels); ``"none"`` → ``()`` (per-pixel
    features); empty text → None (the checkpoint's profile decides)."""
    text = str(text).replace(" ", "")
    if not text:
        return None
    if text.lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part)
    except ValueError:
        raise MusicbenchError(f"PixelPlayer windows must be comma-separated integers (pixels), e.g. 24,48,96, or none; "
                              f"got {text!r}") from None


def load_error_reason(exc: Exception) -> str:
    """One line saying why ``torch.load(..., weights_only=True)`` refused a file (torch's own text spans lines)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "not a file of tensors and plain types (a torch.save'd state dict)"
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load a PixelPlayer checkpoint (tensors and plain types only), with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise MusicbenchError(f"PixelPlayer checkpoint {str(path)!r} does not exist; run `musicbench train-pixelplayer` "
                              "(or `dvc repro train_pixelplayer`) first, or pass --option checkpoint=PATH")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise MusicbenchError(f"cannot read PixelPlayer checkpoint {str(path)!r}: {load_error_reason(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state or "audio" not in state:
        raise MusicbenchError(f"{str(path)!r} is not a PixelPlayer checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def check_shapes(config: PixelPlayerConfig, tensors: dict[str, torch.Tensor]) -> None:
    """Raise unless `tensors` have exactly the names and shapes of `config`'s network, found by
    building it on torch's meta device (no memory); a network over `MAX_TENSOR_ELEMENTS` is refused."""
    from musicbench.pixelplayer.weights import MAX_TENSOR_ELEMENTS

    with torch.device("meta"):
        shapes = {name: tuple(value.shape) for name, value in PixelPlayer(config).state_dict().items()}
    if sum(int(np.prod(shape)) for shape in shapes.values()) > MAX_TENSOR_ELEMENTS:
        raise MusicbenchError(f"its config describes a network of over {MAX_TENSOR_ELEMENTS:,} numbers")
    given = {name: tuple(value.shape) for name, value in tensors.items()}
    if given != shapes:
        name = next((n for n in sorted(set(shapes) | set(given)) if shapes.get(n) != given.get(n)), "")
        raise MusicbenchError(f"tensor {name!r}: {given.get(name, 'missing')} in the file, {shapes.get(name, 'none')} in the network")


class Separator:
    """A PixelPlayer network ready for numpy-in, numpy-out inference (eval mode, no gradients)."""

    def __init__(self, net: PixelPlayer, audio: AudioConfig, *, device: str | torch.device = "cpu",
                 windows: tuple[int, ...] | None = None):
        self.net = net.to(device).eval()
        self.config: PixelPlayerConfig = net.config
        self.sample_rate, self.clip_samples, self.fps = audio.sample_rate, audio.clip_samples, audio.fps
        self.device = torch.device(device)
        windows = self.config.windows if windows is None else windows
        if any(int(w) < 2 for w in windows):
            raise MusicbenchError(f"PixelPlayer windows are square window sides of at least 2 pixels, got {list(windows)}")
        self.windows = tuple(int(w) for w in windows)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu",
                        windows: tuple[int, ...] | None = None) -> "Separator":
        """Load ``best.pt`` (a training checkpoint) or a ``.safetensors`` weights file (`musicbench.pixelplayer.weights`)."""
        if Path(path).suffix == ".safetensors":
            from musicbench.pixelplayer.weights import load_weights_file

            state = load_weights_file(path, map_location=device)
        else:
            state = load_checkpoint_file(path, map_location=device)
        try:
            config, audio = PixelPlayerConfig(**state["config"]), AudioConfig(**state["audio"])
        except (TypeError, ValueError, MusicbenchError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise MusicbenchError(f"PixelPlayer weights {str(path)!r} carry an invalid config: {reason}") from None
        try:
            check_shapes(config, state["model"])  # before anything is allocated: a tiny file can describe a huge network
            net = PixelPlayer(config)
            net.load_state_dict(state["model"])
        except (TypeError, RuntimeError, MusicbenchError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise MusicbenchError(f"PixelPlayer weights {str(path)!r} do not fit the network they describe: {reason}") from None
        return cls(net, audio, device=device, windows=windows)

    # ---- frames and windows
    def frame_indices(self, n_frames: int, start_sample: int) -> list[int]:
        """Indices of the frames seen for the audio window starting at `start_sample`."""
        centre = int(round((start_sample + self.clip_samples / 2) / self.sample_rate * self.fps))
        centre = int(np.clip(centre, 0, n_frames - 1))
        return [int(np.clip(centre + o, 0, n_frames - 1)) for o in self.config.frame_offsets]

    def audio_windows(self, n_samples: int) -> list[int]:
        """Start samples of the clip-length windows covering `n_samples` samples."""
        return list(range(0, max(n_samples, 1), self.clip_samples))

    def _check(self, mixture: np.ndarray, sample_rate: int | None) -> np.ndarray:
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(f"PixelPlayer works at {self.sample_rate} Hz, got audio at {sample_rate} Hz")
        mixture = np.asarray(mixture, dtype=np.float32)
        if mixture.ndim != 1:
            raise ValueError(f"mixture must be 1-D (n_samples,), got shape {mixture.shape}")
        return mixture

    def _window(self, mixture: np.ndarray, start: int) -> torch.Tensor:
        piece = np.zeros(self.clip_samples, dtype=np.float32)
        chunk = mixture[start:start + self.clip_samples]
        piece[:len(chunk)] = chunk
        return torch.from_numpy(piece).to(self.device)[None]

    def select_frames(self, frames: np.ndarray, start_sample: int, *, crop: bool = True) -> torch.Tensor:
        """The frames the net sees for the audio window starting at `start_sample`, normalised.

        frames: uint8 ``(n_videos, n_frames, H, W, 3)`` → float ``(n_videos, T, 3, S, S')`` on the
        separator's device: the T = ``len(frame_offsets)`` frames of `frame_indices`, the shorter side
        resized to ``resize`` px, then with `crop` the centred ``image_size`` square (the view of
        separation and of validation during training), without it the whole frame (pixel-level outputs).
        """
        indices = self.frame_indices(frames.shape[1], start_sample)
        chosen = torch.from_numpy(np.ascontiguousarray(np.asarray(frames, dtype=np.uint8)[..., indices, :, :, :]))
        return self.net.preprocess_frames(chosen.to(self.device), train=False, crop=crop)

    def _masks(self, logits: torch.Tensor, threshold: bool) -> torch.Tensor:
        """Warped logits (P, R, T) → linear-frequency masks (P, 512, T), thresholded for binary masks."""
        masks = self.net.unwarp(torch.sigmoid(logits.float())[:, None])[:, 0]
        if threshold and self.config.mask == "binary" and self.config.hard_masks:
            masks = (masks > self.config.mask_threshold).float()
        return masks

    def _apply(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.net.istft(masks * spec, self.clip_samples)

    # ---- the model API
    @torch.no_grad()
    def separate_window(self, window: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """window (1, clip_samples); frames (N, T, 3, S, S) normalised → estimates (N, clip_samples)."""
        spectrum = self.net.spectrogram(window)
        logits = self.net(spectrum["log_mag"], frames[None])[0]
        return self._apply(spectrum["spec"][0], self._masks(logits, threshold=True))

    @torch.no_grad()
    def separate(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        mixture = self._check(mixture, sample_rate)
        frames = np.asarray(frames)
        if frames.ndim != 5:
            raise ValueError(f"frames must be (n_sources, n_frames, H, W, 3), got shape {frames.shape}")
        n_samples = len(mixture)
        pieces = []
        for start in self.audio_windows(n_samples):
            chosen = self.select_frames(frames, start)
            pieces.append(self.separate_window(self._window(mixture, start), chosen))
        return torch.cat(pieces, dim=-1)[:, :n_samples].cpu().numpy().astype(np.float32)

    def _centre_start(self, n_samples: int) -> int:
        return max(0, (n_samples - self.clip_samples) // 2)

    @torch.no_grad()
    def pixel_features(self, frames: np.ndarray, start: int) -> torch.Tensor:
        """Per-pixel features in [0, 1] of videos (M, n_frames, H, W, 3): (M, K, h, w), whole frame."""
        chosen = self.select_frames(frames, start, crop=False)
        return torch.sigmoid(self.net.visual_maps(chosen).float())

    @torch.no_grad()
    def window_features(self, frames: np.ndarray, start: int, points: np.ndarray, window: int) -> torch.Tensor:
        """Features in [0, 1] of `window`-pixel squares around `points` ``(P, 2)`` (x, y in frame pixels).

        frames: videos uint8 ``(M, n_frames, H, W, 3)`` → ``(M, P, K)``: each window, cut from the
        frames the net sees for the audio window at `start` (edges replicated), resized to
        ``image_size`` and pooled as a whole picture (max over space and time, sigmoid).
        """
        return self._window_features(self.select_frames(frames, start, crop=False), frames.shape[2], points, window)

    def _window_features(self, chosen: torch.Tensor, frame_height: int, points: np.ndarray, window: int) -> torch.Tensor:
        """`window_features` from the frames already chosen and resized, ``(M, T, 3, R, R')``."""
        m, t, _, rows, columns = chosen.shape
        scale = rows / frame_height  # frame pixels → resized pixels
        side = max(2, int(round(window * scale)))
        half = side // 2
        padded = F.pad(chosen.reshape(m * t, 3, rows, columns), (half, side - half) * 2, mode="replicate")
        size = self.config.image_size
        crops = []
        for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
            # the window's top-left corner in the padded picture: centred on the point's pixel centre
            left = int(np.clip(round((x + 0.5) * scale - side / 2), -half, columns - side + half)) + half
            top = int(np.clip(round((y + 0.5) * scale - side / 2), -half, rows - side + half)) + half
            crops.append(padded[:, :, top:top + side, left:left + side])
        crops = F.interpolate(torch.stack(crops, dim=1).reshape(-1, 3, side, side), size=(size, size), mode="bilinear",
                              align_corners=False, antialias=True)  # (M·T·P, 3, S, S), video-major then frame
        n_points = len(crops) // (m * t)
        pictures = crops.reshape(m, t, n_points, 3, size, size).transpose(1, 2).reshape(m * n_points, t, 3, size, size)
        features = torch.cat([torch.sigmoid(self.net.visual_maps(chunk).amax(dim=(-2, -1)).float())
                              for chunk in pictures.split(WINDOW_BATCH)])
        return features.reshape(m, n_points, -1)

    def _energy(self, audio: torch.Tensor, mag: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Sound energy sum(|mask · X|²) of the (warped) mixture magnitude `mag` under each feature (P, K) → (P,)."""
        masks = torch.sigmoid(self.net.pixel_logits(audio, features).float())  # (P, R, T)
        return (masks * mag).pow(2).sum(dim=(-2, -1))

    @torch.no_grad()
    def localize(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Per-pixel sound energy of each source video: (n_sources, H, W), float32 (centre window)."""
        mixture = self._check(mixture, sample_rate)
        frames = np.asarray(frames)
        start = self._centre_start(len(mixture))
        spectrum = self.net.spectrogram(self._window(mixture, start))
        audio = self.net.audio(spectrum["log_mag"])[0].float()
        mag = spectrum["mag"][0]
        if self.windows:
            heat = self._window_energy(frames, start, audio, mag)
        else:
            features = self.pixel_features(frames, start)  # (N, K, h, w)
            n, k, h, w = features.shape
            heat = torch.stack([self._energy(audio, mag, feature.reshape(k, h * w).T).reshape(h, w) for feature in features])
        height, width = frames.shape[2:4]
        heat = F.interpolate(heat[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        return heat.cpu().numpy().astype(np.float32)

    def _window_energy(self, frames: np.ndarray, start: int, audio: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        """Energy maps (N, h, w) on a grid of one point per output cell of the whole frame, summed over window sizes."""
        height, width = frames.shape[2:4]
        chosen = self.select_frames(frames, start, crop=False)  # chosen and resized once for every window size
        # the whole frame's output cells: each stride-2 stage rounds up
        rows, columns = (-(-side // OUTPUT_STRIDE) for side in chosen.shape[-2:])
        ys = (np.arange(rows) + 0.5) * height / rows - 0.5  # cell centres, in pixel index coordinates
        xs = (np.arange(columns) + 0.5) * width / columns - 0.5
        points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)  # row-major (x, y)
        total = torch.zeros(frames.shape[0], rows, columns, device=self.device)
        for window in self.windows:
            features = self._window_features(chosen, height, points, window)  # (N, P, K)
            for n, feature in enumerate(features):
                energy = self._energy(audio, mag, feature).reshape(rows, columns)
                span = energy.max() - energy.min()
                total[n] += (energy - energy.min()) / span if span > 0 else torch.zeros_like(energy)
        return total

    @torch.no_grad()
    def separate_at(self, mixture: np.ndarray, frames: np.ndarray, points) -> np.ndarray:
        """The sound under each (x, y) pixel of one video (n_frames, H, W, 3): (n_points, n_samples)."""
        mixture = self._check(mixture, None)
        frames = np.asarray(frames)
        if frames.ndim != 4:
            raise ValueError(f"separate_at takes ONE video (n_frames, H, W, 3), got shape {frames.shape}")
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        height, width = frames.shape[1:3]
        n_samples = len(mixture)
        if len(points) == 0:
            return np.zeros((0, n_samples), dtype=np.float32)
        # normalised coordinates (align_corners=False): -1 / +1 are the outer edges of the frame
        grid = torch.from_numpy(np.stack([(points[:, 0] + 0.5) / width * 2 - 1,
                                          (points[:, 1] + 0.5) / height * 2 - 1], axis=-1)).to(self.device)
        pieces = []
        for start in self.audio_windows(n_samples):
            if self.windows:
                pixels = self.window_features(frames[None], start, points, self.windows[0])[0]
            else:
                features = self.pixel_features(frames[None], start)  # (1, K, h, w)
                sampled = F.grid_sample(features, grid.clamp(-1, 1)[None, None], mode="bilinear", padding_mode="border",
                                        align_corners=False)  # (1, K, 1, P)
                pixels = sampled[0, :, 0].T
            spectrum = self.net.spectrogram(self._window(mixture, start))
            audio = self.net.audio(spectrum["log_mag"])[0].float()
            masks = self._masks(self.net.pixel_logits(audio, pixels), threshold=True)
            pieces.append(self._apply(spectrum["spec"][0], masks))
        return torch.cat(pieces, dim=-1)[:, :n_samples].cpu().numpy().astype(np.float32)
