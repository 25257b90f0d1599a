"""Real yt-dlp against a loopback HTTP server serving tiny mp4 files made with ffmpeg (no mocks)."""

from __future__ import annotations

import collections
import hashlib
import http.server
import json
import re
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from musicbench.acquire import (
    DownloadConfig,
    acquire_music,
    classify_error,
    download_videos,
    read_availability,
    trim_video,
)
from musicbench.benchmark import read_index
from musicbench.cli import app
from musicbench.errors import MusicbenchError
from musicbench.manifest import ManifestEntry, read_manifest, write_manifest
from musicbench.media import ffmpeg_exe, probe
from musicbench.process import ProcessConfig, default_manifest, process_manifest

GOOD, DASH, GONE, FLAKY = "AAAAAAAAAAA", "-BBBBBBBBBB", "CCCCCCCCCCC", "DDDDDDDDDDD"


def _make_mp4(path: Path, frequency: int) -> bytes:
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=256x240:rate=15:duration=2",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:duration=2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clips")
    return {"a": _make_mp4(folder / "a.mp4", 440), "b": _make_mp4(folder / "b.mp4", 660)}


class FakeVideoHost:
    """Serves ``/v/<id>.mp4`` from `files` with HTTP Range support; counts requests per id.

    Ids in `cut` get only half of the body on requests without a Range header, then the
    connection is closed (a transfer that breaks mid-file).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: collections.Counter = collections.Counter()
        self.range_starts: list[tuple[str, int]] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                match = re.fullmatch(r"/v/([^/?]+)\.mp4", self.path)
                key = match.group(1) if match else self.path
                host.requests[key] += 1
                data = host.files.get(key)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                byte_range = self.headers.get("Range")
                if byte_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-\d*", byte_range).group(1))
                    host.range_starts.append((key, start))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    body = data[start:]
                else:
                    self.send_response(200)
                    body = data
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if key in host.cut and not byte_range:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # clients hanging up are expected here
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/v/{{id}}.mp4"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host(clips):
    server = FakeVideoHost()
    server.files.update({GOOD: clips["a"], DASH: clips["b"], FLAKY: clips["a"]})
    yield server
    server.close()


def entry(video_id: str, instruments: tuple[str, ...] = ("flute",), start=None, end=None) -> ManifestEntry:
    kind = "solo" if len(instruments) == 1 else "duet"
    return ManifestEntry(video_id, kind, instruments, "MUSIC-11", "youtube", start=start, end=end,
                         video_path=f"music/videos/{video_id}.mp4")


def config(host: FakeVideoHost, **overrides) -> DownloadConfig:
    values = dict(url_template=host.url_template, sleep=0.0, sleep_requests=0.0, backoff=0.01, retries=2, jobs=2)
    values.update(overrides)
    return DownloadConfig(**values)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _empty_params(folder: Path) -> str:
    """A params file with no download section (all defaults), outside the folders checked."""
    path = folder.parent / f"{folder.name}-params.yaml"
    path.write_text("dataset:\n  source: music\n")
    return str(path)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_download_success_unavailable_and_rerun(host, clips, tmp_path):
    root = tmp_path / "data"
    entries = [entry(GOOD), entry(DASH, ("violin",)), entry(GONE, ("cello",))]
    summary = download_videos(entries, root, config(host), show_progress=False)
    assert dict(summary.counts) == {"downloaded": 2, "unavailable": 1}

    for video_id, clip in ((GOOD, clips["a"]), (DASH, clips["b"])):
        raw = root / "music" / "raw" / f"{video_id}.mp4"
        assert raw.read_bytes() == clip  # complete, byte for byte
        video = root / "music" / "videos" / f"{video_id}.mp4"
        assert video.read_bytes() == clip  # no trim: link or copy of the raw file
    rows = read_availability(root / "music" / "availability.parquet")
    assert rows[GOOD].status == "downloaded" and rows[GOOD].sha256 == sha(clips["a"])
    assert rows[DASH].status == "downloaded" and rows[DASH].sha256 == sha(clips["b"])  # id beginning with '-'
    assert rows[GOOD].size_bytes == len(clips["a"]) and rows[GOOD].duration == pytest.approx(2.0, abs=0.2)
    assert rows[GONE].status == "unavailable" and "404" in rows[GONE].reason
    assert rows[DASH].instruments == "violin" and rows[GONE].attempts == 1

    # Second run: everything verified or known unavailable, so not one request.
    before = dict(host.requests)
    summary = download_videos(entries, root, config(host), show_progress=False)
    assert dict(host.requests) == before
    assert summary.skipped_unavailable == 1 and dict(summary.counts) == {"downloaded": 2}

    # Asked to, the unavailable video is tried again (and is still gone).
    summary = download_videos(entries, root, config(host, retry_unavailable=True), show_progress=False)
    assert host.requests[GONE] == before[GONE] + 1 and host.requests[GOOD] == before[GOOD]
    assert read_availability(root / "music" / "availability.parquet")[GONE].attempts == 2


def test_symlink_loops_where_videos_go_fail_those_videos_and_the_rest_download(host, clips, tmp_path):
    """Path.resolve raised RuntimeError("Symlink loop"): a traceback, the other videos never fetched."""
    root = tmp_path / "data"
    (root / "music" / "raw").mkdir(parents=True)
    (root / "music" / "videos").mkdir(parents=True)
    (root / "music" / "raw" / f"{DASH}.mp4").symlink_to("other.mp4")  # a -> b -> a
    (root / "music" / "raw" / "other.mp4").symlink_to(f"{DASH}.mp4")
    (root / "music" / "videos" / f"{FLAKY}.mp4").symlink_to(f"{FLAKY}.mp4")  # a link to itself
    summary = download_videos([entry(GOOD), entry(DASH), entry(FLAKY)], root, config(host), show_progress=False)
    assert dict(summary.counts) == {"downloaded": 1, "failed": 2}
    rows = read_availability(root / "music" / "availability.parquet")
    assert rows[GOOD].status == "downloaded" and (root / "music" / "videos" / f"{GOOD}.mp4").read_bytes() == clips["a"]
    for video_id, where in ((DASH, "raw"), (FLAKY, "videos")):
        assert rows[video_id].status == "failed" and host.requests[video_id] == 0
        assert rows[video_id].reason == (f"path 'music/{where}/{video_id}.mp4' under {str(root.resolve())!r} is a symlink "
                                         "loop (its links lead back to each other); replace the link with the real file")
    # the links removed, the next run fetches both
    for link in (f"raw/{DASH}.mp4", "raw/other.mp4", f"videos/{FLAKY}.mp4"):
        (root / "music" / link).unlink()
    summary = download_videos([entry(GOOD), entry(DASH), entry(FLAKY)], root, config(host), show_progress=False)
    assert dict(summary.counts) == {"downloaded": 3}


def test_corrupted_raw_file_is_fetched_again(host, clips, tmp_path):
    root = tmp_path / "data"
    download_videos([entry(GOOD)], root, config(host), show_progress=False)
    raw = root / "music" / "raw" / f"{GOOD}.mp4"
    raw.write_bytes(b"garbage")
    download_videos([entry(GOOD)], root, config(host), show_progress=False)
    assert raw.read_bytes() == clips["a"]


def test_cut_connection_is_retried_and_resumed(host, clips, tmp_path):
    host.cut.add(FLAKY)
    root = tmp_path / "data"
    summary = download_videos([entry(FLAKY)], root, config(host), show_progress=True)
    assert summary.rows[FLAKY].status == "downloaded"
    assert summary.rows[FLAKY].attempts == 2  # one retry mechanism: ours (yt-dlp's own retries are off)
    assert any(key == FLAKY and start > 0 for key, start in host.range_starts)  # resumed, not restarted
    assert (root / "music" / "raw" / f"{FLAKY}.mp4").read_bytes() == clips["a"]
    assert summary.rows[FLAKY].sha256 == sha(clips["a"])


def test_partial_file_is_resumed_by_the_next_run(host, clips, tmp_path):
    host.cut.add(FLAKY)
    root = tmp_path / "data"
    summary = download_videos([entry(FLAKY)], root, config(host, retries=0), show_progress=False)
    assert summary.rows[FLAKY].status == "failed"  # transient: kept for the next run
    assert not (root / "music" / "raw" / f"{FLAKY}.mp4").exists()
    parts = list((root / "music" / "raw" / ".parts").glob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < len(clips["a"])
    part_size = parts[0].stat().st_size

    summary = download_videos([entry(FLAKY)], root, config(host, retries=0), show_progress=False)
    assert summary.rows[FLAKY].status == "downloaded" and summary.rows[FLAKY].attempts == 2
    assert (FLAKY, part_size) in host.range_starts  # continued where the .part file ended
    assert not parts[0].exists()
    assert (root / "music" / "raw" / f"{FLAKY}.mp4").read_bytes() == clips["a"]


def test_trim_cuts_video_path_and_keeps_raw(host, clips, tmp_path):
    root = tmp_path / "data"
    summary = download_videos([entry(GOOD, start=0.5, end=1.5)], root, config(host), show_progress=False)
    assert summary.rows[GOOD].status == "downloaded"
    assert (root / "music" / "raw" / f"{GOOD}.mp4").read_bytes() == clips["a"]
    info = probe(root / "music" / "videos" / f"{GOOD}.mp4")
    assert info.duration == pytest.approx(1.0, abs=0.15) and (info.width, info.height) == (256, 240)
    assert info.has_audio


def test_trim_beyond_the_end_is_a_clear_error(clips, tmp_path):
    raw = tmp_path / "raw.mp4"
    raw.write_bytes(clips["a"])
    with pytest.raises(MusicbenchError, match="trim"):
        trim_video(raw, tmp_path / "out.mp4", 10.0, 12.0)
    assert not (tmp_path / "out.mp4").exists() and raw.read_bytes() == clips["a"]


@pytest.mark.parametrize("hostile", ["../x", "a b", "../../../../tmp/evil", "AAAAAAAAAA/", "-o/etc/pwd"])
def test_hostile_ids_are_rejected(host, tmp_path, hostile):
    root = tmp_path / "data"
    bad = ManifestEntry(hostile, "solo", ("flute",), "MUSIC-11", "youtube", video_path="music/videos/x.mp4")
    with pytest.raises(MusicbenchError, match="invalid youtube video id"):
        download_videos([entry(GOOD), bad], root, config(host), show_progress=False)
    assert sum(host.requests.values()) == 0
    assert files_under(tmp_path) == set()  # nothing written, least of all outside the root


def test_hostile_manifest_via_cli(host, tmp_path):
    manifest = tmp_path / "evil.csv"
    manifest.write_text(
        "video_id,kind,instruments,subset,source,start,end,duration,video_path,stems_path,boxes_path\n"
        "a b,solo,flute,MUSIC-11,youtube,,,,music/videos/x.mp4,,\n"
    )
    before = files_under(tmp_path)
    result = CliRunner().invoke(app, ["download", str(manifest), "--params", _empty_params(tmp_path), "--root", str(tmp_path / "data"),
                                      "--url-template", host.url_template, "--quiet"])
    assert result.exit_code == 2
    assert "invalid youtube video id 'a b'" in result.output and "Traceback" not in result.output
    assert files_under(tmp_path) == before and sum(host.requests.values()) == 0


def test_video_path_escaping_the_root_is_rejected(host, tmp_path):
    bad = ManifestEntry(GOOD, "solo", ("flute",), "MUSIC-11", "youtube", video_path="../outside.mp4")
    with pytest.raises(MusicbenchError, match="inside the data root"):
        download_videos([bad], tmp_path / "data", config(host), show_progress=False)
    assert not (tmp_path / "outside.mp4").exists()


@pytest.mark.parametrize("target", ["mixtures/benchmark.json", "processed/audio/AAAAAAAAAAA.flac",
                                    f"music/videos/{GONE}.mp4", f"music/raw/{DASH}.mp4"])
def test_download_never_writes_where_a_manifest_path_points(host, tmp_path, target):
    """A YouTube row whose video_path names another file of the root is refused: the file keeps its bytes."""
    root = tmp_path / "data"
    victim = root / target
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"the benchmark's own file")
    manifest = tmp_path / "m.csv"
    write_manifest([entry(DASH, ("violin",)), replace(entry(GOOD), video_path=target)], manifest)
    before = files_under(root)
    result = CliRunner().invoke(app, ["download", str(manifest), "--params", _empty_params(tmp_path), "--root", str(root),
                                      "--url-template", host.url_template, "--quiet"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"video_path {target!r} is not 'music/videos/{GOOD}.mp4'" in lines[0], result.output
    assert victim.read_bytes() == b"the benchmark's own file"
    assert files_under(root) == before and sum(host.requests.values()) == 0


def test_a_solos_clip_never_goes_where_its_manifest_path_points(host, clips, tmp_path):
    """Solos' clips are cut to music/solos/clips/<clip id>.mp4: a row naming another file is refused
    before any download, and a clean run lists every clip at the path its id gives."""
    from musicbench.solos import acquire_solos, build_solos_manifest
    from tests.test_solos import _write_lists

    repo, root = tmp_path / "repo", tmp_path / "data"
    lists = _write_lists(tmp_path / "lists", {"Oboe": [GOOD]}, {"Oboe": {GOOD: [[0, 12], [13, 24]]}})
    manifest = build_solos_manifest(lists, repo / "manifests" / "solos.csv")
    victim = root / "mixtures" / "benchmark.json"
    victim.parent.mkdir(parents=True)
    victim.write_text("{}")
    params = {"dataset": {"source": "solos", "root": str(root)},
              "download": {"url_template": host.url_template, "sleep": 0.0, "sleep_requests": 0.0}}
    good = read_manifest(manifest)
    write_manifest([good[0], replace(good[1], video_path="mixtures/benchmark.json")], manifest)
    with pytest.raises(MusicbenchError, match=rf"clip {GOOD}.02: video_path 'mixtures/benchmark.json' is not "
                                              rf"'music/solos/clips/{GOOD}.02.mp4'"):
        acquire_solos(params, root, repo=repo, show_progress=False)
    assert victim.read_text() == "{}" and sum(host.requests.values()) == 0
    write_manifest([good[0], replace(good[1], video_path="")], manifest)  # empty: the id decides
    acquire_solos(params, root, repo=repo, show_progress=False)
    listed = read_manifest(root / "music" / "solos" / "manifest.csv")
    assert [c.video_path for c in listed] == [f"music/solos/clips/{GOOD}.01.mp4", f"music/solos/clips/{GOOD}.02.mp4"]
    assert all((root / c.video_path).is_file() for c in listed) and victim.read_text() == "{}"


def test_download_destinations_come_from_the_id_and_stay_in_music(host, clips, tmp_path):
    """An empty video_path is fine: the raw file and the trimmed copy are named by the id, under music/."""
    root = tmp_path / "data"
    (root / "mixtures").mkdir(parents=True)
    (root / "mixtures" / "benchmark.json").write_text("{}")
    entries = [replace(entry(GOOD), video_path=""), entry(DASH, ("violin",), start=0.2, end=1.5)]
    summary = download_videos(entries, root, config(host), show_progress=False)
    assert dict(summary.counts) == {"downloaded": 2}
    written = files_under(root) - {"mixtures", "mixtures/benchmark.json"}
    assert written and all(path == "music" or path.startswith("music/") for path in written), written
    assert (root / "music" / "videos" / f"{GOOD}.mp4").read_bytes() == clips["a"]
    rows = read_availability(root / "music" / "availability.parquet")
    assert rows[GOOD].video_path == f"music/videos/{GOOD}.mp4" and rows[DASH].video_path == f"music/videos/{DASH}.mp4"
    assert (root / "mixtures" / "benchmark.json").read_text() == "{}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_gives_one_clear_message_quickly(tmp_path):
    manifest = tmp_path / "m.csv"
    write_manifest([entry(GOOD), entry(DASH), entry(FLAKY)], manifest)
    started = time.monotonic()
    result = CliRunner().invoke(app, [
        "download", str(manifest), "--params", _empty_params(tmp_path), "--root", str(tmp_path / "data"), "--quiet",
        "--url-template", f"http://127.0.0.1:{_closed_port()}/v/{{id}}.mp4",
    ])
    assert time.monotonic() - started < 10
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no network")
    assert "dataset.source: synth" in lines[0]


def test_network_lost_mid_run_stops_with_one_message(tmp_path):
    # The start-of-run check is skipped, as if the network went away after it.
    dead = DownloadConfig(url_template=f"http://127.0.0.1:{_closed_port()}/v/{{id}}.mp4", sleep=0.0,
                          sleep_requests=0.0, backoff=0.01, retries=1, jobs=1)
    root = tmp_path / "data"
    started = time.monotonic()
    with pytest.raises(MusicbenchError, match="network unreachable.*dataset.source: synth"):
        download_videos([entry(GOOD), entry(DASH), entry(FLAKY)], root, dead, show_progress=False, check_online=False)
    assert time.monotonic() - started < 10
    rows = read_availability(root / "music" / "availability.parquet")
    assert [r.status for r in rows.values()] == ["failed"]  # the first video; the others were not tried


def test_report_keeps_rows_of_earlier_runs(host, tmp_path):
    root = tmp_path / "data"
    download_videos([entry(GOOD)], root, config(host), show_progress=False)
    download_videos([entry(GONE)], root, config(host), show_progress=False)
    rows = read_availability(root / "music" / "availability.parquet")
    assert {k: r.status for k, r in rows.items()} == {GOOD: "downloaded", GONE: "unavailable"}


def test_damaged_report_is_not_overwritten(host, tmp_path):
    report = tmp_path / "data" / "music" / "availability.parquet"
    report.parent.mkdir(parents=True)
    report.write_bytes(b"not parquet")
    with pytest.raises(MusicbenchError, match="move it aside"):
        download_videos([entry(GOOD)], tmp_path / "data", config(host), show_progress=False)
    assert report.read_bytes() == b"not parquet"


def test_filters_and_limit(host, tmp_path):
    root = tmp_path / "data"
    entries = [entry(GOOD, ("flute",)), entry(DASH, ("violin",)), entry(FLAKY, ("flute", "violin"))]
    summary = download_videos(entries, root, config(host, instruments=("violin",), limit=1), show_progress=False)
    assert set(summary.rows) == {DASH}
    summary = download_videos(entries, root, config(host, limit=1), show_progress=False)
    assert set(summary.rows) == {GOOD, DASH}  # the verified one is re-checked, one new one is fetched
    assert host.requests[FLAKY] == 0


def test_cli_download_prints_the_table(host, tmp_path):
    manifest = tmp_path / "m.csv"
    write_manifest([entry(GOOD), entry(GONE, ("cello",))], manifest)
    result = CliRunner().invoke(app, ["download", str(manifest), "--params", _empty_params(tmp_path), "--root", str(tmp_path / "data"),
                                      "--url-template", host.url_template, "--sleep", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "flute" in result.output and "unavailable" in result.output


def _params(tmp_path: Path, source: str, host: FakeVideoHost | None, manifest: Path | None) -> dict:
    params = {"dataset": {"source": source, "root": str(tmp_path / "data")}}
    if host is not None:
        params["download"] = {
            "manifests": [str(manifest)], "url_template": host.url_template, "sleep": 0.0,
            "sleep_requests": 0.0, "retries": 1, "backoff": 0.01, "jobs": 2,
        }
    return params


def test_acquire_music_synth_touches_no_network(tmp_path):
    params = _params(tmp_path, "synth", None, None)
    params["download"] = {"url_template": f"http://127.0.0.1:{_closed_port()}/v/{{id}}.mp4"}
    report = acquire_music(params, show_progress=False)
    data = json.loads(report.read_text())
    assert data["skipped"] is True and data["source"] == "synth"
    assert files_under(tmp_path / "data") == {"music", "music/acquire_report.json"}


def test_acquire_music_downloads_and_reports(host, tmp_path):
    manifest = tmp_path / "m.csv"
    write_manifest([entry(GOOD), entry(GONE, ("cello",))], manifest)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(_params(tmp_path, "music", host, manifest)))
    result = CliRunner().invoke(app, ["acquire", "--params", str(params_file), "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "data" / "music" / "acquire_report.json").read_text())
    assert data["counts"] == {"downloaded": 1, "unavailable": 1, "failed": 0, "not tried": 0}
    assert data["per_instrument"]["cello"]["unavailable"] == 1


def test_acquire_lists_a_video_of_two_manifests_once(host, tmp_path):
    """MUSIC-11 and MUSIC-21 share ids: the manifest of the videos on disk names each once."""
    music11, music21 = tmp_path / "music11.csv", tmp_path / "music21.csv"
    write_manifest([entry(GOOD)], music11)
    write_manifest([replace(entry(GOOD), subset="MUSIC-21"), replace(entry(DASH, ("violin",)), subset="MUSIC-21")], music21)
    params = _params(tmp_path, "music", host, music11)
    params["download"]["manifests"] = [str(music11), str(music21)]
    acquire_music(params, show_progress=False)
    on_disk = read_manifest(tmp_path / "data" / "music" / "manifest.csv")
    assert [(e.video_id, e.subset) for e in on_disk] == [(DASH, "MUSIC-21"), (GOOD, "MUSIC-11")]


def test_acquired_videos_are_processed_once_trimmed(host, tmp_path):
    """download → trim → process: the processing stage reads acquire's manifest of the videos on
    disk, whose clips are already cut, so the trim is applied exactly once."""
    manifest = tmp_path / "m.csv"
    write_manifest([entry(GOOD, start=0.5, end=1.7), entry(GONE, ("cello",))], manifest)
    params = _params(tmp_path, "music", host, manifest)
    repo_params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params.update({key: repo_params[key] for key in ("audio", "frames", "process")})
    params["audio"]["clip_samples"] = 4096  # the test clips are 2 s long
    acquire_music(params, show_progress=False)
    root = tmp_path / "data"
    on_disk = read_manifest(default_manifest(params, root))
    assert [(e.video_id, e.start, e.end) for e in on_disk] == [(GOOD, None, None)]
    process_manifest(default_manifest(params, root), root, ProcessConfig.from_params(params))
    video = read_index(root / "processed" / "videos.parquet").iloc[0]
    assert video["video_id"] == GOOD and abs(video["duration"] - 1.2) < 0.1


def test_classify_youtube_reasons():
    from yt_dlp.utils import DownloadError, ExtractorError

    def wrapped(message: str, **kwargs) -> DownloadError:
        error = ExtractorError(message, expected=True, **kwargs)
        return DownloadError(f"ERROR: [youtube] x: {message}", (type(error), error, None))

    assert classify_error(wrapped("Private video. Sign in if you've been granted access")).status == "unavailable"
    assert classify_error(wrapped("Video unavailable. This video has been removed by the uploader")).status == "unavailable"
    blocked = "Video unavailable. This video contains content from X, who has blocked it on copyright grounds"
    assert classify_error(wrapped(blocked)).status == "unavailable"
    bot = classify_error(wrapped("Sign in to confirm you're not a bot. Use --cookies"))
    assert bot.status == "failed" and bot.stop_run and "cookies" in bot.stop_run
    assert classify_error(DownloadError("ERROR: Read timed out", None)).status == "failed"


def test_progress_bar_shows_a_status_text(capsys):
    from musicbench.progress import progress_bar

    with progress_bar("download", 2, with_status=True) as advance:
        advance(1, "downloaded 1 unavailable 0 failed 0")
        advance(1, "downloaded 1 unavailable 1 failed 0")
    assert "downloaded 1 unavailable 1 failed 0" in capsys.readouterr().err
    with progress_bar("quiet", 1, show=False, with_status=True) as advance:
        advance(1, "not shown")
    assert capsys.readouterr().err == ""


YOUTUBE_FORMATS = Path(__file__).resolve().parent / "fixtures" / "youtube_formats.json"


def _youtube_info(video: dict, keep=lambda fmt: True) -> dict:
    """An info dict as yt-dlp's YouTube extractor returns it, from a captured format list (URLs made up)."""
    info = {**video, "_type": "video", "webpage_url": f"https://www.youtube.com/watch?v={video['id']}",
            "extractor_key": "Youtube"}
    info["formats"] = [{**fmt, "url": f"https://example.invalid/{video['id']}/{fmt['format_id']}"}
                       for fmt in video["formats"] if keep(fmt)]
    return info


