"""This web process's export counters, registered beside the database collector."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ExportCounters:
    """Exports started (by format and whether secrets left) and accounts sent."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._exports = Counter(
            "tally_exports",
            "Exports started by this web process.",
            ["format", "secrets"],
            registry=registry,
        )
        self._accounts = Counter(
            "tally_exported_accounts",
            "Accounts sent in exports by this web process.",
            registry=registry,
        )

    def started(self, format: str, secrets: bool) -> None:
        """Count one export starting."""
        self._exports.labels(format, "true" if secrets else "false").inc()

    def sent(self, accounts: int) -> None:
        """Count accounts sent."""
        self._accounts.inc(accounts)
