"""MUSIC-Synth: the embedded, offline stand-in for MUSIC that musicbench generates itself.

Solo and duet performances of the 11 MUSIC instruments as H.264/AAC mp4 videos, with what MUSIC
lacks: the clean audio of every player and every player's box in every frame. Layout under the
data root (all paths in the manifest are relative to the root)::

    synth/manifest.csv          canonical manifest (musicbench.manifest), source = synth
    synth/videos/<id>.mp4       H.264 video (synth.fps, synth.width x synth.height) + AAC mono audio
    synth/stems/<id>.flac       each player's recorded audio alone (musicbench.synth.recording),
                                one channel per player in manifest order, 24-bit,
                                audio.sample_rate Hz; their sum is the video's audio before AAC
    synth/boxes/<id>.json       per video frame and player: [x, y, w, h] pixels (top-left origin)

Every random choice derives from synth.seed and the video id, so a video does not depend on the
order or parallelism of generation; the same params give byte-identical manifests and stems.
"""

from musicbench.synth.generate import SynthConfig, VideoSpec, generate_synth, generate_video, plan_videos, synth_stage

__all__ = ["SynthConfig", "VideoSpec", "generate_synth", "generate_video", "plan_videos", "synth_stage"]
