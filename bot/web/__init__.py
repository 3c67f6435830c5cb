"""HTTP → store/outbox: pages, tokens, abuse limits."""
