"""The published leaderboard for real: runs made with `evaluate` on the small benchmark (a baseline,
the oracles, a hostile-named model that uses labels, a run on another benchmark version), the board
built from them, DVC reading its metrics and plots, and its pages driven in headless Chromium
(Debian's `chromium` and `chromium-driver` through selenium)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from musicbench.benchmark import DataRoot
from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.leaderboard import build_leaderboard
from musicbench.leaderboard.board import MetricBlock, Row, choose_baseline
from musicbench.leaderboard.slug import safe_slug
from musicbench.leaderboard.stats import holm, item_videos, paired_test
from tests.conftest import REPO_ROOT

XSS = "<script>alert(1)</script>"
XSS_FOLDER = "<img src=x onerror=alert(2)>"
OLD_VERSION = "mb-0000000000000000"
# The small benchmark's test items (conftest.bench_params): runs score all of them, since a run made
# with --limit is never complete (the data root says how many items a complete run has).
N_TEST = 12
INSTALL_HINT = (
    "the leaderboard test drives real headless Chromium: install Debian's browser and driver with "
    "`apt-get install -y chromium chromium-driver` and selenium with `pip install selenium` (.ci/run does both)"
)
# A label-informed model (uses_labels) under a hostile name: low instruments get the low band of the
# mixture, the others the high band. It has no separate_at: "n/a" on the duet track.
LABEL_MODEL = '''
import numpy as np

LOW = {"cello", "tuba", "acoustic_guitar"}


class BandSplit:
    uses_labels = True

    def _band(self, mixture, low, sample_rate):
        spectrum = np.fft.rfft(mixture)
        freqs = np.fft.rfftfreq(len(mixture), 1.0 / sample_rate)
        mask = np.where((freqs < 500.0) == low, 1.0, 0.05)
        return np.fft.irfft(spectrum * mask, n=len(mixture))

    def separate(self, mixture, frames, sample_rate, labels):
        return np.stack([self._band(mixture, label in LOW, sample_rate) for label in labels]).astype(np.float32)


def load_model(device="cpu", **options):
    return BandSplit()
'''
# The metrics and plots part of dvc.yaml's `leaderboard` stage: a metrics file per method in leaderboard/metrics/.
DVC_SPEC = """
stages:
  leaderboard:
    cmd: musicbench leaderboard
    metrics:
      - leaderboard/metrics:
          cache: false
    plots:
      - leaderboard/plots/per_instrument_nsdr.csv:
          cache: false
          template: bar_horizontal
          x: nsdr
          y: label
          title: Mean NSDR per instrument and method (dB)
          x_label: NSDR (dB)
          y_label: method · instrument
