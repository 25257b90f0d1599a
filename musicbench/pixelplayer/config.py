"""PixelPlayer settings: params.yaml ``pixelplayer`` (a profile selector, a seed, one block per profile).

::

    pixelplayer:
      profile: cpu          # which block below `musicbench train-pixelplayer` uses (--profile overrides)
      seed: 1234
      cpu: {image_size: 64, ...}
      gpu: {image_size: 224, ...}

Every key of a profile block is a field of `PixelPlayerConfig`; a key left out takes the field's
default, which is the reference recipe (The Sound of Pixels, ``scripts/train_MUSIC.sh``). Unknown
keys and bad values raise a one-line MusicbenchError naming ``pixelplayer.<profile>.<key>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from musicbench.errors import MusicbenchError

PROFILE_NAMES = ("cpu", "gpu")
MASKS = ("binary", "ratio")
OPTIMIZERS = ("sgd", "adam")
UNET_INITS = ("reference", "torch")


@dataclass(frozen=True)
class PixelPlayerConfig:
    """One PixelPlayer profile: architecture, data, optimisation and bookkeeping.

    Architecture: ``visual_widths`` are the widths of the four ResNet-18 stages (64, 128, 256, 512
    in ResNet-18), ``unet_widths`` the seven U-Net encoder widths, ``channels`` K. Frames: training
    resizes each frame to ``resize`` px and takes a random ``image_size`` crop (and a random
    horizontal flip); evaluation resizes and centre-crops. ``frame_offsets`` are the 3 frames'
    positions (at the processed 8 fps) around the clip centre. Binary masks are thresholded at
    ``mask_threshold`` for separation when ``hard_masks`` (the reference), else used as soft masks.
    ``unet_init``: ``reference`` initialises the U-Net as the reference code does (convolution
    weights N(0, 0.001), BatchNorm weights N(1, 0.02)), ``torch`` keeps PyTorch's defaults.
    ``train_samples`` is the length of training clips (0: ``audio.clip_samples``, the evaluation
    window; the U-Net is convolutional in time, so shorter training clips cost less per item).
    Steps are optimiser steps; the global batch is ``batch_size * accumulate * world size``.
    """

    # architecture
    image_size: int = 224
    resize: int = 246
    visual_widths: tuple[int, ...] = (64, 128, 256, 512)
    unet_widths: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512)
    channels: int = 32
    warp_rows: int = 256
    unet_init: str = "reference"
    pretrained: str = ""
    # data
    n_sources: int = 2
    train_samples: int = 0
    frame_offsets: tuple[int, ...] = (-16, 0, 16)
    items_per_epoch: int = 40000
    workers: int = 8
    # objective
    mask: str = "binary"
    weighted_loss: bool = True
    mask_threshold: float = 0.5
    hard_masks: bool = True
    # optimisation
    optimizer: str = "sgd"
    batch_size: int = 20
    accumulate: int = 1
    steps: int = 50000
    lr_trunk: float = 1e-4
    lr_head: float = 1e-3
    lr_milestones: tuple[int, ...] = (20000, 40000)
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # bookkeeping
    checkpoint_every: int = 1000
    val_every: int = 1000
    val_items: int = 0
    log_every: int = 20
    amp: bool = True
    channels_last: bool = True
    threads: int = 0
    # not a profile key: params pixelplayer.seed / profile name
    seed: int = 1234
    profile: str = field(default="gpu")

    def __post_init__(self) -> None:
        where = f"pixelplayer.{self.profile}"
        ints = ("image_size", "resize", "channels", "warp_rows", "n_sources", "items_per_epoch", "batch_size",
                "accumulate", "steps", "checkpoint_every", "val_every", "log_every")
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise MusicbenchError(f"params: {where}.{name} must be a positive integer, got {value!r}")
        for name in ("workers", "val_items", "threads", "seed", "train_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                key = "pixelplayer.seed" if name == "seed" else f"{where}.{name}"
                raise MusicbenchError(f"params: {key} must be an integer >= 0, got {value!r}")
        for name in ("lr_trunk", "lr_head", "lr_gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise MusicbenchError(f"params: {where}.{name} must be a positive number, got {value!r}")
        for name in ("momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise MusicbenchError(f"params: {where}.{name} must be a number in [0, 1), got {value!r}")
        for name in ("weighted_loss", "hard_masks", "amp", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise MusicbenchError(f"params: {where}.{name} must be true or false, got {getattr(self, name)!r}")
        if self.unet_init not in UNET_INITS:
            raise MusicbenchError(f"params: {where}.unet_init must be reference or torch, got {self.unet_init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise MusicbenchError(f"params: {where}.optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.mask not in MASKS:
            raise MusicbenchError(f"params: {where}.mask must be binary or ratio, got {self.mask!r}")
        if not 0 < self.mask_threshold < 1:
            raise MusicbenchError(f"params: {where}.mask_threshold must be within (0, 1), got {self.mask_threshold!r}")
        if self.resize < self.image_size:
            raise MusicbenchError(
                f"params: {where}.resize ({self.resize}) must be >= {where}.image_size ({self.image_size}): "
                "frames are resized, then cropped")
        if self.image_size % 16:
            raise MusicbenchError(
                f"params: {where}.image_size must be a multiple of 16 (output stride), got {self.image_size}")
        if len(self.visual_widths) != 4 or any(not _positive_int(w) for w in self.visual_widths):
            raise MusicbenchError(
                f"params: {where}.visual_widths must list 4 positive integers (ResNet-18 stages), "
                f"got {list(self.visual_widths)}")
        if len(self.unet_widths) != 7 or any(not _positive_int(w) for w in self.unet_widths):
            raise MusicbenchError(
                f"params: {where}.unet_widths must list 7 positive integers (U-Net levels), got {list(self.unet_widths)}")
        if self.warp_rows % 128:
            raise MusicbenchError(f"params: {where}.warp_rows must be a multiple of 128 (7 halvings), got {self.warp_rows}")
        if self.train_samples and (self.train_samples // 256 + 1) % 128:
            raise MusicbenchError(
                f"params: {where}.train_samples must be 0 (audio.clip_samples) or give a spectrogram of a multiple "
                f"of 128 frames (hop 256): 32767, 65535, 98303, ...; got {self.train_samples}")
        if not 2 <= self.n_sources <= 4:
            raise MusicbenchError(f"params: {where}.n_sources must be 2, 3 or 4, got {self.n_sources!r}")
        if not self.frame_offsets or any(isinstance(o, bool) or not isinstance(o, int) for o in self.frame_offsets):
            raise MusicbenchError(f"params: {where}.frame_offsets must list integers (frames around the centre), "
                                  f"got {list(self.frame_offsets)}")
        if any(isinstance(m, bool) or not isinstance(m, int) or m <= 0 for m in self.lr_milestones) or \
                list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise MusicbenchError(f"params: {where}.lr_milestones must list increasing positive step numbers, "
                                  f"got {list(self.lr_milestones)}")

    @classmethod
    def from_params(cls, params: dict[str, Any], profile: str | None = None) -> "PixelPlayerConfig":
        """The profile `profile` (default ``pixelplayer.profile``) of a loaded params.yaml."""
        section = params.get("pixelplayer")
        if not isinstance(section, dict):
            raise MusicbenchError(
                "params: section 'pixelplayer' is missing or not a mapping; add it to params.yaml (see README)")
        name = profile if profile is not None else section.get("profile", "cpu")
        if not isinstance(name, str) or name in ("profile", "seed"):
            raise MusicbenchError(f"params: pixelplayer.profile must name a profile block, got {name!r}")
        block = section.get(name)
        if not isinstance(block, dict):
            known = sorted(k for k, v in section.items() if isinstance(v, dict))
            raise MusicbenchError(
                f"params: profile {name!r} has no block pixelplayer.{name}; choose one of {', '.join(known) or 'none'} "
                "with pixelplayer.profile or --profile")
        return cls.from_dict(block, profile=name, seed=section.get("seed", 1234))

    @classmethod
    def from_dict(cls, block: dict[str, Any], *, profile: str = "custom", seed: Any = 1234) -> "PixelPlayerConfig":
        """A profile block (mapping of field names) → config; lists become tuples."""
        allowed = {f.name for f in fields(cls)} - {"seed", "profile"}
        unknown = sorted(set(block) - allowed)
        if unknown:
            raise MusicbenchError(f"params: unknown key pixelplayer.{profile}.{unknown[0]}; "
                                  f"known keys: {', '.join(sorted(allowed))}")
        values = {}
        for key, value in block.items():
            if key in ("visual_widths", "unet_widths", "frame_offsets", "lr_milestones"):
                if not isinstance(value, (list, tuple)):
                    raise MusicbenchError(f"params: pixelplayer.{profile}.{key} must be a list, got {value!r}")
                value = tuple(value)
            if key == "pretrained":
                value = "" if value is None else str(value)
            if key in ("lr_trunk", "lr_head", "lr_gamma", "momentum", "weight_decay", "mask_threshold") \
                    and isinstance(value, str):
                try:
                    value = float(value)  # YAML 1.1 reads 1e-4 as a string
                except ValueError:
                    raise MusicbenchError(f"params: pixelplayer.{profile}.{key} must be a number, got {value!r}") from None
            values[key] = value
        return cls(**values, seed=seed, profile=profile)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists for tuples), stored in checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def replace(self, **changes: Any) -> "PixelPlayerConfig":
        return PixelPlayerConfig(**{**asdict(self), **changes})

    def train_clip_samples(self, clip_samples: int) -> int:
        """Samples per training clip: ``train_samples``, or `clip_samples` (the evaluation window) when 0."""
        return self.train_samples or int(clip_samples)

    @property
    def train_frames(self) -> int:
        return len(self.frame_offsets)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


#: The params.yaml ``pixelplayer`` section this code was tuned with (the README shows it with
#: comments). Used only where a params file has no such section (the benchmark script).
DEFAULT_SECTION: dict[str, Any] = {
    "profile": "cpu",
    "seed": 1234,
    "cpu": {
        "image_size": 96, "resize": 128, "visual_widths": [16, 32, 64, 128],
        "unet_widths": [8, 16, 32, 64, 64, 64, 64], "channels": 16, "warp_rows": 256, "unet_init": "torch",
        "n_sources": 2, "train_samples": 32767, "frame_offsets": [-16, 0, 16], "items_per_epoch": 4000,
        "workers": 1, "mask": "binary", "weighted_loss": True, "hard_masks": False, "mask_threshold": 0.5,
        "optimizer": "adam", "batch_size": 8, "accumulate": 1, "steps": 1200, "lr_trunk": 1e-3, "lr_head": 1e-3,
        "lr_milestones": [1000], "lr_gamma": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
        "checkpoint_every": 200, "val_every": 100, "val_items": 40, "log_every": 10, "threads": 0,
        "amp": True, "channels_last": True, "pretrained": "",
    },
    "gpu": {
        "image_size": 224, "resize": 246, "visual_widths": [64, 128, 256, 512],
        "unet_widths": [64, 128, 256, 512, 512, 512, 512], "channels": 32, "warp_rows": 256, "unet_init": "reference",
        "n_sources": 2, "train_samples": 0, "frame_offsets": [-16, 0, 16], "items_per_epoch": 40000,
        "workers": 8, "mask": "binary", "weighted_loss": True, "hard_masks": True, "mask_threshold": 0.5,
        "optimizer": "sgd", "batch_size": 20, "accumulate": 1, "steps": 50000, "lr_trunk": 1e-4, "lr_head": 1e-3,
        "lr_milestones": [20000, 40000], "lr_gamma": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
        "checkpoint_every": 1000, "val_every": 1000, "val_items": 0, "log_every": 20, "threads": 0,
        "amp": True, "channels_last": True, "pretrained": "",
    },
}
