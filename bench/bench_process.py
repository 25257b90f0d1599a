"""Throughput of `musicbench process` against a bare ffmpeg command doing the same decode.

Both sides decode the same H.264/AAC test videos to 11025 Hz mono 24-bit FLAC and 8 fps JPEG
frames (shorter side scaled to frames.size, centre square crop, MJPEG q 2), one single-threaded
ffmpeg per video, `--jobs` videos at a time. The bare side writes loose JPEGs into a folder per
video (what a shell script would do); musicbench additionally checks the decode, packs the frames
into one tar, hashes every file, writes records and the Parquet index.

Prints processed seconds of video per wall-clock second for both, and their ratio (goal >= 0.8);
also per CPU second (less sensitive to other load on the machine).
Usage: python bench/bench_process.py [--videos 24] [--seconds 14] [--jobs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from musicbench.benchmark import DataRoot
from musicbench.config import load_params
from musicbench.manifest import ManifestEntry, write_manifest
from musicbench.media import ffmpeg_exe
from musicbench.process import ProcessConfig, process_manifest
from musicbench.progress import cpu_seconds


def make_videos(folder: Path, count: int, seconds: float, width: int, height: int, fps: int, sample_rate: int) -> list[Path]:
    """H.264/AAC mono mp4s like MUSIC-Synth's (moving test pattern, a tone per video)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"syn_violin_{i:02d}.mp4"
        subprocess.run(
            [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency={220 + 20 * i}:sample_rate={sample_rate}:duration={seconds}",
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "1",
             "-ar", str(sample_rate), "-shortest", "-movflags", "+faststart", str(path)],
            check=True,
        )
        paths.append(path)
    return paths


def bare_ffmpeg_command(video: Path, out: Path, config: ProcessConfig) -> list[str]:
    """The same decode as musicbench's, written as one plain ffmpeg command."""
    size = config.size
    frames_dir = out / "frames" / video.stem
    frames_dir.mkdir(parents=True, exist_ok=True)
    return [
        ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-threads", "1", "-filter_complex_threads", "1",
        "-i", str(video),
        "-map", "0:a:0", "-ac", "1", "-ar", str(config.audio.sample_rate), "-c:a", "flac", "-sample_fmt", "s32",
        "-bits_per_raw_sample", "24", str(out / "audio" / f"{video.stem}.flac"),
        "-map", "0:v:0", "-vf",
        f"fps={config.audio.fps:g},scale={size}:{size}:force_original_aspect_ratio=increase,crop={size}:{size},setsar=1",
        "-c:v", "mjpeg", "-q:v", str(config.jpeg_qscale), "-pix_fmt", "yuvj420p", "-threads", "1",
        "-start_number", "0", str(frames_dir / "%06d.jpg"),
    ]


def run_bare(videos: list[Path], out: Path, config: ProcessConfig, jobs: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the bare ffmpeg commands, `jobs` at a time."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "audio").mkdir(parents=True)
    commands = [bare_ffmpeg_command(video, out, config) for video in videos]
    began, cpu = time.perf_counter(), cpu_seconds(children=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(lambda command: subprocess.run(command, capture_output=True), commands):
            if result.returncode != 0:
                raise RuntimeError(result.stderr.decode(errors="replace"))
    return time.perf_counter() - began, cpu_seconds(children=True) - cpu


def run_musicbench(manifest: Path, root: Path, config: ProcessConfig, jobs: int) -> tuple[float, float]:
    """(wall, CPU) seconds for a fresh `process_manifest` run (nothing to skip).

    CPU includes the worker processes and their ffmpegs (reaped when the pool shuts down).
    """
    shutil.rmtree(DataRoot(root).processed_dir, ignore_errors=True)
    began, cpu = time.perf_counter(), cpu_seconds(children=True)
    summary = process_manifest(manifest, root, config, jobs=jobs)
    elapsed = time.perf_counter() - began, cpu_seconds(children=True) - cpu
    if summary.rejected or summary.skipped:
        raise RuntimeError(f"unexpected summary {summary}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=14.0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--fps", type=int, default=16)
    parser.add_argument("--params", default=str(Path(__file__).resolve().parents[1] / "params.yaml"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = replace(ProcessConfig.from_params(load_params(args.params)), jobs=args.jobs)

    with tempfile.TemporaryDirectory(prefix="bench-process-") as tmp:
        root = Path(tmp) / "data"
        videos = make_videos(root / "videos", args.videos, args.seconds, args.width, args.height, args.fps, config.audio.sample_rate)
        entries = [
            ManifestEntry(v.stem, "solo", ("violin",), "MUSIC-Synth", "synth", video_path=f"videos/{v.name}") for v in videos
        ]
        write_manifest(entries, root / "manifest.csv")
        total_seconds = args.videos * args.seconds
        bare_times, ours_times = [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            bare_times.append(run_bare(videos, Path(tmp) / "bare", config, args.jobs))
            ours_times.append(run_musicbench(root / "manifest.csv", root, config, args.jobs))
        bare, ours = min(t[0] for t in bare_times), min(t[0] for t in ours_times)
        bare_cpu, ours_cpu = min(t[1] for t in bare_times), min(t[1] for t in ours_times)
        print(f"{args.videos} videos x {args.seconds:g} s, {args.width}x{args.height} @ {args.fps} fps, "
              f"jobs {args.jobs}, best of {args.repeats}")
        print(f"bare ffmpeg : {bare:7.3f} s wall  {total_seconds / bare:8.1f} processed s per wall s"
              f"   ({bare_cpu:6.3f} CPU s, {total_seconds / bare_cpu:7.1f} processed s per CPU s)")
        print(f"musicbench  : {ours:7.3f} s wall  {total_seconds / ours:8.1f} processed s per wall s"
              f"   ({ours_cpu:6.3f} CPU s, {total_seconds / ours_cpu:7.1f} processed s per CPU s)")
        print(f"ratio musicbench / bare = {bare / ours:.2f} wall, {bare_cpu / ours_cpu:.2f} CPU  (goal >= 0.8)")


if __name__ == "__main__":
    main()
