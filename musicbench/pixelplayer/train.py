"""Mix-and-Separate training of PixelPlayer, on one CPU, one GPU or many through torchrun.

`train_pixelplayer(params, root, out_dir)` (through `Trainer`) trains the profile chosen in params.yaml
(``pixelplayer.profile``) on the training split's solo videos (`musicbench.dataset.MixAndSeparateDataset`:
random N-source mixtures, gains U(0.5, 1.5) / N) and selects the best weights on the ``val``
split's fixed items (mean NSDR; the test split is never read). Objective (the reference recipe):
the mixture's log-magnitude STFT warped to log frequency feeds the U-Net; the target of source n
is the binary mask ``mag_n > 0.5 · mag_mix`` (warped), learnt with binary cross-entropy weighted by
``clamp(log1p(mag_mix), 1e-3, 10)``; ``mask: ratio`` learns ``clamp(mag_n / mag_mix, 0, 5)`` with a
(weighted) L1 loss instead. SGD (momentum, weight decay; the reference) or AdamW (``optimizer:
adam``) with two learning rates: ``lr_trunk`` for the ResNet trunk, ``lr_head`` for the U-Net, the
visual net's last conv and the synthesizer; both × ``lr_gamma`` at each of ``lr_milestones``
(optimiser steps). Training clips are ``train_samples`` long (default: the evaluation window).

Outputs in `out_dir`::

    checkpoint.pt      the latest state every `checkpoint_every` steps and at the end (exact resume:
                       model, optimiser, scheduler, AMP scaler, RNG states, step, curves)
    best.pt            the weights with the best validation NSDR (what `baselines/pixelplayer.py` loads)
    train_curve.csv    step, loss (mean over the last log_every steps and all ranks), lr (the head's, used by
                       that step), seconds (training wall time so far, across resumptions)
    val_curve.csv      step, val_nsdr, val_si_sdri, n_failed, seconds
    summary.json       profile, steps, batch, timings, first/last loss, best step and NSDR

Determinism: the items of step s are fixed by (seed, epoch, position) through
`torch.utils.data.DistributedSampler` (also with one process) and the dataset's own seeding; the
crops and flips of micro-batch c of step s come from a generator seeded by (seed, s, c). A run
resumed from a checkpoint therefore reproduces the uninterrupted run's weights exactly on the same
machine, and a run with W processes of batch B matches one process accumulating W micro-batches of B.

Multi-process: launched by ``torchrun --nproc_per_node G musicbench train-pixelplayer ...`` (WORLD_SIZE
> 1), each process trains a DistributedDataParallel replica on its share of every global batch
(``batch_size`` per process; global batch = batch_size × accumulate × world size), with the
``nccl`` backend on CUDA and ``gloo`` on CPU. Rank 0 alone validates and writes files.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from musicbench.benchmark import DataRoot
from musicbench.config import AudioConfig
from musicbench.device import resolve_device
from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_path, atomic_write_text, ensure_writable_dir
from musicbench.pixelplayer.config import LEGACY_DEFAULTS, PixelPlayerConfig
from musicbench.pixelplayer.inference import CHECKPOINT_FORMAT, Separator, load_checkpoint_file, load_error_reason
from musicbench.pixelplayer.model import OUTPUT_STRIDE, PixelPlayer, count_parameters
from musicbench.progress import cpu_seconds, progress_bar

CHECKPOINT_NAME, BEST_NAME = "checkpoint.pt", "best.pt"
CURVE_NAME, VAL_CURVE_NAME, SUMMARY_NAME = "train_curve.csv", "val_curve.csv", "summary.json"
CURVE_COLUMNS = ("step", "loss", "lr", "seconds")
VAL_COLUMNS = ("step", "val_nsdr", "val_si_sdri", "n_failed", "seconds")
FAILED_ITEM_NSDR = -20.0  # a validation item whose estimate cannot be scored counts as this (selection only)
# keys that may change between a checkpoint and its resumption (they do not change the computation)
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "val_every", "val_items", "log_every", "workers", "threads"}


# ---------------------------------------------------------------------------------------------
# devices and processes


@dataclass
class Runtime:
    """Where this process trains: device, rank and world size (1 without torchrun)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    distributed: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def keep_freed_memory() -> bool:
    """Ask glibc malloc to serve large blocks from its heap and keep freed memory (Linux only).

    By default every tensor over 128 KiB to 32 MiB is a fresh mmap, zero-filled page by page on
    first touch and unmapped when freed: on CPU a PixelPlayer step then spends much of its time in
    page faults (measured: docs/baselines.md). Raising
    M_MMAP_THRESHOLD and M_TRIM_THRESHOLD keeps the step's buffers in the heap for reuse. Returns
    whether it applied; harmless elsewhere (it only changes this process's allocator settings).
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def setup_runtime(device: str) -> Runtime:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    kind = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(torch.device(kind))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    return Runtime(torch_device, rank, world, True)


# ---------------------------------------------------------------------------------------------
# objective


def targets(net: PixelPlayer, mix_mag: torch.Tensor, sources: torch.Tensor, config: PixelPlayerConfig
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Warped target masks (B, N, R, T) and loss weights (B, 1, R, T) of a batch."""
    mags = net.warp(net.stft(sources).abs())
    if config.mask == "binary":
        target = (mags > 0.5 * mix_mag).float()
    else:
        target = (mags / mix_mag).clamp(0.0, 5.0)
    weight = torch.log1p(mix_mag).clamp(1e-3, 10.0) if config.weighted_loss else torch.ones_like(mix_mag)
    return target, weight