"""


def _rewrite_version(run_dir: Path, version: str, name: str) -> None:
    for file_name in ("summary.json", "provenance.json"):
        doc = json.loads((run_dir / file_name).read_text())
        doc["benchmark_version"], doc["name"] = version, name
        (run_dir / file_name).write_text(json.dumps(doc, indent=2))


@pytest.fixture(scope="module")
def board(bench_root, tmp_path_factory):
    """(out_dir, board dict, runs_dir, data root) of a leaderboard built from runs made here."""
    root, _, _ = bench_root
    work = tmp_path_factory.mktemp("leaderboard")
    runs = work / "runs"
    evaluate(REPO_ROOT / "baselines" / "motion_energy.py", root, runs / "motion_energy", device="cpu",
             name="motion_energy")
    for oracle in ("ibm", "irm", "mixture"):
        evaluate(None, root, runs / f"oracle-{oracle}", device="cpu", oracle=oracle)
    model = work / "band_split.py"
    model.write_text(LABEL_MODEL)
    evaluate(model, root, runs / XSS_FOLDER, device="cpu", limit=4, name=XSS,
             options={"note": "<b onmouseover=alert(3)>options</b>"})
    shutil.copytree(runs / "motion_energy", runs / "motion-old")
    _rewrite_version(runs / "motion-old", OLD_VERSION, "motion_energy (old version)")
    (runs / "unfinished").mkdir()  # a folder without summary.json: skipped with a warning
    out = work / "leaderboard"
    result = build_leaderboard(runs, out, root, demo_items=2)
    return out, result, runs, root


def _rows(board_dict: dict, table: int = 0) -> dict[str, dict]:
    return {row["name"]: row for row in board_dict["tables"][table]["rows"]}


# ------------------------------------------------------------------------------------ files on disk


def test_board_ranks_only_comparable_runs_and_marks_references(board):
    out, result, runs, root = board
    written = json.loads((out / "leaderboard.json").read_text())
    assert written["tables"] == json.loads(json.dumps(result["tables"]))
    assert [t["benchmark_version"] for t in written["tables"]] == [DataRoot(root).version(), OLD_VERSION]
    assert any("2 benchmark versions" in w and "not comparable" in w for w in written["warnings"])
    assert any("unfinished" in w and "summary.json" in w for w in written["warnings"])
    assert any("not the current one" in w for w in written["tables"][1]["warnings"])
    assert list(_rows(written, 1)) == ["motion_energy (old version)"]

    rows = _rows(written)
    references = {name for name, row in rows.items() if row["kind"] == "reference"}
    assert references == {"oracle-ibm", "oracle-irm", "oracle-mixture"}
    assert all(rows[name]["rank"] is None for name in references)
    assert rows["motion_energy"]["kind"] == "main" and rows["motion_energy"]["rank"] == 1
    # scored on 4 of the 11 items (--limit): a chosen subset is never ranked against complete runs
    assert rows[XSS]["kind"] == "labels" and rows[XSS]["uses_labels"] and rows[XSS]["rank"] is None
    assert rows[XSS]["unranked"] == f"incomplete: scored 4 of the {N_TEST} items"
    assert rows[XSS]["folder"] == XSS_FOLDER

    # the numbers are the runs' own, with CI and median
    summary = json.loads((runs / "motion_energy" / "summary.json").read_text())
    nsdr = rows["motion_energy"]["metrics"]["nsdr"]
    assert nsdr["mean"] == pytest.approx(summary["metrics"]["nsdr"]["mean"])
    assert nsdr["ci95"] == pytest.approx(summary["metrics"]["nsdr"]["ci95"])
    assert nsdr["median"] == pytest.approx(summary["metrics"]["nsdr"]["median"])
    assert rows["motion_energy"]["metrics"]["ciou"] is not None  # it localizes
    assert rows["oracle-ibm"]["metrics"]["ciou"] is None
    assert rows["motion_energy"]["localization"]["ciou_success@0.5"] == pytest.approx(
        summary["localization"]["ciou_success@0.5"])  # the named variants of summary.json
    assert rows[XSS]["duets"] is None  # no separate_at: "n/a" on the board
    assert rows["motion_energy"]["duets"]["nsdr"]["n"] == rows["motion_energy"]["duet_items"] > 0
    assert abs(rows["oracle-mixture"]["metrics"]["nsdr"]["mean"]) < 1e-6  # the floor
    assert set(rows["motion_energy"]["per_instrument"]) == set(written["tables"][0]["instruments"])

    # significance: a paired video bootstrap against the best baseline (motion_energy lives in baselines/)
    assert "paired video bootstrap" in written["significance_test"]["description"]
    assert written["tables"][0]["baseline"]["name"] == "motion_energy"
    assert rows["motion_energy"]["test"]["verdict"] == "baseline"
    ibm = rows["oracle-ibm"]["test"]
    assert ibm["n"] == N_TEST and ibm["verdict"] == "better" and ibm["p_holm"] < 0.05 and ibm["median_diff"] > 10
    assert ibm["n_videos"] == len({v for videos in rows["oracle-ibm"]["item_videos"].values() for v in videos}) > 2
    assert ibm["ci95"][0] <= ibm["mean_diff"] <= ibm["ci95"][1] and ibm["ci95"][0] > 0
    assert rows[XSS]["test"]["verdict"] == "not tested" and rows[XSS]["test"]["p"] is None  # --limit: incomplete
    assert rows[XSS]["test"]["note"].startswith("not tested: incomplete: scored 4 of the")

    # prov per row
    prov = rows["motion_energy"]["provenance"]
    assert prov["device"] == "cpu" and prov["seconds_per_item"] > 0 and prov["date"] and prov["git_revision"]

    frame = pd.read_parquet(out / "leaderboard.parquet")
    assert len(frame) == sum(len(t["rows"]) for t in written["tables"])
    assert set(frame.loc[frame["kind"] == "reference", "rank"].isna()) == {True}
    assert frame.set_index("name").loc["motion_energy", "nsdr_mean"] == pytest.approx(nsdr["mean"])


def test_markdown_escapes_run_strings(board):
    out, _, _, _ = board
    text = (out / "leaderboard.md").read_text()
    assert "<script" not in text and "<img" not in text and "<b " not in text
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in text
    assert "p = <" not in text and ("p < 0.001" in text or "p = 0." in text)
    assert "bootstrap over videos" in text and "## Benchmark version `mb-0000000000000000`" in text
    assert "> **Warning:**" in text


def test_dvc_reads_the_metrics_and_plots(board, tmp_path, browser):
    out, result, _, _ = board
    repo = tmp_path / "repo"
    (repo / "leaderboard" / "plots").mkdir(parents=True)
    shutil.copytree(out / "metrics", repo / "leaderboard" / "metrics")
    shutil.copy(out / "plots" / "per_instrument_nsdr.csv", repo / "leaderboard" / "plots" / "per_instrument_nsdr.csv")
    (repo / "dvc.yaml").write_text(DVC_SPEC)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(dvc + ["init", "-q"], cwd=repo, check=True)
    shown = subprocess.run(dvc + ["metrics", "show", "--json"], cwd=repo, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    workspace = next(iter(json.loads(shown.stdout).values()))  # keyed "workspace" (or "" before a commit)
    metrics = {Path(path).stem: entry["data"] for path, entry in workspace["data"].items()}  # a file per method
    nsdr = _rows(result)["motion_energy"]["metrics"]["nsdr"]["mean"]
    assert metrics["motion_energy"]["nsdr"] == pytest.approx(nsdr)
    assert {"nsdr", "sir", "sar", "si_sdri", "ciou", "pointing_hit"} <= set(metrics["motion_energy"])
    assert safe_slug(XSS) in metrics and "oracle-ibm" in metrics
    assert len(metrics) == sum(len(t["rows"]) for t in result["tables"])  # one row per method
    files = [json.loads(path.read_text()) for path in sorted((out / "metrics").glob("*.json"))]
    assert len(files) == len(metrics) and all(set(f) == set(files[0]) for f in files)  # the same columns
    table = subprocess.run(dvc + ["metrics", "show", "--md"], cwd=repo, capture_output=True, text=True)
    lines = [line for line in table.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(metrics) and len({line.count("|") for line in lines}) == 1
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == ["Path", *sorted(files[0])]
    plots = subprocess.run(dvc + ["plots", "show", "--json"], cwd=repo, capture_output=True, text=True)
    assert plots.returncode == 0, plots.stderr
    spec = json.loads(plots.stdout)["data"]["leaderboard/plots/per_instrument_nsdr.csv"][0]["content"]
    values = spec["data"]["values"]
    # a run name cannot end the <script> block that dvc plots show writes the data into
    assert {v["method"] for v in values} >= {"motion_energy", "oracle-ibm", "\u2039script\u203aalert(1)\u2039/script\u203a"}
    assert "bar" in json.dumps(spec.get("mark"))
    # `dvc plots show` writes its page into the repository's root: git ignores it there; with the
    # repository's page template (.dvc/config) it carries vega itself and draws with no network
    shutil.copy(REPO_ROOT / ".gitignore", repo / ".gitignore")
    shutil.copy(REPO_ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copy(REPO_ROOT / ".dvc" / "plots.html", repo / ".dvc" / "plots.html")
    assert subprocess.run(dvc + ["plots", "show"], cwd=repo, capture_output=True, text=True).returncode == 0
    page = repo / "dvc_plots" / "index.html"
    assert page.is_file() and "<script src=" not in page.read_text() and "cdn." not in page.read_text()
    assert subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=repo).returncode == 0
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, page)
    canvas = WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg"))
    assert canvas[0].size["width"] > 200 and canvas[0].size["height"] > 200
    assert browser.execute_script("return typeof vegaEmbed") == "function"
    assert browser.execute_script("return window.__alerts") == []  # the run named <script>alert(1)</script> ran nothing


def test_demo_files_are_sanitised_and_stay_inside(board):
    out, result, _, _ = board
    resolved = out.resolve()
    for path in out.rglob("*"):
        assert not path.is_symlink()
        assert resolved in path.resolve().parents
    pages = sorted(p.name for p in (out / "demo").glob("*.html"))
    assert pages and all(re.fullmatch(r"[A-Za-z0-9_-]+\.html", name) for name in pages)
    rows = _rows(result)
    assert rows[XSS]["demo"].startswith("demo/img-src-x-onerror-alert-2-")
    assert _rows(result, 1)["motion_energy (old version)"]["demo"] is None  # other version: its items are not here
    demo = out / rows["motion_energy"]["demo"]
    media = demo.with_suffix("")
    sounds = sorted(media.rglob("*.ogg")) + sorted((out / "demo" / "items").rglob("*.ogg"))
    assert sounds and all(sf.info(str(w)).subtype == "VORBIS" and sf.info(str(w)).samplerate == 11025 for w in sounds)
    assert sorted(media.rglob("heat-*.png"))
    assert Image.open(sorted((out / "demo" / "items").rglob("frame-*.png"))[0]).size == (112, 112)

    taken: set[str] = set()
    for hostile in ("../../etc/passwd", "..", ".", "", "a/b\\c", "é" * 80, "runs", "RUNS", "runs"):
        slug = safe_slug(hostile, taken)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", slug) and len(slug) <= 60
    assert len(taken) == 9  # every slug unique, even case-insensitively


def test_rebuild_is_identical_and_demo_folders_are_guarded(board, tmp_path):
    out, _, runs, root = board
    outputs = ("leaderboard.json", "leaderboard.md", "index.html", "plots/per_instrument_nsdr.csv",
               *(f"metrics/{path.name}" for path in (out / "metrics").glob("*.json")),
               *(str(path.relative_to(out)) for path in (out / "demo").rglob("*") if path.is_file()))  # Ogg too
    assert any(name.endswith(".ogg") for name in outputs)
    before = {name: (out / name).read_bytes() for name in outputs}
    (out / "metrics" / "a-method-that-is-gone.json").write_text("{}")
    (out / "metrics.json").write_text("{}")  # the one-file layout of earlier builds
    build_leaderboard(runs, out, root, demo_items=2)  # DVC reruns the stage: same inputs, same bytes
    assert {name: (out / name).read_bytes() for name in outputs} == before
    assert sorted((out / "metrics").iterdir()) == sorted(out / name for name in outputs if name.startswith("metrics/"))
    assert not (out / "metrics.json").exists()

    no_root = build_leaderboard(runs, tmp_path / "no_root")  # no data root: the board, without demo pages
    assert all(row["demo"] is None and "--root" in row["demo_note"] for t in no_root["tables"] for row in t["rows"])
    assert (tmp_path / "no_root" / "index.html").is_file()

    foreign = tmp_path / "foreign"
    (foreign / "demo").mkdir(parents=True)
    (foreign / "demo" / "keep.txt").write_text("not ours")
    with pytest.raises(MusicbenchError, match="holds 'demo', which no leaderboard build writes"):
        build_leaderboard(runs, foreign, root)
    assert (foreign / "demo" / "keep.txt").read_text() == "not ours"


def test_paired_test_and_holm():
    a = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], index=list("abcdef"))
    b = pd.Series([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 9.0], index=list("abcdefg"))
    videos = {item: [f"v{i % 3}", f"w{i % 4}"] for i, item in enumerate("abcdefg")}
    result = paired_test(a, b, videos, seed=1)
    assert result.n == 6 and result.n_videos == 7 and result.direction == 1
    assert result.mean_diff == pytest.approx(2.25) and 0 < result.ci95[0] < 2.25 < result.ci95[1]
    assert result.p < 0.05 and paired_test(a, b, videos, seed=1).p == result.p  # seeded: the same p every time
    assert paired_test(a, a, videos, seed=1).p == 1.0
    assert paired_test(a, pd.Series([1.0], index=["z"]), videos, seed=1).p is None
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06], abs=1e-12)
    # the board's unit of resampling is the video: two Solos clips of one YouTube video are that video
    rows = pd.DataFrame({"item_id": ["i1", "i1", "i2", "i2"], "track": "mixtures", "status": "ok",
                         "video_id": ["-AbCdEfGhIj.01", "-AbCdEfGhIj.02", "-AbCdEfGhIj.03", "Zyxwvutsrqp"]})
    assert item_videos(rows) == {"i1": ["-AbCdEfGhIj"], "i2": ["-AbCdEfGhIj", "Zyxwvutsrqp"]}


# A label-free band split that can be told to return silence on chosen mixtures (by a hash of their
# samples): the exploit of a board that averages over the items a model chose to score.
SLY_MODEL = """
import hashlib

