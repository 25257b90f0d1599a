"""`python -m musicbench` runs the command line."""

from musicbench.cli import app

app()
