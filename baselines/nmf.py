"""Reference NMF baseline for `musicbench evaluate`: audio-only, uses the instrument LABELS, no pixels.

Each source's instrument comes from its video's label; the per-instrument dictionaries learned by
`musicbench train-nmf` (``models/nmf/nmf.npz``, see `musicbench.nmf`) are held fixed, their
activations fitted to the mixture, and soft masks of the mixture STFT give the estimates. The
video frames are ignored, so its scores are a label-informed audio reference, not audio-visual.

    musicbench evaluate baselines/nmf.py --device cpu --option checkpoint=models/nmf/nmf.npz --out runs/nmf

Options (``--option key=value``): ``checkpoint`` (default ``models/nmf/nmf.npz``); optional
``separation_iterations`` and ``mask_power`` override the checkpoint's values for this run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from musicbench.errors import MusicbenchError
from musicbench.nmf import NMFConfig, NMFModel, load_nmf

DEFAULT_CHECKPOINT = "models/nmf/nmf.npz"


class NMFBaseline:
    """Label-informed NMF separation with fixed per-instrument dictionaries."""

    uses_labels = True

    def __init__(self, model: NMFModel):
        self.model = model

    def parameters(self) -> list:
        """The learned dictionaries as torch tensors, so that the harness can count parameters."""
        import torch

        return [torch.from_numpy(w) for w in self.model.dictionaries.values()]

    def separate(self, mixture: np.ndarray, frames: np.ndarray, sample_rate: int, labels: list[str]) -> np.ndarray:
        """mixture float32 ``(n_samples,)``; frames ignored; labels: one instrument per source.
        Returns float32 ``(len(labels), n_samples)``."""
        if int(sample_rate) != self.model.config.sample_rate:
            raise MusicbenchError(f"NMF checkpoint is for {self.model.config.sample_rate} Hz audio, got {sample_rate} Hz")
        if frames is not None and len(frames) != len(labels):
            raise MusicbenchError(f"{len(labels)} label(s) for {len(frames)} source video(s); one label per source is needed")
        return self.model.separate(mixture, labels)


def _overrides(config: NMFConfig, options: dict[str, str]) -> NMFConfig:
    changes = {}
    for key, kind, rule in (("separation_iterations", int, "an integer >= 1"), ("mask_power", float, "a number > 0")):
        if key in options and options[key] not in (None, ""):
            try:
                value = kind(options[key])
            except ValueError:
                value = None
            if value is None or not value > 0 or not np.isfinite(value):
                raise MusicbenchError(f"--option {key}={options[key]!r} must be {rule}")
            changes[key] = value
    return dataclasses.replace(config, **changes) if changes else config


def load_model(device: str = "cpu", checkpoint: str = DEFAULT_CHECKPOINT, separation_iterations: str = "",
               mask_power: str = "") -> NMFBaseline:
    model = load_nmf(checkpoint)
    model.config = _overrides(model.config, {"separation_iterations": separation_iterations, "mask_power": mask_power})
    return NMFBaseline(model)
