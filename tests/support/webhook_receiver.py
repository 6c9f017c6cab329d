"""A webhook receiver run as its own process: records every request, answers 503 until told.

`python -m tests.support.webhook_receiver PORT LOG DOWN` appends one JSON line per request
(headers and body) to LOG and answers 503 while the file DOWN exists, 200 once it is gone.
It can be SIGKILLed and started again on the port.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(port: int, log: Path, down: Path) -> None:
    """Answer requests on 127.0.0.1:port until killed."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = 503 if down.exists() else 200
            record = {"headers": dict(self.headers), "body": body.decode(), "status": status}
            with log.open("a") as out:
                out.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("receiver ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
