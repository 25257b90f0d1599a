"""Audio/video I/O through the ffmpeg binary of the `imageio-ffmpeg` wheel, driven by ffmpeg-python.

No system ffmpeg or ffprobe is needed: `probe` reads ffmpeg's own stream description, and
`parse_ffmpeg_log` the input description and error lines of a decoding run's log. Audio
arrays are float32 in [-1, 1]; frame arrays are uint8 ``(n_frames, height, width, 3)`` RGB.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ffmpeg
import numpy as np
import soundfile as sf

from musicbench.errors import MusicbenchError

#: swscale flags of every scaling and pixel-format conversion we ask ffmpeg for: bicubic, with
#: swscale's exact (C) rounding. Without them swscale takes the SIMD code paths of the CPU (x86
#: SSE2 .. AVX-512, ARM NEON), which round otherwise than its C code: same inputs, other frames.
BITEXACT_SWS_FLAGS = "bicubic+accurate_rnd+bitexact"

#: libx264 without assembly: its SSSE3+ code paths take other encoding decisions than its C code
#: (and its SSE2 and NEON ones), so the H.264 stream would depend on the CPU that encodes it.
X264_PARAMS = "asm=0"


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped in the imageio-ffmpeg wheel, or $IMAGEIO_FFMPEG_EXE's (with a
    note on stderr, once: the benchmark version does not depend on the build, the frames may)."""
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    if os.environ.get("IMAGEIO_FFMPEG_EXE"):
        print(f"note: using the ffmpeg of IMAGEIO_FFMPEG_EXE ({exe}): the benchmark version does not depend on the build "
              "(it follows what the audio sounds like); frames it encodes may differ (their fingerprint is shown apart)",
              file=sys.stderr)
    return exe


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg reports about a media file.

    duration in seconds; fps of the video stream (None without video); width, height in pixels;
    sample_rate in Hz and channels of the audio stream (None without audio); codec names.
    """

    duration: float | None
    fps: float | None
    width: int | None
    height: int | None
    video_codec: str | None
    sample_rate: int | None
    channels: int | None
    audio_codec: str | None

    @property
    def has_audio(self) -> bool:
        return self.sample_rate is not None

    @property
    def has_video(self) -> bool:
        return self.width is not None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+).*?, (\d+) Hz, ([\w.()]+)")
_INPUT_STREAM = re.compile(r"Stream #0:\d+\S*: (Audio|Video): (.*)")
_DIMENSIONS = re.compile(r", (\d{2,5})x(\d{2,5})")
_POINTER = re.compile(r" ?@ 0x[0-9a-f]+")
_LEVEL = re.compile(r"\[(?:error|fatal|panic)\] ?")


def _duration(text: str) -> float | None:
    """Seconds of the first ``Duration: HH:MM:SS.ss`` in an ffmpeg log, None without one."""
    if match := _DURATION.search(text):
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe the first video and audio stream of `path`; raise MusicbenchError if unreadable."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", os.fspath(path)],
        capture_output=True, text=True, errors="replace",
    )
    text = result.stderr
    if "Input #0" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise MusicbenchError(f"cannot read media file {os.fspath(path)!r}: {last}")
    duration = _duration(text)
    fps = width = height = video_codec = None
    if match := _VIDEO.search(text):
        video_codec, width, height = match.group(1), int(match.group(2)), int(match.group(3))
        line = text[match.start():].splitlines()[0]
        if fps_match := _FPS.search(line):
            fps = float(fps_match.group(1))
    sample_rate = channels = audio_codec = None
    if match := _AUDIO.search(text):
        audio_codec, sample_rate = match.group(1), int(match.group(2))
        layout = match.group(3)
        leading_digits = re.match(r"\d+", layout)
        channels = {"mono": 1, "stereo": 2}.get(layout) or (int(leading_digits.group()) if leading_digits else None)
    return MediaInfo(duration, fps, width, height, video_codec, sample_rate, channels, audio_codec)


@dataclass(frozen=True)
class FfmpegLog:
    """What a ``-loglevel level+info`` ffmpeg log says about its run.

    opened: ffmpeg could open the input (the log describes ``Input #0``); duration in seconds of
    the input container (None if not announced); has_audio / has_video: the input has an audio /
    a video stream (an attached picture is not a video); video_width, video_height in pixels of
    its first video stream; errors: the error, fatal and panic lines, without their level tag
    and the ``@ 0x...`` pointers that vary between runs, in log order.
    """

    opened: bool
    duration: float | None
    has_audio: bool
    has_video: bool
    video_width: int | None
    video_height: int | None
    errors: list[str]


def parse_ffmpeg_log(log: str) -> FfmpegLog:
    """Read the input description and the error lines out of a ``level+info`` ffmpeg log."""
    input_part = log.split("Stream mapping:")[0]
    if "Output #" in input_part:
        input_part = input_part.split("Output #")[0]
    has_audio = has_video = False
    width = height = None
    for match in _INPUT_STREAM.finditer(input_part):
        if match.group(1) == "Audio":
            has_audio = True
        elif not has_video and "attached pic" not in match.group(2):
            has_video = True
            if dims := _DIMENSIONS.search(match.group(2)):
                width, height = int(dims.group(1)), int(dims.group(2))
    errors = [_LEVEL.sub("", _POINTER.sub("", line)).strip() for line in log.splitlines() if _LEVEL.search(line)]
    return FfmpegLog("Input #0" in log, _duration(input_part), has_audio, has_video, width, height, errors)


def _run(stream, what: str, path: str | os.PathLike, input_bytes: bytes | None = None) -> bytes:
    try:
        out, _ = stream.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, input=input_bytes, quiet=False)
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise MusicbenchError(f"ffmpeg could not {what} {os.fspath(path)!r}: {detail[-1] if detail else 'unknown error'}") from None
    return out


def read_audio(
    path: str | os.PathLike, sample_rate: int, start: float | None = None, end: float | None = None
) -> np.ndarray:
    """Decode the audio of `path` to mono float32 at `sample_rate` Hz, shape ``(n_samples,)``.

    `start`/`end` (seconds) trim the decoded signal; raises MusicbenchError on failure.
    """
    input_args = {} if start is None else {"ss": start}
    if end is not None:
        input_args["to"] = end
    stream = ffmpeg.input(os.fspath(path), **input_args).output(
        "pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate, map="0:a:0"
    ).global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    return np.frombuffer(_run(stream, "decode the audio of", path), dtype=np.float32).copy()


def read_frames(
    path: str | os.PathLike, fps: float | None = None, size: tuple[int, int] | None = None,
    start: float | None = None, end: float | None = None,
) -> np.ndarray:
    """Decode video frames of `path` as uint8 RGB ``(n_frames, height, width, 3)``.

    `fps` resamples the frame rate (None keeps the native one); `size` = (width, height) scales.
    """
    info = probe(path)
    if not info.has_video:
        raise MusicbenchError(f"media file {os.fspath(path)!r} has no video stream")
    input_args = {} if start is None else {"ss": start}
    if end is not None:
        input_args["to"] = end
    stream = ffmpeg.input(os.fspath(path), **input_args).video
    if fps is not None:
        stream = stream.filter("fps", fps=fps)
    width, height = (info.width, info.height) if size is None else size
    if size is not None:
        stream = stream.filter("scale", width, height)
    stream = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24").global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error"
    )
    raw = _run(stream, "decode the frames of", path)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3).copy()


def write_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int, width: int, height: int,
    audio: np.ndarray, sample_rate: int, crf: int = 23, audio_bitrate: str = "96k",
) -> None:
    """Encode RGB frames and mono float audio ``(n_samples,)`` to an H.264/AAC mp4 at `path`.

    Bit-exact flags, a single encoder thread, swscale's exact rounding for RGB -> YUV
    (`BITEXACT_SWS_FLAGS`) and libx264 without assembly (`X264_PARAMS`) make the video stream depend
    only on its inputs, not on the CPU. (The AAC audio is left to the CPU's SIMD paths: the benchmark
    identifies audio by its loudness contour, and pinning it would change every published sample.)
    The caller handles atomicity (write to a temporary name, rename when complete).
    """
    with tempfile.TemporaryDirectory(prefix="musicbench-audio-") as tmp:
        wav = Path(tmp) / "audio.wav"
        sf.write(wav, np.asarray(audio, dtype=np.float32), sample_rate, subtype="FLOAT")
        video_in = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
        audio_in = ffmpeg.input(os.fspath(wav))
        stream = ffmpeg.output(
            video_in.video, audio_in.audio, os.fspath(path),
            vcodec="libx264", pix_fmt="yuv420p", crf=crf, preset="veryfast", threads=1, sws_flags=BITEXACT_SWS_FLAGS,
            acodec="aac", audio_bitrate=audio_bitrate, ar=sample_rate, ac=1,
            movflags="+faststart", format="mp4",
            **{"fflags": "+bitexact", "flags:v": "+bitexact", "flags:a": "+bitexact", "map_metadata": -1,
               "x264-params": X264_PARAMS},
        ).global_args("-nostdin", "-hide_banner", "-loglevel", "error").overwrite_output()
        process = stream.run_async(cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True)
        try:
            for frame in frames:
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, expected ({height}, {width}, 3) uint8")
                process.stdin.write(frame.tobytes())
        except BrokenPipeError:
            pass
        finally:
            process.stdin.close()
        stderr = process.stderr.read().decode(errors="replace")
        if process.wait() != 0:
            raise MusicbenchError(f"ffmpeg could not encode {os.fspath(path)!r}: {stderr.strip()[-300:]}")