def _select(info: dict, download: DownloadConfig, tmp_path: Path) -> dict:
    """yt-dlp's own format selection with the options `musicbench download` passes, offline."""
    from yt_dlp import YoutubeDL

    from musicbench.acquire import _ytdlp_options

    with YoutubeDL({**_ytdlp_options(info["id"], tmp_path, tmp_path, download), "simulate": True}) as ydl:
        return ydl.process_ie_result(info, download=False)


def _repo_download_config() -> DownloadConfig:
    return DownloadConfig.from_params(yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text()))


def test_default_format_picks_the_smallest_h264_of_224_px_and_aac_140(tmp_path):
    download = _repo_download_config()
    assert (download.format, download.format_sort) == (DownloadConfig().format, DownloadConfig().format_sort)
    videos = json.loads(YOUTUBE_FORMATS.read_text())
    assert len(videos) == 7
    for video in videos:
        chosen = _select(_youtube_info(video), download, tmp_path)
        picture, sound = chosen["requested_formats"]
        smallest = min(f["height"] for f in video["formats"]
                       if str(f.get("vcodec")).startswith("avc1") and f.get("acodec") == "none" and f["height"] >= 224)
        assert picture["vcodec"].startswith("avc1") and picture["height"] == smallest, (video["id"], picture)
        assert picture["height"] in (240, 360) and sound["format_id"] == "140" and sound["acodec"].startswith("mp4a")
        assert chosen["ext"] == "mp4"


@pytest.mark.parametrize("offer", ["audio and storyboards", "144p and audio", "storyboards"])
def test_no_fitting_format_fails_with_a_clear_reason(tmp_path, offer):
    from yt_dlp.utils import DownloadError, ExtractorError

    keep = {
        "audio and storyboards": lambda f: f.get("vcodec") in (None, "none"),
        "144p and audio": lambda f: f.get("vcodec") in (None, "none") or (f.get("height") or 0) < 224,
        "storyboards": lambda f: f.get("format_note") == "storyboard",
    }[offer]
    video = json.loads(YOUTUBE_FORMATS.read_text())[0]
    with pytest.raises((ExtractorError, DownloadError)) as raised:
        _select(_youtube_info(video, keep), _repo_download_config(), tmp_path)
    outcome = classify_error(raised.value)
    assert outcome.status == "failed" and not outcome.retry_now and not outcome.stop_run
    assert "no format of the video fits download.format" in outcome.reason and "224 px" in outcome.reason
