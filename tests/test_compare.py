"""`musicbench compare`: paired video-bootstrap tests per metric between real runs of the bench set."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import pandas as pd
import pytest

from musicbench.errors import MusicbenchError
from musicbench.evaluate import evaluate
from musicbench.leaderboard.compare import compare_runs
from tests.conftest import REPO_ROOT, run_cli


@pytest.fixture(scope="module")
def three_runs(bench_root, tmp_path_factory):
    """The mixture floor (A), the IRM ceiling and the example model, all on the bench set's test items."""
    root, _, _ = bench_root
    runs = tmp_path_factory.mktemp("compare") / "runs"
    for name, oracle, model in (("floor", "mixture", None), ("irm", "irm", None),
                                ("motion", None, REPO_ROOT / "baselines" / "motion_energy.py")):
        evaluate(model, root, runs / name, oracle=oracle, device="cpu", name=name)
    return root, runs


def test_compare_tests_every_metric_against_the_first_run(three_runs, tmp_path):
    root, runs = three_runs
    result = compare_runs([runs / "floor", runs / "irm", runs / "motion"])
    json.dumps(result, allow_nan=False)  # JSON as it is: no NaN or infinity
    irm, motion = result["pairs"]
    assert (irm["a"], irm["b"], motion["b"]) == ("floor", "irm", "motion")
    tests = {(m["metric"], m["track"]): m for m in irm["metrics"]}
    assert {("nsdr", "mixtures"), ("ciou", "mixtures"), ("pointing_hit", "mixtures"), ("nsdr", "duets")} <= set(tests)
    items = pd.read_parquet(runs / "irm" / "items.parquet").query("track == 'mixtures'")
    nsdr = tests[("nsdr", "mixtures")]
    assert nsdr["n"] == items["item_id"].nunique() and nsdr["mean_a"] == pytest.approx(0, abs=1e-6)
    assert nsdr["mean_diff"] == pytest.approx(items.groupby("item_id")["nsdr"].mean().mean())
    assert nsdr["mean_diff"] > 10 and nsdr["significant"] and nsdr["ci95"][0] > 0
    # localization is tested too: the example model localizes from motion, the floor by a centre prior
    pointing = {(m["metric"], m["track"]): m for m in motion["metrics"]}[("pointing_hit", "mixtures")]
    assert pointing["n"] == nsdr["n"] and 0 <= pointing["mean_b"] <= 1 and pointing["p_holm"] is not None
    assert sorted(irm["per_instrument"]) == sorted(items["instrument"].unique())
    assert irm["largest_gains"] and irm["largest_gains"][0]["diff"] == max(irm["item_differences"])
    assert all(m["p_holm"] >= m["p"] for pair in result["pairs"] for m in pair["metrics"] if m["p"] is not None)


def test_items_whose_keys_differ_are_not_compared(three_runs, tmp_path):
    """An item built from other audio (another item key) is never paired."""
    root, runs = three_runs
    changed = tmp_path / "changed"
    shutil.copytree(runs / "irm", changed)
    items = pd.read_parquet(changed / "items.parquet")
    first = items["item_id"].iloc[0]
    items.loc[items["item_id"] == first, "item_key"] = "it-0000000000000000"
    items.to_parquet(changed / "items.parquet")
    before = compare_runs([runs / "floor", runs / "irm"])["pairs"][0]["metrics"][0]["n"]
    after = compare_runs([runs / "floor", changed])["pairs"][0]["metrics"][0]["n"]
    assert after == before - 1


def test_compare_cli_prints_tables_json_and_a_plot(three_runs, tmp_path):
    root, runs = three_runs
    text = run_cli("compare", runs / "floor", runs / "irm", "--params", REPO_ROOT / "params.yaml")
    assert text.returncode == 0, text.stderr
    for expected in ("irm against floor", "pointing game", "duet NSDR", "NSDR per instrument", "differs most", "Holm"):
        assert expected in text.stdout, expected
    result = run_cli("compare", runs / "floor", runs / "irm", runs / "motion", "--json", "--plot", tmp_path / "diff.svg",
                     "--params", REPO_ROOT / "params.yaml")
    parsed = json.loads(result.stdout)
    assert parsed == json.loads(json.dumps(compare_runs([runs / "floor", runs / "irm", runs / "motion"])))
    svg = ElementTree.parse(tmp_path / "diff.svg").getroot()
    bars = svg.findall(".//{http://www.w3.org/2000/svg}rect")
    assert len(bars) == sum(len(pair["item_differences"]) for pair in parsed["pairs"])
    one = run_cli("compare", runs / "floor", "--params", REPO_ROOT / "params.yaml")
    assert one.returncode == 2 and "at least two run folders" in one.stderr


def test_runs_of_another_benchmark_or_split_are_refused(three_runs, tmp_path):
    root, runs = three_runs
    val = tmp_path / "val"
    evaluate(None, root, val, oracle="irm", split="val", device="cpu")
    with pytest.raises(MusicbenchError, match=r"only runs of one benchmark version and split compare"):
        compare_runs([runs / "floor", val])
    with pytest.raises(MusicbenchError, match=r"cannot compare run .*nowhere"):
        compare_runs([runs / "floor", tmp_path / "nowhere"])


