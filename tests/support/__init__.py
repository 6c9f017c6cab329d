"""What the suites share: waiting, reading the test database, running slices inline, processes."""
