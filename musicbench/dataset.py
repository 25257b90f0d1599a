"""Training data: random Mix-and-Separate mixtures made on the fly from training solo clips.

`MixAndSeparateDataset` draws, for item ``i`` of epoch ``e``, N solo videos of different
instruments, a random clip start in each, and a training gain ``U(0.5, 1.5) / N`` per source
(the Sound of Pixels augmentation), all from a generator seeded by (seed, epoch, i): the same
seed gives the same items whatever the DataLoader's workers or order. Files are opened per item,
so the dataset is safe to use with worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from musicbench.benchmark import FrameArchive
from musicbench.config import AudioConfig
from musicbench.errors import MusicbenchError
from musicbench.fsutil import resolve_in_root
from musicbench.pixelplayer.augment import MOTION_SPAN, moving_box, transplant


class MixAndSeparateDataset(Dataset):
    """Random N-source mixtures of training solo clips.

    `audio` gives the sample rate, the frame rate and the clip length (the training clip, which may
    be shorter than the benchmark's ``audio.clip_samples``). Each item is a dict of tensors:
    ``mixture`` float32 ``(clip_samples,)``; ``sources`` float32 ``(N, clip_samples)`` (already
    scaled by their gains, so ``mixture == sources.sum(0)`` before clipping to [-1, 1]);
    ``frames`` uint8 ``(N, n_frames, H, W, 3)`` sampled at ``frame_offsets`` (frames at the
    processing rate, relative to the clip's centre frame); ``labels`` int64 ``(N,)`` indices into
    ``self.instruments``.

    With ``transplant`` p > 0, each source's frames are, with probability p, pasted onto another
    training video's frames (`musicbench.pixelplayer.augment`): its player (the region that moves)
    on a backdrop that does not go with its sound.
    """

    def __init__(
        self, index: pd.DataFrame, root: str | os.PathLike, video_ids: list[str], audio: AudioConfig, *,
        n_sources: int = 2, frame_offsets: tuple[int, ...] = (-8, 0, 8), items_per_epoch: int = 1000,
        seed: int = 1234, gain_range: tuple[float, float] = (0.5, 1.5), transplant: float = 0.0,
    ):
        self.root = Path(root)
        rows = index[index["video_id"].isin(set(video_ids)) & (index["kind"] == "solo")]
        rows = rows[rows["n_samples"] >= audio.clip_samples].sort_values("video_id")
        self.videos = rows.to_dict("records")
        self.instruments = sorted({v["instruments"] for v in self.videos})
        if len(self.instruments) < n_sources:
            raise MusicbenchError(f"training set has solo clips of {len(self.instruments)} instrument(s); n_sources={n_sources} needs more")
        self.by_instrument = {name: [v for v in self.videos if v["instruments"] == name] for name in self.instruments}
        self.n_sources, self.clip_samples, self.sample_rate, self.fps = n_sources, audio.clip_samples, audio.sample_rate, audio.fps
        self.frame_offsets, self.items_per_epoch, self.seed, self.gain_range = frame_offsets, items_per_epoch, seed, gain_range
        if not 0.0 <= transplant <= 1.0:
            raise MusicbenchError(f"transplant is a probability in [0, 1], got {transplant}")
        self.transplant = float(transplant)
        self._archives: dict[str, FrameArchive] = {}
        # each frame's moving box, found once here (each frame decoded once) rather than per item
        self.moving_boxes = {v["video_id"]: self._moving_boxes(v) for v in self.videos} if self.transplant else {}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose items `__getitem__` returns (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.items_per_epoch

    def _centre_frame(self, video: dict, rng: np.random.Generator) -> int:
        """A random clip centre (frame index) whose audio and frames lie within the video."""
        half_span = max(abs(o) for o in self.frame_offsets) if self.frame_offsets else 0
        clip_seconds = self.clip_samples / self.sample_rate
        n_frames = int(video["n_frames"])
        lowest = int(np.ceil(clip_seconds / 2 * self.fps)) + half_span
        highest = min(n_frames - 1 - half_span, int((video["n_samples"] - self.clip_samples / 2) / self.sample_rate * self.fps))
        return int(rng.integers(lowest, highest + 1)) if highest >= lowest else n_frames // 2

    def _archive(self, video: dict) -> FrameArchive:
        path = video["frames_path"]
        if path not in self._archives:  # member tables are read once per process
            self._archives[path] = FrameArchive(resolve_in_root(self.root, path))
        return self._archives[path]

    def _moving_boxes(self, video: dict) -> list:
        """`moving_box` of every frame of `video` (None where nothing moves)."""
        archive = self._archive(video)
        frames = archive.read(range(len(archive)))
        last = len(frames) - 1
        return [moving_box(frames[max(i - MOTION_SPAN, 0)], frames[i], frames[min(i + MOTION_SPAN, last)])
                for i in range(len(frames))]

    def _frames(self, video: dict, centre_frame: int) -> tuple[np.ndarray, list | None]:
        """The frames at `frame_offsets` around `centre_frame` and, when transplanting, each one's moving box."""
        n_frames = int(video["n_frames"])
        indices = [int(np.clip(centre_frame + o, 0, n_frames - 1)) for o in self.frame_offsets]
        frames = self._archive(video).read(indices)
        if not self.transplant:
            return frames, None
        return frames, [self.moving_boxes[video["video_id"]][i] for i in indices]

    def _clip(self, video: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list | None]:
        centre_frame = self._centre_frame(video, rng)
        start = int(round(centre_frame / self.fps * self.sample_rate - self.clip_samples / 2))
        start = int(np.clip(start, 0, video["n_samples"] - self.clip_samples))
        audio, _ = sf.read(resolve_in_root(self.root, video["audio_path"]), start=start,
                           frames=self.clip_samples, dtype="float32")
        frames, boxes = self._frames(video, centre_frame)
        return audio, frames, boxes

    def _transplanted(self, video: dict, frames: np.ndarray, boxes: list, rng: np.random.Generator) -> np.ndarray:
        """With probability `transplant`, the player of `frames` on another training video's frames."""
        if rng.random() >= self.transplant or len(self.videos) < 2:
            return frames
        hosts = [v for v in self.videos if v["video_id"] != video["video_id"]]
        host = hosts[int(rng.integers(len(hosts)))]
        host_frames, host_boxes = self._frames(host, self._centre_frame(host, rng))
        if host_frames.shape != frames.shape:
            return frames
        return transplant(frames, boxes, host_frames, host_boxes)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(np.random.SeedSequence(entropy=self.seed, spawn_key=(self.epoch, int(i))))
        chosen = rng.choice(len(self.instruments), size=self.n_sources, replace=False)
        sources, frames = [], []
        for k in chosen:
            videos = self.by_instrument[self.instruments[k]]
            video = videos[int(rng.integers(len(videos)))]
            audio, clip_frames, boxes = self._clip(video, rng)
            if boxes is not None:
                clip_frames = self._transplanted(video, clip_frames, boxes, rng)
            sources.append(audio * rng.uniform(*self.gain_range) / self.n_sources)
            frames.append(clip_frames)
        sources_array = np.stack(sources).astype(np.float32)
        mixture = np.clip(sources_array.sum(axis=0), -1.0, 1.0)
        return {
            "mixture": torch.from_numpy(mixture),
            "sources": torch.from_numpy(sources_array),
            "frames": torch.from_numpy(np.stack(frames)),
            "labels": torch.as_tensor(chosen, dtype=torch.int64),
        }
