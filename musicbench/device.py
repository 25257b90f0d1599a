"""The torch device that evaluation and training run on."""

from __future__ import annotations

from musicbench.errors import MusicbenchError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cpu``/``cuda`` are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MusicbenchError("--device cuda: no CUDA GPU is visible; use --device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise MusicbenchError(f"--device must be auto, cpu or cuda, got {device!r}")
    return device
