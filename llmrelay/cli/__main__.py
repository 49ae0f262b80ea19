"""`python -m llmrelay.cli ...`: the same as the `llmrelay` command."""

from llmrelay.cli.main import app

app(prog_name="llmrelay")
