"""Provider calls in a trace: what did not create an account is an event on the slice's span.

An http provider's every request is a client span of its own (the httpx instrumentation),
a child of the slice's span. On top of that, each call that did not end in an account
adds an event to the current span: `provider.pushback` (with the reason and the seconds the
provider asked for), `provider.ambiguous` (retried with the same key), `provider.transient`,
`provider.refused`. A span per successful call would cost more than the call itself with a
fast provider (it halved `bench pipeline`); the finish event carries the counts instead. The
idempotency key is an attribute (it names a job slot, not a secret); an account's username
and secret never are.
"""

from __future__ import annotations

from core import tracing
from core.errors import (
    AmbiguousProviderError,
    PermanentProviderError,
    ProviderPushback,
    TransientProviderError,
)
from core.providers.base import CreatedAccount, Provider


class TracedProvider:
    """A provider whose calls that did not create an account are events on the current span."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self.name = provider.name

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """Call the wrapped provider; say in the trace how a call that failed ended."""
        try:
            return await self._provider.create_account(idempotency_key)
        except ProviderPushback as exc:
            retry_after = -1.0 if exc.retry_after is None else float(exc.retry_after)
            self._event("pushback", idempotency_key, reason=exc.reason, retry_after=retry_after)
            raise
        except AmbiguousProviderError:
            self._event("ambiguous", idempotency_key)
            raise
        except TransientProviderError:
            self._event("transient", idempotency_key)
            raise
        except PermanentProviderError:
            self._event("refused", idempotency_key)
            raise

    def _event(self, outcome: str, key: str, **details: str | float) -> None:
        tracing.event(
            f"provider.{outcome}", {"provider": self.name, "idempotency_key": key, **details}
        )

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._provider.aclose()


def traced(provider: Provider) -> Provider:
    """The provider itself when tracing is off (no cost per call), else a traced wrapper."""
    return TracedProvider(provider) if tracing.enabled() else provider