def mask_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, config: PixelPlayerConfig) -> torch.Tensor:
    """Weighted BCE (binary masks) or weighted L1 (ratio masks), mean over sources and bins."""
    logits = logits.float()
    if config.mask == "binary":
        per_bin = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_bin = (torch.sigmoid(logits) - target).abs()
    return (per_bin * weight).mean()


def batch_loss(model: torch.nn.Module, net: PixelPlayer, batch: dict[str, torch.Tensor], config: PixelPlayerConfig,
               device: torch.device, *, generator: torch.Generator | None = None, train: bool = True,
               amp: bool = False, channels_last: bool = False) -> torch.Tensor:
    """The loss of one (micro-)batch; `model` is `net` or its DistributedDataParallel wrapper."""
    mixture = batch["mixture"].to(device, non_blocking=True)
    sources = batch["sources"].to(device, non_blocking=True)
    frames = net.preprocess_frames(batch["frames"].to(device, non_blocking=True), train=train, generator=generator)
    regions = None
    if train and config.side_by_side > 0:
        frames, regions = side_by_side(frames, config.side_by_side, generator)
    with torch.no_grad():
        spectrum = net.spectrogram(mixture)
        target, weight = targets(net, spectrum["mag"], sources, config)
    log_mag = spectrum["log_mag"]
    net.channels_last = channels_last  # the model makes its 4-D inputs channels-last
    autocast = torch.autocast("cuda", dtype=_amp_dtype()) if amp else contextlib.nullcontext()
    with autocast:
        logits = model(log_mag, frames, regions)
    return mask_loss(logits, target, weight, config)


