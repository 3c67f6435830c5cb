"""Delivery: outbox rows → transports, paced, with every outcome classified once."""
