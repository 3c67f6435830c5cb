"""The `herald` subcommands other than `run`."""
