"""The reference provisioning API: the contract an operator's provider implements.

`python -m devstack.reference_provider --port 9100 --rate-limit 150 --outage 30:12` serves
`POST /accounts` with an `Idempotency-Key` header. It answers `200` with
`{external_id, username, secret, metadata}`; the same key answers the same account again
with `Idempotent-Replayed: true`. It pushes back as real APIs do, as its options say:

- `--rate-limit R`: a token bucket of R requests/s; beyond it `429` with `Retry-After`.
- `--outage START:LENGTH` (seconds after start, repeatable; or `POST /_outage`
  `{"seconds": N}` from now, `{"seconds": 0}` to end it): `503` with `Retry-After` while it
  lasts.
- `--latency-ms`: every answer takes this long.
- `--late-fraction F --late-seconds S`: that share of creations answers only S seconds
  after the account was created (after a client's timeout).
- `--refuse-fraction F`: that share of keys (decided from the key) is refused with `422`.
- `--ignore-keys`: every call creates a new account, whatever its key.
- `POST /_silence` `{"seconds": N}`: for the next N seconds every call does its work (creates
  or replays the account) but its answer is held until the silence ends, as when answers
  are lost on the way back; `{"seconds": 0}` ends it now.

`GET /_counts` answers what it saw: requests by answer, accounts by key, and the most
requests it received in any one second. `POST /_reset` forgets everything.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class Behaviour:
    """How the reference provider pushes back."""

    rate_limit: float = 0.0  # requests/s; 0 = unlimited
    burst: float = 0.0  # bucket size; 0 = a tenth of a second's worth (at least 1)
    outages: tuple[tuple[float, float], ...] = ()  # (start, length) seconds after start
    outage_retry_after: int = 2
    latency_ms: float = 0.0
    late_fraction: float = 0.0
    late_seconds: float = 20.0
    refuse_fraction: float = 0.0
    ignore_keys: bool = False
    seed: int | None = None


class TokenBucket:
    """`rate` tokens a second, at most `size` saved up."""

    def __init__(self, rate: float, size: float) -> None:
        self.rate = rate
        self.size = size
        self._tokens = size
        self._at = time.monotonic()

    def take(self) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        now = time.monotonic()
        self._tokens = min(self.size, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


@dataclass
class Ledger:
    """What the provider saw and created."""

    answers: Counter[str] = field(default_factory=Counter)
    accounts_by_key: Counter[str] = field(default_factory=Counter)
    accounts: dict[str, dict[str, object]] = field(default_factory=dict)
    per_second: Counter[int] = field(default_factory=Counter)
    created: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    busy_seconds: float = 0.0  # the sum of every request's time in the server
    first: float | None = None
    last: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The counts GET /_counts answers."""
        keys = self.accounts_by_key
        span = (self.last - self.first) if self.first is not None and self.last else 0.0
        return {
            "requests": sum(self.answers.values()),
            "answers": dict(self.answers),
            "accounts": self.created,
            "keys": len(keys),
            "keys_with_several_accounts": sum(1 for n in keys.values() if n > 1),
            "accounts_by_key": dict(keys),
            "max_requests_in_one_second": max(self.per_second.values(), default=0),
            "peak_in_flight": self.peak_in_flight,
            "mean_in_flight": round(self.busy_seconds / span, 2) if span else 0.0,
        }


