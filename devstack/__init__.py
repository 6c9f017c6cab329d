"""The development stack: `tally dev`, its supervisor, embedded servers and process harness."""
