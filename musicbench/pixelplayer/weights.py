"""PixelPlayer's published reference weights: a safetensors file, its card, and the stage that uses them.

The board's reference PixelPlayer row is scored from weights committed to the repository, so that it
is the same number on every machine (CPU training is not bit-reproducible across machines). They live
in ``baselines/weights/``::

    pixelplayer_<profile>.safetensors      tensors only (a format that cannot run code when loaded);
                                           its metadata holds the config and audio settings as JSON
    pixelplayer_<profile>.json             the card: SHA-256 and size of the file, the full recipe
                                           (profile config, seed), what it was trained on (benchmark
                                           version, frames fingerprint, the training videos), the
                                           training run (steps, best step, best val NSDR, time, machine)
    pixelplayer_<profile>_train_curve.csv  the training curve (`musicbench.pixelplayer.train` columns)
    pixelplayer_<profile>_val_curve.csv    the validation curve

params.yaml ``pixelplayer.weights`` picks where the stage's weights come from: ``published`` (the
default: the card's file, checked against its SHA-256) or ``train`` (train ``pixelplayer.profile``
on this data root). Either way the stage writes ``OUT/weights.safetensors`` and its card, which
`baselines/pixelplayer.py` loads. Published weights are refused on a data root whose val or test
videos were among their training videos (that would score a model on what it learnt from).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import torch

from musicbench.errors import MusicbenchError
from musicbench.fsutil import atomic_path, atomic_write_text, ensure_writable_dir

#: the ``format`` of a weights file's metadata and of its card
WEIGHTS_FORMAT = "musicbench pixelplayer weights 1"
WEIGHTS_NAME, CARD_NAME = "weights.safetensors", "weights.json"
WEIGHTS_SOURCES = ("published", "train")
#: the repository's folder of published weights (``baselines/weights``)
PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "baselines" / "weights"
_HASH_CHUNK = 1 << 20
MAX_CARD_BYTES = 4 << 20  # a card holds a recipe, a list of videos and two curves' names
MAX_TENSOR_ELEMENTS = 1 << 28  # of all the network's tensors together (the gpu profile has about 5e7)
#: profile keys that do not change what training computes (the recipe is every other key)
BOOKKEEPING_KEYS = {"checkpoint_every", "val_every", "log_every", "workers", "threads"}


def published_weights_path(profile: str, folder: str | os.PathLike = PUBLISHED_DIR) -> Path:
    """``baselines/weights/pixelplayer_<profile>.safetensors``."""
    return Path(folder) / f"pixelplayer_{profile}.safetensors"


def card_path(weights: str | os.PathLike) -> Path:
    """The card beside a weights file: ``X.safetensors`` → ``X.json``."""
    return Path(weights).with_suffix(".json")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _restore_hint(path: Path) -> str:
    return ("restore it (`git checkout -- FILE` for published weights, `dvc checkout` for a stage's) "
            "or retrain with pixelplayer.weights: train").replace("FILE", str(path))


def read_card(weights: str | os.PathLike) -> dict[str, Any] | None:
    """The card beside `weights`, or None when there is none; a one-line error when it is unreadable."""
    path = card_path(weights)
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():  # a FIFO or folder in its place must not pass for "no card"
        raise MusicbenchError(f"the card of PixelPlayer weights {str(path)!r} is not a regular file; {_restore_hint(path)}")
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise ValueError(f"over {MAX_CARD_BYTES} bytes")
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MusicbenchError(f"cannot read the card of PixelPlayer weights {str(path)!r}: {exc}; {_restore_hint(path)}") from None
    if not isinstance(card, dict) or card.get("format") != WEIGHTS_FORMAT or not isinstance(card.get("sha256"), str):
        raise MusicbenchError(f"{str(path)!r} is not a card of PixelPlayer weights ({WEIGHTS_FORMAT!r} with a sha256); "
                              f"{_restore_hint(path)}")
    return card


def verify_weights(weights: str | os.PathLike, card: dict[str, Any]) -> None:
    """Raise a one-line error unless `weights` has the size and SHA-256 its card records."""
    path = Path(weights)
    size = path.stat().st_size
    if "bytes" in card and size != card["bytes"]:
        raise MusicbenchError(f"PixelPlayer weights {str(path)!r} have {size} bytes, their card says {card['bytes']} "
                              f"(truncated or replaced); {_restore_hint(path)}")
    digest = file_sha256(path)
    if digest != card["sha256"]:
        raise MusicbenchError(f"PixelPlayer weights {str(path)!r} do not match the SHA-256 of their card "
                              f"({digest[:16]}… against {card['sha256'][:16]}…: tampered or replaced); {_restore_hint(path)}")


def load_weights_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A PixelPlayer weights file → ``{"model": state_dict, "config": dict, "audio": dict}``.

    Checked against its card when one lies beside it (size and SHA-256); read with safetensors,
    which holds tensors and a string table only, so loading runs no code. Every failure is one line
    naming the file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not os.path.lexists(path):
        raise MusicbenchError(f"PixelPlayer weights {str(path)!r} do not exist; run `musicbench pixelplayer-weights` "
                              "(or `dvc repro train_pixelplayer`) first, or pass --option checkpoint=PATH")
    if not path.is_file():
        raise MusicbenchError(f"PixelPlayer weights {str(path)!r} are not a regular file; {_restore_hint(path)}")
    card = read_card(path)
    if card is not None:
        verify_weights(path, card)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open has no items())
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise MusicbenchError(f"cannot read PixelPlayer weights {str(path)!r}: {reason} (not a complete safetensors file); "
                              f"{_restore_hint(path)}") from None
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise MusicbenchError(f"{str(path)!r} is a safetensors file but not PixelPlayer weights ({WEIGHTS_FORMAT!r} "
                              "in its metadata); export them with `musicbench.pixelplayer.weights.export_weights`")
    try:
        config, audio = json.loads(metadata["config"]), json.loads(metadata["audio"])
    except (KeyError, ValueError, RecursionError):
        raise MusicbenchError(f"PixelPlayer weights {str(path)!r}: metadata without a readable config and audio") from None
    if not isinstance(config, dict) or not isinstance(audio, dict):
        raise MusicbenchError(f"PixelPlayer weights {str(path)!r}: their config and audio settings must be mappings")
    return {"model": tensors, "config": config, "audio": audio, "card": card}


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a training checkpoint's weights (``best.pt``) as `out` (safetensors) plus its card.

    `card` adds fields to the card (recipe, training data, curves); its ``sha256`` and ``bytes`` are
    those of the written file. Returns the card.
    """
    from safetensors.torch import save_file

    from musicbench.pixelplayer.inference import load_checkpoint_file

    state = load_checkpoint_file(checkpoint)
    out = Path(out)
    ensure_writable_dir(out.parent)
    metadata = {"format": WEIGHTS_FORMAT, "config": json.dumps(state["config"], sort_keys=True),
                "audio": json.dumps(state["audio"], sort_keys=True)}
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state["model"].items()}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    full = {"config": state["config"], "audio": state["audio"], "checkpoint_step": state.get("step"),
            "val": state.get("val"), **(card or {}),  # the file's own facts below always win over `card`'s
            "format": WEIGHTS_FORMAT, "file": out.name, "sha256": file_sha256(out), "bytes": out.stat().st_size}
    atomic_write_text(card_path(out), json.dumps(full, indent=2, sort_keys=True) + "\n")
    return full