class ReferenceProvider:
    """The provider's state and its routes."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.started = time.monotonic()
        self.ledger = Ledger()
        self._rng = random.Random(behaviour.seed)
        self._extra_outages: list[tuple[float, float]] = []
        self._silent_until = 0.0  # monotonic
        size = behaviour.burst or max(1.0, behaviour.rate_limit / 10)
        self._bucket = TokenBucket(behaviour.rate_limit, size) if behaviour.rate_limit else None

    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[
                Route("/accounts", self.create, methods=["POST"]),
                Route("/_counts", self.counts, methods=["GET"]),
                Route("/_outage", self.outage, methods=["POST"]),
                Route("/_silence", self.silence, methods=["POST"]),
                Route("/_reset", self.reset, methods=["POST"]),
            ]
        )

    async def create(self, request: Request) -> Response:
        """POST /accounts: create (or replay) the account of an Idempotency-Key."""
        ledger = self.ledger
        started = time.monotonic()
        ledger.first = started if ledger.first is None else ledger.first
        ledger.in_flight += 1
        ledger.peak_in_flight = max(ledger.peak_in_flight, ledger.in_flight)
        try:
            return await self._create(request)
        finally:
            ledger.in_flight -= 1
            ledger.last = time.monotonic()
            ledger.busy_seconds += ledger.last - started

    async def _create(self, request: Request) -> Response:
        self.ledger.per_second[int(time.monotonic())] += 1
        key = request.headers.get("idempotency-key", "")
        if not key:
            return self._answer("400", {"error": "Idempotency-Key is required"}, 400)
        outage_left = self._outage_left()
        if outage_left > 0:
            retry = min(self.behaviour.outage_retry_after, math.ceil(outage_left))
            return self._answer("503", {"error": "maintenance"}, 503, retry)
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                return self._answer("429", {"error": "rate limited"}, 429, math.ceil(wait))
        if self.behaviour.latency_ms:
            await asyncio.sleep(self.behaviour.latency_ms / 1000)
        if _share(key, "refuse") < self.behaviour.refuse_fraction:
            return self._answer("422", {"error": "refused"}, 422)
        account, replayed = self._account(key)
        if time.monotonic() < self._silent_until:
            self.ledger.answers["held"] += 1
            while time.monotonic() < self._silent_until:  # a later call may end it sooner
                await asyncio.sleep(min(0.1, self._silent_until - time.monotonic()))
        if not replayed and self._rng.random() < self.behaviour.late_fraction:
            await asyncio.sleep(self.behaviour.late_seconds)
            self.ledger.answers["late"] += 1
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        self.ledger.answers["200"] += 1
        return JSONResponse(account, headers=headers)

    async def counts(self, request: Request) -> Response:
        """GET /_counts: what the provider saw."""
        return JSONResponse(self.ledger.as_dict())

    async def outage(self, request: Request) -> Response:
        """POST /_outage {"seconds": N}: answer 503 for the next N seconds; 0 ends it now."""
        seconds = float((await request.json())["seconds"])
        if seconds <= 0:
            self._extra_outages.clear()
        else:
            self._extra_outages.append((time.monotonic() - self.started, seconds))
        return JSONResponse({"outage_seconds": seconds})

    async def silence(self, request: Request) -> Response:
        """POST /_silence {"seconds": N}: hold every answer for the next N seconds."""
        seconds = float((await request.json())["seconds"])
        self._silent_until = time.monotonic() + max(0.0, seconds)
        return JSONResponse({"silence_seconds": seconds})

    async def reset(self, request: Request) -> Response:
        """POST /_reset: forget every account and count."""
        self.ledger = Ledger()
        self._extra_outages.clear()
        self._silent_until = 0.0
        return JSONResponse({"reset": True})

    def _account(self, key: str) -> tuple[dict[str, object], bool]:
        known = self.ledger.accounts.get(key)
        if known is not None and not self.behaviour.ignore_keys:
            return known, True
        self.ledger.created += 1
        self.ledger.accounts_by_key[key] += 1
        number = self.ledger.created
        digest = hashlib.sha256(f"{key}:{number}".encode()).hexdigest()
        account: dict[str, object] = {
            "external_id": f"ref_{number}",
            "username": f"user_{digest[:12]}",
            "secret": digest[12:44],
            "metadata": {"provider": "reference", "key": key},
        }
        self.ledger.accounts[key] = account
        return account, False

    def _outage_left(self) -> float:
        now = time.monotonic() - self.started
        windows = (*self.behaviour.outages, *self._extra_outages)
        return max((start + length - now for start, length in windows if start <= now), default=0)

    def _answer(
        self, name: str, body: dict[str, str], status: int, retry_after: int | None = None
    ) -> Response:
        self.ledger.answers[name] += 1
        headers = {} if retry_after is None else {"Retry-After": str(max(1, retry_after))}
        return JSONResponse(body, status, headers)


def _share(key: str, purpose: str) -> float:
    """A number in [0, 1) decided by the key alone."""
    digest = hashlib.sha256(f"{purpose}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _window(text: str) -> tuple[float, float]:
    start, _, length = text.partition(":")
    return float(start), float(length)


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Behaviour]:
    """Read the command line into a bind address and a behaviour."""
    parser = argparse.ArgumentParser(prog="python -m devstack.reference_provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--rate-limit", type=float, default=0.0)
    parser.add_argument("--burst", type=float, default=0.0)
    parser.add_argument("--outage", type=_window, action="append", default=[])
    parser.add_argument("--outage-retry-after", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--late-fraction", type=float, default=0.0)
    parser.add_argument("--late-seconds", type=float, default=20.0)
    parser.add_argument("--refuse-fraction", type=float, default=0.0)
    parser.add_argument("--ignore-keys", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        rate_limit=args.rate_limit,
        burst=args.burst,
        outages=tuple(args.outage),
        outage_retry_after=args.outage_retry_after,
        latency_ms=args.latency_ms,
        late_fraction=args.late_fraction,
        late_seconds=args.late_seconds,
        refuse_fraction=args.refuse_fraction,
        ignore_keys=args.ignore_keys,
        seed=args.seed,
    )
    return args, behaviour


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the reference provider until interrupted."""
    args, behaviour = parse(argv)
    app = ReferenceProvider(behaviour).app()
    print(f"reference provider on http://{args.host}:{args.port}/accounts", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
