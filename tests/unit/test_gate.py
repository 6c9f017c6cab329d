"""The provider gate: a bound on calls in flight that waiting users take turns at."""

from __future__ import annotations

import asyncio

from worker.gate import FairGate


async def _hold(gate: FairGate, key: str, order: list[str], release: asyncio.Event) -> None:
    async with gate.lane(key):
        order.append(key)
        await release.wait()


async def _granted_in_turns() -> list[str]:
    gate = FairGate(1)
    order: list[str] = []
    opened = asyncio.Event()
    opened.set()
    blocker = asyncio.Event()
    first = asyncio.create_task(_hold(gate, "blocker", order, blocker))
    await asyncio.sleep(0)
    # Eight calls of a big user queue before two of a small one.
    waiting = [asyncio.create_task(_hold(gate, "big", order, opened)) for _ in range(8)]
    await asyncio.sleep(0)
    waiting += [asyncio.create_task(_hold(gate, "small", order, opened)) for _ in range(2)]
    await asyncio.sleep(0)
    blocker.set()
    await asyncio.gather(first, *waiting)
    return order


def test_waiting_users_take_turns_instead_of_queueing_behind_each_other() -> None:
    order = asyncio.run(_granted_in_turns())
    assert order[:5] == ["blocker", "big", "small", "big", "small"]
    assert order.count("big") == 8


async def _peak_in_flight(permits: int, callers: int) -> int:
    gate = FairGate(permits)
    in_flight = peak = 0

    async def call(key: int) -> None:
        nonlocal in_flight, peak
        async with gate.lane(key % 3):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1

    await asyncio.gather(*(call(n) for n in range(callers)))
    return peak


def test_never_more_calls_in_flight_than_permits() -> None:
    assert asyncio.run(_peak_in_flight(permits=4, callers=60)) == 4


async def _cancelled_waiters_give_their_turn_away() -> tuple[int, int]:
    gate = FairGate(1)
    blocker = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, "a", [], blocker))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(gate.acquire("b"))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    blocker.set()
    await holder
    survivors: list[str] = []
    await _hold(gate, "c", survivors, blocker)
    return gate.waiting, len(survivors)


def test_a_cancelled_wait_neither_keeps_nor_loses_a_permit() -> None:
    assert asyncio.run(_cancelled_waiters_give_their_turn_away()) == (0, 1)
