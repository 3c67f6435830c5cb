"""Telegram updates → store/outbox: thin handlers, admin commands."""
