"""The PixelPlayer network of "The Sound of Pixels" (Zhao et al., ECCV 2018), written from its description.

Three parts, as in the paper and its reference recipe:

- `VisualNet`: ResNet-18 (written out here, module names as torchvision's so an ImageNet state
  dict loads) whose last stage drops its stride and dilates its convolutions by 2 (output stride
  16: 224 px → 14 × 14), then a 3×3 convolution to K channels. For a clip of T frames the K maps
  are max-pooled over time; a sigmoid gives per-pixel features, and max pooling over space the
  clip's feature.
- `AudioUNet`: a 7-level U-Net on the log magnitude of the mixture's STFT (window 1022, hop 256,
  centred: 65535 samples at 11025 Hz → 512 × 256), warped to ``warp_rows`` (256) log-frequency rows
  with `grid_sample`, after a BatchNorm; 4×4 stride-2 convolutions down (LeakyReLU 0.2, BatchNorm),
  bilinear ×2 upsampling and 3×3 convolutions up (ReLU, BatchNorm), skip connections; K output maps;
  initialised as the reference (``unet_init: reference``) or with PyTorch's defaults (``torch``).
- `Synthesizer`: mask logits ``Σ_k v_k · scale_k · a_k + bias`` with learnable scales and bias;
  the mask is their sigmoid.

Widths are configurable (`PixelPlayerConfig.visual_widths`, ``unet_widths``) so that the small CPU
profile is the same architecture family as the paper-sized GPU one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from musicbench.pixelplayer.config import UNET_INITS, PixelPlayerConfig
from musicbench.stft import N_FFT, hann_window, istft, stft

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: pixels of the input frame per cell of the visual net's output maps
OUTPUT_STRIDE = 16


# ---------------------------------------------------------------------------------------------
# visual network


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convolutions with a shortcut (1×1 convolution when shapes change)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation_first: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation_first, dilation=dilation_first, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class VisualNet(nn.Module):
    """Dilated ResNet-18 (output stride 16) + 3×3 conv to K channels: frames → K feature maps."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), channels: int = 32):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(3, w0, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(w0, w0), BasicBlock(w0, w0))
        self.layer2 = nn.Sequential(BasicBlock(w0, w1, 2), BasicBlock(w1, w1))
        self.layer3 = nn.Sequential(BasicBlock(w1, w2, 2), BasicBlock(w2, w2))
        # the last stage keeps the resolution: stride 1, dilation 2 (its first conv dilation 1)
        self.layer4 = nn.Sequential(BasicBlock(w2, w3, 1, 1, 2), BasicBlock(w3, w3, 1, 2, 2))
        for module in self.modules():  # the trunk as torchvision initialises ResNets
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # "the visual net's last conv" (head learning rate): PyTorch's default initialisation, whose
        # small outputs keep the sigmoid of the pooled maps away from saturation at the start
        self.fc = nn.Conv2d(w3, channels, 3, padding=1)

    def trunk_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("fc.")]

    def head_parameters(self):
        return list(self.fc.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, 3, H, W) normalised frames → (M, K, H/16, W/16) maps (no activation)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x)


# ---------------------------------------------------------------------------------------------
# audio network


class AudioUNet(nn.Module):
    """7-level U-Net: (B, 1, R, T) log magnitude → (B, K, R, T) audio feature maps (no activation)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512), channels: int = 32,
                 init: str = "reference"):
        super().__init__()
        if init not in UNET_INITS:
            raise ValueError(f"AudioUNet init must be one of {UNET_INITS}, got {init!r}")
        levels = len(widths)
        self.bn_input = nn.BatchNorm2d(1)
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(1 if i == 0 else widths[i - 1], width, 4, 2, 1, bias=False))
            if 0 < i < levels - 1:
                layers.append(nn.BatchNorm2d(width))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()  # up[j] serves level levels-1-j (innermost first)
        for i in reversed(range(levels)):
            cin = widths[i] if i == levels - 1 else 2 * widths[i]
            cout = widths[i - 1] if i > 0 else channels
            layers = [nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                      nn.Conv2d(cin, cout, 3, padding=1, bias=i == 0)]
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            self.up.append(nn.Sequential(*layers))
        if init == "reference":  # the reference code's weights_init; "torch" keeps PyTorch's defaults
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, 0.0, 0.001)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.normal_(module.weight, 1.0, 0.02)
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_input(x)
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        y = skips[-1]
        for j, up in enumerate(self.up):
            level = len(self.down) - 1 - j
            y = up(y)
            if level > 0:
                y = torch.cat([skips[level - 1], y], dim=1)
        return y


class Synthesizer(nn.Module):
    """Mask logits = Σ_k v_k · scale_k · a_k + bias (the mask is their sigmoid)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """visual (B, N, K) features in [0, 1]; audio (B, K, R, T) → logits (B, N, R, T)."""
        return torch.einsum("bnk,bkrt->bnrt", visual * self.scale, audio) + self.bias