def machine_description() -> dict[str, str]:
    """The machine a training ran on (CPU model, torch version): what its weights may depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "torch": torch.__version__, "python": platform.python_version()}


def training_card(params: dict[str, Any], root: str | os.PathLike, train_dir: str | os.PathLike) -> dict[str, Any]:
    """The card fields of a finished training in `train_dir` on the data root `root`: recipe seed,
    benchmark version and frames fingerprint trained on, the training videos, the run's summary and
    the machine."""
    from musicbench.benchmark import DataRoot
    from musicbench.splits import read_stage_split_rows

    data = DataRoot(root)
    benchmark = data.definition() if data.has_definition() else {}
    rows = read_stage_split_rows(root)
    summary_path = Path(train_dir) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"seed": int(params["pixelplayer"].get("seed", 1234)),
            "trained_on": {"benchmark_version": benchmark.get("benchmark_version"),
                           "frames": benchmark.get("frames_fingerprint"),
                           "train_videos": sorted(r.video_id for r in rows if r.split == "train")},
            "training": summary, "machine": machine_description()}


def check_no_leak(card: dict[str, Any], root: str | os.PathLike, weights: Path) -> None:
    """Refuse published weights whose training videos include a val or test video of `root`."""
    from musicbench.splits import read_stage_split_rows

    trained = set(card.get("trained_on", {}).get("train_videos", []))
    scored = sorted(r.video_id for r in read_stage_split_rows(root) if r.split in ("val", "test") and r.video_id in trained)
    if scored:
        raise MusicbenchError(
            f"published PixelPlayer weights {str(weights)!r} were trained on {len(scored)} video(s) that this data root "
            f"scores in val/test (e.g. {scored[0]}): its splits differ from theirs; set pixelplayer.weights: train "
            "to train on this data root")


def prepare_weights(params: dict[str, Any], root: str | os.PathLike, out_dir: str | os.PathLike, *, device: str = "auto",
                    progress: bool = True, published_dir: str | os.PathLike = PUBLISHED_DIR) -> dict[str, Any]:
    """Stage ``train_pixelplayer``: put PixelPlayer's weights in ``out_dir/weights.safetensors`` (+ card).

    ``pixelplayer.weights: published`` copies the profile's published weights after checking them
    (SHA-256, and that none of their training videos is scored on this data root); ``train`` trains
    ``pixelplayer.profile`` here (`musicbench.pixelplayer.train`) and exports its best weights.
    Returns the card written.
    """
    from musicbench.pixelplayer.config import PixelPlayerConfig

    section = params.get("pixelplayer") or {}
    source = section.get("weights", "published")
    if source not in WEIGHTS_SOURCES:
        raise MusicbenchError(f"params: pixelplayer.weights must be one of {', '.join(WEIGHTS_SOURCES)}, got {source!r}")
    config = PixelPlayerConfig.from_params(params)
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir)
    if source == "train":
        from musicbench.pixelplayer.train import BEST_NAME, train_pixelplayer

        train_pixelplayer(params, root, out_dir, device=device, resume=False, progress=progress, config=config)
        return export_weights(out_dir / BEST_NAME, out_dir / WEIGHTS_NAME,
                              {"source": "trained here", "profile": config.profile, **training_card(params, root, out_dir)})
    published = published_weights_path(config.profile, published_dir)
    card = read_card(published) if published.is_file() else None
    if card is None:
        raise MusicbenchError(f"no published PixelPlayer weights for profile {config.profile!r} ({str(published)!r} and its "
                              "card); set pixelplayer.weights: train, or pixelplayer.profile to a published one")
    verify_weights(published, card)
    check_no_leak(card, root, published)
    recipe = card_recipe(card)
    differs = sorted(key for key, value in config.to_dict().items()
                     if key not in BOOKKEEPING_KEYS and recipe.get(key) != value)
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        shutil.copyfile(published, tmp)
    card = {**card, "source": f"published ({published.name})", "recipe_differs": differs}
    atomic_write_text(out_dir / CARD_NAME, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card


def card_recipe(card: dict[str, Any]) -> dict[str, Any]:
    """The profile config a card records, with a key newer than the card at the value it had
    before (`LEGACY_DEFAULTS`, e.g. ``ema`` 0); any other missing key stays missing (so it differs)."""
    from musicbench.pixelplayer.config import LEGACY_DEFAULTS

    config = card.get("config")
    return {**LEGACY_DEFAULTS, **(config if isinstance(config, dict) else {})}


def publish_weights(trained_dir: str | os.PathLike, published_dir: str | os.PathLike = PUBLISHED_DIR,
                    test_scores: dict[str, Any] | None = None) -> Path:
    """Copy weights trained here (``trained_dir/weights.safetensors``, its card and curves) into the
    published folder as ``pixelplayer_<profile>.*``; `test_scores` (e.g. the test run's summary
    figures) are added to the card. Returns the published weights' path."""
    from musicbench.pixelplayer.train import CURVE_NAME, VAL_CURVE_NAME

    trained_dir, published_dir = Path(trained_dir), Path(published_dir)
    source = trained_dir / WEIGHTS_NAME
    card = read_card(source)
    if card is None or not str(card.get("source", "")).startswith("trained"):
        raise MusicbenchError(f"{str(source)!r} has no card of weights trained here; run `musicbench pixelplayer-weights` "
                              "with pixelplayer.weights: train first")
    verify_weights(source, card)
    target = published_weights_path(card["profile"], published_dir)
    stem = target.stem
    curves = {"train": f"{stem}_train_curve.csv", "val": f"{stem}_val_curve.csv"}
    ensure_writable_dir(published_dir)
    for name, copied in ((CURVE_NAME, curves["train"]), (VAL_CURVE_NAME, curves["val"])):
        with atomic_path(published_dir / copied) as tmp:
            shutil.copyfile(trained_dir / name, tmp)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    card = {**card, "file": target.name, "curves": curves, "test": test_scores or card.get("test")}
    card.pop("source", None)
    atomic_write_text(card_path(target), json.dumps(card, indent=2, sort_keys=True) + "\n")
    return target
