"""The benchmark's short-time Fourier transform: window, hop, centring and both directions, once.

The Sound of Pixels STFT: a periodic Hann window of ``N_FFT`` = 1022 samples (512 frequency
bins), hop ``HOP`` = 256 samples, centred (reflect-padded) frames, so ``n_samples`` at 11025 Hz
give ``1 + n_samples // HOP`` frames. The oracle masks (`musicbench.evaluate`) and NMF
(`musicbench.nmf`, whose ``nmf.n_fft`` / ``nmf.hop`` may differ) compute it in float64 on the CPU,
PixelPlayer in float32 on its device; the window's dtype and device choose which (torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

N_FFT, HOP = 1022, 256


def hann_window(n_fft: int = N_FFT, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    """The periodic Hann window of `n_fft` samples: ``(n_fft,)``, float64 unless `dtype` says otherwise."""
    import torch

    return torch.hann_window(n_fft, dtype=torch.float64 if dtype is None else dtype, device=device)


def stft(waves: Any, window: torch.Tensor, hop: int = HOP) -> torch.Tensor:
    """Complex STFT of real `waves` ``(..., n_samples)`` (array or tensor, cast to the window's dtype
    and device): ``(..., n_fft // 2 + 1, 1 + n_samples // hop)``, n_fft = ``len(window)``, centred."""
    import torch

    signal = torch.as_tensor(waves).to(dtype=window.dtype, device=window.device)
    shape = signal.shape[:-1]
    spectrum = torch.stft(signal.reshape(-1, signal.shape[-1]), window.shape[0], hop, window=window, center=True,
                          return_complex=True)
    return spectrum.reshape(*shape, *spectrum.shape[-2:])


def istft(spectrum: torch.Tensor, window: torch.Tensor, n_samples: int, hop: int = HOP) -> torch.Tensor:
    """Inverse of `stft`: complex ``(..., n_fft // 2 + 1, n_frames)`` → real ``(..., n_samples)`` (zero
    beyond the last frame's reach), in the spectrum's real dtype."""
    import torch

    shape = spectrum.shape[:-2]
    waves = torch.istft(spectrum.reshape(-1, *spectrum.shape[-2:]), window.shape[0], hop, window=window, center=True,
                        length=int(n_samples))
    return waves.reshape(*shape, int(n_samples))
