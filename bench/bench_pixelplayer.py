"""PixelPlayer speed on this machine: training steps per second and inference seconds per item.

Run: python bench/bench_pixelplayer.py [--params params.yaml] [--root DATA] [--steps 6] [--threads 1,2]

For the ``cpu`` profile (``pixelplayer.cpu`` of --params, default the repository's params.yaml) it
prints, per torch thread count:

- training: seconds per optimiser step, steps and clips per second, and process CPU seconds per
  step (less sensitive to other load on a shared machine than wall time) of (a) the reference: the
  step on random tensors already in memory with glibc's default allocator settings; (b) the same
  after `keep_freed_memory` (what training does on CPU); (c) the full step on real
  Mix-and-Separate batches when ``--root`` holds a processed MUSIC-Synth set (data decoded in the
  main process here; training decodes in a worker, in parallel);
- inference: seconds per benchmark item of ``separate``, ``localize`` and ``separate_at`` (2 sources,
  65535 samples, 47 frames of 112 px), against the reference cost of the ideal-binary-mask oracle
  on the same item (STFT, mask, inverse STFT only).

Then the ``gpu`` profile's sizes (224 px frames, K = 32, U-Net 64..512) run on the CPU for a couple of
steps of batch 2, to show the shapes and the parameter count, not a speed anyone should train at.
On 2 cores that other processes also load, two OpenMP threads per process are often several times
slower than one; on an otherwise idle 2-core machine (a `dvc repro` stage runs alone) two threads
are faster (figures: docs/baselines.md), so the ``cpu`` profile leaves ``threads`` to torch (0).
Compute-only steps use random clips of the profile's ``train_samples``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from musicbench.benchmark import DataRoot
from musicbench.config import AudioConfig, load_params
from musicbench.pixelplayer.config import PixelPlayerConfig
from musicbench.pixelplayer.inference import Separator
from musicbench.pixelplayer.model import PixelPlayer, count_parameters
from musicbench.pixelplayer.train import (
    augmentation_generator,
    batch_loss,
    keep_freed_memory,
    make_optimizer,
    training_dataset,
)
from musicbench.progress import cpu_seconds


def _random_batch(config: PixelPlayerConfig, audio: AudioConfig, batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sources = 0.1 * torch.randn(batch, config.n_sources, config.train_clip_samples(audio.clip_samples), generator=g)
    return {"mixture": sources.sum(1), "sources": sources,
            "frames": torch.randint(0, 256, (batch, config.n_sources, len(config.frame_offsets), size, size, 3),
                                    generator=g, dtype=torch.uint8)}


def time_steps(config: PixelPlayerConfig, batches, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) per optimiser step over `steps` steps after one warm-up step."""
    torch.manual_seed(0)
    net = PixelPlayer(config).train()
    optimizer, _ = make_optimizer(net, config)
    device = torch.device("cpu")

    def one(step: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(net, net, batches(step), config, device, generator=augmentation_generator(config.seed, step, 0))
        loss.backward()
        optimizer.step()

    one(0)
    wall, cpu = time.perf_counter(), cpu_seconds()
    for step in range(1, steps + 1):
        one(step)
    return (time.perf_counter() - wall) / steps, (cpu_seconds() - cpu) / steps


def clip_frames(audio: AudioConfig) -> int:
    """Frames of one benchmark clip: floor(clip seconds * fps)."""
    return int(audio.clip_samples / audio.sample_rate * audio.fps)


def time_inference(config: PixelPlayerConfig, audio: AudioConfig, repeats: int) -> dict[str, float]:
    from musicbench.benchmark import EvalItem
    from musicbench.harness.oracles import oracle_estimates

    torch.manual_seed(0)
    separator = Separator(PixelPlayer(config), audio)
    rng = np.random.default_rng(0)
    references = (0.1 * rng.standard_normal((2, audio.clip_samples))).astype(np.float32)
    mixture = references.sum(0)
    frames = rng.integers(0, 256, size=(2, clip_frames(audio), 112, 112, 3), dtype=np.uint8)
    item = EvalItem("bench", "test", ["a", "b"], ["a", "b"], mixture, references, frames, audio.sample_rate)
    calls = {
        "separate": lambda: separator.separate(mixture, frames, audio.sample_rate),
        "localize": lambda: separator.localize(mixture, frames, audio.sample_rate),
        "separate_at (2 points)": lambda: separator.separate_at(mixture, frames[0], [(30, 40), (80, 60)]),
        "reference: oracle ibm": lambda: oracle_estimates(item, "ibm"),
    }
    out = {}
    for name, call in calls.items():
        call()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        out[name] = (time.perf_counter() - start) / repeats
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(Path(__file__).resolve().parents[1] / "params.yaml"))
    parser.add_argument("--root", default=None, help="processed data root for real batches (default: dataset.root if processed)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to compare")
    parser.add_argument("--skip-gpu-profile", action="store_true")
    args = parser.parse_args()

    params = load_params(args.params)
    config, audio = PixelPlayerConfig.from_params(params, "cpu"), AudioConfig.from_params(params)
    root = Path(args.root or (params.get("dataset") or {}).get("root") or "data")
    dataset = None
    if DataRoot(root).index_path.is_file() and DataRoot(root).splits_path.is_file():
        dataset = training_dataset(params, root, config)
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    console = Console(width=150)
    console.print(f"cpu profile: {count_parameters(PixelPlayer(config)):,} parameters, batch {config.batch_size}, "
                  f"{config.image_size} px frames, U-Net {list(config.unet_widths)}, K = {config.channels}"
                  + ("" if dataset else f"; no processed data under {root}: real-data rows skipped"))

    fixed = _random_batch(config, audio, config.batch_size, 112)

    def real(step: int):
        items = [dataset[i] for i in range(step * config.batch_size, (step + 1) * config.batch_size)]
        return {k: torch.stack([item[k] for item in items]) for k in ("mixture", "sources", "frames")}

    training = Table(title="PixelPlayer cpu profile: one optimiser step")
    for column in ("what", "threads", "s/step", "steps/s", "clips/s", "CPU s/step"):
        training.add_column(column, justify="right")

    def add(what: str, threads: int, timing: tuple[float, float]) -> None:
        wall, cpu = timing
        training.add_row(what, str(threads), f"{wall:.3f}", f"{1 / wall:.2f}", f"{config.batch_size / wall:.1f}", f"{cpu:.3f}")

    # reference first: glibc's default allocator (the tuning below cannot be undone in this process)
    torch.set_num_threads(thread_counts[0])
    add("reference: compute only, default malloc", thread_counts[0], time_steps(config, lambda step: fixed, args.steps))
    keep_freed_memory()
    inference = Table(title=f"PixelPlayer cpu profile: seconds per benchmark item (2 sources, {audio.clip_samples} "
                            f"samples, {clip_frames(audio)} frames)")
    for column in ("threads", "separate", "localize", "separate_at (2 points)", "reference: oracle ibm"):
        inference.add_column(column, justify="right")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        add("compute only, training's malloc setting", threads, time_steps(config, lambda step: fixed, args.steps))
        if dataset is not None:
            add("real batches, data loaded in-process", threads, time_steps(config, real, args.steps))
        seconds = time_inference(config, audio, args.repeats)
        inference.add_row(str(threads), *(f"{seconds[k]:.3f}" for k in
                                          ("separate", "localize", "separate_at (2 points)", "reference: oracle ibm")))
    console.print(training)
    console.print(inference)

    if not args.skip_gpu_profile:
        gpu = PixelPlayerConfig.from_params(params, "gpu")
        torch.set_num_threads(max(thread_counts))
        net = PixelPlayer(gpu)
        fixed = _random_batch(gpu, audio, 2, 224)
        with torch.no_grad():
            spectrum = net.spectrogram(fixed["mixture"])
            frames = net.preprocess_frames(fixed["frames"], train=True, generator=torch.Generator().manual_seed(0))
            maps = net.visual_maps(frames.reshape(-1, *frames.shape[2:]))
            audio = net.audio(spectrum["log_mag"])
        wall, cpu = time_steps(gpu, lambda step: fixed, 2)
        console.print(
            f"gpu profile on this CPU: {count_parameters(net):,} parameters; frames {tuple(frames.shape)} → visual maps "
            f"{tuple(maps.shape)}; log magnitude {tuple(spectrum['log_mag'].shape)} → audio maps {tuple(audio.shape)}; "
            f"{wall:.2f} s per step of batch 2 ({2 / wall:.2f} clips/s; the profile's batch is {gpu.batch_size} per GPU)")


if __name__ == "__main__":
    main()