def test_paper_tables_in_latex_and_markdown(three_runs, tmp_path):
    """`leaderboard --format latex|markdown`: the board's checked numbers in booktabs LaTeX (compiled
    by pdflatex where it is installed) and compact Markdown, with chosen columns and optional CIs."""
    from musicbench.leaderboard import assemble_board
    from musicbench.leaderboard.paper import paper_table

    root, runs = three_runs
    board, _, _ = assemble_board(runs, root)
    rows = {row.name: row for row in board.tables[0].rows}
    latex = paper_table(board, "latex", ("sdr", "sir", "sar", "nsdr", "pointing"), ci=True)
    body = latex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    lines = [line for line in body.splitlines() if line.endswith(r"\\") and not line.startswith(r"\multicolumn")]
    assert len(lines) == 3 and all(line.count(" & ") == 5 for line in lines)
    assert r"\begin{tabular}{lrrrrr}" in latex and r"\toprule" in latex and "SDR (dB) & SIR (dB)" in latex
    motion = next(line for line in lines if line.startswith("motion"))
    sdr = f"{rows['motion'].metrics['sdr'].mean:.2f}".replace("-", "$-$")  # LaTeX's minus
    assert motion.split(" & ")[1].startswith(rf"\textbf{{{sdr}}}")  # the only label-free row: the best
    assert r"{\scriptsize [" in motion and rows["motion"].provenance.benchmark_version in latex
    markdown = paper_table(board, "markdown", ("sdr", "nsdr"), ci=False)
    irm = next(line for line in markdown.splitlines() if line.startswith("| irm "))
    assert irm == f"| irm | {rows['irm'].metrics['sdr'].mean:.2f} | {rows['irm'].metrics['nsdr'].mean:.2f} |"
    if shutil.which("pdflatex"):
        (tmp_path / "paper.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                                            + latex + "\\end{document}\n")
        compiled = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "paper.tex"], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
        assert compiled.returncode == 0 and (tmp_path / "paper.pdf").stat().st_size > 1000, compiled.stdout[-2000:]


def test_paper_table_cli_prints_and_writes_no_board(three_runs, tmp_path):
    root, runs = three_runs
    names = tmp_path / "names"
    shutil.copytree(runs / "motion", names / "motion")
    summary = json.loads((names / "motion" / "summary.json").read_text())
    (names / "motion" / "summary.json").write_text(json.dumps({**summary, "name": "a_b&c%"}))
    result = run_cli("leaderboard", "--runs", names, "--root", root, "--format", "latex", "--columns", "nsdr,duet_nsdr",
                     "--params", REPO_ROOT / "params.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert r"a\_b\&c\%" in result.stdout and "Duet NSDR (dB)" in result.stdout
    assert not (tmp_path / "leaderboard").exists()
    wrong = run_cli("leaderboard", "--runs", names, "--format", "latex", "--columns", "nsdr,sdri",
                    "--params", REPO_ROOT / "params.yaml", cwd=tmp_path)
    assert wrong.returncode == 2 and "unknown column(s) sdri: choose from nsdr, sdr" in " ".join(wrong.stderr.split())


def test_hostile_run_files_give_sane_comparisons_and_boards(three_runs, tmp_path):
    """Found by a hostile audit: a lone surrogate in a run's name crashed every output (no UTF-8 file
    can hold it); absurd but finite scores made compare print Infinity (not JSON) and an SVG of NaN;
    a run without score columns crashed compare."""
    from musicbench.leaderboard import build_leaderboard

    root, runs = three_runs
    hostile = tmp_path / "runs"
    shutil.copytree(runs / "floor", hostile / "floor")
    for name in ("surrogate", "huge", "bare"):
        shutil.copytree(runs / "motion", hostile / name)
    for document in ("summary.json", "provenance.json"):
        path = hostile / "surrogate" / document
        path.write_text(json.dumps({**json.loads(path.read_text()), "name": "S\ud800X\u2028Y"}))
    items = pd.read_parquet(hostile / "huge" / "items.parquet")
    items.assign(nsdr=1.7e308).to_parquet(hostile / "huge" / "items.parquet")
    items.drop(columns=["nsdr", "sir", "sar", "si_sdri"]).to_parquet(hostile / "bare" / "items.parquet")
    board = build_leaderboard(hostile, tmp_path / "board", root, demo_items=0)
    assert "S\ufffdX\ufffdY" in {row["name"] for table in board["tables"] for row in table["rows"]}
    assert "S\ufffdX" in (tmp_path / "board" / "leaderboard.md").read_text(encoding="utf-8")
    result = run_cli("compare", hostile / "floor", hostile / "huge", hostile / "bare", hostile / "surrogate", "--json",
                     "--plot", tmp_path / "diff.svg", "--params", REPO_ROOT / "params.yaml")
    assert result.returncode == 0, result.stderr
    assert "Infinity" not in result.stdout and "NaN" not in result.stdout
    json.loads(result.stdout)
    assert "nan" not in (tmp_path / "diff.svg").read_text() and ElementTree.parse(tmp_path / "diff.svg")
    text = run_cli("compare", hostile / "floor", hostile / "bare", "--params", REPO_ROOT / "params.yaml")
    assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
