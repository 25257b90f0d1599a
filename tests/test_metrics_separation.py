"""musicbench.metrics.separation against mir_eval 0.8 (BSS Eval v3, compute_permutation=False)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from musicbench.errors import MusicbenchError
from musicbench.metrics import (
    MetricInputError,
    NonFiniteInputError,
    SilentSourceError,
    bss_eval_sources,
    bss_eval_sources_batch,
    mixture_sdr,
    nsdr,
    sdr_sources,
    sdr_sources_batch,
    si_sdr,
    si_sdr_improvement,
)

mir_sep = pytest.importorskip("mir_eval.separation")

TOL_DB = 1e-6
SR = 11025


def mir(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(mir_sep.bss_eval_sources(ref, est, compute_permutation=False)[:3])


def ours(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    return np.array(bss_eval_sources(ref, est))


def music_like(rng: np.random.Generator, n: int, amplitude: float = 0.3) -> np.ndarray:
    """Harmonic tone with vibrato and repeated decaying note envelopes (tonal, ill-conditioned Gram)."""
    t = np.arange(n) / SR
    f0 = rng.uniform(80.0, 900.0)
    vibrato = 1.0 + 0.006 * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SR
    partials = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
    note = rng.uniform(0.25, 1.0)
    envelope = np.exp(-(t % note) * rng.uniform(2.0, 8.0)) * np.minimum(1.0, (t % note) * 200.0)
    return amplitude * partials * envelope


def degrade(rng: np.random.Generator, ref: np.ndarray, leak: float = 0.25, noise: float = 0.05) -> np.ndarray:
    """Estimate = filtered reference + leaked other sources + white noise."""
    filtered = ref + 0.3 * np.roll(ref, 3, axis=1)
    other = np.roll(ref, 1, axis=0)
    return filtered + leak * other + noise * ref.std(axis=1, keepdims=True) * rng.standard_normal(ref.shape)


@pytest.mark.parametrize("n_src", [2, 3, 4])
def test_random_gaussian_matches_mir_eval(n_src):
    rng = np.random.default_rng(n_src)
    ref = rng.standard_normal((n_src, 4000))
    est = degrade(rng, ref, noise=0.5)
    np.testing.assert_allclose(ours(ref, est), mir(ref, est), rtol=0, atol=TOL_DB)
    if n_src == 2:
        est2 = rng.standard_normal((n_src, 4000))  # unrelated estimate: negative SDR
        np.testing.assert_allclose(ours(ref, est2), mir(ref, est2), rtol=0, atol=TOL_DB)


def test_music_like_full_length_matches_mir_eval():
    rng = np.random.default_rng(11)
    ref = np.stack([music_like(rng, 65535) for _ in range(2)])
    est = degrade(rng, ref)
    np.testing.assert_allclose(ours(ref, est), mir(ref, est), rtol=0, atol=TOL_DB)


@pytest.mark.parametrize("n_src", [3, 4])
def test_music_like_short_matches_mir_eval(n_src):
    rng = np.random.default_rng(20 + n_src)
    ref = np.stack([music_like(rng, 8000) for _ in range(n_src)])
    est = degrade(rng, ref, leak=0.1, noise=0.01)
    np.testing.assert_allclose(ours(ref, est), mir(ref, est), rtol=0, atol=TOL_DB)


def test_sparse_and_very_quiet_match_mir_eval():
    rng = np.random.default_rng(5)
    n = 8000
    sparse = np.zeros((2, n))
    for j in range(2):  # a few short bursts per source, silence elsewhere
        for start in rng.integers(0, n - 300, size=4):
            sparse[j, start : start + 300] += music_like(rng, 300)
    est = degrade(rng, sparse, noise=0.02)
    np.testing.assert_allclose(ours(sparse, est), mir(sparse, est), rtol=0, atol=TOL_DB)
    quiet = 1e-7 * np.stack([music_like(rng, n) for _ in range(2)])
    est = degrade(rng, quiet)
    np.testing.assert_allclose(ours(quiet, est), mir(quiet, est), rtol=0, atol=TOL_DB)


def test_mixture_as_estimate_sdr_matches_and_sar_is_huge():
    rng = np.random.default_rng(3)
    ref = np.stack([music_like(rng, 16000) for _ in range(2)])
    mix = ref.sum(axis=0)
    est = np.stack([mix, mix])
    sdr, sir, sar = bss_eval_sources(ref, est)
    expected = mir(ref, est)
    np.testing.assert_allclose(sdr, expected[0], rtol=0, atol=TOL_DB)
    np.testing.assert_allclose(sir, expected[1], rtol=0, atol=TOL_DB)
    # the mixture lies in the span of the references: SAR is rounding noise (huge or +inf) in both
    assert np.all(sar > 100) and np.all(expected[2] > 100)
    assert not np.any(np.isnan(sar))
    np.testing.assert_allclose(mixture_sdr(ref, mix), expected[0], rtol=0, atol=TOL_DB)


def test_batched_equals_unbatched_and_sdr_only_path():
    rng = np.random.default_rng(8)
    refs = rng.standard_normal((3, 2, 3000))
    ests = np.stack([degrade(rng, r, noise=0.3) for r in refs])
    batch = np.stack(bss_eval_sources_batch(refs, ests), axis=1)  # (items, 3, src)
    single = np.array([ours(r, e) for r, e in zip(refs, ests)])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_allclose(sdr_sources_batch(refs, ests), single[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(sdr_sources(refs[0], ests[0]), single[0, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(single[0], mir(refs[0], ests[0]), rtol=0, atol=TOL_DB)


def test_nsdr():
    rng = np.random.default_rng(9)
    ref = np.stack([music_like(rng, 8000) for _ in range(2)])
    mix = ref.sum(axis=0)
    np.testing.assert_allclose(nsdr(ref, np.stack([mix, mix]), mix), 0.0, atol=1e-9)
    est = degrade(rng, ref)
    expected = mir(ref, est)[0] - mir(ref, np.stack([mix, mix]))[0]
    got = nsdr(ref, est, mix)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL_DB)
    floor = mixture_sdr(ref, mix)
    np.testing.assert_allclose(nsdr(ref, est, mix, mixture_sdr_db=floor), got, rtol=0, atol=1e-9)
    with pytest.raises(MetricInputError):
        nsdr(ref, est, mix, mixture_sdr_db=floor[:1])


def test_si_sdr_known_answers():
    rng = np.random.default_rng(4)
    s = rng.standard_normal((2, 20000))
    s -= s.mean(axis=1, keepdims=True)
    assert np.all(si_sdr(s, 3.5 * s) > 200)  # scaled copy: rounding-level residual (or +inf)
    # noise orthogonal to the reference at power p relative to the reference: SI-SDR = -10 log10 p
    noise = rng.standard_normal(s.shape)
    noise -= noise.mean(axis=1, keepdims=True)
    noise -= (np.sum(noise * s, axis=1, keepdims=True) / np.sum(s * s, axis=1, keepdims=True)) * s
    noise *= np.sqrt(0.1 * np.sum(s * s, axis=1, keepdims=True) / np.sum(noise * noise, axis=1, keepdims=True))
    np.testing.assert_allclose(si_sdr(s, 0.5 * s + 0.5 * noise), 10.0, atol=1e-9)
    np.testing.assert_allclose(si_sdr(s[0], s[0] + noise[0]), 10.0, atol=1e-9)
    # zero-mean convention: an offset does not matter with zero_mean=True, does without
    np.testing.assert_allclose(si_sdr(s, s + noise + 5.0), 10.0, atol=1e-9)
    assert si_sdr(s, s + noise + 5.0, zero_mean=False)[0] < 0
    mix = s.sum(axis=0)
    np.testing.assert_allclose(si_sdr_improvement(s, np.stack([mix, mix]), mix), 0.0, atol=1e-12)
    assert np.all(si_sdr_improvement(s, s + noise, mix) > 9.0)


def test_input_errors():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 2000))
    assert issubclass(MetricInputError, MusicbenchError)
    with pytest.raises(MetricInputError, match="shapes differ"):
        bss_eval_sources(ref, ref[:, :1000])
    with pytest.raises(MetricInputError, match="shape"):
        bss_eval_sources(ref[None, None], ref[None, None])
    bad = ref.copy()
    bad[0, 5] = np.nan
    with pytest.raises(NonFiniteInputError):
        bss_eval_sources(ref, bad)
    with pytest.raises(NonFiniteInputError):
        si_sdr(ref, bad)
    silent = ref.copy()
    silent[1] = 0.0
    with pytest.raises(SilentSourceError) as info:
        bss_eval_sources(silent, ref)
    assert info.value.role == "reference" and info.value.sources == [1]
    with pytest.raises(SilentSourceError) as info:
        bss_eval_sources(ref, silent)
    assert info.value.role == "estimate"
    with pytest.raises(SilentSourceError):
        sdr_sources(ref, silent)
    with pytest.raises(SilentSourceError):
        mixture_sdr(ref, np.zeros(2000))
    with pytest.raises(MetricInputError, match="mixture"):
        nsdr(ref, ref, np.ones(10))
    with pytest.raises(SilentSourceError):
        si_sdr(ref, np.ones_like(ref))  # constant: zero after mean removal
    batch_silent = np.stack([ref, silent])
    with pytest.raises(SilentSourceError) as info:
        bss_eval_sources_batch(batch_silent, batch_silent)
    assert info.value.sources == [(1, 1)]


def test_degenerate_references_fall_back_like_mir_eval():
    """Identical references make the joint Gram matrix singular: Cholesky fails, LU/lstsq take over."""
    rng = np.random.default_rng(12)
    s = rng.standard_normal(3000)
    ref = np.stack([s, s])
    est = ref + 0.3 * rng.standard_normal(ref.shape)
    sdr, sir, sar = bss_eval_sources(ref, est)
    expected = mir(ref, est)
    np.testing.assert_allclose(sdr, expected[0], rtol=0, atol=TOL_DB)
    np.testing.assert_allclose(sar, expected[2], rtol=0, atol=TOL_DB)
    assert np.all(sir > 100) and np.all(expected[1] > 100)  # no interference: rounding noise or +inf
    # a signal shorter than the 512-tap filter, and a 1-D (single source) input
    short = rng.standard_normal((2, 300))
    est = short + 0.3 * rng.standard_normal(short.shape)
    np.testing.assert_allclose(ours(short, est)[:2], mir(short, est)[:2], rtol=0, atol=TOL_DB)
    one = rng.standard_normal(2000)
    got = ours(one, one + 0.2 * rng.standard_normal(2000))
    assert got.shape == (3, 1) and got[1, 0] == np.inf


def _interleaved_gram(ref: np.ndarray, flen: int = 512) -> np.ndarray:
    """Dense Gram matrix of all delayed (zero-padded) references, row ``a * n_src + i`` = delay a of source i."""
    n_src, n = ref.shape
    shifted = np.zeros((flen, n_src, n + flen - 1))
    for a in range(flen):
        shifted[a, :, a : a + n] = ref
    x = shifted.reshape(flen * n_src, -1)
    return x @ x.T


@pytest.mark.parametrize("n_src", [2, 3])
def test_schur_factor_is_the_cholesky_factor_of_the_gram_matrix(n_src):
    from musicbench.metrics import separation as sep

    rng = np.random.default_rng(30 + n_src)
    n = 3000
    # noise (well conditioned) and tonal music + 1e-4 noise (condition number ~1e9)
    music = np.stack([music_like(rng, n) for _ in range(n_src)]) + 1e-4 * rng.standard_normal((n_src, n))
    refs = np.stack([rng.standard_normal((n_src, n)), music])
    n_fft = sep._fft_length(n, 512)
    iu, ju = np.triu_indices(n_src)
    spectra = sep._spectra(refs, n_fft, None)
    pairs = sep._lags(spectra[:, iu] * np.conj(spectra[:, ju]), n_fft, 512, None)
    lags = np.stack([sep._full_lags(p, iu, ju, n_src) for p in pairs])
    factors = sep._schur_cholesky(lags, 512)
    for ref, factor, single in zip(refs, factors, [sep._schur_cholesky(lag[None], 512)[0] for lag in lags]):
        gram = _interleaved_gram(ref)
        low = np.tril(factor)
        assert np.linalg.norm(low @ low.T - gram) <= 1e-12 * np.linalg.norm(gram)
        np.testing.assert_array_equal(low, np.tril(single))  # grouped items = one by one, bit for bit
    # identical references: G is singular, the recursion breaks down (the dense solve takes over)
    same = np.stack([refs[1, 0], refs[1, 0], refs[1, 1]][:n_src])[None]
    spectra = sep._spectra(same, n_fft, None)
    pairs = sep._lags(spectra[:, iu] * np.conj(spectra[:, ju]), n_fft, 512, None)
    assert sep._schur_cholesky(sep._full_lags(pairs[0], iu, ju, n_src)[None], 512)[0] is None


def test_dense_fallback_gives_the_same_scores(monkeypatch):
    """Every structured (Schur / Levinson) solution rejected: the dense solves give the same numbers."""
    from musicbench.metrics import separation as sep

    rng = np.random.default_rng(13)
    ref = np.stack([music_like(rng, 6000) for _ in range(2)])
    est = degrade(rng, ref)
    fast = ours(ref, est)
    fast_sdr = sdr_sources(ref, est)
    monkeypatch.setattr(sep, "_BACKWARD_TOL", -1.0)
    dense = ours(ref, est)
    np.testing.assert_allclose(dense, fast, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sdr_sources(ref, est), fast_sdr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(dense, mir(ref, est), rtol=0, atol=TOL_DB)


def test_batch_across_groups_equals_one_by_one():
    rng = np.random.default_rng(14)
    refs = np.stack([np.stack([music_like(rng, 2500) for _ in range(2)]) for _ in range(6)])  # > one group
    ests = np.stack([degrade(rng, r) for r in refs])
    batch = np.stack(bss_eval_sources_batch(refs, ests), axis=1)
    single = np.array([ours(r, e) for r, e in zip(refs, ests)])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_allclose(single[5], mir(refs[5], ests[5]), rtol=0, atol=TOL_DB)
