"""The `tally` console script."""