import numpy as np


class Split:
    def __init__(self, fail):
        self.fail = set(fail.split(",")) if fail else set()

    def separate(self, mixture, frames, sample_rate):
        if hashlib.sha256(np.asarray(mixture, dtype=np.float32).tobytes()).hexdigest()[:16] in self.fail:
            return np.zeros((len(frames), len(mixture)), dtype=np.float32)
        spectrum = np.fft.rfft(mixture)
        low = np.fft.rfftfreq(len(mixture), 1.0 / sample_rate) < 400.0
        bands = [np.fft.irfft(spectrum * np.where(low == (k == 0), 1.0, 0.1), n=len(mixture)) for k in range(len(frames))]
        return np.stack(bands).astype(np.float32)


def load_model(device="cpu", fail=""):
    return Split(fail)
"""


def test_failing_on_chosen_items_never_raises_a_rank(bench_root, tmp_path):
    """The same model twice: honest, and silent on its own 3 worst items. Averaged over the items it
    scored, the sly copy would lead; charged −inf for each failure it is listed unranked below."""
    root, _, _ = bench_root
    model = tmp_path / "split.py"
    model.write_text(SLY_MODEL)
    runs = tmp_path / "runs"
    evaluate(model, root, runs / "honest", device="cpu", name="honest")
    items = pd.read_parquet(runs / "honest" / "items.parquet")
    mixtures = {item.item_id: item.mixture for item in DataRoot(root).iter_items("test")}
    hashes = {i: hashlib.sha256(np.asarray(m, dtype=np.float32).tobytes()).hexdigest()[:16] for i, m in mixtures.items()}
    unique = [i for i in hashes if list(hashes.values()).count(hashes[i]) == 1]  # two items may share a mixture
    worst = items[items["item_id"].isin(unique)].groupby("item_id")["nsdr"].mean().nsmallest(3).index
    fail = ",".join(hashes[i] for i in worst)
    evaluate(model, root, runs / "sly", device="cpu", name="sly", options={"fail": fail})

    sly_items = pd.read_parquet(runs / "sly" / "items.parquet")
    failed = sly_items.loc[sly_items["status"] != "ok", "item_id"].unique()
    assert sorted(failed) == sorted(worst)
    scored_mean = sly_items[sly_items["status"] == "ok"].groupby("item_id")["nsdr"].mean().mean()
    honest_mean = items.groupby("item_id")["nsdr"].mean().mean()
    assert scored_mean > honest_mean + 0.1  # what failing would have bought under a mean over scored items

    summary = json.loads((runs / "sly" / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_excluded"] == 3
    assert summary["metrics"]["nsdr"]["mean"] is None and summary["metrics"]["nsdr"]["n_failed"] == 3
    assert summary["metrics"]["nsdr"]["median"] < scored_mean  # the median counts the failures too
    hit = set(sly_items.loc[sly_items["status"] != "ok", "instrument"])  # instruments of the failed sources: −inf, not shown as a number
    assert hit and all(summary["per_instrument"][name]["nsdr"] is None for name in hit)

    board = build_leaderboard(runs, tmp_path / "board", root, demo_items=0)
    rows = [row for row in board["tables"][0]["rows"]]
    assert [row["name"] for row in rows] == ["honest", "sly"]
    assert rows[0]["rank"] == 1 and rows[1]["rank"] is None
    assert rows[1]["unranked"] == f"incomplete: 3 of {N_TEST} items failed"
    # nor is it tested: a paired test over the items it chose to keep would be bought the same way
    assert rows[1]["test"]["verdict"] == "not tested" and rows[1]["test"]["p"] is None
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    assert f"−∞ (3 of {N_TEST} items failed)" in text and "| unranked | sly |" in text


def test_runs_given_other_frames_are_ranked_together_and_marked(board, tmp_path):
    """Frames from another JPEG encoder (another ffmpeg build) leave the benchmark version alone: the
    row is ranked with the others, and marked: by the frame archive of each video where the run
    records them, by its frames fingerprint where it does not (an older run)."""
    _, _, runs, root = board
    mine = tmp_path / "runs"
    shutil.copytree(runs / "motion_energy", mine / "motion_energy")
    shutil.copytree(runs / "motion_energy", mine / "reencoded")
    shutil.copytree(runs / "motion_energy", mine / "one-video")
    provenance = json.loads((mine / "reencoded" / "provenance.json").read_text())
    assert provenance["frames_fingerprint"] == DataRoot(root).frames_fingerprint() != None  # noqa: E711
    frames = provenance["coverage"]["frames"]
    assert frames == {video: sha for video, sha in DataRoot(root).definition()["coverage"]["frames"]["test"].items()}
    provenance["frames_fingerprint"] = "fr-0123456789abcdef<script>alert(5)</script>"  # run folders are untrusted
    del provenance["coverage"]  # a run made before runs recorded their coverage
    (mine / "reencoded" / "provenance.json").write_text(json.dumps(provenance))
    _rewrite_version(mine / "reencoded", DataRoot(root).version(), "motion_energy (other frames)")
    provenance = json.loads((mine / "one-video" / "provenance.json").read_text())
    video = sorted(frames)[1]
    provenance["coverage"]["frames"][video] = "0" * 64
    (mine / "one-video" / "provenance.json").write_text(json.dumps(provenance))
    _rewrite_version(mine / "one-video", DataRoot(root).version(), "motion_energy (one video)")
    result = build_leaderboard(mine, tmp_path / "board", root, demo_items=0)
    assert len(result["tables"]) == 1
    rows = _rows(result)
    assert rows["motion_energy (other frames)"]["frames_differ"] and not rows["motion_energy"]["frames_differ"]
    assert rows["motion_energy (one video)"]["frames_differ"]
    assert any(f"for 1 video(s) (e.g. {video})" in w for w in result["tables"][0]["warnings"])
    assert {row["rank"] for row in rows.values()} == {1}  # the same scores: tied
    assert any("fr-0123456789abcdef" in w and "encoded otherwise" in w for w in result["tables"][0]["warnings"])
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "\\(other frames\\) (other frames) |" in markdown and "<script>alert(5)" not in markdown
    page = (tmp_path / "board" / "index.html").read_text()
    assert "other frames</span>" in page and "<script>alert(5)" not in page and "&lt;script&gt;alert(5)" in page


def test_best_baseline_is_label_free_when_one_exists():
    def row(name, kind, nsdr, baseline=True):
        return Row(name=name, folder=name, kind=kind, baseline=baseline, per_item_nsdr={"i": nsdr},
                   metrics={"nsdr": MetricBlock(mean=nsdr, median=nsdr, ci95=[None, None], n=1)})

    nmf, pixel, mine = row("nmf", "labels", 12.0), row("pixelplayer", "main", 0.8), row("mine", "main", 3.0, False)
    assert choose_baseline([nmf, pixel, mine], None)[0] is pixel  # an audio-visual method is held to the AV bar
    assert choose_baseline([nmf, mine], None)[0] is nmf  # the only baseline
    assert choose_baseline([nmf, pixel, mine], "nmf")[0] is nmf
    assert choose_baseline([mine], None)[0] is mine


META = '<meta http-equiv="refresh" content="0;url=https://example.com/">'


def _tamper(run_dir: Path, file_name: str, change) -> None:
    """Apply `change` to the run's JSON document; the string "__INF__" is written as 1e999 (inf once parsed),
    "__HUGE__" as an integer of 5,000 digits."""
    document = change(json.loads((run_dir / file_name).read_text()))
    (run_dir / file_name).write_text(json.dumps(document).replace('"__INF__"', "1e999").replace('"__HUGE__"', "9" * 5000))


def _set(path: str, value):
    def change(document):
        *parents, last = path.split(".")
        target = document
        for key in parents:
            target = target[key]
        target[last] = value
        return document
    return change


# folder → (file, change, the first problem its warning names)
HOSTILE_RUNS = {
    "scored_meta": ("summary.json", _set("n_scored", META), "summary.json: n_scored must be an integer ≥ 0, not a string"),
    "items_meta": ("summary.json", _set("n_items", META), "summary.json: n_items must be an integer ≥ 0, not a string"),
    "n_text": ("summary.json", _set("metrics.nsdr.n", "abc"), "summary.json: metrics.nsdr.n must be an integer ≥ 0, not a string"),
    "mean_inf": ("summary.json", _set("metrics.nsdr.mean", "__INF__"),
                 "summary.json: metrics.nsdr.mean must be a finite number, not non-finite inf"),
    "duet_ci_inf": ("summary.json", _set("duets.metrics.nsdr.ci95", [0.5, "__INF__"]),
                    "summary.json: duets.metrics.nsdr.ci95[1] must be a finite number, not non-finite inf"),
    "not_an_object": ("summary.json", lambda document: [document], "summary.json: the document must be an object, not a list"),
    "provenance_type": ("provenance.json", _set("n_parameters", META),
                        "provenance.json: n_parameters must be an integer ≥ 0, not a string"),
    "provenance_option_inf": ("provenance.json", _set("options.lr", "__INF__"),
                              "provenance.json: options.lr must be a finite number, not non-finite inf"),
    # 2**63 parameters overflowed leaderboard.parquet's int64 column and crashed `musicbench leaderboard`
    "parameters_2_63": ("provenance.json", _set("n_parameters", 2**63),
                        "provenance.json: n_parameters must be below 2**53, not an integer of 19 digits"),
    "items_2_63": ("summary.json", _set("n_items", 2**63), "summary.json: n_items must be below 2**53, not an integer of 19 digits"),
    # an integer of 5,000 digits made json.loads raise ValueError, which crashed the build
    "huge_integer": ("provenance.json", _set("n_parameters", "__HUGE__"), "provenance.json is unreadable (ValueError)"),
}


def test_hostile_run_folders_are_skipped_and_the_board_built_from_the_rest(board, tmp_path):
    """Run folders are untrusted: markup in n_scored / n_items reached HTML and Markdown; "n": "abc" or
    1e999 in a metric block crashed the whole board."""
    _, _, runs, _ = board
    hostile = tmp_path / "runs"
    shutil.copytree(runs / "motion_energy", hostile / "honest")
    for folder, (file_name, change, _) in HOSTILE_RUNS.items():
        shutil.copytree(runs / "motion_energy", hostile / folder, ignore=shutil.ignore_patterns("estimates", "heatmaps"))
        _tamper(hostile / folder, "summary.json", _set("name", f"hostile {folder}"))
        _tamper(hostile / folder, file_name, change)
    out = tmp_path / "leaderboard"
    result = build_leaderboard(hostile, out)
    assert [row["folder"] for table in result["tables"] for row in table["rows"]] == ["honest"]
    for folder, (_, _, problem) in HOSTILE_RUNS.items():
        assert f"{folder}: skipped, {problem}" in result["warnings"], folder
    markdown, page = (out / "leaderboard.md").read_text(), (out / "index.html").read_text()
    for text in (markdown, page):
        assert 'http-equiv="refresh"' not in text and "example.com" not in text and "hostile" not in text
    assert "n\\_text: skipped" in markdown and "n_text: skipped" in page  # the warnings, escaped


def test_a_parquet_memory_bomb_is_refused_before_it_is_decoded(board, tmp_path):
    """A 685 KB items.parquet (10**6 rows of 150 constant columns) took `musicbench leaderboard` from 191 MB
    to 2.7 GB: only the known columns are read, and a file claiming too many rows is not read at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, runs, _ = board
    hostile = tmp_path / "runs"
    shutil.copytree(runs / "motion_energy", hostile / "honest")
    shutil.copytree(runs / "motion_energy", hostile / "bomb", ignore=shutil.ignore_patterns("estimates", "heatmaps"))
    n_rows = 300_000
    pq.write_table(pa.table({f"c{k}": pa.array(np.zeros(n_rows)) for k in range(150)}), hostile / "bomb" / "items.parquet")
    assert (hostile / "bomb" / "items.parquet").stat().st_size < 2 << 20
    # a 1 KB file whose one long text value, stored once in a dictionary, is written out on every row
    shutil.copytree(runs / "motion_energy", hostile / "dictionary", ignore=shutil.ignore_patterns("estimates", "heatmaps"))
    long_text = pa.array(["x" * 20_000] * 100_000).dictionary_encode()
    pq.write_table(pa.table({"item_id": long_text, "status": long_text}), hostile / "dictionary" / "items.parquet",
                   store_schema=False)
    assert (hostile / "dictionary" / "items.parquet").stat().st_size < 4096
    result = build_leaderboard(hostile, tmp_path / "leaderboard")
    assert [row["folder"] for table in result["tables"] for row in table["rows"]] == ["honest"]
    assert f"bomb: skipped, items.parquet has {n_rows} rows, at most 200000" in result["warnings"]
    assert any(warning.startswith("dictionary: skipped, items.parquet would take 4000") and "bytes decoded, over" in warning
               for warning in result["warnings"]), result["warnings"]


