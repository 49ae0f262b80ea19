"""The `llmrelay` command line and the one-machine launcher behind `llmrelay up`."""
