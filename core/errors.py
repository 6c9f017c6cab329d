"""Domain errors: one root class, no HTTP status codes."""

from __future__ import annotations

from core.vocabulary import WaitingReason


class TallyError(Exception):
    """Root of every error tally raises on purpose."""


class ConfigurationError(TallyError):
    """The process was started with settings it cannot run with."""


class InvalidInput(TallyError):
    """A request's content breaks a rule; nothing was changed."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLarge(InvalidInput):
    """A request body is larger than the service accepts."""


class NotFound(TallyError):
    """The thing does not exist, or does not belong to the caller."""


class Unauthorized(TallyError):
    """No valid credentials were presented."""


class TooManyRequests(TallyError):
    """The client has failed too often; it may try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(TallyError):
    """A service tally depends on cannot be reached; retrying later may succeed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(TallyError):
    """The request contradicts what is recorded (a finished job, a used reference)."""


class IdempotencyKeyReused(InvalidInput):
    """An Idempotency-Key already names a request with a different body."""


class Forbidden(TallyError):
    """The caller is known but may not do this."""


class InsufficientCredits(TallyError):
    """The user's balance does not cover the hold a job needs."""

    def __init__(self, needed: int, balance: int) -> None:
        super().__init__(f"this job needs {needed} credits; the balance is {balance}")
        self.needed = needed
        self.balance = balance


class UnknownProvider(InvalidInput):
    """No provider of that name is configured."""


class ProviderError(TallyError):
    """A provider could not create an account."""


class TransientProviderError(ProviderError):
    """The provider failed in a way that may succeed if retried."""


class PermanentProviderError(ProviderError):
    """The provider refused; retrying the same request will not help."""


class ProviderUnavailable(ProviderError):
    """The provider cannot run at all (misconfigured); the job cannot run."""


class ProviderPushback(TransientProviderError):
    """The provider asked to be called later (429, 5xx, unreachable), perhaps saying when.

    `reason` says which (rate limited or unavailable); `retry_after` is the seconds the
    provider asked for, or None when it did not say.
    """

    def __init__(
        self, message: str, reason: WaitingReason, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class AmbiguousProviderError(TransientProviderError):
    """The call may have created the account but its answer never came (a read timeout)."""
