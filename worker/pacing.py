"""When a provider may be called: its pause after pushback and its rate limit, shared.

One state per provider name, in Redis, so that every worker process on every host sees
the same pause and draws from the same rate: a hash `tally:provider:<name>:pushback`
(`until`: paused until, `reason`, `since`: unavailable since, milliseconds on Redis's
clock) and a GCRA "theoretical arrival time" `tally:provider:<name>:tat`. Each call asks
once (one Lua script, one round trip) and is given its slot: call now, call after a short
wait (its place in the rate), or ask again later (paused). Without Redis, or while it does
not answer, the same rules hold within the process.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.vocabulary import WaitingReason

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.25
# Reserve a slot at most this far ahead; beyond it, wait and ask again.
HORIZON_SECONDS = 1.0
# The pushback state outlives its pause by this long without a new pushback.
IDLE_MS = 120_000
# Without a rate limit, a process re-reads the shared pause at most this often.
REFRESH_SECONDS = 0.1
# A call may go this late for its slot. Calls only ever go later than their slots, so any
# one second holds at most the slots of 1 + LATE_SECONDS seconds plus the burst (1 %):
# within 10 % of the rate.
LATE_SECONDS = 0.09
# After Redis failed to answer, the pacer asks it again this much later.
REDIS_RETRY_SECONDS = 1.0

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'until', 'reason', 'since', 'probe')
local paused = tonumber(st[1] or '0') or 0
local since = st[3] or ''
if paused > now then
  return {0, tostring(paused - now), st[2] or '', since, now}
end
if paused > 0 and since ~= '' then
  -- The pause is over but nothing has answered since: one call probes, the others wait.
  local probe = tonumber(st[4] or '0') or 0
  if probe > now then return {0, tostring(math.min(probe - now, 500)), st[2] or '', since, now} end
  redis.call('HSET', KEYS[1], 'probe', now + tonumber(ARGV[4]))
end
local interval = tonumber(ARGV[1])
if interval <= 0 then return {1, '0', '', since, now} end
local tat = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if tat < now then tat = now end
local wait = tat - tonumber(ARGV[2]) - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {0, tostring(wait), 'self', since, now} end
redis.call('SET', KEYS[2], tostring(tat + interval), 'PX', math.ceil(tat + interval - now) + 1000)
return {1, tostring(wait), '', since, now}
"""

PUSHBACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = tonumber(redis.call('HGET', KEYS[1], 'until') or '0') or 0
local pause = tonumber(ARGV[1])
if pause > 0 and now + pause > untl then
  untl = now + pause
  redis.call('HSET', KEYS[1], 'until', untl, 'reason', ARGV[2])
  redis.call('HDEL', KEYS[1], 'probe')
end
redis.call('HSETNX', KEYS[1], 'since', now)
redis.call('PEXPIRE', KEYS[1], math.floor(math.max(untl - now, 0) + tonumber(ARGV[3])))
return {tostring(math.max(untl - now, 0)), redis.call('HGET', KEYS[1], 'since'), now}
"""


@dataclass(frozen=True)
class Permit:
    """The answer to "may I call now?"."""

    granted: bool  # call after `wait`; when False, ask again after `wait`
    wait: float  # seconds
    reason: WaitingReason | None  # why not granted
    unavailable_for: float  # seconds since the provider stopped answering; 0 if it answers
    paused: bool = False  # not granted because the provider paused us (else: our own limit)
    send_by: float = float("inf")  # a granted slot is lost if the call is not sent by then


@dataclass(frozen=True)
class Pushed:
    """What a pushback did: the pause now in force and how long the provider has failed."""

    pause: float
    unavailable_for: float


class Pacer(Protocol):
    """Paces the calls to one provider."""

    async def acquire(self) -> Permit:
        """Ask to call the provider once."""
        ...

    def paused_now(self) -> bool:
        """Whether a pause this process already knows of is in force (asks no one)."""
        ...

    async def pushback(
        self, retry_after: float | None, reason: WaitingReason, pause: bool
    ) -> Pushed:
        """Record a transient outcome; pause every caller when `pause` is set."""
        ...

    async def answered(self) -> None:
        """Record that the provider answered: it is available."""
        ...

    async def aclose(self) -> None:
        """Release the pacer's connections."""
        ...


