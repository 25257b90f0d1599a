"""PixelPlayer ("The Sound of Pixels", Zhao et al. ECCV 2018): the reference baseline of the board.

- `config.PixelPlayerConfig`: params.yaml ``pixelplayer`` profiles (``cpu``, ``gpu``).
- `model.PixelPlayer`: dilated ResNet-18 visual net, 7-level U-Net audio net, synthesizer.
- `train.train_pixelplayer` (`train.Trainer`): Mix-and-Separate training (CPU, GPU, torchrun DDP), checkpoints, curves.
- `inference.Separator`: separate / localize / separate_at on numpy arrays (the harness's model API).
"""

from musicbench.pixelplayer.config import PixelPlayerConfig
from musicbench.pixelplayer.inference import Separator
from musicbench.pixelplayer.model import PixelPlayer

__all__ = ["PixelPlayer", "PixelPlayerConfig", "Separator", "train_pixelplayer"]


def train_pixelplayer(*args, **kwargs):
    """See `musicbench.pixelplayer.train.train_pixelplayer` (imported lazily)."""
    from musicbench.pixelplayer.train import train_pixelplayer as train

    return train(*args, **kwargs)