def test_run_text_reaches_markdown_and_html_only_escaped(tmp_path):
    """Past the schema too: every run value reaches Markdown through md_escape and HTML through the
    autoescaping templates, none of which marks anything safe."""
    from musicbench.leaderboard.board import make_board
    from musicbench.leaderboard.markdown import render_markdown
    from musicbench.leaderboard.pages import environment, render_index
    from musicbench.leaderboard.runs import Run

    run = Run(folder=XSS_FOLDER, path=tmp_path, summary={"n_items": META, "n_scored": META, "name": XSS, "metrics": {}},
              provenance={"oracle": META, "device": META, "benchmark_version": META}, items=None)
    board = make_board([run])
    for text in (render_markdown(board), render_index(board)):
        assert '<meta http-equiv="refresh"' not in text and "<script>alert" not in text and "<img" not in text
    assert environment().autoescape is True
    templates = REPO_ROOT / "musicbench" / "leaderboard" / "templates"
    for template in templates.iterdir():
        assert not re.search(r"\|\s*safe|autoescape\s+false|Markup", template.read_text()), template.name


def _lying_npy(path: Path, shape: tuple[int, ...]) -> None:
    """A 192-byte .npy file whose header claims `shape` of float64."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    path.unlink(missing_ok=True)
    path.write_bytes(header.getvalue().ljust(192, b"\0"))


def test_npy_files_whose_header_lies_leave_the_demo_pages_working(bench_root, tmp_path):
    """np.load believed the header of a run's estimates or heatmaps file and tried to allocate 728 TiB:
    MemoryError ended the whole leaderboard build. Now the item is left off its demo page (the
    estimates) or shown without heatmaps."""
    from musicbench.leaderboard.demo import item_slug, load_outputs
    from musicbench.leaderboard.runs import load_run

    root, _, _ = bench_root
    runs = tmp_path / "runs"
    evaluate(REPO_ROOT / "baselines" / "motion_energy.py", root, runs / "forged", device="cpu", limit=3, name="forged")
    items = list(DataRoot(root).iter_items("test", 3))
    first, second, third = (item.item_id for item in items)
    assert (runs / "forged" / "heatmaps" / f"{second}.npy").is_file()
    _lying_npy(runs / "forged" / "estimates" / f"{first}.npy", (10**7, 10**7))
    _lying_npy(runs / "forged" / "heatmaps" / f"{second}.npy", (2, 10**7, 10**7))
    (runs / "forged" / "heatmaps" / f"{third}.npy").unlink()  # a symlink to a good file is refused too
    os.symlink(runs / "forged" / "heatmaps" / f"{items[0].item_id}.npy", runs / "forged" / "heatmaps" / f"{third}.npy")

    run = load_run(runs / "forged")
    assert load_outputs(run, items[0]) is None
    for item in items[1:]:
        estimates, heatmaps = load_outputs(run, item)
        assert estimates.shape == item.references.shape and heatmaps is None

    result = build_leaderboard(runs, tmp_path / "board", root, demo_items=2)
    demo = _rows(result)["forged"]["demo"]
    assert demo is not None
    media = (tmp_path / "board" / demo).with_suffix("")
    shown = {p.name for p in media.iterdir()}
    slug = {item.item_id: item_slug(item) for item in items}
    assert slug[first] not in shown and {slug[second], slug[third]} <= shown
    for item in items[1:]:
        assert sorted(p.name for p in (media / slug[item.item_id]).iterdir() if p.suffix == ".ogg") == [
            f"source-{k}.ogg" for k in range(item.references.shape[0])]
        assert not list((media / slug[item.item_id]).glob("heat-*.png"))


# ------------------------------------------------------------- the board believes the run's files, not summary.json


def _copy_run(runs: Path, target: Path, name: str, *, estimates: bool = True, source: str = "motion_energy") -> Path:
    """A copy of an honest run folder of the `board` fixture under another name (with or without its estimates)."""
    shutil.copytree(runs / source, target, ignore=None if estimates else shutil.ignore_patterns("estimates", "heatmaps"))
    for file_name in ("summary.json", "provenance.json"):
        _tamper(target, file_name, _set("name", name))
    return target


def test_a_run_claiming_another_metric_version_is_not_ranked_on_trust(board, tmp_path):
    """A run folder edited to claim 30 dB more and metric version "1.0" was never re-scored, and ranked 1st."""
    _, _, runs, root = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "honest", "honest")
    forged = _copy_run(runs, mine / "forged", "forged")
    _tamper(forged, "provenance.json", _set("metric_version", "1.0"))
    items = pd.read_parquet(forged / "items.parquet")
    items["nsdr"] += 30
    items.to_parquet(forged / "items.parquet")
    result = build_leaderboard(mine, tmp_path / "leaderboard", root, demo_items=0)
    rows = {row["folder"]: row for table in result["tables"] for row in table["rows"]}
    assert rows["forged"]["rank"] is None and rows["forged"]["unranked"].startswith("not re-scored: metric version 1.0")


def _one_table(result: dict) -> dict[str, dict]:
    assert len(result["tables"]) == 1
    return _rows(result)


def _assert_row_is_summary(row: dict, summary: dict) -> None:
    """Every figure of an honest row, recomputed from its items, is summary.json's."""
    assert (row["n_items"], row["n_scored"], row["n_excluded"]) == (summary["n_items"], summary["n_scored"], summary["n_excluded"])
    assert row["excluded_reasons"] == summary["excluded_reasons"]
    assert {k: v for k, v in row["metrics"].items() if v is not None} == summary["metrics"]
    assert row["localization"] == summary["localization"]
    assert row["per_instrument"] == summary["per_instrument"]
    if summary["duets"] is None:
        assert row["duets"] is None and row["duet_items"] is None
    else:
        assert {k: v for k, v in row["duets"].items() if v is not None} == {
            k: v for k, v in summary["duets"]["metrics"].items() if k in row["duets"]}
        assert row["duet_items"] == summary["duets"]["n_items"]


