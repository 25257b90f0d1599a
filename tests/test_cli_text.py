"""Untrusted text reaches the terminal and leaderboard.md as text: Rich markup in a model's error,
a model file's name, a run's name or a run folder's name is printed literally, and no ESC or
bidirectional override gets through (real `musicbench` commands on the small benchmark)."""

from __future__ import annotations

import textwrap

import pandas as pd

from musicbench.leaderboard.markdown import md_escape
from tests.conftest import REPO_ROOT, run_cli

PARAMS = REPO_ROOT / "params.yaml"
# The model's error: closing tags that match nothing (rich.errors.MarkupError), a link, a colour,
# an emoji code, an ESC sequence that would turn the terminal red, a right-to-left override.
HOSTILE_MODEL = textwrap.dedent('''
    class Hostile:
        def separate(self, mixture, frames, sample_rate):
            raise ValueError("[/bold] [link=https://example.com]click[/link] [red]red :smile: \\x1b[31mESC\\x1b[0m \\u202eevil")

    def load_model(device="cpu"):
        return Hostile()
''')
LITERAL = "[/bold] [link=https://example.com]click[/link] [red]red :smile: \ufffd[31mESC\ufffd[0m \ufffdevil"
RUN_NAME = "evil\x1b[31m\u202e[/bold]"
SHOWN_NAME = "evil\ufffd[31m\ufffd[/bold]"


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text and "Traceback" not in text, text


def test_evaluate_prints_a_models_markup_and_escapes_as_text(bench_root, tmp_path):
    """rich.errors.MarkupError ended `musicbench evaluate` after the run was written: the DVC stage failed."""
    root, _, _ = bench_root
    model = tmp_path / "[link=x]hostile[red].py"
    model.write_text(HOSTILE_MODEL)
    runs = tmp_path / "runs"
    result = run_cli("evaluate", model, "--params", PARAMS, "--root", root, "--limit", 2, "--device", "cpu",
                     "--out", runs / "hostile", "--name", RUN_NAME, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _clean(result.stdout + result.stderr)
    inference = pd.read_parquet(runs / "hostile" / "inference.parquet")
    assert (runs / "hostile" / "summary.json").is_file() and (inference["status"] == "failed").all()
    assert "\x1b[31mESC" in inference["reason"].iloc[0]  # the run keeps the model's words; only the terminal is spared
    assert LITERAL in result.stdout and "excluded 2: " in result.stdout
    assert f"{SHOWN_NAME} on mb-" in " ".join(result.stdout.split())  # the run's name, in the table's (wrapped) title
    assert "inference ([link=x]hostile[red].py, test)" in result.stderr  # the progress bar names the file

    # the board: leaderboard.md and the CLI's warnings (a run folder whose name is markup and ESC)
    (runs / "[bold red]unfinished\x1b[2J\u202e").mkdir()  # no summary.json: skipped with a warning naming it
    board = run_cli("leaderboard", "--params", PARAMS, "--runs", runs, "--out", tmp_path / "board", "--root", root,
                    "--demo-items", "0", cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    assert "RuntimeWarning" not in board.stderr, board.stderr  # a run whose items all failed: no numpy warning leaks
    _clean(board.stdout + board.stderr)
    assert "warning: " in board.stderr and "[bold red]unfinished\ufffd[2J\ufffd" in board.stderr
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "\x1b" not in markdown and "\u202e" not in markdown
    assert "evil\ufffd\\[31m\ufffd\\[/bold\\]" in markdown


def test_validate_model_prints_a_models_markup_and_escapes_as_text(bench_root, tmp_path):
    root, _, _ = bench_root
    model = tmp_path / "[red]hostile[bold].py"  # markup in the table's title: read as text, the brackets shown
    model.write_text(HOSTILE_MODEL)
    result = run_cli("validate-model", model, "--params", PARAMS, "--root", root, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the checks fail: the model raises
    _clean(result.stdout + result.stderr)
    assert "validate-model [red]hostile[bold].py on" in result.stdout
    assert "fail" in result.stdout and "[/bold] [link=https://example.com]click[/link]" in " ".join(result.stdout.split())


def test_md_escape_shows_controls_and_bidi_overrides_as_replacement_characters():
    assert md_escape(RUN_NAME) == "evil\ufffd\\[31m\ufffd\\[/bold\\]"
    assert md_escape("a\r\nb\u2066c\x07") == "a  b\ufffdc\ufffd"  # line breaks stay spaces
    assert md_escape("<b>|x|</b>") == "&lt;b&gt;\\|x\\|&lt;/b&gt;"
