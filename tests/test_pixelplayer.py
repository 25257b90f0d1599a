"""PixelPlayer: shapes of every part, learning, exact resume, DDP agreement, the harness, config errors.

Real torch on a tiny profile of the same architecture family (no mocks); data from the shared
`bench_root` fixture (read only: what a test writes goes to its tmp_path).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.metrics.localization import boxes_to_mask
from musicbench.pixelplayer.augment import MOTION_SPAN, moving_box, transplant
from musicbench.pixelplayer.config import PixelPlayerConfig
from musicbench.pixelplayer.inference import Separator, parse_windows
from musicbench.pixelplayer.model import (
    AudioUNet,
    PixelPlayer,
    Synthesizer,
    VisualNet,
    count_parameters,
    expected_parameter_count,
    frequency_grid,
)
from musicbench.pixelplayer.train import (
    _load_pretrained,
    augmentation_generator,
    batch_loss,
    make_optimizer,
    train_pixelplayer,
    training_dataset,
)
from musicbench.splits import read_stage_splits
from tests.conftest import AUDIO, REPO_PARAMS, REPO_ROOT

TINY = dict(
    image_size=32, resize=36, visual_widths=[4, 8, 8, 16], unet_widths=[4, 4, 8, 8, 8, 8, 8], channels=4,
    batch_size=2, steps=4, items_per_epoch=6, checkpoint_every=2, val_every=2, val_items=2, log_every=1, workers=0,
    lr_trunk=0.01, lr_head=0.01, lr_milestones=[3], threads=1,
)


def tiny_params(params: dict, **changes) -> dict:
    out = copy.deepcopy(params)
    out["pixelplayer"] = {"profile": "tiny", "seed": 5, "tiny": {**TINY, **changes}}
    return out


def tiny_config(**changes) -> PixelPlayerConfig:
    return PixelPlayerConfig.from_dict({**TINY, **changes}, profile="tiny", seed=5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on 2 shared cores, two OpenMP threads are often many times slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def trained(bench_root, tmp_path_factory):
    """A tiny PixelPlayer trained 4 steps straight on the bench set: (params, out_dir, summary)."""
    root, params, _ = bench_root
    params = tiny_params(params, optimizer="adam")  # the cpu profile's optimiser: its resume is exact too
    out = tmp_path_factory.mktemp("pixelplayer") / "straight"
    summary = train_pixelplayer(params, root, out, device="cpu", progress=False)
    return params, out, summary


# ---------------------------------------------------------------------------------------------
# shapes


def test_each_part_has_the_documented_shapes():
    torch.manual_seed(0)
    visual = VisualNet((4, 8, 8, 16), channels=6).eval()
    assert visual(torch.randn(2, 3, 224, 224)).shape == (2, 6, 14, 14)  # output stride 16, as the paper's 14 x 14
    assert visual(torch.randn(1, 3, 64, 96)).shape == (1, 6, 4, 6)
    unet = AudioUNet((4, 4, 8, 8, 8, 8, 8), channels=6).eval()
    assert unet(torch.randn(2, 1, 256, 256)).shape == (2, 6, 256, 256)
    synth = Synthesizer(6)
    assert synth(torch.rand(2, 3, 6), torch.randn(2, 6, 8, 5)).shape == (2, 3, 8, 5)

    net = PixelPlayer(tiny_config(channels=6)).eval()
    spectrum = net.spectrogram(torch.randn(3, 65535) * 0.1)
    assert spectrum["spec"].shape == (3, 512, 256) and spectrum["spec"].is_complex()
    assert spectrum["mag"].shape == spectrum["log_mag"].shape == (3, 1, 256, 256)
    frames = torch.randint(0, 256, (3, 2, 3, 112, 112, 3), dtype=torch.uint8)
    normalised = net.preprocess_frames(frames, train=True, generator=torch.Generator().manual_seed(0))
    assert normalised.shape == (3, 2, 3, 3, 32, 32)
    whole = net.preprocess_frames(frames[0], crop=False)
    assert whole.shape == (2, 3, 3, 36, 36)
    assert whole.is_contiguous()  # NCHW: CPU BatchNorm's channels-last backward corrupts the heap (torch 2.13)
    with torch.no_grad():
        assert net(spectrum["log_mag"], normalised).shape == (3, 2, 256, 256)
    assert net.istft(spectrum["spec"], 65535).shape == (3, 65535)


def test_log_frequency_warp_spans_the_spectrum_and_unwarps():
    grid = frequency_grid(256, 512, 4, warp=True)
    rows = grid[0, :, 0, 1]
    assert rows[0] == pytest.approx(-1) and rows[-1] == pytest.approx(1)
    assert torch.all(rows[1:] > rows[:-1]) and rows[128] < -0.5  # log spacing: half the rows below ~1/4 of the band
    net = PixelPlayer(tiny_config())
    smooth = torch.linspace(0, 1, 512).view(1, 1, 512, 1).expand(1, 1, 512, 8).contiguous()
    back = net.unwarp(net.warp(smooth))
    assert back.shape == smooth.shape
    assert torch.allclose(back[..., 64:, :], smooth[..., 64:, :], atol=2e-3)  # exact up to interpolation


def test_unet_initialisation_reference_or_torch():
    torch.manual_seed(0)
    reference, default = AudioUNet((8, 16, 32, 64, 64, 64, 64), 4), AudioUNet((8, 16, 32, 64, 64, 64, 64), 4, "torch")
    convs = [m.weight.detach() for m in reference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(abs(float(w.std()) - 0.001) < 0.0005 for w in convs if w.numel() >= 256)
    norms = [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # the input BN too
    assert all(float(m.bias.detach().abs().max()) == 0 and 0 < float((m.weight.detach() - 1).abs().max()) < 0.2
               for m in norms)
    default_convs = [m.weight.detach() for m in default.modules() if isinstance(m, torch.nn.Conv2d)]
    assert min(float(w.std()) for w in default_convs) > 0.01  # PyTorch's kaiming-uniform defaults
    assert PixelPlayerConfig().unet_init == "reference"
    assert PixelPlayer(tiny_config(unet_init="torch")).audio.down[0][0].weight.std() > 0.01
    with pytest.raises(ValueError, match="init"):
        AudioUNet((8, 16, 32, 64, 64, 64, 64), 4, "xavier")


def test_gpu_profile_parameter_count_matches_the_architecture():
    config = PixelPlayerConfig()  # the defaults are the paper's sizes (the gpu profile)
    net = PixelPlayer(config)
    expected = expected_parameter_count(config)
    counts = {"visual": count_parameters(net.visual), "audio": count_parameters(net.audio),
              "synthesizer": count_parameters(net.synthesizer), "total": count_parameters(net)}
    print(f"PixelPlayer gpu profile parameters: {counts}")
    assert counts == expected
    # the trunk is exactly torchvision's ResNet-18 without its classifier (11,689,512 - 513,000)
    assert count_parameters(net.visual) - count_parameters(net.visual.fc) == 11_176_512
    assert count_parameters(net.visual.fc) == 512 * 32 * 9 + 32


# ---------------------------------------------------------------------------------------------
# learning


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.2), ("adam", 0.01)])
def test_loss_falls_when_overfitting_one_batch(bench_root, optimizer, lr):
    root, params, _ = bench_root
    config = tiny_config(optimizer=optimizer, lr_trunk=lr, lr_head=lr)
    torch.manual_seed(0)
    dataset = training_dataset(params, root, config)
    batch = {k: torch.stack([dataset[i][k] for i in range(2)]) for k in ("mixture", "sources", "frames")}
    net = PixelPlayer(config).train()
    sgd_or_adam, _ = make_optimizer(net, config)
    assert type(sgd_or_adam).__name__ == {"sgd": "SGD", "adam": "AdamW"}[optimizer]
    assert [group["lr"] for group in sgd_or_adam.param_groups] == [lr, lr]
    losses = []
    # 60 steps: momentum SGD sits on a plateau for its first ~30 steps on this batch (the loss then falls
    # to a third by step 60); 30 steps passed or failed with the bytes of the generated frames
    for _step in range(60):
        sgd_or_adam.zero_grad()
        loss = batch_loss(net, net, batch, config, torch.device("cpu"), generator=augmentation_generator(5, 0, 0))
        loss.backward()
        sgd_or_adam.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_training_clips_may_be_shorter_than_the_evaluation_window(bench_root):
    root, params, _ = bench_root
    config = tiny_config(train_samples=32767)
    item = training_dataset(params, root, config)[0]
    assert item["mixture"].shape == (32767,) and item["sources"].shape == (2, 32767)
    batch = {k: torch.stack([item[k], item[k]]) for k in ("mixture", "sources", "frames")}
    net = PixelPlayer(config).train()
    loss = batch_loss(net, net, batch, config, torch.device("cpu"), generator=augmentation_generator(5, 0, 0))
    assert torch.isfinite(loss)
    assert training_dataset(params, root, tiny_config())[0]["mixture"].shape == (params["audio"]["clip_samples"],)
    assert config.train_clip_samples(65535) == 32767 and tiny_config().train_clip_samples(65535) == 65535
    with pytest.raises(MusicbenchError, match=r"pixelplayer\.tiny\.train_samples .*32767, 65535"):
        tiny_config(train_samples=40000)


def test_the_gpu_profile_trains_validates_and_separates_on_cpu(bench_root, tmp_path):
    """No GPU is lent to CI: the paper-sized profile runs its whole loop here for one step of batch 2."""
    root, params, _ = bench_root
    section = copy.deepcopy(REPO_PARAMS["pixelplayer"])
    section["profile"] = "gpu"
    section["gpu"].update(batch_size=2, steps=1, items_per_epoch=2, workers=0, val_items=1, checkpoint_every=1,
                          val_every=1, log_every=1, threads=1)
    summary = train_pixelplayer({**params, "pixelplayer": section}, root, tmp_path / "gpu", device="cpu", progress=False)
    assert summary["profile"] == "gpu" and summary["completed"] and summary["device"] == "cpu"
    assert summary["n_parameters"] == expected_parameter_count(PixelPlayerConfig())["total"]
    assert math.isfinite(summary["first_loss"]) and summary["best_step"] == 1
    separator = Separator.from_checkpoint(tmp_path / "gpu" / "best.pt", device="cpu")
    assert separator.config.hard_masks and separator.config.image_size == 224
    item = next(DataRoot(root).iter_items("test", 1))
    estimates = separator.separate(item.mixture, item.frames)
    assert estimates.shape == item.references.shape and np.isfinite(estimates).all()


def test_resumed_run_reproduces_the_uninterrupted_run(trained, bench_root, tmp_path):
    root = bench_root[0]
    params, straight, summary = trained
    assert summary["steps"] == 4 and summary["completed"] and summary["best_step"] in (2, 4)
    resumed = tmp_path / "resumed"
    first = train_pixelplayer(params, root, resumed, device="cpu", max_steps=2, progress=False)
    assert first["steps"] == 2 and not first["completed"] and not (resumed / "summary.json").exists()
    second = train_pixelplayer(params, root, resumed, device="cpu", progress=False)  # crosses an epoch boundary
    assert second["steps"] == 4
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["scheduler"] == b["scheduler"]
    curve_a = pd.read_csv(straight / "train_curve.csv")
    curve_b = pd.read_csv(resumed / "train_curve.csv")
    assert curve_a[["step", "loss", "lr"]].equals(curve_b[["step", "loss", "lr"]])
    assert list(curve_a["step"]) == [1, 2, 3, 4]
    assert curve_a["lr"].tolist() == pytest.approx([0.01, 0.01, 0.01, 0.001])  # x 0.1 after milestone 3
    best = torch.load(straight / "best.pt", weights_only=True)
    assert best["kind"] == "best" and best["step"] == summary["best_step"]
    # a changed architecture cannot resume silently
    with pytest.raises(MusicbenchError, match=r"pixelplayer\.tiny\.channels"):
        train_pixelplayer(tiny_params(bench_root[1], channels=6), root, resumed, device="cpu", progress=False)


def test_weight_average_is_what_validation_and_best_pt_hold(trained, bench_root, tmp_path):
    """``ema``: after every step avg = ema·avg + (1 − ema)·weights (BatchNorm statistics too);
    validation scores the average and best.pt keeps it; a resumed run carries it exactly."""
    from musicbench.pixelplayer.train import Trainer, setup_runtime

    root, params, _ = bench_root
    params = tiny_params(params, optimizer="adam", ema=0.5)
    config = PixelPlayerConfig.from_params(params)
    trainer = Trainer(params, config, setup_runtime("cpu"), tmp_path / "stepwise")
    trainer.start_logs()
    trainer.load_data(root)
    expected = {name: tensor.clone() for name, tensor in trainer.net.state_dict().items()}
    averages = {}
    for step in range(1, config.steps + 1):
        trainer.run(max_steps=step, progress=False)
        for name, tensor in trainer.net.state_dict().items():
            expected[name] = 0.5 * expected[name] + 0.5 * tensor if tensor.is_floating_point() else tensor.clone()
        averages[step] = {name: tensor.clone() for name, tensor in trainer.ema_net.state_dict().items()}
        for name, tensor in averages[step].items():
            torch.testing.assert_close(tensor, expected[name], rtol=1e-6, atol=1e-7, msg=name)
    assert any(not torch.equal(averages[4][name], tensor) for name, tensor in trainer.net.state_dict().items())
    best = torch.load(tmp_path / "stepwise" / "best.pt", weights_only=True)
    for name, tensor in best["model"].items():
        assert torch.equal(tensor, averages[best["step"]][name]), name
    straight = train_pixelplayer(params, root, tmp_path / "straight", device="cpu", progress=False)
    train_pixelplayer(params, root, tmp_path / "resumed", device="cpu", max_steps=2, progress=False)
    resumed = train_pixelplayer(params, root, tmp_path / "resumed", device="cpu", progress=False)
    assert straight["best_val_nsdr"] == resumed["best_val_nsdr"]
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("straight", "resumed"))
    for name, tensor in a["ema"].items():
        assert torch.equal(tensor, b["ema"][name]), name
    saved = torch.load(trained[1] / "checkpoint.pt", weights_only=True)
    assert "ema" not in saved  # off by default
    del saved["config"]["ema"]  # a checkpoint written before the key existed: it trained without an average
    (tmp_path / "older").mkdir()
    torch.save(saved, tmp_path / "older" / "checkpoint.pt")
    with pytest.raises(MusicbenchError, match=r"pixelplayer\.tiny\.ema = 0\.0, params now say 0\.5") as info:
        train_pixelplayer(params, root, tmp_path / "older", device="cpu", progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_process_ddp_matches_one_process_on_the_same_global_batch(bench_root, tmp_path, optimizer):
    root, params, _ = bench_root
    changes = dict(batch_size=1, steps=2, val_every=100, checkpoint_every=100, val_items=1, items_per_epoch=4,
                   threads=1, optimizer=optimizer)
    single = train_pixelplayer(tiny_params(params, accumulate=2, **changes), root, tmp_path / "single", device="cpu",
                               progress=False)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(params, **changes)))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "musicbench", "train-pixelplayer",
         "--params", str(params_file), "--root", str(root), "--out", str(tmp_path / "ddp"), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["global_batch"] == single["global_batch"] == 2
    a = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)["model"]
    net = PixelPlayer(tiny_config())
    for name, _ in net.named_parameters():  # BatchNorm running stats differ by design (rank 0's are kept)
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-6), name
    assert pd.read_csv(tmp_path / "ddp" / "train_curve.csv")["loss"].tolist() == pytest.approx(
        pd.read_csv(tmp_path / "single" / "train_curve.csv")["loss"].tolist(), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# inference and the harness


def test_inference_api_shapes(trained):
    _, out, _ = trained
    separator = Separator.from_checkpoint(out / "best.pt")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 47, 112, 112, 3), dtype=np.uint8)
    for n_samples in (65535, 30000, 70001):
        mixture = (0.1 * rng.standard_normal(n_samples)).astype(np.float32)
        estimates = separator.separate(mixture, frames, 11025)
        assert estimates.shape == (2, n_samples) and estimates.dtype == np.float32 and np.isfinite(estimates).all()
    mixture = (0.1 * rng.standard_normal(65535)).astype(np.float32)
    heat = separator.localize(mixture, frames, 11025)
    assert heat.shape == (2, 112, 112) and np.isfinite(heat).all() and (heat >= 0).all()
    sounds = separator.separate_at(mixture, frames[0], [(10, 20), (100.5, 60), (111, 111)])
    assert sounds.shape == (3, 65535) and np.isfinite(sounds).all()
    assert separator.separate_at(mixture, frames[0], []).shape == (0, 65535)
    assert separator.frame_indices(47, 0) == [8, 24, 40]  # centre of the audio window, +- 16 frames
    assert separator.select_frames(frames, 0).shape == (2, 3, 3, 32, 32)  # the training view (image_size)
    assert separator.select_frames(frames, 0, crop=False).shape == (2, 3, 3, 36, 36)  # the whole frame (resize)
    with pytest.raises(ValueError, match="ONE video"):
        separator.separate_at(mixture, frames, [(1, 1)])


def test_window_features_see_only_their_window(trained):
    """With `windows`, a pixel's feature comes from the window around it, not from the whole frame."""
    _, out, _ = trained
    plain = Separator.from_checkpoint(out / "best.pt")
    assert plain.windows == ()  # the tiny profile names none: the paper's per-pixel features
    windowed = Separator.from_checkpoint(out / "best.pt", windows=(24, 48))
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(2, 47, 112, 112, 3), dtype=np.uint8)
    changed = frames.copy()
    changed[:, :, :, 70:] = 255 - changed[:, :, :, 70:]  # far right of the frame: beyond a 24 px window at x = 20
    point = np.array([[20.0, 50.0]])
    assert torch.equal(windowed.window_features(frames, 0, point, 24), windowed.window_features(changed, 0, point, 24))
    assert not torch.equal(windowed.window_features(frames, 0, point, 48 * 3), windowed.window_features(changed, 0, point, 48 * 3))
    whole = plain.pixel_features(frames, 0)[..., 0, 0]  # the cell over (20, 50) of the whole-frame features
    assert not torch.equal(whole, plain.pixel_features(changed, 0)[..., 0, 0])  # sees the change through its field
    mixture = (0.1 * rng.standard_normal(65535)).astype(np.float32)
    heat = windowed.localize(mixture, frames, 11025)
    assert heat.shape == (2, 112, 112) and np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() <= 2 + 1e-5  # the sum of two min-max normalised maps
    sounds = windowed.separate_at(mixture, frames[0], [(10, 20), (100.5, 60)])
    assert sounds.shape == (2, 65535) and np.isfinite(sounds).all()
    assert parse_windows(" 24, 48,96") == (24, 48, 96) and parse_windows("none") == () and parse_windows("") is None
    with pytest.raises(MusicbenchError, match="comma-separated integers"):
        parse_windows("24;48")
    with pytest.raises(MusicbenchError, match="at least 2 pixels"):
        Separator.from_checkpoint(out / "best.pt", windows=(0,))


