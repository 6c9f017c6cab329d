"""Webhook delivery: its own outbox reader, its own queue, its own process."""
