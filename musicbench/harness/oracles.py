"""Oracles: outputs computed from an item's references, the board's reference rows.

The ideal binary and ratio masks on the Sound of Pixels STFT (window 1022, hop 256) are the ceilings
of the board. The mixture oracle is the floor: the mixture as every estimate (NSDR 0) and the centre
prior (`musicbench.metrics.centre_prior`) as every heatmap, the localization score of knowing nothing.
An oracle's estimates are computed from the references, so they are the references, nearly: an oracle
run writes none (no copy of the references ever leaves the data root); its items are scored, and
re-scored by the board, from estimates computed again from the data root (`oracle_outputs`, keyed in
the score cache by `oracle_code_hash`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import Path

import numpy as np

from musicbench.benchmark import EvalItem
from musicbench.errors import MusicbenchError
from musicbench.metrics import centre_prior
from musicbench.stft import hann_window, istft, stft

ORACLES = ("ibm", "irm", "mixture")


def oracle_estimates(item: EvalItem, kind: str) -> np.ndarray:
    """Reference estimates ``(n_sources, n_samples)`` float32 computed from the item's references.

    "ibm" / "irm": ideal binary / ratio masks on the Sound of Pixels STFT (`musicbench.stft`, float64),
    the ceilings of the board; "mixture": every estimate is the mixture itself, the floor (NSDR 0);
    its heatmaps (written by the inference step) are the centre prior, the localization floor.
    """
    if kind == "mixture":
        return np.repeat(item.mixture[None, :], item.references.shape[0], axis=0).astype(np.float32)
    import torch

    window = hann_window()
    mixture, references = stft(item.mixture, window), stft(item.references, window)
    magnitudes = references.abs()
    if kind == "ibm":
        masks = (magnitudes == magnitudes.max(dim=0, keepdim=True).values).to(torch.float64)
    elif kind == "irm":
        masks = magnitudes / magnitudes.sum(dim=0, keepdim=True).clamp_min(1e-12)
    else:
        raise MusicbenchError(f"unknown oracle {kind!r}: choose one of {', '.join(ORACLES)}")
    estimates = istft(masks * mixture, window, item.mixture.shape[0])
    return estimates.numpy().astype(np.float32)


def oracle_outputs(item: EvalItem, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An oracle's estimates (`oracle_estimates`) of `item` and its heatmaps: the centre prior
    ``(n_sources, h, w)`` (one per class for an item scored per class) for the mixture oracle on the
    mixtures track, else None."""
    from musicbench.harness.outputs import item_map_count

    estimates = oracle_estimates(item, kind)
    if kind != "mixture" or item.track != "mixtures":
        return estimates, None
    height, width = item.frames.shape[2:4]
    return estimates, np.repeat(centre_prior(height, width)[None], item_map_count(item), axis=0)


@functools.cache
def oracle_code_hash() -> str:
    """Hex SHA-256 of the code that computes an oracle's outputs (they join its score cache key)."""
    from musicbench import stft as stft_module

    digest = hashlib.sha256(Path(stft_module.__file__).read_bytes())
    for function in (oracle_estimates, oracle_outputs):
        digest.update(inspect.getsource(function).encode())
    return digest.hexdigest()
