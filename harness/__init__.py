"""The process harness tests and benchmarks share: tally's processes, waiting, the outbox."""