def test_honest_rows_are_their_summaries_re_scored(board):
    """The board recomputes every figure from items.parquet (re-scored from the estimates where the
    data root has the run's version): for the honest runs it is exactly what summary.json says."""
    out, result, runs, root = board
    folders = {row["folder"]: row for table in result["tables"] for row in table["rows"]}
    assert set(folders) == {"motion_energy", "oracle-ibm", "oracle-irm", "oracle-mixture", XSS_FOLDER, "motion-old"}
    for folder, row in folders.items():
        _assert_row_is_summary(row, json.loads((runs / folder / "summary.json").read_text()))
        assert row["untrusted"] == "" and row["problems"] == [], folder
        assert row["rescored"] is (folder != "motion-old"), folder  # the old version's items are not under the data root


def test_a_summary_claiming_a_million_items_unranks_no_one(board, tmp_path):
    """n_items 1,000,000 in one summary.json made every honest run "incomplete: scored 12 of the 1000000 items"."""
    _, _, runs, root = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "motion_energy", "motion_energy")
    _tamper(_copy_run(runs, mine / "million", "million"), "summary.json", _set("n_items", 1_000_000))
    for data_root in (root, None):  # the data root's item count, or else the most items an items.parquet has
        rows = _one_table(build_leaderboard(mine, tmp_path / f"board-{data_root is None}", data_root, demo_items=0))
        assert rows["motion_energy"]["rank"] == 1 and rows["motion_energy"]["unranked"] == ""
        assert rows["million"]["rank"] is None and rows["million"]["n_items"] == N_TEST
        assert rows["million"]["unranked"] == f"summary.json disagrees with items.parquet: n_items 1000000, items.parquet has {N_TEST}"


def test_a_summary_hiding_failed_items_is_unranked(board, tmp_path):
    """A summary.json that claims no failure (n_excluded 0, complete, a better mean) over an items.parquet
    with failed items ranked first."""
    from musicbench.harness.scoring import score_run

    _, _, runs, root = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "motion_energy", "motion_energy")
    hiding = _copy_run(runs, mine / "hiding", "hiding")
    inference = pd.read_parquet(hiding / "inference.parquet")
    failed = sorted(inference.loc[inference["track"] == "mixtures", "item_id"])[:3]
    inference.loc[inference["item_id"].isin(failed), ["status", "reason"]] = ["failed", "model raised ValueError"]
    inference.to_parquet(hiding / "inference.parquet", index=False)
    for item_id in failed:
        (hiding / "estimates" / f"{item_id}.npy").unlink()
    score_run(hiding, root)  # items.parquet as evaluate writes it: 3 items failed
    summary = json.loads((hiding / "summary.json").read_text())
    assert summary["n_excluded"] == 0 and summary["complete"] is True  # still the honest run's claims
    _tamper(hiding, "summary.json", _set("metrics.nsdr.mean", summary["metrics"]["nsdr"]["mean"] + 1.0))
    rows = _one_table(build_leaderboard(mine, tmp_path / "board", root, demo_items=0))
    assert rows["motion_energy"]["rank"] == 1
    assert rows["hiding"]["rank"] is None and rows["hiding"]["rescored"]
    assert rows["hiding"]["unranked"] == "summary.json disagrees with items.parquet: n_excluded 0, items.parquet has 3"
    assert rows["hiding"]["n_excluded"] == 3 and rows["hiding"]["metrics"]["nsdr"]["n_failed"] == 3
    assert rows["hiding"]["metrics"]["nsdr"]["mean"] is None  # −∞: failing never pays


