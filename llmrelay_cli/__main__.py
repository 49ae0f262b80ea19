"""`python -m llmrelay_cli ...`: the same as the `llmrelay` command."""

from llmrelay_cli.main import app

app(prog_name="llmrelay")
