"""A flood of bad bearer tokens from many client addresses, run in a process of its own."""

from __future__ import annotations

import multiprocessing
import secrets
import threading
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

import httpx

SPAWN = multiprocessing.get_context("spawn")


def bad_token(n: int) -> str:
    """A random token of tally's shape every other time, plain junk otherwise."""
    return "tly_" + secrets.token_urlsafe(32) if n % 2 else secrets.token_hex(8)


def flood_from(
    url: str,
    address: str,
    stop: Event,
    results: Queue[tuple[str, list[int]]],
    answered: Synchronized[int],
) -> None:
    """Send bad tokens from one local address until told to stop; report every status."""
    statuses: list[int] = []
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as client:
        while not stop.is_set():
            token = bad_token(len(statuses))
            answer = client.get("/api/stats", headers={"Authorization": f"Bearer {token}"})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                with answered.get_lock():
                    answered.value += 1
    results.put((address, statuses))


def flood(
    url: str,
    addresses: list[str],
    stop: Event,
    results: Queue[tuple[str, list[int]]],
    answered: Synchronized[int],
) -> None:
    """One thread per address, all at once."""
    threads = [
        threading.Thread(target=flood_from, args=(url, address, stop, results, answered))
        for address in addresses
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass
class Flood:
    """A running flood process and what its clients answered."""

    url: str
    addresses: list[str]
    stop: Event = field(default_factory=SPAWN.Event)
    results: Queue[tuple[str, list[int]]] = field(default_factory=SPAWN.Queue)
    answered: Synchronized[int] = field(default_factory=lambda: SPAWN.Value("i", 0))
    process: SpawnProcess | None = None

    def start(self) -> None:
        """Start sending."""
        args = (self.url, self.addresses, self.stop, self.results, self.answered)
        self.process = SPAWN.Process(target=flood, args=args, daemon=True)
        self.process.start()

    @property
    def refused(self) -> int:
        """429 answers the flood has had so far."""
        return int(self.answered.value)

    def finish(self) -> dict[str, list[int]]:
        """Stop sending; each address's statuses, in order."""
        self.stop.set()
        found = dict(self.results.get(timeout=30) for _ in self.addresses)
        assert self.process is not None
        self.process.join(timeout=30)
        return found
