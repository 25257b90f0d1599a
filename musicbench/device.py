"""The torch device that evaluation and training run on."""

from __future__ import annotations

import os

from musicbench.errors import MusicbenchError

DEVICES = ("auto", "cpu", "cuda")


#: what a machine with a GPU torch could use has (NVIDIA's driver, AMD's ROCm kernel driver)
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd")


def gpu_driver_present() -> bool:
    """Whether a GPU driver is installed: without one torch sees no GPU, so ``auto`` is ``cpu``
    without importing torch."""
    return any(os.path.exists(path) for path in GPU_DRIVER_PATHS)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cpu``/``cuda`` are checked. ``cpu``
    needs no torch (importing it costs about a second of every evaluation's start)."""
    if device == "cpu" or (device == "auto" and not gpu_driver_present()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MusicbenchError("--device cuda: no CUDA GPU is visible; use --device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise MusicbenchError(f"--device must be auto, cpu or cuda, got {device!r}")
    return device
