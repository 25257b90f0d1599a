"""The reference NMF baseline: per-instrument dictionaries, label-informed separation, no pixels.

The classic audio-only method that The Sound of Pixels compares against, rerunnable on a CPU
(timings: docs/baselines.md). Everything here is a pure function of its inputs; audio is mono
float32 at 11025 Hz.

- Training (`learn_dictionaries`, `train_nmf`): for every instrument, the magnitude STFT frames
  of its **train-split solo** videos (near-silent frames dropped) are factorised as
  ``V ≈ W H`` with multiplicative updates minimising the KL divergence on magnitudes or the
  Itakura-Saito divergence on powers. ``W`` ``(n_freq, rank)``, columns of unit sum, is the
  instrument's dictionary; the activations ``H`` are thrown away.
- Separation (`separate`): the dictionaries of the instruments **named by the labels** are
  concatenated and held fixed; only the activations are estimated on the mixture. Source ``k``'s
  model magnitude ``M_k = W_k H_k`` gives the soft mask ``M_k^p / sum_j M_j^p`` (``p`` =
  ``mask_power``: 1 ratio mask, 2 Wiener filter) applied to the complex mixture STFT, inverted to
  exactly the mixture's length. The instrument labels are therefore an input of this method;
  the video frames are not.

STFT: `musicbench.stft` with a Hann window of ``n_fft`` samples (1022 as in The Sound of Pixels: 512
frequency bins) and hop ``hop`` (256), centred frames, in float64: the transform of the oracle masks.

Artifact (`save_nmf` / `load_nmf`): ``nmf.npz`` (dictionaries float32 ``(n_instruments, n_freq,
rank)``, instrument names, the config as JSON, sample rate, format version) written without any
timestamp, so the same params and data give byte-identical files, plus ``nmf.json`` beside it
(config, instruments, seconds of training audio, frames used, training video ids, npz sha256).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from musicbench.config import AudioConfig, check_fields, config_error, config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_path, atomic_write_text, ensure_writable_dir, resolve_in_root
from musicbench.stft import hann_window, istft, stft

FORMAT_VERSION = 1
EPS = 1e-12                 # guards every division and logarithm of the updates
IS_FLOOR = 1e-10            # IS: powers are floored at this fraction of the peak (log 0 is undefined)
SILENT_FRAME_DB = -60.0     # training frames this far below the video's loudest frame are dropped
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamp: the npz bytes depend on content only


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class NMFConfig:
    """params.yaml ``nmf`` (plus ``audio.sample_rate``): the NMF baseline's hyperparameters.

    sample_rate: Hz of every signal (`AudioConfig.sample_rate`).
    rank: dictionary atoms (NMF components) per instrument.
    iterations: multiplicative-update iterations when learning a dictionary.
    divergence: ``kl`` (generalised Kullback-Leibler on STFT magnitudes) or ``is``
        (Itakura-Saito on STFT powers).
    n_fft: STFT window length in samples (even; ``n_fft // 2 + 1`` frequency bins).
    hop: STFT hop in samples (1 .. n_fft).
    seed: seeds every random initialisation (per instrument, independent of instrument order).
    train_seconds_per_video: at most this many seconds of (non-silent) STFT frames per training
        video, evenly spaced over the video; 0 = every frame.
    separation_iterations: activation-update iterations on each mixture.
    mask_power: exponent ``p`` of the soft masks ``M_k^p / sum_j M_j^p`` on modelled magnitudes
        (1 = ratio mask, 2 = Wiener filter), > 0.
    """

    sample_rate: int = knob(positive=True, key="audio.sample_rate")
    rank: int = knob(96, positive=True)
    iterations: int = knob(150, positive=True)
    divergence: Literal["kl", "is"] = knob("kl", parse=_lower)
    n_fft: int = knob(1022, positive=True)
    hop: int = knob(256, positive=True)
    seed: int = knob(1234, non_negative=True)
    train_seconds_per_video: float = knob(7.0, non_negative=True)
    separation_iterations: int = knob(100, positive=True)
    mask_power: float = knob(2.0, positive=True)

    def __post_init__(self) -> None:
        check_fields(self, "nmf")  # 2 and 2.0: one config, one artifact
        if self.n_fft < 16 or self.n_fft % 2:
            raise config_error("nmf.n_fft", "must be an even number of samples >= 16 (1022 = the Sound of Pixels STFT)",
                               self.n_fft)
        if self.hop > self.n_fft:
            raise config_error("nmf.hop", f"must be at most nmf.n_fft ({self.n_fft}) samples (256 = the Sound of Pixels STFT)",
                               self.hop)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "NMFConfig":
        """Build from a params.yaml mapping: section ``nmf`` (missing keys take the defaults above;
        unknown keys are an error) and the `AudioConfig`'s sample rate."""
        return config_from_params(cls, params, "nmf", sample_rate=AudioConfig.from_params(params).sample_rate)

    @property
    def n_freq(self) -> int:
        """Frequency bins of the STFT: ``n_fft // 2 + 1`` (512 for 1022)."""
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain JSON-able dict (field order)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# STFT


def _stft(audio: np.ndarray, config: NMFConfig):
    """Complex `musicbench.stft.stft` of mono `audio` ``(n_samples,)`` with ``config.n_fft`` and
    ``config.hop``: torch complex128 ``(n_freq, 1 + n_samples // hop)``."""
    return stft(np.reshape(audio, -1), hann_window(config.n_fft), config.hop)


def nonnegative_spectrogram(spectrum, config: NMFConfig):
    """What NMF factorises, from a complex STFT: magnitudes ``|X|`` for KL, powers ``|X|^2`` for
    IS (floored at 1e-10 of their peak: IS needs positive values); torch float32, same shape."""
    import torch

    magnitude = spectrum.abs()
    if config.divergence == "kl":
        return magnitude.to(torch.float32)
    power = magnitude.square()
    return power.clamp_min(float(power.max()) * IS_FLOOR + EPS).to(torch.float32)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the previous setting.

    NMF's matrix products are small: threads gain little and lose a lot when the cores are busy
    (OpenMP threads spin-wait; measured: docs/baselines.md). One thread
    also keeps the result's bits independent of the machine's core count.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------
# NMF with multiplicative updates


def divergence(v, v_hat, kind: str) -> float:
    """Mean per-element divergence D(v | v_hat) of nonnegative arrays of one shape (torch or numpy).

    kind ``kl``: ``v log(v / v_hat) - v + v_hat`` (units of v); ``is``: ``v / v_hat - log(v / v_hat) - 1``
    (unitless, scale invariant). Both are 0 for a perfect fit. Computed in float64.
    """
    import torch

    v, v_hat = torch.as_tensor(v).to(torch.float64), torch.as_tensor(v_hat).to(torch.float64).clamp_min(EPS)
    ratio = v.clamp_min(EPS) / v_hat
    if kind == "kl":
        return float((v * torch.log(ratio) - v + v_hat).mean())
    if kind == "is":
        return float((ratio - torch.log(ratio) - 1).mean())
    raise MusicbenchError(f"unknown NMF divergence {kind!r}: choose kl or is")


def _update_activations(v, w, h, kind: str) -> None:
    """One multiplicative update of H, in place, for V ≈ W H (KL or IS)."""
    wh = (w @ h).clamp_min(EPS)
    if kind == "kl":
        h.mul_((w.T @ (v / wh)) / w.sum(dim=0).clamp_min(EPS)[:, None])
    else:
        h.mul_((w.T @ (v / wh.square())) / (w.T @ wh.reciprocal()).clamp_min(EPS))


def _update_dictionary(v, w, h, kind: str) -> None:
    """One multiplicative update of W, in place; then W's columns are rescaled to unit sum and H's
    rows by the inverse factors, which leaves W H unchanged."""
    wh = (w @ h).clamp_min(EPS)
    if kind == "kl":
        w.mul_(((v / wh) @ h.T) / h.sum(dim=1).clamp_min(EPS)[None, :])
    else:
        w.mul_(((v / wh.square()) @ h.T) / (wh.reciprocal() @ h.T).clamp_min(EPS))
    norms = w.sum(dim=0).clamp_min(EPS)
    w.div_(norms[None, :])
    h.mul_(norms[:, None])


def _instrument_rng(seed: int, instrument: str) -> np.random.Generator:
    """A generator seeded by (seed, instrument name): independent of the order of instruments."""
    key = int.from_bytes(hashlib.sha256(instrument.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))


def nmf(v, rank: int, iterations: int, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Factorise nonnegative ``v`` ``(n_freq, n_frames)`` as W ``(n_freq, rank)`` @ H ``(rank, n_frames)``.

    `iterations` rounds of multiplicative updates of H then W (Lee & Seung for ``kl``, Févotte et
    al. for ``is``), float32 on one thread with EPS guards. W and H start uniform in [0.5, 1.5)
    drawn from `rng` (W's columns of unit sum, H scaled so that W H matches the mean of v).
    Returns float32 numpy (W with columns of unit sum, H).
    """
    import torch

    with single_thread():
        v_t = torch.as_tensor(np.asarray(v, dtype=np.float32))
        n_freq, n_frames = v_t.shape
        w = rng.uniform(0.5, 1.5, size=(n_freq, rank))
        w /= w.sum(axis=0, keepdims=True)
        scale = float(v_t.to(torch.float64).mean()) * n_freq / rank + EPS
        w = torch.as_tensor(w.astype(np.float32))
        h = torch.as_tensor((rng.uniform(0.5, 1.5, size=(rank, n_frames)) * scale).astype(np.float32))
        for _ in range(int(iterations)):
            _update_activations(v_t, w, h, kind)
            _update_dictionary(v_t, w, h, kind)
        return w.numpy(), h.numpy()


def fit_activations(v, w, iterations: int, kind: str):
    """Activations H ``(n_atoms, n_frames)`` of the fixed dictionary ``w`` ``(n_freq, n_atoms)`` for ``v``
    ``(n_freq, n_frames)``: torch float32.

    Deterministic: H starts constant at the level where W H matches the mean of v, then
    `iterations` multiplicative updates of H alone (float32, one thread).
    """
    import torch

    with single_thread():
        v = torch.as_tensor(v).to(torch.float32)
        w = torch.as_tensor(w).to(torch.float32)
        n_freq, n_atoms = w.shape
        column_mean = max(float(w.to(torch.float64).sum(dim=0).mean()) / n_freq, EPS)
        level = float(v.to(torch.float64).mean()) / column_mean / n_atoms + EPS
        h = torch.full((n_atoms, v.shape[1]), level, dtype=torch.float32)
        for _ in range(int(iterations)):
            _update_activations(v, w, h, kind)
        return h


def training_frames(audio: np.ndarray, config: NMFConfig) -> np.ndarray:
    """The STFT frames of one training video that NMF learns from: float32 ``(n_freq, n_kept)``.

    Magnitudes (KL) or powers (IS), see `nonnegative_spectrogram`; frames more than 60 dB below
    the video's loudest frame are dropped (silence teaches nothing); then at most
    ``train_seconds_per_video`` seconds of frames are kept, evenly spaced over the video.
    """
    with single_thread():
        spectrum = _stft(audio, config)
    energy = spectrum.abs().square().sum(dim=0).numpy()
    if energy.size == 0 or energy.max() <= 0:
        return np.zeros((config.n_freq, 0), dtype=np.float32)
    keep = np.flatnonzero(energy >= energy.max() * 10 ** (SILENT_FRAME_DB / 10))
    if config.train_seconds_per_video > 0:
        limit = max(1, int(round(config.train_seconds_per_video * config.sample_rate / config.hop)))
        if keep.size > limit:
            keep = keep[np.linspace(0, keep.size - 1, limit).round().astype(np.int64)]
    return nonnegative_spectrogram(spectrum, config).numpy()[:, keep]


def learn_dictionary(clips: Sequence[np.ndarray], instrument: str, config: NMFConfig) -> tuple[np.ndarray, int]:
    """The dictionary of one instrument from its solo training audio: (W, frames used).

    clips: mono float32 audio ``(n_samples,)`` at ``config.sample_rate`` Hz. The `training_frames`
    of all clips are factorised together by `nmf` (``rank``, ``iterations``, ``divergence``, a
    generator seeded by ``seed`` and the instrument's name). W is float32 ``(n_freq, rank)`` with
    columns of unit sum. Raises MusicbenchError when no clip has a sounding frame.
    """
    frames = [training_frames(audio, config) for audio in clips]
    v = np.concatenate(frames, axis=1) if frames else np.zeros((config.n_freq, 0), dtype=np.float32)
    if v.shape[1] == 0:
        raise MusicbenchError(f"NMF: instrument {instrument!r} has no sounding training audio; "
                              "check its train-split solo videos")
    w, _ = nmf(v, config.rank, config.iterations, config.divergence, _instrument_rng(config.seed, instrument))
    return w, int(v.shape[1])


def learn_dictionaries(
    clips: Mapping[str, Sequence[np.ndarray]], config: NMFConfig, advance: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """One dictionary per instrument from its solo training audio (see `learn_dictionary`).

    clips: ``{instrument: [mono float32 audio (n_samples,), ...]}`` at ``config.sample_rate`` Hz.
    Returns ``{instrument: W}``, W float32 ``(n_freq, rank)`` with columns of unit sum, in sorted
    instrument order; each W depends only on its own clips, the config and the instrument's name.
    `advance(1)` is called after each instrument.
    """
    dictionaries = {}
    for instrument in sorted(clips):
        dictionaries[instrument], _ = learn_dictionary(clips[instrument], instrument, config)
        if advance is not None:
            advance(1)
    return dictionaries


def reconstruction_divergence(audio: np.ndarray, dictionary: np.ndarray, config: NMFConfig) -> float:
    """How well a fixed `dictionary` ``(n_freq, rank)`` explains mono `audio`: the mean `divergence`
    (``config.divergence``) between the audio's spectrogram and W H, with H fitted by
    ``separation_iterations`` updates. Lower is better; compare dictionaries on the same audio."""
    v = nonnegative_spectrogram(_stft(audio, config), config)
    w = np.asarray(dictionary, dtype=np.float32)
    h = fit_activations(v, w, config.separation_iterations, config.divergence)
    return divergence(v, single_product(w, h), config.divergence)


def single_product(w, h):
    """W @ H as torch float32 (on one thread)."""
    import torch

    with single_thread():
        return torch.as_tensor(w).to(torch.float32) @ torch.as_tensor(h).to(torch.float32)


def separate(
    mixture: np.ndarray, labels: Sequence[str], dictionaries: Mapping[str, np.ndarray], config: NMFConfig,
) -> np.ndarray:
    """Separate a mixture into one estimate per label: float32 ``(len(labels), n_samples)``.

    mixture: mono float32 ``(n_samples,)`` at ``config.sample_rate`` Hz; labels: the instrument of
    each source (from its video's label: this method uses labels, not pixels); dictionaries:
    ``{instrument: W (n_freq, rank)}``. The dictionaries of the labelled instruments are held fixed
    and their activations fitted to the mixture (``separation_iterations`` updates); source k gets
    the soft mask ``M_k^p / sum_j M_j^p`` (M_k = W_k H_k as a magnitude, p = ``mask_power``) of the
    mixture STFT, inverted to exactly n_samples. Sources labelled with the same instrument share
    its estimate equally. The estimates sum to the mixture up to STFT round-off. Raises
    MusicbenchError for a label without a dictionary.
    """
    import torch

    mixture = np.asarray(mixture, dtype=np.float32).reshape(-1)
    labels = [str(label) for label in labels]
    if not labels:
        raise MusicbenchError("NMF separate: no labels given; one instrument label per source is needed")
    missing = sorted({label for label in labels if label not in dictionaries})
    if missing:
        raise MusicbenchError(
            f"NMF: no dictionary for instrument(s) {', '.join(missing)} (the checkpoint has "
            f"{', '.join(sorted(dictionaries)) or 'none'}); retrain with train-split solo videos of them"
        )
    unique = sorted(set(labels))
    blocks = [np.asarray(dictionaries[name], dtype=np.float32) for name in unique]
    for name, block in zip(unique, blocks):
        if block.ndim != 2 or block.shape[0] != config.n_freq:
            raise MusicbenchError(f"NMF: the dictionary of {name!r} has shape {block.shape}, "
                                  f"expected ({config.n_freq}, rank) for n_fft {config.n_fft}")
    with single_thread():
        spectrum = _stft(mixture, config)
        v = nonnegative_spectrogram(spectrum, config)
        h = fit_activations(v, np.concatenate(blocks, axis=1), config.separation_iterations, config.divergence)
        models, start = [], 0
        for block in blocks:
            model = (torch.as_tensor(block) @ h[start:start + block.shape[1]]).to(torch.float64)
            models.append(model if config.divergence == "kl" else model.sqrt())  # modelled magnitudes
            start += block.shape[1]
        powered = torch.stack(models).clamp_min(EPS) ** config.mask_power
        masks = powered / powered.sum(dim=0, keepdim=True)
        shares = torch.tensor([1.0 / labels.count(name) for name in unique], dtype=torch.float64)
        spectra = masks * shares[:, None, None] * spectrum[None]
        estimates = istft(spectra, hann_window(config.n_fft), mixture.shape[0], config.hop).numpy().astype(np.float32)
    return np.stack([estimates[unique.index(label)] for label in labels]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the artifact


@dataclass
class NMFModel:
    """A loaded NMF checkpoint: config and ``{instrument: W (n_freq, rank) float32}``."""

    config: NMFConfig
    dictionaries: dict[str, np.ndarray]

    @property
    def instruments(self) -> list[str]:
        return sorted(self.dictionaries)

    def separate(self, mixture: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """`separate` with this checkpoint's dictionaries and config."""
        return separate(mixture, labels, self.dictionaries, self.config)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (readable by numpy.load) whose bytes depend only on `arrays`:
    members in the given order, stored, with a fixed timestamp (np.savez stamps the current time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def save_nmf(path: str | os.PathLike, dictionaries: Mapping[str, np.ndarray], config: NMFConfig) -> str:
    """Write the checkpoint ``.npz`` atomically; return its sha256 (hex)."""
    instruments = sorted(dictionaries)
    data = npz_bytes({
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "instruments": np.array(instruments, dtype=np.str_),
        "dictionaries": np.stack([np.asarray(dictionaries[name], dtype=np.float32) for name in instruments]),
        "config": np.array(json.dumps(config.to_dict(), sort_keys=True), dtype=np.str_),
        "sample_rate": np.array(config.sample_rate, dtype=np.int64),
    })
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_nmf(path: str | os.PathLike) -> NMFModel:
    """Read a checkpoint written by `train_nmf`; MusicbenchError if missing, corrupt or inconsistent."""
    path = Path(path)
    retrain = "run `musicbench train-nmf` (or `dvc repro train_nmf`)"
    if not path.is_file():
        raise MusicbenchError(f"NMF checkpoint {str(path)!r} does not exist; {retrain} first or pass --option checkpoint=PATH")
    try:
        with np.load(path, allow_pickle=False) as archive:
            version = int(archive["format_version"])
            instruments = [str(name) for name in archive["instruments"]]
            stacked = np.asarray(archive["dictionaries"], dtype=np.float32)
            fields = json.loads(str(archive["config"]))
    except Exception as exc:  # zipfile, numpy format, missing member, JSON
        raise MusicbenchError(f"NMF checkpoint {str(path)!r} is not a readable NMF checkpoint "
                              f"({type(exc).__name__}: {exc}); {retrain} again") from None
    if version != FORMAT_VERSION:
        raise MusicbenchError(f"NMF checkpoint {str(path)!r} has format version {version}, this musicbench "
                              f"reads {FORMAT_VERSION}; {retrain} again")
    try:
        config = NMFConfig(**fields)
    except (MusicbenchError, TypeError) as exc:
        raise MusicbenchError(f"NMF checkpoint {str(path)!r} holds an invalid config ({exc}); {retrain} again") from None
    if stacked.shape != (len(instruments), config.n_freq, config.rank) or not np.all(np.isfinite(stacked)) or np.any(stacked < 0):
        raise MusicbenchError(f"NMF checkpoint {str(path)!r} holds dictionaries of shape {stacked.shape} (expected "
                              f"({len(instruments)}, {config.n_freq}, {config.rank}), finite, >= 0); {retrain} again")
    return NMFModel(config, {name: stacked[k] for k, name in enumerate(instruments)})


# ---------------------------------------------------------------------------------------------
# the stage


def training_videos(root: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """``{instrument: [index row, ...]}`` of the processed **train-split solo** videos, sorted by id.

    Reads ``<root>/processed/videos.parquet`` and ``<root>/splits/splits.csv``; the split file
    decides membership (a leaking split file is refused).
    """
    from musicbench.benchmark import DataRoot
    from musicbench.splits import read_stage_splits

    root = Path(root)
    index = DataRoot(root).read_index()
    splits = read_stage_splits(root)
    videos: dict[str, list[dict[str, Any]]] = {}
    for row in index.sort_values("video_id").to_dict("records"):
        if row["kind"] != "solo" or splits.get(row["video_id"]) != "train":
            continue
        names = str(row["instruments"]).replace("+", " ").split()
        if len(names) != 1:
            raise MusicbenchError(f"index: solo video {row['video_id']} lists instruments {row['instruments']!r}; "
                                  "rerun `musicbench process`")
        videos.setdefault(names[0], []).append(row)
    if not videos:
        raise MusicbenchError(f"no train-split solo video under {str(root)!r}; run `musicbench process` and "
                              "`musicbench splits build` first")
    return videos


def _read_audio(root: Path, row: Mapping[str, Any], config: NMFConfig) -> np.ndarray:
    import soundfile as sf

    path = resolve_in_root(root, row["audio_path"])
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own error type for unreadable files
        raise MusicbenchError(f"cannot read audio {str(path)!r} of {row['video_id']} ({exc}); "
                              "run `musicbench validate` and `musicbench process`") from None
    if rate != config.sample_rate:
        raise MusicbenchError(f"audio {str(path)!r} is at {rate} Hz, expected audio.sample_rate {config.sample_rate}; "
                              "rerun `musicbench process`")
    return audio.mean(axis=1)


def train_nmf(params: Mapping[str, Any], root: str | os.PathLike, out_path: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """The `train_nmf` stage: learn one dictionary per instrument from the train-split solo videos.

    Writes `out_path` (the ``.npz`` checkpoint, see `save_nmf`) and ``<out_path stem>.json`` beside
    it (config, instruments; per instrument the seconds of training audio read, the STFT frames
    factorised and the video ids; sha256 of the npz); both atomically and deterministically. Returns stats: those plus wall-clock seconds
    (``seconds`` total, ``seconds_per_instrument``), which are not written to disk.
    """
    from musicbench.progress import progress_bar

    config = NMFConfig.from_params(params)
    root, out_path = Path(root), Path(out_path)
    ensure_writable_dir(out_path.parent)
    start = time.perf_counter()
    videos = training_videos(root)
    dictionaries: dict[str, np.ndarray] = {}
    audio_seconds: dict[str, float] = {}
    frames_used: dict[str, int] = {}
    wall: dict[str, float] = {}
    with progress_bar("NMF dictionaries", total=len(videos), show=progress) as advance:
        for instrument in sorted(videos):
            tick = time.perf_counter()
            clips = [_read_audio(root, row, config) for row in videos[instrument]]
            audio_seconds[instrument] = round(sum(len(c) for c in clips) / config.sample_rate, 6)
            dictionaries[instrument], frames_used[instrument] = learn_dictionary(clips, instrument, config)
            wall[instrument] = time.perf_counter() - tick
            advance(1)
    sha256 = save_nmf(out_path, dictionaries, config)
    description = {
        "format_version": FORMAT_VERSION,
        "checkpoint": out_path.name,
        "checkpoint_sha256": sha256,
        "config": config.to_dict(),
        "instruments": sorted(dictionaries),
        "train_audio_seconds": {name: audio_seconds[name] for name in sorted(audio_seconds)},
        "train_frames": {name: frames_used[name] for name in sorted(frames_used)},
        "train_video_ids": {name: [row["video_id"] for row in videos[name]] for name in sorted(videos)},
        "uses_labels": True,
        "uses_pixels": False,
    }
    atomic_write_text(out_path.with_suffix(".json"), json.dumps(description, indent=2, sort_keys=True) + "\n")
    return {**description, "checkpoint": str(out_path), "seconds": time.perf_counter() - start,
            "seconds_per_instrument": wall}
