"""Herald: a self-hosted news distribution bot for Jekyll sites."""

__version__ = "0.1.0"