def test_evaluate_runs_pixelplayer_end_to_end(trained, bench_root, tmp_path):
    from musicbench.evaluate import evaluate

    root = tmp_path / "root"  # a copy: the harness writes a score cache under the data root
    shutil.copytree(bench_root[0], root)
    _, out, _ = trained
    summary = evaluate(REPO_ROOT / "baselines" / "pixelplayer.py", root, tmp_path / "run", split="test", device="cpu",
                       options={"checkpoint": str(out / "best.pt"), "threads": "1"}, limit=4)
    assert summary["n_items"] == 4
    assert summary["n_scored"] + summary["n_excluded"] == 4
    inference = pd.read_parquet(tmp_path / "run" / "inference.parquet")
    assert (inference["status"] == "ok").all(), inference["reason"].tolist()  # duet items (separate_at) too
    mixtures = inference[inference["track"] == "mixtures"] if "track" in inference else inference
    assert len(mixtures) == 4 and mixtures["localized"].all()
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["has_separate_at"] and model["n_parameters"] == count_parameters(PixelPlayer(tiny_config()))


def test_a_local_imagenet_resnet18_checkpoint_loads_into_the_visual_trunk(tmp_path):
    """`pretrained:` takes a torchvision-layout ResNet-18 state dict (its 1000-way fc is ignored)."""
    torch.manual_seed(1)
    source = VisualNet((64, 128, 256, 512), channels=32)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    # torchvision's names: 20 convolutions and 20 BatchNorms (5 tensors each) = 120, plus its classifier
    assert len(state) == 120 and {"conv1.weight", "bn1.running_var", "layer1.0.conv2.weight",
                                  "layer2.0.downsample.0.weight", "layer3.0.downsample.1.num_batches_tracked",
                                  "layer4.1.bn2.bias"} <= set(state)
    state |= {"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    torch.save(state, tmp_path / "resnet18.pth")
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    for name in ("resnet18.pth", "wrapped.pth"):
        config = tiny_config(visual_widths=[64, 128, 256, 512], pretrained=str(tmp_path / name))
        net = PixelPlayer(config)
        head_before = net.visual.fc.weight.detach().clone()
        _load_pretrained(net, config)
        loaded = net.visual.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
        assert torch.equal(net.visual.fc.weight, head_before)  # the K-channel head is ours, untouched
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    for pretrained, widths, message in [
        (tmp_path / "missing.pth", [64, 128, 256, 512], "no file"),
        (tmp_path / "garbage.pth", [64, 128, 256, 512], "cannot read"),
        (tmp_path / "resnet18.pth", TINY["visual_widths"], r"does not fit the visual net .*\[64, 128, 256, 512\]"),
    ]:
        config = tiny_config(visual_widths=widths, pretrained=str(pretrained))
        with pytest.raises(MusicbenchError, match=r"pixelplayer\.tiny\.pretrained: .*" + message) as info:
            _load_pretrained(PixelPlayer(config), config)
        assert "\n" not in str(info.value)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from musicbench.model_child import load_model_file

    with pytest.raises(MusicbenchError, match="train-pixelplayer"):
        load_model_file(REPO_ROOT / "baselines" / "pixelplayer.py", {"checkpoint": str(tmp_path / "none.pt")})
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")  # torch's own refusal spans many lines
    with pytest.raises(MusicbenchError, match="cannot read PixelPlayer checkpoint .*garbage.pt.*tensors") as info:
        load_model_file(REPO_ROOT / "baselines" / "pixelplayer.py", {"checkpoint": str(tmp_path / "garbage.pt")})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize("block, key", [
    ({"image_size": 100}, "pixelplayer.p.image_size"),
    ({"image_size": 64, "resize": 60}, "pixelplayer.p.resize"),
    ({"unet_widths": [8, 16]}, "pixelplayer.p.unet_widths"),
    ({"visual_widths": [8, 16, 32, 0]}, "pixelplayer.p.visual_widths"),
    ({"mask": "soft"}, "pixelplayer.p.mask"),
    ({"optimizer": "lbfgs"}, "pixelplayer.p.optimizer"),
    ({"unet_init": "xavier"}, "pixelplayer.p.unet_init"),
    ({"lr_head": -1}, "pixelplayer.p.lr_head"),
    ({"lr_trunk": "fast"}, "pixelplayer.p.lr_trunk"),
    ({"batch_size": 0}, "pixelplayer.p.batch_size"),
    ({"steps": 2.5}, "pixelplayer.p.steps"),
    ({"lr_milestones": [10, 5]}, "pixelplayer.p.lr_milestones"),
    ({"momentum": 1.5}, "pixelplayer.p.momentum"),
    ({"amp": "yes"}, "pixelplayer.p.amp"),
    ({"n_sources": 5}, "pixelplayer.p.n_sources"),
    ({"batchsize": 4}, "pixelplayer.p.batchsize"),
    ({"transplant": 1.5}, "pixelplayer.p.transplant"),
    ({"side_by_side": -0.1}, "pixelplayer.p.side_by_side"),
    ({"windows": [24, 1]}, "pixelplayer.p.windows"),
    ({"ema": 1.0}, "pixelplayer.p.ema"),
])
def test_bad_config_names_the_key(block, key):
    with pytest.raises(MusicbenchError, match=key.replace(".", r"\.")) as info:
        PixelPlayerConfig.from_params({"pixelplayer": {"profile": "p", "p": block}})
    assert "\n" not in str(info.value)


def test_profile_selection_errors():
    with pytest.raises(MusicbenchError, match="section 'pixelplayer' is missing"):
        PixelPlayerConfig.from_params({})
    with pytest.raises(MusicbenchError, match=r"no block pixelplayer\.tpu.*cpu, gpu"):
        PixelPlayerConfig.from_params({"pixelplayer": {"profile": "tpu", "cpu": {}, "gpu": {}}})
    with pytest.raises(MusicbenchError, match=r"pixelplayer\.seed"):
        PixelPlayerConfig.from_params({"pixelplayer": {"profile": "gpu", "seed": -1, "gpu": {}}})
    config = PixelPlayerConfig.from_params({"pixelplayer": {"profile": "cpu", "seed": 3, "cpu": {"steps": 7},
                                                            "gpu": {}}}, profile="gpu")
    assert config.profile == "gpu" and config.seed == 3 and config.steps == 50000 and config.lr_trunk == 1e-4


def test_the_defaults_are_the_gpu_profile_and_the_cpu_profile_is_the_same_family():
    params = {"pixelplayer": REPO_PARAMS["pixelplayer"]}
    assert PixelPlayerConfig.from_params(params, "gpu") == PixelPlayerConfig(seed=REPO_PARAMS["pixelplayer"]["seed"])
    cpu = PixelPlayerConfig.from_params(params)
    assert cpu.profile == "cpu" and cpu.warp_rows == 256 and len(cpu.unet_widths) == 7 and len(cpu.visual_widths) == 4
    assert count_parameters(PixelPlayer(cpu)) == expected_parameter_count(cpu)["total"]


def test_repository_profiles_parse():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    keys = {f.name for f in dataclasses.fields(PixelPlayerConfig)} - {"seed", "profile"}
    for name in ("cpu", "gpu"):  # params.yaml is the profiles' only home: every key is spelled out there
        config = PixelPlayerConfig.from_params(params, profile=name)
        assert config.profile == name and set(params["pixelplayer"][name]) == keys
    gpu = PixelPlayerConfig.from_params(params, profile="gpu")
    assert (gpu.image_size, gpu.channels, gpu.batch_size, gpu.unet_widths[0], max(gpu.unet_widths)) == (224, 32, 20, 64, 512)


# ---------------------------------------------------------------------------------------------
# player transplant (musicbench.pixelplayer.augment)


def test_moving_box_holds_what_moves_and_nothing_still():
    rng = np.random.default_rng(0)
    backdrop = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # a busy but still backdrop
    frames = np.repeat(backdrop[None], 3, axis=0)
    for t, left in enumerate((30, 33, 36)):  # a square moving right by 3 px a frame
        frames[t, 20:35, left:left + 15] = (200, 40, 40)
    top, bottom, left, right = moving_box(*frames)
    assert top <= 20 and bottom >= 35 and left <= 30 and right >= 51  # the square in all three places
    assert top >= 15 and bottom <= 40 and left >= 25 and right <= 56  # and little of the backdrop
    assert moving_box(backdrop, backdrop, backdrop) is None


def test_transplant_covers_the_host_player_and_keeps_the_whole_player():
    frames = np.full((2, 40, 50, 3), 10, dtype=np.uint8)
    host = np.full((2, 40, 50, 3), 200, dtype=np.uint8)
    out = transplant(frames, [(5, 20, 10, 30), None], host, [(15, 35, 25, 45), (0, 10, 0, 10)])
    assert np.all(out[0, 5:35, 10:45] == 10)  # the union of both boxes comes from the player's frame
    assert np.all(out[0, 36:] == 200) and np.all(out[0, :, :9] == 200)  # the rest is the host's
    assert np.array_equal(out[1], frames[1])  # no player found: the frame is kept as it is
    assert np.all(host == 200)  # the inputs are not modified


def test_moving_boxes_of_synth_players_cover_their_annotated_boxes(bench_root):
    """On real MUSIC-Synth clips (the 36 clips of the val and test items) the motion box holds the
    annotated player box."""
    root, _, _ = bench_root
    coverage, area = [], []
    for item in [*DataRoot(root).iter_items("val"), *DataRoot(root).iter_items("test")]:
        for frames, box in zip(item.frames, item.boxes):
            centre = frames.shape[0] // 2
            top, bottom, left, right = moving_box(*frames[[centre - MOTION_SPAN, centre, centre + MOTION_SPAN]])
            truth = boxes_to_mask(box, *frames.shape[1:3])
            coverage.append(truth[top:bottom, left:right].sum() / truth.sum())
            area.append((bottom - top) * (right - left) / truth.size)
    assert np.mean(coverage) > 0.85 and np.mean(area) < 0.6


def test_training_items_put_players_on_other_videos_backdrops(still_bench_root):
    """Transplants find the player by its motion: on a still scene (in a lively one the light and the
    camera move the whole picture, and the motion box grows to most of it)."""
    from musicbench.dataset import MixAndSeparateDataset

    root, _, _ = still_bench_root
    index = DataRoot(root).read_index()
    train = [v for v, s in read_stage_splits(root).items() if s == "train"]
    make = lambda p: MixAndSeparateDataset(index, root, train, AUDIO, items_per_epoch=4, seed=3, transplant=p)  # noqa: E731
    plain, moved = make(0.0), make(1.0)
    for i in range(4):
        before, after = plain[i], moved[i]
        # the first source's clip is drawn before any transplant draw: the same clip (its gain is drawn after)
        assert float(torch.nn.functional.cosine_similarity(before["sources"][0], after["sources"][0], dim=0)) > 0.9999
        same = (before["frames"][0] == after["frames"][0]).all(dim=-1).numpy()  # (T, H, W)
        for kept in same:
            assert 0.1 < kept.mean() < 0.9  # the player's region is kept, the rest is another backdrop
            rows, columns = np.nonzero(kept)
            assert kept[rows.min():rows.max() + 1, columns.min():columns.max() + 1].mean() > 0.95  # one rectangle
    with pytest.raises(MusicbenchError, match="transplant"):
        make(2.0)


def test_side_by_side_pictures_give_each_source_its_own_strip():
    from musicbench.pixelplayer.train import side_by_side

    frames = torch.randn(6, 2, 3, 3, 96, 96)
    pictures, regions = side_by_side(frames, 1.0, torch.Generator().manual_seed(4))
    assert regions.shape == (6, 2, 6, 6)
    for i in range(6):
        assert torch.equal(pictures[i, 0], pictures[i, 1])  # one picture for both sources
        assert torch.equal(regions[i, 0] ^ regions[i, 1], torch.ones(6, 6, dtype=torch.bool))  # strips partition it
        for source in range(2):
            columns = torch.nonzero(regions[i, source, 0])[:, 0]
            assert len(columns) >= 2 and torch.equal(columns, torch.arange(columns[0], columns[-1] + 1))
            left, right = 16 * int(columns[0]), 16 * (int(columns[-1]) + 1)
            start = (96 - (right - left)) // 2  # the strip shows the centre of the source's own picture
            assert torch.equal(pictures[i, source, ..., left:right], frames[i, source, ..., start:start + right - left])
    kept, whole = side_by_side(frames, 0.0, torch.Generator().manual_seed(4))
    assert torch.equal(kept, frames) and bool(whole.all())


def test_pooling_over_regions_reads_only_each_sources_cells():
    net = PixelPlayer(tiny_config(image_size=64, resize=64)).eval()
    log_mag = torch.randn(1, 1, 256, 128)
    frames = torch.randn(1, 2, 3, 3, 64, 64)
    everywhere = torch.ones(1, 2, 4, 4, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(net(log_mag, frames), net(log_mag, frames, everywhere))
        left = everywhere.clone()
        left[..., 2:] = False
        maps = net.visual_maps(frames.reshape(2, 3, 3, 64, 64))
        expected = torch.sigmoid(maps[..., :2].amax(dim=(-2, -1)))
        logits = net(log_mag, frames, left)
        assert torch.allclose(logits, net.synthesizer(expected[None], net.audio(log_mag)), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# published weights (safetensors + card)


def _published_from(trained, bench_root, folder: Path) -> Path:
    """Publish the tiny trained model (as the stage's `train` path would) into `folder`."""
    from musicbench.pixelplayer.weights import WEIGHTS_NAME, export_weights, publish_weights, training_card

    params, out, _ = trained
    stage = folder.parent / "stage"
    stage.mkdir(exist_ok=True)
    for name in ("train_curve.csv", "val_curve.csv", "summary.json"):
        shutil.copy(out / name, stage / name)
    export_weights(out / "best.pt", stage / WEIGHTS_NAME,
                   {"source": "trained here", "profile": "tiny", **training_card(params, bench_root[0], stage)})
    return publish_weights(stage, folder, test_scores={"nsdr": 1.0})


def test_published_weights_load_like_the_checkpoint_and_the_stage_checks_them(trained, bench_root, tmp_path):
    from musicbench.pixelplayer.weights import WEIGHTS_NAME, prepare_weights, read_card

    params, out, _ = trained
    published = _published_from(trained, bench_root, tmp_path / "published")
    card = read_card(published)
    assert card["file"] == "pixelplayer_tiny.safetensors" and card["config"]["profile"] == "tiny" and card["test"] == {"nsdr": 1.0}
    assert (tmp_path / "published" / "pixelplayer_tiny_val_curve.csv").read_text() == (out / "val_curve.csv").read_text()
    assert card["trained_on"]["train_videos"] and card["machine"]["torch"] == torch.__version__
    # the stage copies them (checked), and they separate exactly as the checkpoint they came from
    stage_card = prepare_weights({**params, "pixelplayer": {**params["pixelplayer"], "weights": "published"}}, bench_root[0],
                                 tmp_path / "models", published_dir=tmp_path / "published")
    assert stage_card["sha256"] == card["sha256"] and stage_card["source"].startswith("published")
    mixture = np.random.default_rng(0).standard_normal(AUDIO.clip_samples).astype(np.float32) * 0.1
    frames = np.random.default_rng(1).integers(0, 255, (48, 64, 64, 3), dtype=np.uint8)
    from_pt = Separator.from_checkpoint(out / "best.pt").separate(mixture, frames[None].repeat(2, 0))
    from_st = Separator.from_checkpoint(tmp_path / "models" / WEIGHTS_NAME).separate(mixture, frames[None].repeat(2, 0))
    assert np.array_equal(from_pt, from_st)


def test_tampered_truncated_or_foreign_weights_are_one_line_errors(trained, bench_root, tmp_path):
    from musicbench.pixelplayer.weights import prepare_weights

    params, _, _ = trained
    published = _published_from(trained, bench_root, tmp_path / "published")
    pristine = published.read_bytes()
    published_params = {**params, "pixelplayer": {**params["pixelplayer"], "weights": "published"}}

    def refused(match: str, path: Path = published, named: Path | None = None) -> None:
        with pytest.raises(MusicbenchError, match=match) as info:
            Separator.from_checkpoint(path)
        assert "\n" not in str(info.value) and str(named or path) in str(info.value)
        if path == published:  # the stage refuses the same file before copying anything
            with pytest.raises(MusicbenchError, match=match):
                prepare_weights(published_params, bench_root[0], tmp_path / "models", published_dir=published.parent)
            assert not (tmp_path / "models" / "weights.safetensors").exists()

    tampered = bytearray(pristine)
    tampered[-5] ^= 0x01  # one bit of one weight
    published.write_bytes(bytes(tampered))
    refused("do not match the SHA-256 of their card")
    published.write_bytes(pristine[: len(pristine) // 2])
    refused("truncated")
    # without a card, safetensors itself refuses a truncated file, and a foreign one
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(pristine[: len(pristine) // 2])
    refused("not a complete safetensors file", bare)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(bare))
    refused("not PixelPlayer weights", bare)
    tiny, audio = json.dumps(tiny_config().to_dict()), json.dumps(dataclasses.asdict(AUDIO))
    save_file({"x": torch.zeros(2)}, str(bare), metadata={"format": "musicbench pixelplayer weights 1",
                                                          "config": tiny, "audio": audio})
    refused("do not fit the network", bare)
    save_file({"x": torch.zeros(2)}, str(bare), metadata={"format": "musicbench pixelplayer weights 1",
                                                          "config": tiny, "audio": "{}"})
    refused("carry an invalid config", bare)
    # a small file describing a huge network is refused before anything is allocated
    huge = json.dumps({**tiny_config().to_dict(), "visual_widths": [16, 32, 8000, 8000]})
    save_file({"x": torch.zeros(2)}, str(bare), metadata={"format": "musicbench pixelplayer weights 1",
                                                          "config": huge, "audio": audio})
    refused("over 268,435,456 numbers", bare)
    save_file({"x": torch.zeros(2)}, str(bare), metadata={"format": "musicbench pixelplayer weights 1",
                                                          "config": "[" * 100_000, "audio": audio})
    refused("metadata without a readable config", bare)
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    refused("are not a regular file", fifo)
    card = published.with_suffix(".json")
    saved_card = card.read_bytes()
    card.unlink()
    card.mkdir()  # a folder (or FIFO) in the card's place must not pass for "no card"
    refused("is not a regular file", named=card)
    card.rmdir()
    card.write_bytes(saved_card)
    (tmp_path / "published" / "pixelplayer_tiny.json").write_text("{not json")
    published.write_bytes(pristine)
    refused("cannot read the card", named=published.with_suffix(".json"))


def test_published_weights_are_refused_where_their_training_videos_are_scored(trained, bench_root, tmp_path):
    """Weights trained on another split of the same videos would be scored on what they learnt from."""
    from musicbench.pixelplayer.weights import card_path, prepare_weights, read_card

    params, _, _ = trained
    published = _published_from(trained, bench_root, tmp_path / "published")
    card = read_card(published)
    test_video = next(video for video, split in sorted(read_stage_splits(bench_root[0]).items()) if split == "test")
    card["trained_on"]["train_videos"].append(test_video)
    card_path(published).write_text(json.dumps(card))
    with pytest.raises(MusicbenchError, match=f"trained on 1 video.*{test_video}.*pixelplayer.weights: train"):
        prepare_weights({**params, "pixelplayer": {**params["pixelplayer"], "weights": "published"}}, bench_root[0],
                        tmp_path / "models", published_dir=published.parent)
    with pytest.raises(MusicbenchError, match="no published PixelPlayer weights for profile 'tiny'"):
        prepare_weights({**params, "pixelplayer": {**params["pixelplayer"], "weights": "published"}}, bench_root[0],
                        tmp_path / "models", published_dir=tmp_path / "elsewhere")
    with pytest.raises(MusicbenchError, match="pixelplayer.weights must be one of published, train"):
        prepare_weights({**params, "pixelplayer": {**params["pixelplayer"], "weights": "download"}}, bench_root[0],
                        tmp_path / "models")


def test_the_repository_publishes_the_cpu_profiles_weights():
    """baselines/weights holds the cpu profile's weights: they match their card, load into the
    network, and were trained with exactly the recipe params.yaml's cpu profile gives."""
    from musicbench.pixelplayer.config import LEGACY_DEFAULTS
    from musicbench.pixelplayer.weights import card_recipe, published_weights_path, read_card, verify_weights

    published = published_weights_path("cpu")
    card = read_card(published)
    verify_weights(published, card)
    params = copy.deepcopy(REPO_PARAMS)
    assert params["pixelplayer"]["weights"] == "published"
    assert card_recipe(card) == PixelPlayerConfig.from_params(params, "cpu").to_dict()
    assert set(card_recipe(card)) - set(card["config"]) <= set(LEGACY_DEFAULTS)  # only keys newer than the card
    separator = Separator.from_checkpoint(published)
    assert count_parameters(separator.net) == card["training"]["n_parameters"]
    for curve in card["curves"].values():
        assert (published.parent / curve).is_file()
    assert card["trained_on"]["benchmark_version"] and card["trained_on"]["train_videos"]


_SEPARATE_WITH_PUBLISHED = """
import sys, numpy as np, torch
from musicbench.pixelplayer.inference import Separator
from musicbench.pixelplayer.weights import published_weights_path
torch.set_num_threads(1)
separator = Separator.from_checkpoint(published_weights_path("cpu"))
rng = np.random.default_rng(0)
mixture = (rng.standard_normal(65535) * 0.1).astype(np.float32)
frames = rng.integers(0, 255, (2, 48, 112, 112, 3), dtype=np.uint8)
np.save(sys.argv[1], separator.separate(mixture, frames))
print(torch.backends.cpu.get_cpu_capability())
"""


def test_published_weights_separate_alike_on_other_cpu_kernels(tmp_path):
    """The reference row must not move by machine: the same estimate (to far below 0.01 dB) with this
    CPU's vector kernels and with torch's, oneDNN's and MKL's plainest ones (what an older CPU runs)."""
    estimates = {}
    plainest = {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
    for name, kernels in (("native", {}), ("plain", plainest)):
        env = {k: v for k, v in os.environ.items() if k not in plainest}
        result = subprocess.run([sys.executable, "-c", _SEPARATE_WITH_PUBLISHED, str(tmp_path / f"{name}.npy")],
                                capture_output=True, text=True, env={**env, **kernels}, cwd=REPO_ROOT, timeout=300)
        assert result.returncode == 0, result.stderr
        estimates[name] = (np.load(tmp_path / f"{name}.npy"), result.stdout.strip())
    (native, capability), (plain, plain_capability) = estimates["native"], estimates["plain"]
    assert plain_capability == "DEFAULT" and np.abs(native).max() > 0.01
    # the difference is over 80 dB below the estimate: an SDR moves by far less than 0.001 dB
    difference_db = 10 * np.log10((native ** 2).sum() / ((native - plain) ** 2).sum())
    assert difference_db > 80, (capability, difference_db)
