"""Queues for re-score work: an embedded durable SQLite queue (default)."""
