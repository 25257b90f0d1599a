"""PixelPlayer ("The Sound of Pixels", Zhao et al. ECCV 2018) for `musicbench evaluate`.

The DVC stage ``train_pixelplayer`` (`musicbench pixelplayer-weights`) puts its weights in
``models/pixelplayer/weights.safetensors``: the published reference weights of ``baselines/weights/``
(``pixelplayer.weights: published``, the default) or those trained on the data root (``train``).
Options (``--option key=value``):

- ``checkpoint``: the weights to load (default ``models/pixelplayer/weights.safetensors``): a
  ``.safetensors`` weights file (checked against the card beside it) or a training checkpoint
  (``best.pt`` of `musicbench train-pixelplayer`);
- ``device``: ``cpu`` or ``cuda`` (the harness passes it);
- ``threads``: CPU threads for torch (default: torch's choice);
- ``windows``: comma-separated window sides in frame pixels (e.g. ``24,48,96``): pixel-level outputs
  (``localize``, ``separate_at``) read each pixel's feature from a window around it
  (`musicbench.pixelplayer.inference`); ``none``: the paper's per-pixel features; default: the
  checkpoint's profile (``pixelplayer.<profile>.windows``).

The model API (see `baselines/motion_energy.py`): ``separate(mixture, frames, sample_rate)`` →
``(n_sources, n_samples)``; ``localize(mixture, frames, sample_rate)`` → per-pixel sound energy
``(n_sources, H, W)``; ``separate_at(mixture, frames, points)`` with ONE video ``(n_frames, H, W, 3)``
and ``(x, y)`` pixel points → the sound of the pixel under each point ``(n_points, n_samples)``.
The implementation is `musicbench.pixelplayer.inference.Separator`.
"""

from __future__ import annotations

from musicbench.pixelplayer.inference import Separator, parse_windows

DEFAULT_CHECKPOINT = "models/pixelplayer/weights.safetensors"


def load_model(device: str = "cpu", checkpoint: str = DEFAULT_CHECKPOINT, threads: str | int = 0, windows: str = "") -> Separator:
    import torch

    from musicbench.pixelplayer.train import keep_freed_memory

    if device == "cpu":
        keep_freed_memory()  # this process only runs the model: keep large buffers for reuse
    if int(threads) > 0:
        torch.set_num_threads(int(threads))
    return Separator.from_checkpoint(checkpoint, device=device, windows=parse_windows(windows))
