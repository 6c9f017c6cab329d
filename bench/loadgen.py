"""HTTP load from a second process: wrk when installed, else a small asyncio generator.

`python -m bench.loadgen URL SECONDS CONNECTIONS [HEADER: VALUE ...]` is the fallback
generator; it prints one JSON object with the same figures as the wrk path reads.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from bench.report import percentile

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass(frozen=True)
class Load:
    """What a load run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int
    tool: str


def hammer(url: str, headers: dict[str, str], seconds: float, connections: int) -> Load:
    """Load `url` for `seconds` over `connections` keep-alive connections."""
    header_args = [f"{k}: {v}" for k, v in headers.items()]
    if shutil.which("wrk"):
        return _wrk(url, header_args, seconds, connections)
    argv = [sys.executable, "-m", "bench.loadgen", url, str(seconds), str(connections)]
    answer = subprocess.run(argv + header_args, capture_output=True, text=True, check=True)
    return Load(**json.loads(answer.stdout))


def _wrk(url: str, headers: Sequence[str], seconds: float, connections: int) -> Load:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Load(
        requests_per_second=float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_duration(_find(r"50%\s+([\d.]+\w+)", out)),
        p99_ms=_duration(_find(r"99%\s+([\d.]+\w+)", out)),
        requests=int(_find(r"(\d+) requests in", out)),
        bad=int(bad.group(1)) if bad else 0,
        tool="wrk",
    )


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    return found.group(1)


def _duration(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


async def _connection(
    host: str, port: int, request: bytes, stop_at: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    bad = 0
    try:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            bad += not 200 <= status < 400
    finally:
        writer.close()
    return bad


async def _generate(url: str, seconds: float, connections: int, headers: Sequence[str]) -> Load:
    parts = urlsplit(url)
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    latencies: list[float] = []
    started = time.monotonic()
    tasks = [
        _connection(parts.hostname or "", parts.port or 80, request, started + seconds, latencies)
        for _ in range(connections)
    ]
    bad = sum(await asyncio.gather(*tasks))
    elapsed = time.monotonic() - started
    return Load(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        requests=len(latencies),
        bad=bad,
        tool="python",
    )


def main(argv: Sequence[str]) -> None:
    """Run the fallback generator and print its figures as JSON."""
    url, seconds, connections, *headers = argv
    load = asyncio.run(_generate(url, float(seconds), int(connections), headers))
    print(json.dumps(asdict(load)))


if __name__ == "__main__":
    main(sys.argv[1:])
