"""The reference provisioning API as a real subprocess of a stack, and what it counts."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from devstack.processes import free_port
from harness.stack import Stack
from harness.waiting import wait_for


class ReferenceServer:
    """`python -m devstack.reference_provider` with options, started in a stack."""

    def __init__(self, stack: Stack, *options: str) -> None:
        port = free_port()
        command = [sys.executable, "-m", "devstack.reference_provider", "--port", str(port)]
        self.child = stack.start("provider", [*command, *options])
        self.base = f"http://127.0.0.1:{port}"
        self.url = self.base + "/accounts"
        wait_for(lambda: self._answers() or not self.child.running, timeout=30)
        assert self.child.running, self.child.tail()

    def counts(self) -> dict[str, Any]:
        """What the provider saw: requests by answer, accounts, accounts by key."""
        answer = httpx.get(self.base + "/_counts", timeout=10)
        answer.raise_for_status()
        counts: dict[str, Any] = answer.json()
        return counts

    def outage(self, seconds: float) -> None:
        """Answer 503 with Retry-After from now for `seconds`; 0 ends the outage now."""
        httpx.post(self.base + "/_outage", json={"seconds": seconds}, timeout=10)

    def silence(self, seconds: float) -> None:
        """Hold every answer (the work done) from now for `seconds`; 0 ends it now."""
        httpx.post(self.base + "/_silence", json={"seconds": seconds}, timeout=10)

    def reset(self) -> None:
        """Forget every account, count and outage (an outage in progress ends)."""
        httpx.post(self.base + "/_reset", timeout=10)

    def env(self, **extra: str) -> dict[str, str]:
        """The worker environment that sends every job to this provider."""
        return {"TALLY_PROVIDER": "http", "TALLY_PROVIDER_URL": self.url, **extra}

    def _answers(self) -> bool:
        try:
            return httpx.get(self.base + "/_counts", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
