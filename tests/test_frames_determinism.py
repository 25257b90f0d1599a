"""The frames a model sees do not depend on the CPU (issue 30): the MUSIC-Synth H.264 encode and the
processing stage's scale + MJPEG encode write the same bytes whatever SIMD code paths ffmpeg and
libx264 take. Another CPU is simulated with ffmpeg's ``-cpuflags`` (which SIMD paths swscale and the
codecs use) and libx264's ``asm`` parameter (the CPU features x264 believes it has)."""

from __future__ import annotations

import os
import platform
import stat
from pathlib import Path

import numpy as np
import pytest

import musicbench.media
import musicbench.process
from musicbench.config import AudioConfig
from musicbench.media import ffmpeg_exe, write_video
from musicbench.process import ProcessConfig, extract_frames
from musicbench.synth.visual import PlayerFigure, add_distractors, random_background

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="simulates x86 CPUs (SSE2-only libx264)")

SR, FPS, W, H = 11025, 16, 128, 96
CONFIG = ProcessConfig(audio=AudioConfig(sample_rate=SR, clip_samples=65535, fps=8), size=112, jpeg_qscale=2, crop="center")
# what this CPU has (ffmpeg's and x264's own detection) against a plain SSE2 x86-64 CPU, and ffmpeg's C code
CPUS = {"native": ("", ""), "sse2": ("-avx512-avx512icl-avx2-fma3-avx-sse4.2-sse4.1-ssse3-sse3", "SSE2"), "c": ("0", "SSE2")}


@pytest.fixture
def simulate_cpu(tmp_path, monkeypatch):
    """Route every ffmpeg run through a wrapper that sets ``-cpuflags`` and libx264's ``asm`` (placed
    right after ``libx264``, so that parameters the code passes later still win); returns a setter."""
    wrapper = tmp_path / "ffmpeg-cpu"
    wrapper.write_text(f"""#!/bin/bash
args=()
for a in "$@"; do
  args+=("$a")
  if [ "$a" = libx264 ] && [ -n "$SIM_X264_ASM" ]; then args+=(-x264-params "asm=$SIM_X264_ASM"); fi
done
pre=()
[ -n "$SIM_CPUFLAGS" ] && pre=(-cpuflags "$SIM_CPUFLAGS")
exec '{ffmpeg_exe()}' "${{pre[@]}}" "${{args[@]}}"
""")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(musicbench.media, "ffmpeg_exe", lambda: os.fspath(wrapper))
    monkeypatch.setattr(musicbench.process, "ffmpeg_exe", lambda: os.fspath(wrapper))

    def use(cpu: str) -> None:
        flags, asm = CPUS[cpu]
        monkeypatch.setenv("SIM_CPUFLAGS", flags)
        monkeypatch.setenv("SIM_X264_ASM", asm)
    return use


def _synth_like_frames(n_frames: int = 48) -> list[np.ndarray]:
    """MUSIC-Synth's drawing (background, props, a moving player): content that exercises the encoders."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(3)
    background = add_distractors(rng, random_background(rng, W, H))
    figure = PlayerFigure.random(rng, "violin", 0.7 * H, W / 2, 0.95 * H)
    frames = []
    for i in range(n_frames):
        image = Image.fromarray(background)
        level = 0.5 + 0.5 * np.sin(i / 3)
        figure.draw(ImageDraw.Draw(image), i, FPS, level, float(i % 8 == 0), np.sin(i / 2), (W, H))
        frames.append(np.asarray(image))
    return frames


def _encode(path: Path) -> bytes:
    t = np.arange(3 * SR) / SR
    write_video(path, _synth_like_frames(), FPS, W, H, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    return path.read_bytes()


def _video_stream(path: Path) -> bytes:
    """The H.264 stream alone (the AAC audio is left to the CPU: its rounding is not a frame)."""
    import subprocess

    return subprocess.run([ffmpeg_exe(), "-v", "error", "-i", os.fspath(path), "-map", "0:v", "-c", "copy", "-f", "h264", "-"],
                          capture_output=True, check=True).stdout


def test_synth_video_and_frame_archives_do_not_depend_on_the_cpu(tmp_path, simulate_cpu):
    videos, streams, archives = {}, {}, {}
    for cpu in CPUS:
        simulate_cpu(cpu)
        videos[cpu] = tmp_path / f"{cpu}.mp4"
        _encode(videos[cpu])
        streams[cpu] = _video_stream(videos[cpu])
        # every simulated CPU processes the native video: the processing stage alone
        for source in ("native", cpu):
            tar = tmp_path / f"{source}-by-{cpu}.tar"
            extract_frames(videos[source], tar, CONFIG, tmp_path / "work")
            archives[source, cpu] = tar.read_bytes()
    assert all(stream == streams["native"] for stream in streams.values()), \
        {cpu: stream == streams["native"] for cpu, stream in streams.items()}
    assert all(archive == archives["native", "native"] for archive in archives.values()), \
        {key: archive == archives["native", "native"] for key, archive in archives.items()}