# ---------------------------------------------------------------------------------------------
# spectrogram helpers


def frequency_grid(rows_out: int, rows_in: int, columns: int, warp: bool, device=None) -> torch.Tensor:
    """`grid_sample` grid (1, rows_out, columns, 2) between linear and log frequency.

    warp=True samples a linear-frequency input at log-spaced rows (y_in = (21^((y+1)/2) - 11) / 10),
    warp=False is its inverse (y_in = 2 log(10 y + 11) / log 21 - 1); ``align_corners=True``.
    `rows_in` is unused by the formula (normalised coordinates) and kept for clarity at call sites.
    """
    del rows_in
    y = torch.linspace(-1.0, 1.0, rows_out, dtype=torch.float64)
    x = torch.linspace(-1.0, 1.0, columns, dtype=torch.float64)
    y_in = (torch.pow(21.0, (y + 1) / 2) - 11) / 10 if warp else torch.log(y * 10 + 11) / math.log(21) * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(x[None, :], y_in.clamp(-1, 1)[:, None]), dim=-1)
    return grid[None].to(device=device, dtype=torch.float32)


class PixelPlayer(nn.Module):
    """The full model. `forward(log_mag, frames)` returns mask logits for every (mixture, video)."""

    def __init__(self, config: PixelPlayerConfig):
        super().__init__()
        self.config = config
        self.visual = VisualNet(tuple(config.visual_widths), config.channels)
        self.audio = AudioUNet(tuple(config.unet_widths), config.channels, config.unet_init)
        self.synthesizer = Synthesizer(config.channels)
        self.register_buffer("window", hann_window(N_FFT, torch.float32), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._grids: dict[tuple, torch.Tensor] = {}
        self.channels_last = False  # set on CUDA: convolution inputs are made channels-last

    def _memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    # parameter groups of the reference optimiser
    def trunk_parameters(self):
        return self.visual.trunk_parameters()

    def head_parameters(self):
        return self.visual.head_parameters() + list(self.audio.parameters()) + list(self.synthesizer.parameters())

    # ---- audio path
    def stft(self, waves: torch.Tensor) -> torch.Tensor:
        """(..., L) waves → float32 complex STFT (..., 512, 1 + L // 256) (`musicbench.stft`)."""
        return stft(waves, self.window)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of `stft` for (..., 512, T) → (..., length) (zero beyond the last frame's reach)."""
        return istft(spec, self.window, length)

    def _grid(self, rows_out: int, rows_in: int, columns: int, warp: bool, device) -> torch.Tensor:
        key = (rows_out, rows_in, columns, warp, str(device))
        if key not in self._grids:
            self._grids[key] = frequency_grid(rows_out, rows_in, columns, warp, device)
        return self._grids[key]

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 512, T) linear frequency → (B, C, warp_rows, T) log frequency."""
        grid = self._grid(self.config.warp_rows, x.shape[-2], x.shape[-1], True, x.device)
        return F.grid_sample(x, grid.expand(x.shape[0], -1, -1, -1).to(x.dtype), align_corners=True)

    def unwarp(self, x: torch.Tensor, rows: int = N_FFT // 2 + 1) -> torch.Tensor:
        """(B, C, warp_rows, T) log frequency → (B, C, rows, T) linear frequency."""
        grid = self._grid(rows, x.shape[-2], x.shape[-1], False, x.device)
        return F.grid_sample(x, grid.expand(x.shape[0], -1, -1, -1).to(x.dtype), align_corners=True)

    def spectrogram(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mixture waves (B, L) → its STFT, the warped magnitude (B, 1, R, T) and its log (the U-Net input)."""
        spec = self.stft(mixture)
        mag = self.warp(spec.abs().unsqueeze(1) + 1e-10)
        return {"spec": spec, "mag": mag, "log_mag": torch.log(mag.clamp_min(1e-10))}

    # ---- visual path
    def preprocess_frames(self, frames: torch.Tensor, *, train: bool = False, crop: bool = True,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (..., T, H, W, 3) → normalised float (..., T, 3, S, S').

        The shorter side is resized to ``resize`` px; then with ``crop`` an ``image_size`` square is
        cut (random + random horizontal flip when ``train``, one draw per clip; centred otherwise),
        without it the whole resized frame is kept (pixel-level outputs cover the whole frame).
        """
        lead, (t, h, w) = frames.shape[:-4], frames.shape[-4:-1]
        # NCHW in memory: a permuted (N, H, W, 3) view is channels-last, and CPU BatchNorm's channels-last
        # backward corrupts the heap on some shapes (torch 2.13, one thread)
        x = frames.reshape(-1, h, w, 3).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
        size = self.config.resize
        new_h, new_w = (size, max(size, round(w * size / h))) if h <= w else (max(size, round(h * size / w)), size)
        if (new_h, new_w) != (h, w):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
        if crop:
            s = self.config.image_size
            clips = x.reshape(-1, t, 3, new_h, new_w)
            if train:
                n = clips.shape[0]
                tops = torch.randint(0, new_h - s + 1, (n,), generator=generator).tolist()
                lefts = torch.randint(0, new_w - s + 1, (n,), generator=generator).tolist()
                flips = torch.rand(n, generator=generator).lt(0.5).tolist()
                out = []
                for clip, top, left, flip in zip(clips, tops, lefts, flips):
                    piece = clip[:, :, top:top + s, left:left + s]
                    out.append(piece.flip(-1) if flip else piece)
                clips = torch.stack(out)
            else:
                top, left = (new_h - s) // 2, (new_w - s) // 2
                clips = clips[:, :, :, top:top + s, left:left + s]
            x = clips.reshape(-1, 3, s, s)
        x = (x - self.mean) / self.std
        return x.reshape(*lead, t, 3, x.shape[-2], x.shape[-1])

    def visual_maps(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames (M, T, 3, S, S') → (M, K, h, w): K maps max-pooled over the T frames."""
        m, t = frames.shape[:2]
        maps = self.visual(self._memory_format(frames.reshape(m * t, *frames.shape[2:])))
        return maps.reshape(m, t, *maps.shape[1:]).amax(dim=1)

    def forward(self, log_mag: torch.Tensor, frames: torch.Tensor, regions: torch.Tensor | None = None) -> torch.Tensor:
        """log_mag (B, 1, R, T); frames (B, N, T_frames, 3, S, S) normalised → mask logits (B, N, R, T).

        Each video's feature is the sigmoid of its K maps max-pooled over time and space; with
        `regions` (bool cell masks (B, N, S/16, S/16)) over those cells only.
        """
        b, n = frames.shape[:2]
        audio = self.audio(self._memory_format(log_mag))
        maps = self.visual_maps(frames.reshape(b * n, *frames.shape[2:]))
        if regions is not None:
            outside = ~regions.reshape(b * n, 1, *maps.shape[-2:])
            maps = maps.masked_fill(outside, torch.finfo(maps.dtype).min)
        visual = torch.sigmoid(maps.amax(dim=(-2, -1))).reshape(b, n, -1)
        return self.synthesizer(visual.to(audio.dtype), audio)

    def pixel_logits(self, audio: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """audio (K, R, T) maps of one mixture; pixels (P, K) features in [0, 1] → logits (P, R, T)."""
        return self.synthesizer(pixels[None].to(audio.dtype), audio[None])[0]


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def expected_parameter_count(config: PixelPlayerConfig) -> dict[str, int]:
    """Parameter counts computed from the architecture's definition (not from a built model)."""
    def conv(cin, cout, k, bias=False):
        return cin * cout * k * k + (cout if bias else 0)

    def bn(c):
        return 2 * c

    def block(cin, cout, stride=1):
        count = conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
        if stride != 1 or cin != cout:
            count += conv(cin, cout, 1) + bn(cout)
        return count

    w0, w1, w2, w3 = config.visual_widths
    k = config.channels
    visual = conv(3, w0, 7) + bn(w0) + 2 * block(w0, w0) + block(w0, w1, 2) + block(w1, w1) + block(w1, w2, 2) \
        + block(w2, w2) + block(w2, w3) + block(w3, w3) + conv(w3, k, 3, bias=True)
    widths = config.unet_widths
    levels = len(widths)
    audio = bn(1)
    for i, width in enumerate(widths):
        audio += conv(1 if i == 0 else widths[i - 1], width, 4) + (bn(width) if 0 < i < levels - 1 else 0)
        cin = width if i == levels - 1 else 2 * width
        cout = widths[i - 1] if i > 0 else k
        audio += conv(cin, cout, 3, bias=i == 0) + (bn(cout) if i > 0 else 0)
    synthesizer = k + 1
    return {"visual": visual, "audio": audio, "synthesizer": synthesizer, "total": visual + audio + synthesizer}
