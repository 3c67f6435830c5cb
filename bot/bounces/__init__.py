"""Inbound mail → store: the bounce listener and the delivery reports and complaints it reads."""
