"""Benchmarks that print figures beside same-run references; not tests (see README.md)."""
