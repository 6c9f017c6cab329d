"""This web process's export counters, collected beside the database's figures.

Plain counts under a lock, exposed by a collector of their own: they never enter
prometheus_client's multiprocess files, which other processes' measurements use.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class ExportCounters(Collector):
    """Exports started (by format and whether secrets left) and accounts sent."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._exports: Counter[tuple[str, str]] = Counter()
        self._accounts = 0
        registry.register(self)

    def started(self, format: str, secrets: bool) -> None:
        """Count one export starting."""
        with self._lock:
            self._exports[(format, "true" if secrets else "false")] += 1

    def sent(self, accounts: int) -> None:
        """Count accounts sent."""
        with self._lock:
            self._accounts += accounts

    def collect(self) -> Iterator[Any]:
        """Yield both counters."""
        with self._lock:
            exports, accounts = dict(self._exports), self._accounts
        family = CounterMetricFamily(
            "tally_exports", "Exports started by this web process.", labels=["format", "secrets"]
        )
        for labels, count in sorted(exports.items()):
            family.add_metric(list(labels), count)
        yield family
        yield CounterMetricFamily(
            "tally_exported_accounts",
            "Accounts sent in exports by this web process.",
            value=accounts,
        )
