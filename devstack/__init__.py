"""The development stack: `tally dev`, its Procfile supervisor and the embedded servers."""
