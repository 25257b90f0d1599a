"""Separation metrics: BSS Eval v3 ``bss_eval_sources`` (SDR/SIR/SAR), NSDR and SI-SDR.

``bss_eval_sources`` reproduces ``mir_eval.separation.bss_eval_sources(reference, estimate,
compute_permutation=False)`` (mir_eval 0.8, BSS Eval v3, Vincent et al. 2006): each estimate
``e_j`` is projected by least squares onto

* the span of the 512 delayed copies (delays 0..511 samples) of its own reference ``s_j``
  (``P_j e_j``, the "filtered true source" ``s_target + e_spat``), and
* the span of the 512 delayed copies of *all* references (``P e_j``),

and

* SDR = 10 log10(||P_j e||² / ||e − P_j e||²)
* SIR = 10 log10(||P_j e||² / ||P e − P_j e||²)
* SAR = 10 log10(||P e||² / ||e − P e||²)

(all signals zero-padded to ``n_samples + 511``), in dB.

How it is computed (our own vectorised float64 implementation, not a copy of mir_eval):

* every correlation (reference/reference at lags −511..511, reference/estimate at lags −511..0)
  comes from one batched real FFT of length ``next_fast_len(n_samples + 511)`` (long enough that
  the circular correlations equal the linear ones at those lags);
* the Gram matrix of all delayed references ``G`` (``512·n`` square) is block Toeplitz once its
  rows are interleaved (row ``512·i + a`` becomes ``n·a + i``: ``n × n`` blocks indexed by the
  delay difference). Its Cholesky factor comes from the generalized Schur algorithm (a direct
  method, exact in exact arithmetic; displacement rank ``2n``, J-unitary rotations: 511 steps of
  O(n²·512·n) work, for all items of a group at once) instead of an O((512·n)³) factorisation,
  and two triangular solves per estimate (BLAS ``dtrsv``) use it; mir_eval instead builds and
  LU-solves ``G`` once per estimate;
* ``P_j`` solves the symmetric Toeplitz system of reference ``j``'s autocorrelation by
  Levinson–Durbin (``scipy.linalg.solve_toeplitz``, O(512²));
* neither algorithm is iterative or approximate, but both are only weakly stable, so every
  structured solution ``c`` of ``G c = d`` is checked: if its normwise backward error
  ``||G c − d|| / (||G||_F ||c|| + ||d||)`` exceeds ``_BACKWARD_TOL`` (1e-12; measured values in
  docs/metrics.md) or the Schur algorithm breaks down (a non-positive pivot), the system
  is solved again densely: LAPACK Cholesky, then LU with partial pivoting, then least squares if
  exactly singular, which is what mir_eval does for every system;
* energies come from the filter coefficients ``c`` and products with the exact Gram matrix
  (``G c`` as 512-tap correlations by FFTs of 1536 points), without forming the projected
  signals: ||P e||² = cᵀGc, ||e − P e||² = ||e||² − 2cᵀd + cᵀGc (second order in the error of
  ``c``) and ||P e − P_j e||² = ΔᵀGΔ with Δ = c − c_j (``c_j`` zero-padded), never a difference
  of two large numbers for the interference energy.

Agreement with mir_eval is ≤ 1e-6 dB (measured: docs/metrics.md) except where a ratio sits
at the float64 noise floor: a residual energy below ~1e-13 of the estimate's energy (ratios above
~130 dB, e.g. the SAR of the mixture used as the estimate, which lies in the span of the
references) is rounding noise in both implementations and is not comparable between them. A
residual energy that comes out ≤ 0 gives +inf, as mir_eval's ``_safe_db`` does for an exact 0.

Input policy (shared by every function here): arrays are converted to float64; shapes must match;
non-finite values raise :class:`NonFiniteInputError`; an all-zero reference or estimate source
raises :class:`SilentSourceError` (mir_eval raises ``ValueError`` there: the BSS Eval projection
is undefined). Both are :class:`MetricInputError`, a :class:`~musicbench.errors.MusicbenchError`,
so a caller can mark the item excluded and keep the reason. Nothing is returned as NaN.

Only numpy and scipy are used (no torch), so no process-wide thread state is touched; FFTs run on
``workers`` threads (``scipy.fft``, default 1), LAPACK on OpenBLAS's threads. On a shared machine
multithreaded OpenBLAS busy-waits and gets several times slower (docs/metrics.md): scoring
processes should start with ``OPENBLAS_NUM_THREADS=1`` and parallelise over items (processes)
instead.

Cost per item, step by step, against mir_eval: docs/metrics.md and ``python bench/bench_metrics.py``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import as_strided, sliding_window_view
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas, lapack, solve_toeplitz

from musicbench.errors import MusicbenchError

#: Length of the BSS Eval v3 distortion filter, in samples (delays 0..511), as in mir_eval.
FILTER_LENGTH = 512

#: Items per batched FFT pass: small, so the spectra stay in cache (measured: docs/metrics.md) and
#: memory stays bounded (~0.5 MB per signal and per correlation at 65535 samples).
_CHUNK_ITEMS = 2

#: Items whose Schur recursions share one loop (:func:`_schur_cholesky`): the per-step cost is
#: largely Python/numpy call overhead, shared by the group; each item holds an 8 MB factor (2
#: sources) meanwhile, so larger groups lose the factor from cache (measured: docs/metrics.md).
_GROUP_ITEMS = 2

__all__ = [
    "FILTER_LENGTH",
    "MetricInputError",
    "NonFiniteInputError",
    "SilentSourceError",
    "bss_eval_sources",
    "bss_eval_sources_batch",
    "sdr_sources",
    "sdr_sources_batch",
    "mixture_sdr",
    "nsdr",
    "si_sdr",
    "si_sdr_improvement",
]


class MetricInputError(MusicbenchError):
    """Inputs a metric cannot score (shape mismatch, non-finite values, silent sources)."""


class NonFiniteInputError(MetricInputError):
    """A reference, estimate or mixture holds NaN or ±inf."""


class SilentSourceError(MetricInputError):
    """A reference or estimate source is all zeros: BSS Eval (and SI-SDR) is undefined for it.

    ``role`` is ``"reference"``, ``"estimate"`` or ``"mixture"``; ``sources`` the silent source
    indices (for a batch, ``(item, source)`` pairs).
    """

    def __init__(self, message: str, role: str, sources: list) -> None:
        super().__init__(message)
        self.role = role
        self.sources = sources


# ---------------------------------------------------------------------------------------------
# input checks


def _as_sources(x: ArrayLike, role: str, ndim: int) -> NDArray[np.float64]:
    """float64 array of ``ndim`` dims (a 1-D signal is one source, as in mir_eval); checked."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == ndim - 1:
        a = a[np.newaxis] if ndim == 2 else a[:, np.newaxis]
    if a.ndim != ndim:
        want = "(n_sources, n_samples)" if ndim == 2 else "(n_items, n_sources, n_samples)"
        raise MetricInputError(f"{role} must have shape {want}, got shape {a.shape}")
    if a.shape[-1] == 0 or a.shape[-2] == 0:
        raise MetricInputError(f"{role} is empty (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise NonFiniteInputError(f"{role} holds NaN or inf values")
    silent = ~np.any(a != 0, axis=-1)
    if np.any(silent):
        where = [tuple(int(i) for i in ix) if len(ix) > 1 else int(ix[0]) for ix in np.argwhere(silent)]
        raise SilentSourceError(
            f"{role} source(s) {where} are all zeros: BSS Eval is undefined for a silent source "
            f"(mir_eval raises too); exclude the item",
            role,
            where,
        )
    return a


def _check_pair(reference: ArrayLike, estimate: ArrayLike, ndim: int):
    ref = _as_sources(reference, "reference", ndim)
    est = _as_sources(estimate, "estimate", ndim)
    if ref.shape != est.shape:
        raise MetricInputError(
            f"reference and estimate shapes differ: {ref.shape} vs {est.shape} "
            f"(expected both {'(n_sources, n_samples)' if ndim == 2 else '(n_items, n_sources, n_samples)'})"
        )
    return ref, est


def _check_mixture(mixture: ArrayLike, ref: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mixture of shape ``(n_samples,)`` (or ``(n_items, n_samples)`` for a batch ``ref``)."""
    mix = np.asarray(mixture, dtype=np.float64)
    want = ref.shape[:-2] + ref.shape[-1:]
    if mix.shape != want:
        raise MetricInputError(f"mixture must have shape {want}, got {mix.shape}")
    if not np.all(np.isfinite(mix)):
        raise NonFiniteInputError("mixture holds NaN or inf values")
    silent = ~np.any(mix != 0, axis=-1)
    if np.any(silent):
        raise SilentSourceError("mixture is all zeros", "mixture", np.argwhere(np.atleast_1d(silent)).ravel().tolist())
    return mix


# ---------------------------------------------------------------------------------------------
# correlations (FFT) and products with the Gram matrices


def _fft_length(n_samples: int, flen: int) -> int:
    return scipy.fft.next_fast_len(n_samples + flen - 1, real=True)


def _product_fft_length(flen: int) -> int:
    """FFT length for products with a Gram block: ≥ 3·flen − 2, so circular equals linear."""
    return scipy.fft.next_fast_len(3 * flen - 2, real=True)


def _lags(spectra: NDArray[np.complex128], n_fft: int, flen: int, workers: int | None) -> NDArray[np.float64]:
    """Correlations at lags −(flen−1)..flen−1 from cross spectra: ``out[..., flen-1+k] = r[k]``."""
    r = scipy.fft.irfft(spectra, n=n_fft, axis=-1, workers=workers)
    return np.concatenate((r[..., n_fft - flen + 1 :], r[..., :flen]), axis=-1)


def _toeplitz_blocks(v: NDArray[np.float64], flen: int) -> NDArray[np.float64]:
    """``T[..., a, b] = v[..., flen-1+b-a]`` (a view): the Gram block of two delayed sources."""
    return sliding_window_view(v, flen, axis=-1)[..., ::-1, :]


def _spectra(x: NDArray[np.float64], n_fft: int, workers: int | None) -> NDArray[np.complex128]:
    return scipy.fft.rfft(x, n=n_fft, axis=-1, workers=workers)


def _full_lags(pairs: NDArray[np.float64], iu, ju, n_src: int) -> NDArray[np.float64]:
    """All lags ``(n_src, n_src, 2flen-1)`` from the ``i <= j`` pairs, using ``r_ji[k] = r_ij[-k]``."""
    full = np.empty((n_src, n_src, pairs.shape[-1]))
    full[iu, ju] = pairs
    full[ju, iu] = pairs[:, ::-1]
    return full


def _gram_spectra(lags: NDArray[np.float64], n_prod: int) -> NDArray[np.complex128]:
    """Spectra of the reversed lag vectors (``(..., n_prod // 2 + 1)``), for :func:`_gram_product`."""
    return scipy.fft.rfft(lags[..., ::-1], n=n_prod, axis=-1)


def _toeplitz_product(h: NDArray[np.complex128], v: NDArray[np.float64], flen: int, n_prod: int) -> NDArray[np.float64]:
    """``T v`` for one Toeplitz block per vector: ``h`` (broadcast against ``v``'s leading axes) from
    :func:`_gram_spectra` of the block's lags, ``v`` of shape (..., flen)."""
    ys = h * scipy.fft.rfft(v, n=n_prod, axis=-1)
    return scipy.fft.irfft(ys, n=n_prod, axis=-1)[..., flen - 1 : 2 * flen - 1]


def _gram_product(h: NDArray[np.complex128], v: NDArray[np.float64], flen: int, n_prod: int) -> NDArray[np.float64]:
    """``G v`` for filter coefficients ``v`` of shape (..., n_src, flen), ``h`` from :func:`_gram_spectra`.

    ``(G v)_i[a] = Σ_j Σ_b r_ij[b − a] v_j[b]``: a linear convolution of the reversed lags (length
    2·flen − 1) with ``v_j``, exact up to FFT rounding since ``n_prod >= 3·flen − 2``.
    """
    vs = scipy.fft.rfft(v, n=n_prod, axis=-1)
    ys = np.einsum("ijf,...jf->...if", h, vs)
    return scipy.fft.irfft(ys, n=n_prod, axis=-1)[..., flen - 1 : 2 * flen - 1]


def _row_norms(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norm of each ``x[k]`` (over all but the first axis), scaled against overflow."""
    x = x.reshape(x.shape[0], -1)
    scale = np.max(np.abs(x), axis=1)
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    return scale * np.sqrt(np.sum((x / safe) ** 2, axis=1))


def _frobenius(lags: NDArray[np.float64], flen: int) -> float:
    """Frobenius norm of the (block) Toeplitz matrix built from ``lags`` (last axis 2·flen − 1)."""
    weight = np.sqrt(flen - np.abs(np.arange(1 - flen, flen)))
    return float(_row_norms((weight * lags)[None])[0])


# ---------------------------------------------------------------------------------------------
# direct solves: structured (Schur, Levinson), checked, with a dense fallback

#: Largest accepted normwise backward error ||G c − d|| / (||G||_F ||c|| + ||d||) of a structured
#: (Schur or Levinson) solution. Measured on music, noise, brown noise, sparse bursts and pure
#: tones: ≤ 7e-16 (Levinson), ~1e-17 (Schur), ~3e-17 for a dense Cholesky solve. Above it the
#: system is solved again densely.
_BACKWARD_TOL = 1e-12


def _cholesky(g: NDArray[np.float64]):
    """Lower Cholesky factor of symmetric ``g`` (Fortran order), or None if not positive definite."""
    c, info = lapack.dpotrf(np.asfortranarray(g), lower=1, clean=0, overwrite_a=0)
    return c if info == 0 else None


def _solve(g: NDArray[np.float64], rhs: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact dense solution of ``g x = rhs`` (``rhs`` of shape (m,) or (m, k)), float64.

    Only the lower triangle of the symmetric ``g`` is read. Cholesky for a positive definite
    ``g``; otherwise LU with partial pivoting, then least squares for an exactly singular ``g``
    (mir_eval's solver and fallback).
    """
    factor = _cholesky(g)
    if factor is not None:
        x, info = lapack.dpotrs(factor, rhs, lower=1)
        if info == 0:
            return x
    full = np.tril(g) + np.tril(g, -1).T  # only the lower triangle of g is defined
    try:
        return np.linalg.solve(full, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(full, rhs, rcond=None)[0]


def _backward_ok(residual, c, rhs, norm) -> NDArray[np.bool_]:
    """Per right-hand side (first axis): finite and normwise backward error ≤ ``_BACKWARD_TOL``."""
    r = _row_norms(residual)
    return np.isfinite(r) & (r <= _BACKWARD_TOL * (norm * _row_norms(c) + _row_norms(rhs)))


def _own_solutions(auto, rhs, h, flen: int, n_prod: int):
    """Own-reference filters ``c`` (n_src, k, flen) with ``T_j c[j, m] = rhs[j, m]``, and ``T_j c``.

    ``T_j`` is the symmetric Toeplitz autocorrelation matrix of reference ``j``: ``auto`` (n_src,
    2flen−1) holds its lags −(flen−1)..flen−1, ``h`` their :func:`_gram_spectra`; ``rhs`` is
    (n_src, k, flen). Levinson–Durbin (``scipy.linalg.solve_toeplitz``, O(flen²)); a solution whose
    backward error exceeds ``_BACKWARD_TOL`` (or a singular leading minor) is redone densely
    (:func:`_solve`).
    """
    n_src, k = rhs.shape[:2]
    c = np.empty((n_src, k, flen))
    for j in range(n_src):
        try:
            c[j] = solve_toeplitz(auto[j, flen - 1 :], rhs[j].T, check_finite=False).T
        except np.linalg.LinAlgError:
            c[j] = np.nan
    tc = _toeplitz_product(h[:, None], c, flen, n_prod)
    norms = np.repeat([_frobenius(a, flen) for a in auto], k)
    rows = n_src * k
    bad = ~_backward_ok((tc - rhs).reshape(rows, flen), c.reshape(rows, flen), rhs.reshape(rows, flen), norms)
    for j, m in zip(*np.nonzero(bad.reshape(n_src, k))):
        c[j, m] = _solve(np.asfortranarray(_toeplitz_blocks(auto[j], flen)), rhs[j, m])
        tc[j, m] = _toeplitz_product(h[j], c[j, m], flen, n_prod)
    return c, tc


def _theta2(a0, a1, b0, b1, x0, x1, x2, x3):
    """Θᵀ (row-major, 16 values) of the J-unitary Θ, J = diag(1, 1, −1, −1), that maps the
    generator rows ``[a0 a1 b0 b1]`` and ``[x0 x1 x2 x3]`` to ``[* 0 0 0]`` and ``[* * 0 0]``;
    None if the leading 2×2 block of the Schur complement is not numerically positive definite.

    Givens rotations on columns (0, 1) and (2, 3), hyperbolic (0, 2), Givens (2, 3), hyperbolic
    (1, 2): :func:`_theta` for two sources, unrolled.
    """
    h = math.hypot(a0, a1)
    if not h > 0.0:
        return None
    c1 = a0 / h
    s1 = a1 / h
    g = math.hypot(b0, b1)
    if g > 0.0:
        c2 = b0 / g
        s2 = b1 / g
    else:
        c2, s2 = 1.0, 0.0
    t = g / h
    if not t < 1.0:
        return None
    ch = 1.0 / math.sqrt((1.0 - t) * (1.0 + t))
    sh = t * ch
    m00, m02 = ch * c1, -sh * c1
    m10, m12 = ch * s1, -sh * s1
    m20, m22 = -sh * c2, ch * c2
    m30, m32 = -sh * s2, ch * s2
    y1 = -s1 * x0 + c1 * x1
    y2 = m02 * x0 + m12 * x1 + m22 * x2 + m32 * x3
    y3 = -s2 * x2 + c2 * x3
    g3 = math.hypot(y2, y3)
    if g3 > 0.0:
        c3 = y2 / g3
        s3 = y3 / g3
    else:
        c3, s3 = 1.0, 0.0
    if y1 == 0.0:
        return None
    t2 = g3 / y1
    if not abs(t2) < 1.0:
        return None
    ch2 = 1.0 / math.sqrt((1.0 - t2) * (1.0 + t2))
    sh2 = t2 * ch2
    n20, n21, n22, n23 = m02 * c3, m12 * c3, m22 * c3 - s2 * s3, m32 * c3 + c2 * s3
    return (
        m00, m10, m20, m30,
        -ch2 * s1 - sh2 * n20, ch2 * c1 - sh2 * n21, -sh2 * n22, -sh2 * n23,
        sh2 * s1 + ch2 * n20, -sh2 * c1 + ch2 * n21, ch2 * n22, ch2 * n23,
        -m02 * s3, -m12 * s3, -m22 * s3 - s2 * c3, -m32 * s3 + c2 * c3,
    )  # fmt: skip


def _theta(lead: list, n_src: int):
    """Θᵀ (row-major, (2·n_src)² values) of the J-unitary Θ, J = diag(I, −I), that makes the
    leading generator rows lower triangular in the first n_src columns and zero in the last n_src;
    None on breakdown.

    ``lead[i][r]``: generator column ``i``, row ``r`` (r < n_src). Row by row: Givens rotations
    gather the row's positive part into its diagonal column and its negative part into column
    n_src, then one hyperbolic rotation zeroes the latter.
    """
    p = n_src
    n = 2 * p
    a = [list(row) for row in zip(*lead)]  # a[r][i]
    theta = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]  # theta[i][j] = Θ_ij

    def rotate(first_row, i, j, c, s, hyperbolic):
        for rows in (a[first_row:], theta):
            for row in rows:
                xi, xj = row[i], row[j]
                if hyperbolic:
                    row[i], row[j] = c * xi - s * xj, c * xj - s * xi
                else:
                    row[i], row[j] = c * xi + s * xj, c * xj - s * xi

    for r in range(p):
        for i, j in [(r, q) for q in range(r + 1, p)] + [(p, q) for q in range(p + 1, n)]:
            if a[r][j] != 0.0:
                norm = math.hypot(a[r][i], a[r][j])
                rotate(r, i, j, a[r][i] / norm, a[r][j] / norm, False)
        if a[r][r] == 0.0:
            return None
        t = a[r][p] / a[r][r]
        if not abs(t) < 1.0:
            return None
        if t != 0.0:
            ch = 1.0 / math.sqrt((1.0 - t) * (1.0 + t))
            rotate(r, r, p, ch, t * ch, True)
    return [x for col in zip(*theta) for x in col]


def _schur_cholesky(lags: NDArray[np.float64], flen: int) -> list:
    """Lower Cholesky factors (Fortran order; strict upper triangle undefined) of the Gram matrices
    of all delayed references of a group of items, in *interleaved* order, by the generalized
    Schur algorithm: ``lags`` is (n_items, n_src, n_src, 2flen−1); one factor per item, None where
    the algorithm breaks down (numerically not positive definite).

    In interleaved order, ``G[(a, i), (b, j)] = r_ij[b − a]`` (row ``a·n_src + i``), ``G`` is block
    Toeplitz with ``n_src × n_src`` blocks, so ``G − F G Fᵀ`` (``F``: shift down by one block) has
    rank 2·n_src: ``U J Uᵀ`` with ``U = [C L0⁻ᵀ, (C − E R(0)) L0⁻ᵀ]`` (``C`` the first block column,
    ``L0 L0ᵀ = R(0)``, ``E`` its first n_src unit columns, ``J = diag(I, −I)``). Each step rotates
    the leading block of ``U`` into proper form with a J-unitary Θ (:func:`_theta`), takes the
    first n_src columns as the next block column of the factor and shifts them down one block:
    flen steps of O(n_src² · size) work instead of an O(size³) factorisation. The items of the
    group share each step's numpy calls (the cost per step is mostly call overhead).
    """
    n_items, p = lags.shape[:2]
    n = p * flen
    width = n + p
    # Generator columns are stored as rows of two ping-pong buffers: positive rows 0..p-1 start at
    # column p, negative rows p..2p-1 are written one block (p columns) to the left, so that the
    # shift of the positive part costs nothing and each step is a single matmul.
    bufs = (np.empty((n_items, 2 * p, width)), np.empty((n_items, 2 * p, width)))
    factor_t = np.empty((n_items, n, n))  # transposed factors, C order: row k = column k of the factor
    ok = [True] * n_items
    first = lags[:, :, :, flen - 1 :: -1].transpose(0, 3, 1, 2).reshape(n_items, n, p)  # C[(a, i), j] = r_ij[-a]
    for b in range(n_items):
        l0, info = lapack.dpotrf(first[b, :p], lower=1, clean=1)
        u, info2 = lapack.dtrtrs(l0, first[b].T, lower=1) if info == 0 else (None, 1)
        if info2 != 0 or not np.all(np.isfinite(u)):
            ok[b] = False
            u = np.eye(p, n)  # placeholder generator, result discarded
        factor_t[b, :p] = u
        bufs[0][b, :p, p:n] = u[:, : n - p]
        bufs[0][b, p:, p:n] = u[:, p:]
    item = bufs[0].itemsize
    outs = tuple(
        as_strided(
            buf[:, :, p:],
            shape=(n_items, 2, p, n),
            strides=(buf.strides[0], (p * width - p) * item, width * item, item),
        )
        for buf in bufs
    )
    identity = tuple(np.eye(2 * p).T.ravel())
    theta_t = np.empty((n_items, 2, p, 2 * p))
    theta_flat = theta_t.reshape(-1)
    cur = 0
    for k in range(1, flen):
        m = n - k * p
        gen = bufs[cur][:, :, p : p + m]
        lead = gen[:, :, :p].tolist()
        th = ()
        for b in range(n_items):
            t = None
            if ok[b]:
                q = lead[b]
                if p == 2:
                    t = _theta2(q[0][0], q[1][0], q[2][0], q[3][0], q[0][1], q[1][1], q[2][1], q[3][1])
                else:
                    t = _theta(q, p)
                ok[b] = t is not None
            th += identity if t is None else tuple(t)
        theta_flat[:] = th
        cur = 1 - cur
        np.matmul(theta_t, gen[:, None], out=outs[cur][..., :m])
        factor_t[:, k * p : (k + 1) * p, k * p :] = bufs[cur][:, :p, p : p + m]
    return [factor_t[b].T if ok[b] else None for b in range(n_items)]


def _joint_solution(lags: NDArray[np.float64], d: NDArray[np.float64], flen: int, factor) -> NDArray[np.float64]:
    """Filters ``c[j, i, a]`` of the projection of estimate ``j`` on all delayed references.

    ``d[i, j, a] = Σ_m s_i[m − a] e_j[m]``. With ``factor`` (from :func:`_schur_cholesky`) two
    triangular solves per estimate (BLAS ``dtrsv``: one pass over the factor each, faster than
    ``dpotrs``, which packs it first; docs/metrics.md); without (breakdown, or a rejected structured
    solution) the dense Gram matrix and :func:`_solve`.
    """
    p = lags.shape[0]
    n = p * flen
    if factor is not None:
        rhs = np.ascontiguousarray(d.transpose(1, 2, 0)).reshape(p, n)  # row j, column (a, i)
        c = np.empty((p, n))
        for j in range(p):
            c[j] = blas.dtrsv(factor, blas.dtrsv(factor, rhs[j], lower=1), lower=1, trans=1)
        if np.all(np.isfinite(c)):
            return np.ascontiguousarray(c.reshape(p, flen, p).transpose(0, 2, 1))
    g = np.empty((n, n), order="F")
    for i in range(p):
        for j in range(p):
            g[i * flen : (i + 1) * flen, j * flen : (j + 1) * flen] = _toeplitz_blocks(lags[i, j], flen)
    c = _solve(g, np.asfortranarray(d.transpose(0, 2, 1).reshape(n, p)))  # row (i, a), column j
    return np.ascontiguousarray(c.reshape(p, flen, p).transpose(2, 0, 1))


def _db(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    """10·log10(num/den) in dB; +inf where ``den <= 0`` (a residual at or below rounding)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.inf)
    ok = den > 0
    with np.errstate(divide="ignore"):
        out[ok] = 10.0 * np.log10(num[ok] / den[ok])
    return out


# ---------------------------------------------------------------------------------------------
# BSS Eval v3 sources


def bss_eval_sources_batch(
    reference: ArrayLike, estimate: ArrayLike, *, workers: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """BSS Eval v3 SDR, SIR and SAR (dB) of many items with the same source count and length.

    Parameters
    ----------
    reference, estimate : array_like, shape (n_items, n_sources, n_samples)
        True and estimated sources (any real dtype; computed in float64). Estimate ``j`` is scored
        against reference ``j`` (no permutation search).
    workers : int, optional
        Threads for the FFTs (``scipy.fft`` ``workers``; default 1).

    Returns
    -------
    sdr, sir, sar : ndarray of float64, shape (n_items, n_sources)
        Exactly what ``bss_eval_sources`` returns for each item (it calls this function).

    Raises
    ------
    MetricInputError
        See the module docstring (shape mismatch, non-finite values, silent source).
    """
    ref, est = _check_pair(reference, estimate, 3)
    return _bss_eval_checked(ref, est, workers)


def _score_item(lags: NDArray[np.float64], d: NDArray[np.float64], energy: NDArray[np.float64], flen: int, factor):
    """SDR, SIR, SAR (dB, each (n_src,)) of one item from its correlations.

    ``lags``: (n_src, n_src, 2flen−1) reference/reference lags; ``d[i, j, a] = Σ_m s_i[m − a] e_j[m]``;
    ``energy[j] = ||e_j||²``; ``factor``: the item's :func:`_schur_cholesky` factor (or None).
    """
    p = lags.shape[0]
    n_prod = _product_fft_length(flen)
    src = np.arange(p)
    h = _gram_spectra(lags, n_prod)
    d_own = d[src, src]  # (j, a)
    c_own, tc_own = (x[:, 0] for x in _own_solutions(lags[src, src], d_own[:, None], h[src, src], flen, n_prod))
    q_own = np.sum(c_own * tc_own, axis=-1)
    res_own = energy - 2.0 * np.sum(c_own * d_own, axis=-1) + q_own
    if p == 1:  # P = P_1: no interference, SAR = SDR
        return _db(q_own, res_own), np.full(1, np.inf), _db(q_own, res_own)
    d_all = d.transpose(1, 0, 2)  # (j, i, a)
    own = np.zeros((p, p, flen))
    own[src, src] = c_own
    for structured in (factor is not None, False):
        c_all = _joint_solution(lags, d, flen, factor if structured else None)
        delta = c_all - own  # P e_j − P_j e_j as filter coefficients
        g_all, g_delta = np.split(_gram_product(h, np.concatenate((c_all, delta)), flen, n_prod), 2)
        if not structured or np.all(_backward_ok(g_all - d_all, c_all, d_all, _frobenius(lags, flen))):
            break
    q_all = np.sum(c_all * g_all, axis=(1, 2))
    res_all = energy - 2.0 * np.sum(c_all * d_all, axis=(1, 2)) + q_all
    interf = np.sum(delta * g_delta, axis=(1, 2))
    return _db(q_own, res_own), _db(q_own, interf), _db(q_all, res_all)


def _bss_eval_checked(ref: NDArray[np.float64], est: NDArray[np.float64], workers: int | None):
    """:func:`bss_eval_sources_batch` on validated float64 (n_items, n_sources, n_samples) arrays."""
    n_items, n_src, n_samples = ref.shape
    flen = FILTER_LENGTH
    n_fft = _fft_length(n_samples, flen)
    iu, ju = np.triu_indices(n_src)
    sdr = np.empty((n_items, n_src))
    sir = np.empty((n_items, n_src))
    sar = np.empty((n_items, n_src))
    energy = np.sum(est * est, axis=-1)
    for group in range(0, n_items, _GROUP_ITEMS):
        size = min(_GROUP_ITEMS, n_items - group)
        lags = np.empty((size, n_src, n_src, 2 * flen - 1))
        d = np.empty((size, n_src, n_src, flen))
        for start in range(group, group + size, _CHUNK_ITEMS):
            stop = min(start + _CHUNK_ITEMS, group + size)
            fr = _spectra(ref[start:stop], n_fft, workers)
            fe = _spectra(est[start:stop], n_fft, workers)
            # reference/reference correlations r_ij[k] = Σ_m s_i[m+k] s_j[m], i <= j
            rr = _lags(fr[:, iu] * np.conj(fr[:, ju]), n_fft, flen, workers)
            # reference/estimate correlations at lags −a: d[i, j, a] = Σ_m s_i[m−a] e_j[m]
            re = _lags(fr[:, :, None, :] * np.conj(fe[:, None, :, :]), n_fft, flen, workers)
            d[start - group : stop - group] = re[..., flen - 1 :: -1]
            for b in range(stop - start):
                lags[start - group + b] = _full_lags(rr[b], iu, ju, n_src)
            del fr, fe
        factors = _schur_cholesky(lags, flen) if n_src > 1 else [None] * size
        for b in range(size):
            item = group + b
            sdr[item], sir[item], sar[item] = _score_item(lags[b], d[b], energy[item], flen, factors[b])
        del factors
    return sdr, sir, sar


def bss_eval_sources(
    reference: ArrayLike, estimate: ArrayLike, *, workers: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """BSS Eval v3 SDR, SIR and SAR (dB) of one item, as mir_eval with ``compute_permutation=False``.

    Parameters
    ----------
    reference, estimate : array_like, shape (n_sources, n_samples)
        True and estimated sources, estimate ``j`` scored against reference ``j``. A 1-D array is
        one source.
    workers : int, optional
        Threads for the FFTs (default 1).

    Returns
    -------
    sdr, sir, sar : ndarray of float64, shape (n_sources,)
        In dB; +inf where the residual energy is ≤ 0 (see the module docstring).

    Raises
    ------
    MetricInputError
        Shape mismatch, non-finite values (:class:`NonFiniteInputError`) or an all-zero source
        (:class:`SilentSourceError`).
    """
    ref, est = _check_pair(reference, estimate, 2)
    sdr, sir, sar = _bss_eval_checked(ref[None], est[None], workers)
    return sdr[0], sir[0], sar[0]


# ---------------------------------------------------------------------------------------------
# SDR only (cheap path) and the mixture floor


def _sdr_many(ref: NDArray[np.float64], ests: NDArray[np.float64], workers: int | None) -> NDArray[np.float64]:
    """SDR of ``ests[..., k, j, :]`` against ``ref[..., j, :]`` (own-reference projection only).

    ref: (n_items, n_src, n); ests: (n_items, k, n_src, n). Returns (n_items, k, n_src). The
    512-tap own-reference systems (Toeplitz) are solved by :func:`_own_solutions`.
    """
    n_items, n_src, n_samples = ref.shape
    k = ests.shape[1]
    flen = FILTER_LENGTH
    n_fft = _fft_length(n_samples, flen)
    n_prod = _product_fft_length(flen)
    out = np.empty((n_items, k, n_src))
    energy = np.sum(ests * ests, axis=-1)  # (items, k, src)
    for start in range(0, n_items, _CHUNK_ITEMS):
        stop = min(start + _CHUNK_ITEMS, n_items)
        fr = _spectra(ref[start:stop], n_fft, workers)
        fe = _spectra(ests[start:stop], n_fft, workers)
        auto = _lags(fr * np.conj(fr), n_fft, flen, workers)  # (b, src, 2flen-1)
        cross = _lags(fr[:, None] * np.conj(fe), n_fft, flen, workers)[..., flen - 1 :: -1]  # (b, k, src, flen)
        h = _gram_spectra(auto, n_prod)
        del fr, fe
        for b in range(stop - start):
            item = start + b
            d = cross[b].transpose(1, 0, 2)  # (src, k, flen)
            c, tc = _own_solutions(auto[b], d, h[b], flen, n_prod)
            q = np.sum(c * tc, axis=-1)  # (src, k)
            out[item] = _db(q, energy[item].T - 2.0 * np.sum(c * d, axis=-1) + q).T
    return out


def sdr_sources_batch(reference: ArrayLike, estimate: ArrayLike, *, workers: int | None = None) -> NDArray[np.float64]:
    """BSS Eval v3 SDR only (dB), shape (n_items, n_sources), from (n_items, n_sources, n_samples) inputs.

    Equal to ``bss_eval_sources_batch(...)[0]`` to rounding (the two paths batch their FFTs
    differently, and tonal references amplify the difference; docs/metrics.md) at a fraction of
    the cost: the SDR of source ``j`` needs only reference ``j`` (512×512 Toeplitz solves, no
    joint one).
    """
    ref, est = _check_pair(reference, estimate, 3)
    return _sdr_many(ref, est[:, None], workers)[:, 0]


def sdr_sources(reference: ArrayLike, estimate: ArrayLike, *, workers: int | None = None) -> NDArray[np.float64]:
    """BSS Eval v3 SDR only (dB), shape (n_sources,), from (n_sources, n_samples) inputs.

    Equal to ``bss_eval_sources(reference, estimate)[0]`` to rounding (docs/metrics.md), cheaper.
    """
    ref, est = _check_pair(reference, estimate, 2)
    return _sdr_many(ref[None], est[None, None], workers)[0, 0]


def mixture_sdr(reference: ArrayLike, mixture: ArrayLike, *, workers: int | None = None) -> NDArray[np.float64]:
    """SDR (dB) of the mixture used as every source's estimate: the NSDR floor, shape (n_sources,).

    This is mir_eval's ``bss_eval_sources(reference, [mixture] * n_sources, False)[0]`` (as in the
    Sound of Pixels evaluation), by the SDR-only path. It is a pure function of
    ``(reference, mixture)``: callers may cache it per item and pass it to :func:`nsdr`.

    Parameters
    ----------
    reference : array_like, shape (n_sources, n_samples)
    mixture : array_like, shape (n_samples,)
    """
    ref = _as_sources(reference, "reference", 2)
    mix = _check_mixture(mixture, ref)
    ests = np.broadcast_to(mix, ref.shape)[None, None]
    return _sdr_many(ref[None], ests, workers)[0, 0]


def nsdr(
    reference: ArrayLike,
    estimate: ArrayLike,
    mixture: ArrayLike,
    *,
    mixture_sdr_db: ArrayLike | None = None,
    workers: int | None = None,
) -> NDArray[np.float64]:
    """Normalised SDR (dB): SDR(estimate) − SDR(mixture used as every estimate), shape (n_sources,).

    The Sound of Pixels NSDR (Zhao et al. 2018; their ``calc_metrics``): both SDRs are BSS Eval
    v3 (mir_eval, ``compute_permutation=False``). The NSDR of the mixture itself is 0.

    Parameters
    ----------
    reference, estimate : array_like, shape (n_sources, n_samples)
    mixture : array_like, shape (n_samples,)
    mixture_sdr_db : array_like, shape (n_sources,), optional
        A cached :func:`mixture_sdr` of this ``(reference, mixture)``; computed when omitted
        (in the same pass as the estimate's SDR, sharing the references' FFTs and correlations).
    """
    ref, est = _check_pair(reference, estimate, 2)
    mix = _check_mixture(mixture, ref)
    if mixture_sdr_db is not None:
        floor = np.asarray(mixture_sdr_db, dtype=np.float64)
        if floor.shape != (ref.shape[0],):
            raise MetricInputError(f"mixture_sdr_db must have shape ({ref.shape[0]},), got {floor.shape}")
        return _sdr_many(ref[None], est[None, None], workers)[0, 0] - floor
    both = np.stack([est, np.broadcast_to(mix, ref.shape)])[None]  # (1, 2, src, n)
    sdrs = _sdr_many(ref[None], both, workers)[0]
    return sdrs[0] - sdrs[1]


# ---------------------------------------------------------------------------------------------
# SI-SDR


def si_sdr(reference: ArrayLike, estimate: ArrayLike, *, zero_mean: bool = True) -> NDArray[np.float64]:
    """Scale-invariant SDR (dB) of each source (Le Roux, Wisdom, Erdogan & Hershey, ICASSP 2019).

    SI-SDR = 10·log10(||α s||² / ||α s − ŝ||²) with α = ⟨ŝ, s⟩ / ||s||², for reference ``s`` and
    estimate ``ŝ``. With ``zero_mean=True`` (default, the paper's convention: "both signals are
    assumed zero-mean") each signal's mean is subtracted first; ``zero_mean=False`` matches e.g.
    torchmetrics' default. +inf where the residual is exactly zero.

    Parameters
    ----------
    reference, estimate : array_like, shape (..., n_sources, n_samples) or (n_samples,)

    Returns
    -------
    ndarray of float64, shape (..., n_sources) (a scalar array for 1-D inputs)

    Raises
    ------
    MetricInputError
        Shape mismatch, non-finite values, or an all-zero (after mean removal: constant)
        reference or estimate.
    """
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape:
        raise MetricInputError(f"reference and estimate shapes differ: {ref.shape} vs {est.shape}")
    if ref.ndim == 0 or ref.shape[-1] == 0:
        raise MetricInputError(f"inputs must have shape (..., n_samples) with n_samples > 0, got {ref.shape}")
    for name, x in (("reference", ref), ("estimate", est)):
        if not np.all(np.isfinite(x)):
            raise NonFiniteInputError(f"{name} holds NaN or inf values")
    if zero_mean:
        ref = ref - ref.mean(axis=-1, keepdims=True)
        est = est - est.mean(axis=-1, keepdims=True)
    for name, x in (("reference", ref), ("estimate", est)):
        silent = ~np.any(x != 0, axis=-1)
        if np.any(silent):
            raise SilentSourceError(
                f"{name} source(s) {np.argwhere(np.atleast_1d(silent)).tolist()} are all zeros"
                f"{' after mean removal' if zero_mean else ''}: SI-SDR is undefined",
                name,
                np.argwhere(np.atleast_1d(silent)).tolist(),
            )
    alpha = np.sum(est * ref, axis=-1, keepdims=True) / np.sum(ref * ref, axis=-1, keepdims=True)
    target = alpha * ref
    return _db(np.sum(target * target, axis=-1), np.sum((est - target) ** 2, axis=-1))


def si_sdr_improvement(
    reference: ArrayLike, estimate: ArrayLike, mixture: ArrayLike, *, zero_mean: bool = True
) -> NDArray[np.float64]:
    """SI-SDRi (dB): SI-SDR(estimate) − SI-SDR(mixture used as every source's estimate).

    Parameters
    ----------
    reference, estimate : array_like, shape (n_sources, n_samples)
    mixture : array_like, shape (n_samples,)
    """
    ref = np.asarray(reference, dtype=np.float64)
    mix = np.asarray(mixture, dtype=np.float64)
    if mix.shape != ref.shape[-1:]:
        raise MetricInputError(f"mixture must have shape {ref.shape[-1:]}, got {mix.shape}")
    return si_sdr(ref, estimate, zero_mean=zero_mean) - si_sdr(ref, np.broadcast_to(mix, ref.shape), zero_mean=zero_mean)
