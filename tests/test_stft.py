"""The one STFT of the benchmark (musicbench.stft): shapes, dtypes and the inverse."""

from __future__ import annotations

import numpy as np
import torch

from musicbench.stft import HOP, N_FFT, hann_window, istft, stft


def test_shapes_follow_the_sound_of_pixels_stft():
    waves = np.random.default_rng(0).standard_normal((3, 2, 65535)).astype(np.float32)
    spectrum = stft(waves, hann_window())
    assert spectrum.shape == (3, 2, N_FFT // 2 + 1, 1 + 65535 // HOP) == (3, 2, 512, 256)
    assert spectrum.dtype == torch.complex128  # float64 window: the oracles' and NMF's precision
    assert stft(waves[0, 0], hann_window()).shape == (512, 256)
    assert stft(torch.as_tensor(waves), hann_window(dtype=torch.float32)).dtype == torch.complex64


def test_inverse_gives_back_the_signal_and_batches_agree():
    waves = np.random.default_rng(1).standard_normal((2, 11025))
    window = hann_window()
    spectrum = stft(waves, window)
    back = istft(spectrum, window, 11025)
    assert back.shape == (2, 11025) and back.dtype == torch.float64
    assert np.abs(back.numpy() - waves).max() < 1e-12
    # a batch holds the same bits as its rows one by one
    assert torch.equal(spectrum[1], stft(waves[1], window))
    assert torch.equal(back[0], istft(spectrum[0], window, 11025))


def test_other_window_and_hop():
    spectrum = stft(np.ones(4096), hann_window(256), hop=64)
    assert spectrum.shape == (129, 1 + 4096 // 64)