def test_a_forged_plus_inf_count_is_unranked(board, tmp_path):
    """n_plus_inf 1 in summary.json made the headline +∞: the run ranked first."""
    _, _, runs, root = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "motion_energy", "motion_energy")
    forged = _copy_run(runs, mine / "infinite", "infinite")
    _tamper(forged, "summary.json", _set("metrics.nsdr", {"mean": None, "median": None, "ci95": [None, None], "n": N_TEST,
                                                          "n_failed": 0, "n_plus_inf": 1}))
    rows = _one_table(build_leaderboard(mine, tmp_path / "board", root, demo_items=0))
    assert rows["motion_energy"]["rank"] == 1
    assert rows["infinite"]["rank"] is None
    assert rows["infinite"]["unranked"].startswith("summary.json disagrees with items.parquet: metrics.nsdr.mean null, ")
    assert rows["infinite"]["metrics"]["nsdr"] == rows["motion_energy"]["metrics"]["nsdr"]  # the items' numbers
    assert rows["infinite"]["metrics"]["nsdr"]["n_plus_inf"] == 0


def test_a_forged_items_table_is_re_scored_from_its_estimates(board, tmp_path):
    """Every NSDR of items.parquet set to 99 dB (and summary.json made to agree with it) ranked first:
    re-scored from the estimates, the row gets the estimates' numbers and no rank. Without estimates
    there is nothing to check the table against: unranked too."""
    from musicbench.harness.summaries import summarize

    _, _, runs, root = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "motion_energy", "motion_energy")
    inflated = _copy_run(runs, mine / "inflated", "inflated")
    items = pd.read_parquet(inflated / "items.parquet")
    items["nsdr"] = 99.0
    items.to_parquet(inflated / "items.parquet", index=False)
    summary = {**summarize(items, 1234), **{k: v for k, v in json.loads((inflated / "summary.json").read_text()).items()
                                             if k in ("name", "benchmark_version", "split", "uses_labels")}}
    (inflated / "summary.json").write_text(json.dumps(summary))
    _copy_run(runs, mine / "bare", "bare", estimates=False)
    located = _copy_run(runs, mine / "located", "located", source="oracle-ibm")  # no heatmaps: no cIoU to claim
    items_ibm = pd.read_parquet(located / "items.parquet")
    items_ibm[["ciou", "pointing_hit"]] = [0.9, 1.0]
    items_ibm.to_parquet(located / "items.parquet", index=False)
    _tamper(located, "summary.json", lambda document: {**document, **summarize(items_ibm, 1234)})
    rows = _one_table(build_leaderboard(mine, tmp_path / "board", root, demo_items=0))
    assert rows["located"]["unranked"].startswith("items.parquet disagrees with its estimates (re-scored): mixtures item ")
    assert "ciou 0.9 in items.parquet, nan re-scored" in rows["located"]["unranked"]
    assert rows["located"]["metrics"]["ciou"] is None and rows["located"]["localization"] is None
    assert rows["motion_energy"]["rank"] == 1
    first = sorted(items.loc[items["track"] == "mixtures", "item_id"])[0]
    assert rows["inflated"]["rank"] is None and rows["inflated"]["unranked"].startswith(
        f"items.parquet disagrees with its estimates (re-scored): mixtures item '{first}' source 0: nsdr 99 in items.parquet, ")
    for key in ("metrics", "duets", "per_instrument", "per_item_nsdr", "n_items"):
        assert rows["inflated"][key] == rows["motion_energy"][key], key  # the re-scored numbers
    assert rows["bare"]["rank"] is None and rows["bare"]["unranked"] == "not re-scored: no estimates"
    # without the data root nothing can be re-scored: the numbers are items.parquet's
    no_root = _one_table(build_leaderboard(mine, tmp_path / "no-root", demo_items=0))
    assert no_root["inflated"]["metrics"]["nsdr"]["mean"] == 99.0 and not no_root["inflated"]["rescored"]
    assert no_root["bare"]["unranked"] == "" and no_root["bare"]["rank"] == 2


def test_confinement_must_agree_with_its_own_description(board, tmp_path):
    """``confined: true`` beside a confinement text saying "unconfined: ..." was shown as confined."""
    _, _, runs, root = board
    mine = tmp_path / "runs"
    liar = _copy_run(runs, mine / "liar", "liar", estimates=False)
    _tamper(liar, "provenance.json", _set("confined", True))
    _tamper(liar, "provenance.json", _set("confinement", "unconfined: --no-confine"))
    confined = _copy_run(runs, mine / "confined", "confined", estimates=False)
    _tamper(confined, "provenance.json", _set("confined", True))
    _tamper(confined, "provenance.json", _set("confinement", "confined (Linux user, mount and pid namespaces)"))
    rows = _one_table(build_leaderboard(mine, tmp_path / "board", demo_items=0))
    assert rows["liar"]["provenance"]["confined"] is False and rows["confined"]["provenance"]["confined"] is True
    assert rows["liar"]["problems"] == ["provenance.json says confined, but its confinement says "
                                        "'unconfined: --no-confine': shown unconfined"]
    assert rows["liar"]["rank"] == rows["confined"]["rank"] == 1  # its numbers are the items': still ranked
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "provenance.json says confined, but its confinement says" in markdown
    assert [line for line in markdown.splitlines() if line.startswith("| liar | mb-")][0].count("unconfined") == 1


def test_a_baseline_is_the_repositorys_own_file(board, tmp_path, monkeypatch):
    """Any model file in a folder named baselines/ was a baseline of the tests: now only a run whose
    model file has the SHA-256 of the file of that name in the repository's baselines/."""
    from musicbench.harness.summaries import summarize
    from musicbench.leaderboard import runs as runs_module
    from musicbench.leaderboard.board import make_board
    from musicbench.leaderboard.runs import find_runs

    _, _, runs, _ = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "motion_energy", "motion_energy", estimates=False)
    for folder, model_file in (("mine", "/home/me/baselines/mine.py"), ("renamed", "/home/me/baselines/motion_energy.py")):
        impostor = _copy_run(runs, mine / folder, folder, estimates=False)
        _tamper(impostor, "provenance.json", _set("model_file", model_file))
        _tamper(impostor, "provenance.json", _set("model_sha256", hashlib.sha256(b"my own model").hexdigest()))
        summary = json.loads((impostor / "summary.json").read_text())
        items = pd.read_parquet(impostor / "items.parquet")  # a better method than the baseline, all else equal
        items["nsdr"] += 1.0
        items.to_parquet(impostor / "items.parquet", index=False)
        (impostor / "summary.json").write_text(json.dumps({**summary, **summarize(items, 1234)}))
    copied = _copy_run(runs, mine / "copied", "copied", estimates=False)  # the baseline's file, byte for byte, elsewhere
    _tamper(copied, "provenance.json", _set("model_file", str(tmp_path / "motion_energy.py")))
    result = build_leaderboard(mine, tmp_path / "board", demo_items=0)
    rows = _one_table(result)
    assert [name for name, row in rows.items() if row["baseline"]] == ["copied", "motion_energy"]
    assert rows["mine"]["rank"] == 1 and rows["mine"]["test"]["verdict"] != "baseline"
    assert result["tables"][0]["baseline"]["name"] in ("copied", "motion_energy")

    monkeypatch.setattr(runs_module, "BASELINES_DIR", tmp_path / "no-baselines")  # an install without the repository
    found, _ = find_runs(mine)
    board_without = make_board(found)
    assert not any(row.baseline for row in board_without.tables[0].rows)
    assert board_without.tables[0].baseline.why.startswith("no musicbench baseline in this table")
    assert board_without.tables[0].baseline.name in ("mine", "renamed")


def test_symlinks_out_of_a_run_folder_are_not_followed(board, tmp_path):
    """A symlinked run folder, or a symlinked summary.json, provenance.json or items.parquet, was
    followed wherever it pointed. A FIFO is not read either."""
    _, _, runs, _ = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "honest", "honest", estimates=False)
    outside = _copy_run(runs, tmp_path / "elsewhere", "followed", estimates=False)
    os.symlink(outside, mine / "linked")
    for file_name in ("summary.json", "provenance.json", "items.parquet"):
        folder = _copy_run(runs, mine / f"link-{file_name.split('.')[0]}", "followed", estimates=False)
        (folder / file_name).unlink()
        os.symlink(outside / file_name, folder / file_name)
    fifo = _copy_run(runs, mine / "fifo", "followed", estimates=False)
    (fifo / "items.parquet").unlink()
    os.mkfifo(fifo / "items.parquet")
    result = build_leaderboard(mine, tmp_path / "board", demo_items=0)
    assert [row["name"] for table in result["tables"] for row in table["rows"]] == ["honest"]
    expected = {
        "linked: skipped, the run folder is a symlink (run folders must lie in the runs folder)",
        "link-summary: skipped, summary.json cannot be opened (a symlink)",
        "link-provenance: skipped, provenance.json cannot be opened (a symlink)",
        "link-items: skipped, items.parquet cannot be opened (a symlink)", "fifo: skipped, items.parquet is not a regular file",
    }
    assert expected <= set(result["warnings"])


