"""PixelPlayer settings: params.yaml ``pixelplayer`` (a profile selector, a seed, one block per profile).

::

    pixelplayer:
      profile: cpu          # which block below `musicbench train-pixelplayer` uses (--profile overrides)
      seed: 1234
      cpu: {image_size: 64, ...}
      gpu: {image_size: 224, ...}

The profiles live only in params.yaml. Every key of a profile block is a field of
`PixelPlayerConfig`; a key left out takes the field's default, which is the reference recipe (The
Sound of Pixels, ``scripts/train_MUSIC.sh``). Unknown keys and bad values raise a one-line
MusicbenchError naming ``pixelplayer.<profile>.<key>``.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass
from typing import Any, Literal

from musicbench.config import check_fields, config_error, config_from_params, knob
from musicbench.errors import MusicbenchError

UnetInit = Literal["reference", "torch"]
UNET_INITS: tuple[str, ...] = typing.get_args(UnetInit)


#: Profile keys added after weights or checkpoints were first written, with the value that leaves
#: training as it was before them: a card or checkpoint without one of these keys had that value.
LEGACY_DEFAULTS: dict[str, Any] = {"ema": 0.0}


@dataclass(frozen=True)
class PixelPlayerConfig:
    """One PixelPlayer profile: architecture, data, optimisation and bookkeeping.

    Architecture: ``visual_widths`` are the widths of the four ResNet-18 stages (64, 128, 256, 512
    in ResNet-18), ``unet_widths`` the seven U-Net encoder widths, ``channels`` K. Frames: training
    resizes each frame to ``resize`` px and takes a random ``image_size`` crop (and a random
    horizontal flip); evaluation resizes and centre-crops. ``frame_offsets`` are the 3 frames'
    positions (at the processed 8 fps) around the clip centre. Binary masks are thresholded at
    ``mask_threshold`` for separation when ``hard_masks`` (the reference), else used as soft masks.
    ``windows`` (frame pixels; empty in the reference) make pixel-level outputs (localization,
    click-to-hear) read each pixel's feature from a window around it
    (`musicbench.pixelplayer.inference`). ``transplant`` and ``side_by_side`` are probabilities of
    two training augmentations aimed at local visual features (`musicbench.pixelplayer.augment`,
    `musicbench.pixelplayer.train.side_by_side`; 0 in the reference). ``ema`` (0: off, the reference)
    is the decay of an exponential moving average of the weights, taken after every optimiser step:
    validation, ``best.pt`` and the published weights are the average's.
    ``unet_init``: ``reference`` initialises the U-Net as the reference code does (convolution
    weights N(0, 0.001), BatchNorm weights N(1, 0.02)), ``torch`` keeps PyTorch's defaults.
    ``train_samples`` is the length of training clips (0: ``audio.clip_samples``, the evaluation
    window; the U-Net is convolutional in time, so shorter training clips cost less per item).
    Steps are optimiser steps; the global batch is ``batch_size * accumulate * world size``.
    """

    # architecture
    image_size: int = knob(224, positive=True)
    resize: int = knob(246, positive=True)
    visual_widths: tuple[int, ...] = knob((64, 128, 256, 512))
    unet_widths: tuple[int, ...] = knob((64, 128, 256, 512, 512, 512, 512))
    channels: int = knob(32, positive=True)
    warp_rows: int = knob(256, positive=True)
    unet_init: UnetInit = knob("reference")
    pretrained: str = knob("")
    # data
    n_sources: Literal[2, 3, 4] = knob(2)
    train_samples: int = knob(0, non_negative=True)
    frame_offsets: tuple[int, ...] = knob((-16, 0, 16))
    items_per_epoch: int = knob(40000, positive=True)
    transplant: float = knob(0.0)
    side_by_side: float = knob(0.0)
    workers: int = knob(8, non_negative=True)
    # objective
    mask: Literal["binary", "ratio"] = knob("binary")
    weighted_loss: bool = knob(True)
    mask_threshold: float = knob(0.5)
    hard_masks: bool = knob(True)
    windows: tuple[int, ...] = knob(())
    # optimisation
    optimizer: Literal["sgd", "adam"] = knob("sgd")
    batch_size: int = knob(20, positive=True)
    accumulate: int = knob(1, positive=True)
    steps: int = knob(50000, positive=True)
    lr_trunk: float = knob(1e-4, positive=True)
    lr_head: float = knob(1e-3, positive=True)
    lr_milestones: tuple[int, ...] = knob((20000, 40000))
    lr_gamma: float = knob(0.1, positive=True)
    momentum: float = knob(0.9)
    weight_decay: float = knob(1e-4)
    ema: float = knob(0.0)
    # bookkeeping
    checkpoint_every: int = knob(1000, positive=True)
    val_every: int = knob(1000, positive=True)
    val_items: int = knob(0, non_negative=True)
    log_every: int = knob(20, positive=True)
    amp: bool = knob(True)
    channels_last: bool = knob(True)
    threads: int = knob(0, non_negative=True)
    # not a profile key: params pixelplayer.seed / profile name
    seed: int = knob(1234, non_negative=True, key="pixelplayer.seed")
    profile: str = "gpu"

    def __post_init__(self) -> None:
        where = f"pixelplayer.{self.profile}"
        check_fields(self, where)
        for name in ("momentum", "weight_decay", "ema"):
            if not 0 <= getattr(self, name) < 1:
                raise config_error(f"{where}.{name}", "must be a number in [0, 1)", getattr(self, name))
        if any(side < 2 for side in self.windows):
            raise config_error(f"{where}.windows", "must list window sides of at least 2 pixels", list(self.windows))
        for name in ("transplant", "side_by_side"):
            if not 0 <= getattr(self, name) <= 1:
                raise config_error(f"{where}.{name}", "must be a probability in [0, 1]", getattr(self, name))
        if not 0 < self.mask_threshold < 1:
            raise config_error(f"{where}.mask_threshold", "must be within (0, 1)", self.mask_threshold)
        if self.resize < self.image_size:
            raise MusicbenchError(
                f"params: {where}.resize ({self.resize}) must be >= {where}.image_size ({self.image_size}): "
                "frames are resized, then cropped")
        if self.image_size % 16:
            raise config_error(f"{where}.image_size", "must be a multiple of 16 (output stride)", self.image_size)
        if len(self.visual_widths) != 4 or min(self.visual_widths) <= 0:
            raise config_error(f"{where}.visual_widths", "must list 4 positive integers (ResNet-18 stages)",
                               list(self.visual_widths))
        if len(self.unet_widths) != 7 or min(self.unet_widths) <= 0:
            raise config_error(f"{where}.unet_widths", "must list 7 positive integers (U-Net levels)", list(self.unet_widths))
        if self.warp_rows % 128:
            raise config_error(f"{where}.warp_rows", "must be a multiple of 128 (7 halvings)", self.warp_rows)
        if self.train_samples and (self.train_samples // 256 + 1) % 128:
            raise config_error(f"{where}.train_samples", "must be 0 (audio.clip_samples) or give a spectrogram of a "
                               "multiple of 128 frames (hop 256): 32767, 65535, 98303, ...", self.train_samples)
        if not self.frame_offsets:
            raise config_error(f"{where}.frame_offsets", "must list integers (frames around the centre)", [])
        if min(self.lr_milestones, default=1) <= 0 or list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise config_error(f"{where}.lr_milestones", "must list increasing positive step numbers",
                               list(self.lr_milestones))

    @classmethod
    def from_params(cls, params: dict[str, Any], profile: str | None = None) -> "PixelPlayerConfig":
        """The profile `profile` (default ``pixelplayer.profile``) of a loaded params.yaml."""
        section = params.get("pixelplayer")
        if not isinstance(section, dict):
            raise MusicbenchError(
                "params: section 'pixelplayer' is missing or not a mapping; add it to params.yaml (see README)")
        name = profile if profile is not None else section.get("profile", "cpu")
        if not isinstance(name, str) or name in ("profile", "seed", "weights"):
            raise MusicbenchError(f"params: pixelplayer.profile must name a profile block, got {name!r}")
        if not isinstance(section.get(name), dict):
            known = sorted(k for k, v in section.items() if isinstance(v, dict))
            raise MusicbenchError(
                f"params: profile {name!r} has no block pixelplayer.{name}; choose one of {', '.join(known) or 'none'} "
                "with pixelplayer.profile or --profile")
        return config_from_params(cls, params, f"pixelplayer.{name}", profile=name)

    @classmethod
    def from_dict(cls, block: dict[str, Any], *, profile: str = "custom", seed: Any = 1234) -> "PixelPlayerConfig":
        """A profile block (mapping of field names) → config; lists become tuples."""
        return cls.from_params({"pixelplayer": {"seed": seed, profile: block}}, profile)

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
