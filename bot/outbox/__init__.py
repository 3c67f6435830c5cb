"""The outbox stage: planning rows per recipient, publishing jobs, digests."""