def test_run_names_and_folders_reach_no_output_with_control_characters(board, tmp_path):
    """U+202E (right-to-left override) and ESC in a run's name or folder name reached every output."""
    _, _, runs, _ = board
    mine = tmp_path / "runs"
    _copy_run(runs, mine / "evil\u202ecod.exe\x1b[2J", "name\u202e\x1b]0;pwned\x07", estimates=False)
    (mine / "skipped\u202e").mkdir()
    out = tmp_path / "board"
    result = build_leaderboard(mine, out, demo_items=0)
    (row,) = [row for table in result["tables"] for row in table["rows"]]
    assert row["name"] == "name\ufffd\ufffd]0;pwned\ufffd" and row["folder"] == "evil\ufffdcod.exe\ufffd[2J"
    assert "skipped\ufffd: skipped, no summary.json (an unfinished run?)" in result["warnings"]
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".html", ".csv"):
            text = path.read_text()
            assert "\u202e" not in text and "\x1b" not in text and "\x07" not in text, path.name
    frame = pd.read_parquet(out / "leaderboard.parquet")
    assert not frame["name"].str.contains("\u202e|\x1b").any() and not frame["folder"].str.contains("\u202e|\x1b").any()


# --------------------------------------------------------------------------------- in real Chromium


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    driver_path = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if chromium is None or driver_path is None:
        pytest.fail(f"chromium or chromedriver not found: {INSTALL_HINT}", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {INSTALL_HINT}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000", "--mute-audio"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    # any alert(), even from injected markup, is recorded here instead of opening a dialog
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.__alerts = []; for (const f of ['alert', 'confirm', 'prompt']) "
        "{ window[f] = (m) => { window.__alerts.push(String(m)); }; }")})
    yield driver
    driver.quit()


def _open(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    driver.execute_script("return document.readyState")


def _assert_clean(driver, scripts: set[str]) -> None:
    """No dialog, no alert call, no console error, only our scripts, only local resources."""
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no dialog is open
    assert driver.execute_script("return window.__alerts") == []
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    sources = driver.execute_script("return Array.from(document.scripts).map(s => s.getAttribute('src'))")
    assert sources and {Path(s).name for s in sources if s} == scripts and None not in sources
    assert driver.execute_script("return document.querySelectorAll('[onerror], [onmouseover], [onload]').length") == 0
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith("file://") for name in resources), resources


def _names(driver, table_id: str) -> list[tuple[str, str]]:
    return [tuple(pair) for pair in driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr.row')).map("
        "r => [r.dataset.kind, r.querySelector('.method-name').textContent])", f"#{table_id}-ranking")]


def test_index_page_in_chromium(board, browser):
    from selenium.webdriver.common.by import By

    out, result, _, _ = board
    _open(browser, out / "index.html")
    assert browser.find_elements(By.CSS_SELECTOR, "section.board") and len(browser.find_elements(By.CSS_SELECTOR, "section.board")) == 2
    warnings = [w.text for w in browser.find_elements(By.CSS_SELECTOR, ".board-warning")]
    assert any("2 benchmark versions" in w for w in warnings)
    assert any("not the current one" in w.text for w in browser.find_elements(By.CSS_SELECTOR, "#table-2 .table-warning"))

    before = _names(browser, "table-1")
    kinds = {}
    for kind, name in before:
        kinds.setdefault(kind, []).append(name)
    assert kinds["main"] == ["motion_energy"] and kinds["labels"] == [XSS]
    assert kinds["reference"] == ["oracle-ibm", "oracle-irm", "oracle-mixture"]  # NSDR descending: the floor last
    assert _names(browser, "table-2") == [("main", "motion_energy (old version)")]
    reference_rank = browser.execute_script(
        "return Array.from(document.querySelectorAll('#table-1-ranking tbody[data-group=reference] tr.row'))"
        ".map(r => r.cells[0].textContent)")
    assert set(reference_rank) == {"—"}

    # sorting: NSDR is sorted descending; a click makes it ascending, "Method" sorts by name
    nsdr_header = browser.find_element(By.CSS_SELECTOR, "#table-1-ranking th[data-key=nsdr]")
    assert nsdr_header.get_attribute("aria-sort") == "descending"
    nsdr_header.find_element(By.TAG_NAME, "button").click()
    assert nsdr_header.get_attribute("aria-sort") == "ascending"
    after = _names(browser, "table-1")
    assert after != before
    column = browser.execute_script(
        "const h = Array.from(document.querySelectorAll('#table-1-ranking thead th')).findIndex(t => t.dataset.key === 'nsdr');"
        "return Array.from(document.querySelectorAll('#table-1-ranking tbody[data-group=reference] tr.row'))"
        ".map(r => Number(r.cells[h].dataset.value));")
    assert column == sorted(column)
    browser.find_element(By.XPATH, "//table[@id='table-1-ranking']//th//button[text()='Method']").click()
    references = [name for kind, name in _names(browser, "table-1") if kind == "reference"]
    assert references == sorted(references)

    # the hostile name is text, everywhere
    texts = browser.execute_script("return Array.from(document.querySelectorAll('.method-name')).map(e => e.textContent)")
    assert texts.count(XSS) >= 3  # ranking, per-instrument, provenance
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    options = browser.execute_script("return Array.from(document.querySelectorAll('pre.options')).map(e => e.textContent)")
    assert any("<b onmouseover=alert(3)>options</b>" in text for text in options)
    first = result["tables"][0]["rows"]
    counts = browser.execute_script(
        "const q = (s) => document.querySelectorAll('#table-1 ' + s).length; return {instrument_rows: q('table.per-instrument tr.row'),"
        " instrument_columns: q('table.per-instrument thead th') - 1, bars: q('svg.per-instrument rect[fill^=\"#\"]'),"
        " dots: q('svg.distribution circle'), provenance_rows: q('table.provenance tr.row')};")
    assert counts["instrument_rows"] == counts["provenance_rows"] == len(first)
    assert counts["instrument_columns"] == len(result["tables"][0]["instruments"])
    assert counts["dots"] == sum(len(r["per_item_nsdr"]) for r in first)
    assert counts["bars"] >= len(first) * len(result["tables"][0]["instruments"])
    svg_labels = browser.execute_script("return Array.from(document.querySelectorAll('svg text')).map(e => e.textContent)")
    assert XSS in svg_labels
    duet_cells = dict(browser.execute_script(
        "const h = Array.from(document.querySelectorAll('#table-1-ranking thead th')).findIndex(t => t.dataset.key === 'duet_nsdr');"
        "return Array.from(document.querySelectorAll('#table-1-ranking tr.row')).map("
        "r => [r.querySelector('.method-name').textContent, r.cells[h].textContent]);"))
    assert duet_cells[XSS] == "n/a"
    assert duet_cells["motion_energy"].startswith(f"{_rows(result)['motion_energy']['duets']['nsdr']['mean']:.2f} [")
    _assert_clean(browser, {"leaderboard.js"})

    # every demo link of the page opens a page that exists
    links = browser.execute_script("return Array.from(document.querySelectorAll('a.demo-link')).map(a => a.href)")
    assert len(links) == len([r for t in result["tables"] for r in t["rows"] if r["demo"]]) >= 2  # oracles publish no demo
    assert all(Path(link.removeprefix("file://")).is_file() for link in links)


