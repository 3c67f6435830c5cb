"""Fakes of the world outside Herald: a Bot API server, an HTML checker, an SMTP sink."""
