"""Provider calls as spans: one per attempt, with pushback and ambiguity as events.

An http provider's request is a client span of its own (the httpx instrumentation) inside
this one. The idempotency key is an attribute (it names a job slot, not a secret); the
account's username and secret never are.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from core import tracing
from core.errors import (
    AmbiguousProviderError,
    PermanentProviderError,
    ProviderPushback,
    TransientProviderError,
)
from core.providers.base import CreatedAccount, Provider


class TracedProvider:
    """A provider whose every call is a `tally.provider_call` span."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self.name = provider.name

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """Call the wrapped provider inside a span that says how the call ended."""
        attributes = {"provider": self.name, "idempotency_key": idempotency_key}
        with tracing.span("tally.provider_call", attributes, SpanKind.INTERNAL) as span:
            try:
                account = await self._provider.create_account(idempotency_key)
            except ProviderPushback as exc:
                span.set_attribute("outcome", exc.reason)
                retry_after = -1.0 if exc.retry_after is None else float(exc.retry_after)
                span.add_event("pushback", {"reason": exc.reason, "retry_after": retry_after})
                raise
            except AmbiguousProviderError:
                span.set_attribute("outcome", "ambiguous")
                span.add_event("ambiguous", {"retried_with_same_key": True})
                raise
            except TransientProviderError:
                span.set_attribute("outcome", "transient")
                raise
            except PermanentProviderError:
                span.set_attribute("outcome", "refused")
                raise
            span.set_attribute("outcome", "replayed" if account.replayed else "created")
            return account

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._provider.aclose()


def traced(provider: Provider) -> Provider:
    """The provider itself when tracing is off (no cost per call), else a traced wrapper."""
    return TracedProvider(provider) if tracing.enabled() else provider