def test_the_board_reads_at_1280_px(board, browser, tmp_path):
    """At 1,280 px: the details start hidden and each column group shows and hides with its box, the
    method column stays put while the table scrolls, the legend says what Δ is, and the screenshot
    is a page, not a blank."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    out, _, _, _ = board
    browser.set_window_size(1280, 900)
    try:
        _open(browser, out / "index.html")
        header = lambda key: browser.find_element(By.CSS_SELECTOR, f"#table-1-ranking th[data-key={key}]")  # noqa: E731
        box = lambda col: browser.find_element(  # noqa: E731
            By.CSS_SELECTOR, f"fieldset[data-table=table-1-ranking] input[data-col={col}]")
        assert not header("nsdr_median").is_displayed() and header("nsdr").is_displayed()
        box("details").click()
        assert header("nsdr_median").is_displayed() and header("ciou_auc").is_displayed()
        for col, key in (("separation", "sir"), ("localization", "pointing_hit"), ("duets", "duet_nsdr")):
            box(col).click()
            assert not header(key).is_displayed(), col
            box(col).click()
            assert header(key).is_displayed(), col
        scroller = browser.find_element(By.CSS_SELECTOR, "#table-1 .scroll")
        assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", scroller)
        browser.execute_script("arguments[0].scrollLeft = 500", scroller)
        name = browser.find_element(By.CSS_SELECTOR, "#table-1-ranking td.name")
        assert browser.execute_script("return arguments[0].scrollLeft", scroller) > 0
        assert abs(name.rect["x"] - scroller.rect["x"]) <= 2  # sticky: at the left edge while the rest moved
        assert "Δ: the mean per-item difference" in browser.find_element(By.TAG_NAME, "header").text
        badges = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#table-1-ranking .badge.builtin")]
        assert badges and set(badges) == {"musicbench baseline"}
        browser.save_screenshot(str(tmp_path / "board.png"))
        with Image.open(tmp_path / "board.png") as shot:
            assert shot.size[0] == 1280 or shot.size[0] >= 1200
            assert len(shot.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16  # text and colour, not blank
    finally:
        browser.set_window_size(1400, 1000)


def _click_frame_at(driver, figure, x: float, y: float) -> None:
    """Click the picture of `figure` at frame pixel (x, y)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    picture = figure.find_element(By.CSS_SELECTOR, "img.picture")
    width, height = int(figure.get_attribute("data-width")), int(figure.get_attribute("data-height"))
    rect = picture.rect
    dx = x / width * rect["width"] - rect["width"] / 2
    dy = y / height * rect["height"] - rect["height"] / 2
    ActionChains(driver).move_to_element_with_offset(picture, int(dx), int(dy)).click().perform()


def _wait_for_media(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('audio[preload=auto]')).every(a => a.readyState >= 1 && a.duration > 0 && !a.error)"
        " && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"))


def test_demo_pages_in_chromium(board, browser):
    from selenium.webdriver.common.by import By

    out, result, _, _ = board
    rows = _rows(result)

    # the baseline: source frames side by side with its heatmaps, audio that loads, click → the source under it
    _open(browser, out / rows["motion_energy"]["demo"])
    _wait_for_media(browser)
    mixtures = browser.find_elements(By.CSS_SELECTOR, "section.demo-item[data-track=mixtures]")
    duets = browser.find_elements(By.CSS_SELECTOR, "section.demo-item[data-track=duets]")
    assert len(mixtures) == 2 and len(duets) == 2
    durations = browser.execute_script(
        "return Array.from(document.querySelectorAll('audio.mixture, audio.source')).map(a => a.duration)")
    assert len(durations) == 4 * 3  # per item: the mixture and two sources (Ogg Vorbis)
    assert all(abs(d - 65535 / 11025) < 0.05 for d in durations)
    # every item has its ground-truth stems, shared by every run's page
    references = browser.execute_script("return Array.from(document.querySelectorAll('audio.reference')).map(a => a.src)")
    assert len(references) == 4 * 2 and all("/demo/items/" in src for src in references)
    assert all(Path(src.removeprefix("file://")).is_file() for src in references)
    # best first: the items' order follows the board's per-item NSDR, with each item's scores
    order = [s.get_attribute("data-item") for s in mixtures]
    per_item = rows["motion_energy"]["per_item_nsdr"]
    assert [per_item[i] for i in order] == sorted((per_item[i] for i in order), reverse=True)
    assert all(len(s.find_elements(By.CSS_SELECTOR, "li.player .scores")) == 2 for s in mixtures)
    jumps = [a.get_attribute("href").rsplit("#", 1)[1] for a in browser.find_elements(By.CSS_SELECTOR, ".item-jumps a")]
    assert jumps[0] == "item-" + mixtures[0].get_attribute("data-slug") and jumps[-1] == "duets"
    # side by side: another run's estimates of the same item, its (hostile) name as text
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.CSS_SELECTOR, "select.side-by-side")).select_by_visible_text(XSS)
    box = mixtures[0].find_element(By.CSS_SELECTOR, ".other-method")
    assert box.is_displayed() and box.find_element(By.CSS_SELECTOR, ".other-name").text.startswith(XSS)
    others = [a.get_attribute("src") for a in box.find_elements(By.CSS_SELECTOR, "audio.other-source")]
    assert len(others) == 2 and all(Path(src.removeprefix("file://")).is_file() for src in others)
    section = mixtures[0]
    figures = section.find_elements(By.CSS_SELECTOR, "figure.frame")
    assert len(figures) == 2 and all(f.find_elements(By.CSS_SELECTOR, "img.heat") for f in figures)
    _click_frame_at(browser, figures[1], 30, 40)
    assert section.get_attribute("data-selected") == "1"
    instrument = section.find_elements(By.CSS_SELECTOR, "li.player .label")[1].text
    assert section.find_element(By.CSS_SELECTOR, ".selected").text == f"Selected: {instrument}"
    assert "active" in figures[1].get_attribute("class") and "active" not in figures[0].get_attribute("class")
    _click_frame_at(browser, figures[0], 100, 100)
    assert section.get_attribute("data-selected") == "0"
    volume = browser.execute_script(
        "const s = arguments[0].querySelector('input.volume[data-source=\"1\"]'); s.value = '0.25';"
        "s.dispatchEvent(new Event('input')); return arguments[0].querySelectorAll('audio.source')[1].volume;", section)
    assert volume == pytest.approx(0.25)

    # duets: one picture with two players; a click inside a player's box selects that player's source
    for duet in duets:
        figure = duet.find_element(By.CSS_SELECTOR, "figure.frame")
        players = json.loads(figure.get_attribute("data-players"))
        assert [p["source"] for p in players] == [0, 1] and all(p["box"] for p in players)
        for player in reversed(players):
            x, y, w, h = player["box"]
            others = [p["box"] for p in players if p is not player]
            inside = [(x + w * fx, y + h * fy) for fx in (0.5, 0.3, 0.7, 0.15, 0.85) for fy in (0.5, 0.3, 0.7)]
            point = next((px, py) for px, py in inside if not any(
                b[0] <= px <= b[0] + b[2] and b[1] <= py <= b[1] + b[3] for b in others))
            _click_frame_at(browser, figure, *point)
            assert duet.get_attribute("data-selected") == str(player["source"])
            label = duet.find_elements(By.CSS_SELECTOR, "li.player .label")[player["source"]].text
            assert duet.find_element(By.CSS_SELECTOR, ".selected").text == f"Selected: {label}"
    _assert_clean(browser, {"demo.js"})

    # the hostile-named run: its name is text; no duet track (no separate_at)
    _open(browser, out / rows[XSS]["demo"])
    _wait_for_media(browser)
    assert browser.find_element(By.CSS_SELECTOR, "h1 .method-name").get_attribute("textContent") == XSS
    assert browser.title == f"Demo: {XSS}"
    assert browser.find_elements(By.CSS_SELECTOR, "section.demo-item[data-track=mixtures]")
    assert not browser.find_elements(By.CSS_SELECTOR, "section.demo-item[data-track=duets]")
    _assert_clean(browser, {"demo.js"})