def side_by_side(frames: torch.Tensor, probability: float, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Show an item's videos side by side in one picture, each source owning its own strip.

    frames: normalised ``(B, N, T, 3, S, S)``. With `probability`, an item's N videos become one
    picture of N vertical strips (random widths of whole 16 px output cells, each at least a
    1/(N+1) share, in random order), strip n showing the centre of video n; every source of that
    item then sees this picture. Returns the frames and the cell masks ``(B, N, S/16, S/16)`` of
    each source's strip (all True for an item left as it was), over which `PixelPlayer.forward`
    pools that source's feature. A cell near a strip's edge sees the neighbouring player too and must
    not answer for it, which pushes the visual features to be local (measured: `docs/baselines.md`).
    """
    b, n, height, width = frames.shape[0], frames.shape[1], frames.shape[-2], frames.shape[-1]
    cells_h, cells_w = height // OUTPUT_STRIDE, width // OUTPUT_STRIDE
    regions = torch.ones(b, n, cells_h, cells_w, dtype=torch.bool, device=frames.device)
    narrowest = max(1, cells_w // (n + 1))  # 2 of 6 cells for two videos in a 96 px picture
    if n < 2 or cells_w < n * narrowest:
        return frames, regions
    chosen = torch.rand(b, generator=generator) < probability
    out = frames.clone()
    for i in torch.nonzero(chosen)[:, 0].tolist():
        # N - 1 cuts between cells leaving each strip at least `narrowest` cells, and a random order of the videos
        while True:
            cuts = sorted(torch.randperm(cells_w - 1, generator=generator)[:n - 1].add(1).tolist())
            if min(right - left for left, right in zip([0, *cuts], [*cuts, cells_w])) >= narrowest:
                break
        order = torch.randperm(n, generator=generator).tolist()
        edges = [0, *cuts, cells_w]
        picture = torch.empty_like(frames[i, 0])
        regions[i] = False
        for strip, source in enumerate(order):
            left, right = edges[strip] * OUTPUT_STRIDE, edges[strip + 1] * OUTPUT_STRIDE
            start = (width - (right - left)) // 2  # the centre of the source's own picture
            picture[..., left:right] = frames[i, source][..., start:start + right - left]
            regions[i, source, :, edges[strip]:edges[strip + 1]] = True
        out[i] = picture
    return out, regions


def _amp_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16


def make_optimizer(net: PixelPlayer, config: PixelPlayerConfig) -> tuple[torch.optim.Optimizer, Any]:
    """The reference's two parameter groups under SGD (the reference) or AdamW, and the step schedule.

    AdamW takes ``momentum`` as its first moment's decay (beta1) and ``weight_decay`` decoupled.
    """
    groups = [{"params": net.trunk_parameters(), "lr": config.lr_trunk},
              {"params": net.head_parameters(), "lr": config.lr_head}]
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, betas=(config.momentum, 0.999),
                                                             weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(groups, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma)
    return optimizer, scheduler


def augmentation_generator(seed: int, step: int, micro_batch: int) -> torch.Generator:
    """The crop/flip generator of global micro-batch `micro_batch` of optimiser step `step`."""
    state = np.random.SeedSequence([seed, step, micro_batch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# ---------------------------------------------------------------------------------------------
# data


def training_dataset(params: dict[str, Any], root: str | os.PathLike, config: PixelPlayerConfig):
    """MixAndSeparateDataset over the training split's solo videos."""
    from musicbench.dataset import MixAndSeparateDataset
    from musicbench.splits import read_stage_splits

    root = Path(root)
    index = DataRoot(root).read_index()
    train_ids = sorted(video for video, split in read_stage_splits(root).items() if split == "train")
    if not (index["video_id"].isin(train_ids) & (index["kind"] == "solo")).any():
        raise MusicbenchError(f"{str(DataRoot(root).splits_path)!r} lists no processed training solo video; "
                              "PixelPlayer has nothing to learn from")
    audio = AudioConfig.from_params(params)
    return MixAndSeparateDataset(
        index, root, train_ids, replace(audio, clip_samples=config.train_clip_samples(audio.clip_samples)),
        n_sources=config.n_sources, frame_offsets=tuple(config.frame_offsets), items_per_epoch=config.items_per_epoch,
        seed=config.seed, transplant=config.transplant)


def step_indices(sampler: DistributedSampler, epoch: int, first_step: int, steps_per_epoch: int, per_step: int) -> list[int]:
    """This process's dataset indices for steps first_step .. end of `epoch` (per_step items a step)."""
    sampler.set_epoch(epoch)
    indices = list(sampler)
    return indices[first_step * per_step: steps_per_epoch * per_step]


@dataclass
class ValItem:
    item_id: str
    mixture: np.ndarray
    references: np.ndarray
    frames: torch.Tensor  # the chosen frames, normalised (N, T, 3, S, S)


def load_val_items(root: str | os.PathLike, separator: Separator, limit: int) -> list[ValItem]:
    """The fixed ``val`` items (never ``test``), with the frames the model will see already chosen."""
    items = []
    for item in DataRoot(root).iter_items("val", limit or None):
        if item.mixture.shape[0] != separator.clip_samples:
            raise MusicbenchError(f"val item {item.item_id} has {item.mixture.shape[0]} samples, the model "
                                  f"{separator.clip_samples}; rebuild the mixtures with the same audio.clip_samples")
        frames = separator.select_frames(item.frames, 0).cpu()
        items.append(ValItem(item.item_id, item.mixture, item.references, frames))
    return items


def validation_scores(separator: Separator, items: list[ValItem]) -> dict[str, float]:
    """Mean NSDR and SI-SDRi over val items (each item the mean of its sources)."""
    from musicbench.metrics import MetricInputError, nsdr, si_sdr_improvement

    was_training = separator.net.training
    separator.net.eval()
    scores, improvements, failed = [], [], 0
    for item in items:
        window = torch.from_numpy(item.mixture).to(separator.device)[None]
        estimates = separator.separate_window(window, item.frames.to(separator.device)).cpu().numpy().astype(np.float64)
        try:
            scores.append(float(np.mean(nsdr(item.references, estimates, item.mixture))))
            improvements.append(float(np.mean(si_sdr_improvement(item.references, estimates, item.mixture))))
        except MetricInputError:
            failed += 1
            scores.append(FAILED_ITEM_NSDR)
    separator.net.train(was_training)
    return {"val_nsdr": float(np.mean(scores)) if scores else float("nan"),
            "val_si_sdri": float(np.mean(improvements)) if improvements else float("nan"), "n_failed": failed}


# ---------------------------------------------------------------------------------------------
# checkpoints


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                                                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": _to_lists(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _check_resumable(saved: dict[str, Any], config: PixelPlayerConfig, global_batch: int, path: Path) -> None:
    current = config.to_dict()
    for key, value in {**LEGACY_DEFAULTS, **saved["config"]}.items():
        if key not in RESUMABLE_CHANGES and current.get(key) != value:
            raise MusicbenchError(
                f"{str(path)!r} was trained with pixelplayer.{config.profile}.{key} = {value!r}, params now say "
                f"{current.get(key)!r}; restore the value, or delete the checkpoint (or pass --no-resume) to start over")
    if saved["global_batch"] != global_batch:
        raise MusicbenchError(
            f"{str(path)!r} was trained with a global batch of {saved['global_batch']} (batch_size × accumulate × "
            f"processes), this run has {global_batch}; resume with the same number of processes")


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _append_csv(path: Path, row: list) -> None:
    with open(path, "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerow(row)


# ---------------------------------------------------------------------------------------------
# the training run


class Trainer:
    """One PixelPlayer training run writing to `out_dir`: restore, step, validate, checkpoint, log.

    Building it seeds the global RNGs, then builds the network, its optimiser, schedule and AMP
    scaler (in that order: the initial weights depend on it). Then `restore` (optional),
    `start_logs`, `load_data` and `run`, as `train_pixelplayer` does. Every rank steps; rank 0
    alone validates and writes files.
    """

    def __init__(self, params: dict[str, Any], config: PixelPlayerConfig, runtime: Runtime, out_dir: Path):
        self.params, self.config, self.runtime, self.out_dir = params, config, runtime, out_dir
        if runtime.main:
            ensure_writable_dir(out_dir)
        self.cuda = runtime.device.type == "cuda"
        self.amp, self.channels_last = self.cuda and config.amp, self.cuda and config.channels_last
        if not self.cuda:
            keep_freed_memory()
            if config.threads:
                torch.set_num_threads(config.threads)
        self.global_batch = config.batch_size * config.accumulate * runtime.world
        self.steps_per_epoch = config.items_per_epoch // self.global_batch
        if self.steps_per_epoch < 1:
            raise MusicbenchError(f"params: pixelplayer.{config.profile}.items_per_epoch ({config.items_per_epoch}) must be at "
                                  f"least the global batch ({self.global_batch} = batch_size × accumulate × processes)")
        self.per_step = config.batch_size * config.accumulate  # items of one process per step

        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        self.net = net = PixelPlayer(config)
        if config.pretrained:
            _load_pretrained(net, config)
        net.to(runtime.device)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        self.model: torch.nn.Module = net  # what the loss runs: `net` or its DistributedDataParallel wrapper
        if runtime.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[runtime.device.index] if self.cuda else None)
        self.optimizer, self.scheduler = make_optimizer(net, config)
        self.ema_net = copy.deepcopy(net).eval().requires_grad_(False) if config.ema else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and _amp_dtype() == torch.float16)
        self.audio = AudioConfig.from_params(params)

        self.step, self.prior_seconds = 0, 0.0  # optimiser steps done; training seconds of earlier runs
        self.curve: list[list] = []  # rows of CURVE_COLUMNS
        self.val_curve: list[list] = []  # rows of VAL_COLUMNS
        self.best: dict[str, Any] = {"step": None, "val_nsdr": -math.inf}
        self.window_losses: list[float] = []  # losses of the log row in progress
        self.start, self.cpu_start, self.first_step = time.perf_counter(), cpu_seconds(), 0

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def restore(self) -> bool:
        """Continue from ``out_dir/checkpoint.pt`` if it exists (weights, optimiser, RNGs, curves); returns whether it did."""
        if not self.checkpoint_path.is_file():
            return False
        saved = load_checkpoint_file(self.checkpoint_path, map_location="cpu")  # states are copied to the device
        _check_resumable(saved, self.config, self.global_batch, self.checkpoint_path)
        self.net.load_state_dict(saved["model"])
        if self.ema_net is not None:
            self.ema_net.load_state_dict(saved["ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        _set_rng_state(saved["rng"])
        self.step, self.prior_seconds = int(saved["step"]), float(saved["seconds"])
        self.curve, self.val_curve, self.best = saved["curve"], saved["val_curve"], saved["best"]
        self.window_losses = list(saved["window_losses"])
        return True

    def start_logs(self) -> None:
        """(Re)write the curve CSVs with the rows so far (rank 0); later rows are appended."""
        if self.runtime.main:
            _write_csv(self.out_dir / CURVE_NAME, CURVE_COLUMNS, self.curve)
            _write_csv(self.out_dir / VAL_CURVE_NAME, VAL_COLUMNS, self.val_curve)

    def load_data(self, root: str | os.PathLike) -> None:
        """The training set and its sampler; on rank 0 the validation items and their separator."""
        self.dataset = training_dataset(self.params, root, self.config)
        self.sampler = DistributedSampler(self.dataset, num_replicas=self.runtime.world, rank=self.runtime.rank,
                                          shuffle=True, seed=self.config.seed, drop_last=False)
        main = self.runtime.main
        self.separator = Separator(self.evaluated_net, self.audio, device=self.runtime.device) if main else None
        self.val_items = load_val_items(root, self.separator, self.config.val_items) if main else []
        self.net.train()

    @property
    def evaluated_net(self) -> PixelPlayer:
        """What validation scores and ``best.pt`` keeps: the weights' moving average with ``ema``, else the weights."""
        return self.net if self.ema_net is None else self.ema_net

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the moving average towards the weights just stepped: ``avg = ema * avg + (1 - ema) * w``
        for every floating tensor of the state (BatchNorm statistics too); counters are copied."""
        if self.ema_net is None:
            return
        weights = self.net.state_dict()
        for name, average in self.ema_net.state_dict().items():
            if average.is_floating_point():
                average.lerp_(weights[name], 1.0 - self.config.ema)
            else:
                average.copy_(weights[name])

    def seconds(self) -> float:
        """Training wall time so far, across resumptions."""
        return self.prior_seconds + (time.perf_counter() - self.start)

    def run(self, max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Train up to ``steps`` (or `max_steps`, if lower), an epoch at a time; returns the summary."""
        config = self.config
        last_step = min(config.steps, max_steps) if max_steps is not None else config.steps
        self.first_step = self.step
        self.start, self.cpu_start = time.perf_counter(), cpu_seconds()
        bar = progress_bar(f"train pixelplayer ({config.profile}, {self.runtime.device.type})", last_step,
                           show=self.runtime.main and progress)
        with bar as advance:
            advance(self.step)
            while self.step < last_step:
                self.run_epoch(last_step, advance)
        summary = self.summary()
        if self.runtime.main and self.step >= config.steps:
            atomic_write_text(self.out_dir / SUMMARY_NAME, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        if self.runtime.distributed:
            dist.barrier()
        return summary

    def run_epoch(self, last_step: int, advance: Callable[[int], Any]) -> None:
        """The steps from the current one to the end of its epoch (or `last_step`), through one DataLoader."""
        config, runtime, step = self.config, self.runtime, self.step
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        self.dataset.set_epoch(epoch)
        indices = step_indices(self.sampler, epoch, in_epoch, self.steps_per_epoch, self.per_step)
        loader = DataLoader(self.dataset, batch_size=config.batch_size, sampler=indices, drop_last=True,
                            num_workers=config.workers, pin_memory=self.cuda)
        batches = iter(loader)
        for _ in range(in_epoch, self.steps_per_epoch):
            lr_used = self.train_step(batches)
            step = self.step
            self.log(lr_used, last_step)
            if runtime.main and (step % config.val_every == 0 or step == config.steps):
                self.validate()
            if runtime.main and (step % config.checkpoint_every == 0 or step == last_step):
                self.checkpoint()
            if runtime.distributed and (step % config.val_every == 0 or step % config.checkpoint_every == 0
                                        or step == last_step):
                dist.barrier()
            advance(1)
            if step >= last_step:
                break

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> float:
        """One optimiser step on `accumulate` micro-batches of `batches`; returns the head's learning rate it used."""
        config, runtime = self.config, self.runtime
        self.optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for a in range(config.accumulate):
            batch = next(batches)
            micro = runtime.rank * config.accumulate + a
            sync = contextlib.nullcontext()
            if runtime.distributed and a < config.accumulate - 1:
                sync = self.model.no_sync()
            with sync:
                loss = batch_loss(self.model, self.net, batch, config, runtime.device,
                                  generator=augmentation_generator(config.seed, self.step, micro),
                                  amp=self.amp, channels_last=self.channels_last)
                self.scaler.scale(loss / config.accumulate).backward()
            step_loss += float(loss.detach()) / config.accumulate
        if not math.isfinite(step_loss):
            raise MusicbenchError(f"PixelPlayer training diverged at step {self.step + 1} (loss {step_loss}); lower "
                                  f"pixelplayer.{config.profile}.lr_head / lr_trunk")
        lr_used = self.optimizer.param_groups[1]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.update_ema()
        self.step += 1
        self.window_losses.append(step_loss)
        return lr_used

    def log(self, lr_used: float, last_step: int) -> None:
        """Every ``log_every`` steps and at `last_step`: a train curve row, the loss averaged over the window and ranks."""
        if not (self.step % self.config.log_every == 0 or self.step == last_step):
            return
        mean_loss = float(np.mean(self.window_losses))
        if self.runtime.distributed:
            value = torch.tensor([mean_loss], dtype=torch.float64, device=self.runtime.device)
            dist.all_reduce(value)
            mean_loss = float(value) / self.runtime.world
        self.window_losses = []
        self.curve.append([self.step, round(mean_loss, 6), lr_used, round(self.seconds(), 2)])
        if self.runtime.main:
            _append_csv(self.out_dir / CURVE_NAME, self.curve[-1])

    def validate(self) -> None:
        """Score the val items (rank 0): a val curve row, and ``best.pt`` when the NSDR is the best so far."""
        scores = validation_scores(self.separator, self.val_items)
        self.val_curve.append([self.step, round(scores["val_nsdr"], 4), round(scores["val_si_sdri"], 4),
                               scores["n_failed"], round(self.seconds(), 2)])
        _append_csv(self.out_dir / VAL_CURVE_NAME, self.val_curve[-1])
        if scores["val_nsdr"] > self.best["val_nsdr"]:
            self.best = {"step": self.step, "val_nsdr": scores["val_nsdr"], "val_si_sdri": scores["val_si_sdri"]}
            _save(self.out_dir / BEST_NAME, {"format": CHECKPOINT_FORMAT, "kind": "best", "step": self.step,
                                             "config": self.config.to_dict(), "audio": asdict(self.audio),
                                             "model": self.evaluated_net.state_dict(), "val": self.best})

    def checkpoint(self) -> None:
        """Write ``checkpoint.pt``: everything an exact resumption needs (rank 0)."""
        _save(self.checkpoint_path, {
            "format": CHECKPOINT_FORMAT, "kind": "checkpoint", "step": self.step, "config": self.config.to_dict(),
            "audio": asdict(self.audio), "global_batch": self.global_batch, "world_size": self.runtime.world,
            "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": _rng_state(),
            "seconds": self.seconds(), "curve": self.curve, "val_curve": self.val_curve, "best": self.best,
            "window_losses": self.window_losses,
            **({} if self.ema_net is None else {"ema": self.ema_net.state_dict()})})

    def summary(self) -> dict[str, Any]:
        """The run's summary (what ``summary.json`` holds): sizes, timings, first/last loss, best step and NSDR."""
        seconds, step, best, curve = self.seconds(), self.step, self.best, self.curve
        return {
            "profile": self.config.profile, "device": self.runtime.device.type, "world_size": self.runtime.world,
            "steps": step, "completed": step >= self.config.steps, "global_batch": self.global_batch,
            "n_parameters": count_parameters(self.net), "train_seconds": round(seconds, 2),
            "cpu_seconds_this_run": round(cpu_seconds() - self.cpu_start, 2), "steps_this_run": step - self.first_step,
            "steps_per_second": round(step / seconds, 4) if seconds > 0 else None,
            "clips_per_second": round(step * self.global_batch / seconds, 3) if seconds > 0 else None,
            "first_loss": curve[0][1] if curve else None, "last_loss": curve[-1][1] if curve else None,
            "best_step": best["step"], "best_val_nsdr": None if best["step"] is None else round(best["val_nsdr"], 4),
            "val_items": len(self.val_items) if self.runtime.main else None,
        }


def train_pixelplayer(
    params: dict[str, Any], root: str | os.PathLike, out_dir: str | os.PathLike, *, device: str = "auto",
    resume: bool = True, profile: str | None = None, max_steps: int | None = None, progress: bool = True,
    config: PixelPlayerConfig | None = None,
) -> dict[str, Any]:
    """Train PixelPlayer (the `profile` of params ``pixelplayer``, default its ``profile`` key).

    Resumes from ``out_dir/checkpoint.pt`` when `resume` and it exists. `max_steps` stops early at
    that step (a checkpoint is written there; a later call resumes). Returns the summary (also
    written to ``out_dir/summary.json`` when training completes). `config` overrides the params.
    """
    config = config or PixelPlayerConfig.from_params(params, profile)
    trainer = Trainer(params, config, setup_runtime(device), Path(out_dir))
    if resume:
        trainer.restore()
    trainer.start_logs()
    trainer.load_data(root)
    return trainer.run(max_steps, progress)


def _load_pretrained(net: PixelPlayer, config: PixelPlayerConfig) -> None:
    """Load an ImageNet ResNet-18 state dict (torchvision key names) into the visual trunk."""
    path = Path(config.pretrained)
    if not path.is_file():
        raise MusicbenchError(f"params: pixelplayer.{config.profile}.pretrained: no file {str(path)!r}; "
                              "give a local ResNet-18 state dict or leave it empty to train from scratch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MusicbenchError(f"params: pixelplayer.{config.profile}.pretrained: cannot read {str(path)!r}: "
                              f"{load_error_reason(exc)}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    trunk = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = net.visual.state_dict()
    bad = [k for k, v in trunk.items() if k not in own or own[k].shape != v.shape]
    if bad or not trunk:
        raise MusicbenchError(f"params: pixelplayer.{config.profile}.pretrained: {str(path)!r} does not fit the visual net "
                              f"(e.g. {bad[0] if bad else 'no weights'}); it needs visual_widths [64, 128, 256, 512]")
    net.visual.load_state_dict(trunk, strict=False)
