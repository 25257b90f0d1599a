"""The configuration layer: one helper builds every params.yaml section's typed config, with one-line errors."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import pytest
import yaml

from musicbench.acquire import DownloadConfig
from musicbench.config import AudioConfig, check_fields, config_from_params, knob
from musicbench.errors import MusicbenchError
from musicbench.mixtures import MixturesConfig
from musicbench.nmf import NMFConfig
from musicbench.pixelplayer.config import PixelPlayerConfig
from musicbench.process import ProcessConfig
from musicbench.splits import SplitsConfig
from musicbench.synth import SynthConfig
from tests.conftest import AUDIO, REPO_PARAMS

SECTION_CONFIGS = (ProcessConfig, MixturesConfig, NMFConfig, SynthConfig, SplitsConfig, DownloadConfig, PixelPlayerConfig)


def test_the_repository_params_build_every_config_with_one_audio_config():
    assert AUDIO == AudioConfig(sample_rate=11025, clip_samples=65535, fps=8.0)
    for config_class in SECTION_CONFIGS:
        config = config_class.from_params(REPO_PARAMS)
        assert getattr(config, "audio", AUDIO) == AUDIO
    assert NMFConfig.from_params(REPO_PARAMS).sample_rate == AUDIO.sample_rate


def test_fps_8_and_8_0_give_the_same_config_and_fingerprint():
    params = copy.deepcopy(REPO_PARAMS)
    params["frames"]["fps"] = 8
    as_int = ProcessConfig.from_params(params)
    params["frames"]["fps"] = 8.0
    as_float = ProcessConfig.from_params(params)
    assert as_int == as_float and type(as_int.audio.fps) is float
    assert as_int.fingerprint_fields() == as_float.fingerprint_fields() == {
        "sample_rate": 11025, "clip_samples": 65535, "fps": 8.0, "size": 112, "jpeg_qscale": 2, "crop": "center",
        "duration_tolerance": 1.0}


@pytest.mark.parametrize("change, message", [
    (("mixtures", "n_val", 0), "params: mixtures.n_val must be positive, got 0; fix it in params.yaml"),
    (("mixtures", "n_val", "many"), "params: mixtures.n_val must be a positive int, got 'many'"),
    (("mixtures", "n_sources", 5), "params: mixtures.n_sources must be one of 2, 3, 4, got 5"),
    (("mixtures", "gain_db", 20), "params: mixtures.gain_db must be within 0..12 dB, got 20"),
    (("mixtures", "n_items", 3), "params: unknown key(s) mixtures.n_items in params.yaml; known: gain_db, "),
    (("audio", "sample_rate", 0.5), "params: audio.sample_rate must be a positive int, got 0.5"),
    (("frames", "fps", -8), "params: frames.fps must be positive, got -8"),
    (("process", "crop", "square"), "params: process.crop must be one of center, none, got 'square'"),
    (("process", "jpeg_qscale", 40), "params: process.jpeg_qscale must be an integer from 2 (best) to 31, got 40"),
    (("splits", "seed", -1), "params: splits.seed must be >= 0, got -1"),
    (("download", "retry_unavailable", "yes"), "params: download.retry_unavailable must be true or false, got 'yes'"),
    (("download", "format_sort", 3), "params: download.format_sort must be a list of strings, got 3"),
])
def test_a_bad_value_is_a_one_line_error_naming_its_key(change, message):
    params = copy.deepcopy(REPO_PARAMS)
    name, key, value = change
    params[name][key] = value
    config_class = {"mixtures": MixturesConfig, "audio": MixturesConfig, "frames": MixturesConfig,
                    "process": ProcessConfig, "splits": SplitsConfig, "download": DownloadConfig}[name]
    with pytest.raises(MusicbenchError) as info:
        config_class.from_params(params)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_missing_keys_and_sections():
    params = copy.deepcopy(REPO_PARAMS)
    del params["audio"]["clip_samples"]
    with pytest.raises(MusicbenchError, match=r"^params: audio\.clip_samples is missing; add it to params\.yaml$"):
        AudioConfig.from_params(params)
    with pytest.raises(MusicbenchError, match="section 'frames' is missing or not a mapping"):
        AudioConfig.from_params({"audio": REPO_PARAMS["audio"]})
    with pytest.raises(MusicbenchError, match="section 'mixtures' is missing"):
        MixturesConfig.from_params({key: value for key, value in REPO_PARAMS.items() if key != "mixtures"})
    no_optional = {key: value for key, value in REPO_PARAMS.items() if key not in ("process", "download")}
    assert ProcessConfig.from_params(no_optional) == ProcessConfig(audio=AUDIO, size=112)  # the section's defaults
    assert DownloadConfig.from_params(no_optional) == DownloadConfig()
    params["audio"]["clip_samples"] = None  # YAML null: like a missing key
    with pytest.raises(MusicbenchError, match=r"audio\.clip_samples is missing"):
        AudioConfig.from_params(params)


def test_configs_built_by_hand_are_checked_and_normalised_the_same_way():
    with pytest.raises(MusicbenchError, match=r"^params: synth\.duration must be positive, got 0"):
        SynthConfig(audio=AUDIO, instruments=("violin",), duration=0)
    config = SynthConfig(audio=AUDIO, instruments=["violin", "cello"], duration=3)
    assert config.instruments == ("violin", "cello") and type(config.duration) is float
    assert DownloadConfig(instruments="violin, cello").instruments == ("violin", "cello")
    assert SplitsConfig.from_params({"splits": {"fractions": {"train": 0.8, "val": 0.1, "test": 0.1}}}).fractions == (0.8, 0.1, 0.1)
    assert PixelPlayerConfig(lr_trunk="1e-4", visual_widths=[8, 16, 32, 64]).lr_trunk == 1e-4  # YAML 1.1 reads 1e-4 as text


def test_the_helper_reads_fields_of_other_sections_by_their_key():
    @dataclass(frozen=True)
    class Example:
        width: int = knob(positive=True, key="frames.size")
        label: str = knob("x")

        def __post_init__(self) -> None:
            check_fields(self, "example")

    built = config_from_params(Example, {"frames": {"size": 64}, "example": {"label": "y"}}, "example")
    assert asdict(built) == {"width": 64, "label": "y"}
    with pytest.raises(MusicbenchError, match=r"^params: frames\.size must be a positive int, got 'big'"):
        config_from_params(Example, {"frames": {"size": "big"}, "example": {}}, "example")


def test_relative_paths_in_params_are_relative_to_the_params_files_folder(tmp_path, monkeypatch):
    from musicbench.config import data_root, load_params

    project = tmp_path / "project"
    project.mkdir()
    params = {"dataset": {"root": "data"}, "splits": {"file": "manifests/splits/mine.csv"},
              "download": {"manifests": ["manifests/a.csv", "/abs/b.csv"], "cookies": ""},
              "synth": {"soundfont": ""}, "pixelplayer": {"profile": "gpu", "gpu": {"pretrained": "weights/r18.pth"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    loaded = load_params(project / "params.yaml")
    assert data_root(loaded) == project / "data"
    assert loaded["splits"]["file"] == str(project / "manifests/splits/mine.csv")
    assert loaded["download"]["manifests"] == [str(project / "manifests/a.csv"), "/abs/b.csv"]
    assert loaded["download"]["cookies"] == "" and loaded["synth"]["soundfont"] == ""  # empty: none
    assert loaded["pixelplayer"]["gpu"]["pretrained"] == str(project / "weights/r18.pth")
    monkeypatch.chdir(project)  # in its own folder nothing changes
    assert load_params()["dataset"]["root"] == "data" and load_params()["splits"]["file"] == "manifests/splits/mine.csv"


def test_a_params_file_in_a_folder_anyone_may_write_is_passed_over(tmp_path, monkeypatch):
    """Found by a hostile audit: a params.yaml and dvc.yaml planted in a world-writable folder above
    (e.g. /tmp) were read silently. Now such folders are passed over, and a project found above says so."""
    from musicbench.config import find_params

    shared = tmp_path / "shared"
    (shared / "mine" / "deep").mkdir(parents=True)
    for folder in (shared, shared / "mine"):
        (folder / "params.yaml").write_text("evaluate: {seed: 1}\n")
        (folder / "dvc.yaml").write_text("stages: {}\n")
    shared.chmod(0o777)
    monkeypatch.chdir(shared / "mine" / "deep")
    assert find_params() == shared / "mine" / "params.yaml"
    (shared / "mine" / "params.yaml").unlink()
    with pytest.raises(MusicbenchError, match="no params.yaml in"):
        find_params()  # only the world-writable folder's is left: not taken