def backoff(strikes: int, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with jitter: between half and all of base * 2**strikes."""
    ceiling = min(cap, FIRST_BACKOFF_SECONDS * 2 ** min(strikes, 30))
    return float(ceiling * (0.5 + 0.5 * rng.random()))


class LocalPacer:
    """The rules of the shared pacer, kept within one process."""

    def __init__(self, rate_limit: float, backoff_cap: float) -> None:
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        self._tau = _tolerance(rate_limit)
        self._tat = 0.0
        self._until = 0.0
        self._reason = WaitingReason.UNAVAILABLE
        self._since: float | None = None
        self._strikes = 0
        self._cap = backoff_cap
        self._rng = random.Random()

    def paused(self) -> Permit | None:
        """The pause in force in this process, if any."""
        now = time.monotonic()
        if self._until <= now:
            return None
        down = 0.0 if self._since is None else now - self._since
        return Permit(False, self._until - now, self._reason, down, paused=True)

    def paused_now(self) -> bool:
        return self.paused() is not None

    async def acquire(self) -> Permit:
        now = time.monotonic()
        down = 0.0 if self._since is None else now - self._since
        pause = self.paused()
        if pause is not None:
            return pause
        if not self._interval:
            return Permit(True, 0.0, None, down)
        tat = max(self._tat, now)
        wait = max(0.0, tat - self._tau - now)
        if wait > HORIZON_SECONDS:
            return Permit(False, wait, WaitingReason.RATE_LIMITED, down)
        self._tat = tat + self._interval
        return Permit(True, wait, None, down, send_by=now + wait + _late(self._tau))

    async def pushback(
        self, retry_after: float | None, reason: WaitingReason, pause: bool
    ) -> Pushed:
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if pause:
            seconds = self._pause_seconds(retry_after)
            if now + seconds > self._until:
                self._until, self._reason = now + seconds, reason
        return Pushed(max(0.0, self._until - now), now - self._since)

    async def answered(self) -> None:
        self._since = None
        self._strikes = 0

    async def aclose(self) -> None:
        """Nothing to release."""

    def _pause_seconds(self, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        self._strikes += 1
        return backoff(self._strikes - 1, self._cap, self._rng)


class RedisPacer:
    """The shared pacer: one state per provider in Redis, for every process and host."""

    def __init__(
        self,
        client: aioredis.Redis[bytes],
        name: str,
        rate_limit: float,
        backoff_cap: float,
        probe_timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._keys = [f"tally:provider:{name}:pushback", f"tally:provider:{name}:tat"]
        self._interval_ms = 1000.0 / rate_limit if rate_limit else 0.0
        self._tau_ms = _tolerance(rate_limit) * 1000
        self._acquire = client.register_script(ACQUIRE)
        self._push = client.register_script(PUSHBACK)
        self._local = LocalPacer(rate_limit, backoff_cap)
        self._down_since: float | None = None  # local monotonic time, as last read
        self._fresh_until = 0.0
        self._broken_until = 0.0
        self._probe_ms = probe_timeout * 1000

    def paused_now(self) -> bool:
        # The pauses this process met; another process's is learned by asking (acquire).
        return self._local.paused_now()

    async def acquire(self) -> Permit:
        now = time.monotonic()
        # A pause this process just met holds at once, before Redis has recorded it.
        pause = self._local.paused()
        if pause is not None:
            return pause
        if now < self._broken_until:
            return await self._without_redis()
        if not self._interval_ms and now < self._fresh_until:
            return await self._local.acquire()
        try:
            granted, wait_ms, reason, since, server_now = await self._acquire(
                keys=self._keys,
                args=[
                    self._interval_ms,
                    self._tau_ms,
                    HORIZON_SECONDS * 1000,
                    self._probe_ms,
                ],
            )
        except (RedisError, OSError) as exc:
            return await self._degrade(exc)
        self._down_since = _since_local(since, server_now)
        wait = float(wait_ms) / 1000
        # Cache "all clear" only: while the provider is unavailable, every call asks.
        self._fresh_until = now + REFRESH_SECONDS if self._down_since is None else 0.0
        down = 0.0 if self._down_since is None else now - self._down_since
        if not granted:
            paused = reason != b"self"
            limited = reason in (b"self", WaitingReason.RATE_LIMITED.encode())
            why = WaitingReason.RATE_LIMITED if limited else WaitingReason.UNAVAILABLE
            return Permit(False, wait, why, down, paused=paused)
        send_by = now + wait + _late(self._tau_ms / 1000) if self._interval_ms else float("inf")
        return Permit(True, wait, None, down, send_by=send_by)

    async def pushback(
        self, retry_after: float | None, reason: WaitingReason, pause: bool
    ) -> Pushed:
        local = await self._local.pushback(retry_after, reason, pause)
        pause_ms = local.pause * 1000 if pause else 0
        try:
            left_ms, since, server_now = await self._push(
                keys=self._keys[:1], args=[pause_ms, reason, IDLE_MS]
            )
        except (RedisError, OSError) as exc:
            await self._degrade(exc)
            return local
        self._down_since = _since_local(since, server_now)
        down = 0.0 if self._down_since is None else time.monotonic() - self._down_since
        return Pushed(float(left_ms) / 1000, down)

    async def answered(self) -> None:
        await self._local.answered()
        if self._down_since is None:
            return
        self._down_since = None
        try:
            await self._client.hdel(self._keys[0], "since", "until", "probe")
        except (RedisError, OSError) as exc:
            await self._degrade(exc)

    async def aclose(self) -> None:
        await self._client.connection_pool.disconnect()

    async def _degrade(self, exc: BaseException) -> Permit:
        if time.monotonic() >= self._broken_until:
            logger.warning("provider pacing cannot reach Redis: %s", exc)
        self._broken_until = time.monotonic() + REDIS_RETRY_SECONDS
        return await self._without_redis()

    async def _without_redis(self) -> Permit:
        """Pauses hold within the process; a deployment-wide rate waits for Redis."""
        if self._interval_ms:
            # No process can know what the others send: calling could break the limit.
            return Permit(False, REDIS_RETRY_SECONDS, WaitingReason.RATE_LIMITED, 0.0, paused=False)
        return await self._local.acquire()


def _tolerance(rate_limit: float) -> float:
    """Seconds of burst the rate allows: a hundredth of a second's worth, one call at least."""
    if not rate_limit:
        return 0.0
    return max(1.0, rate_limit / 100) / rate_limit - 1.0 / rate_limit


def _late(tolerance: float) -> float:
    """How late a call may still take its rate slot: the burst tolerance, LATE_SECONDS at least.

    A process starved of CPU wakes late; sending then would bunch its calls into bursts.
    """
    return max(tolerance, LATE_SECONDS)


def _since_local(since: Any, server_now: Any) -> float | None:
    """The server's `since` (ms) as this process's monotonic time, or None when unset."""
    if not since:
        return None
    return time.monotonic() - (float(server_now) - float(since)) / 1000
