"""The provider interface: create one account for one idempotency key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class CreatedAccount:
    """What a provider returns for an account it created."""

    external_id: str
    username: str
    secret: str
    metadata: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False  # the provider said it answered an account created earlier


class Provider(Protocol):
    """Creates accounts in a system the operator owns or may provision."""

    name: str

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """Create (or return the already created) account for this key."""
        ...

    async def aclose(self) -> None:
        """Release the provider's resources."""
        ...


def item_key(job_id: object, item_index: int) -> str:
    """Return the idempotency key of one job slot."""
    return f"{job_id}:{item_index}"


def slot_key(job_id: object, item_index: int, kept: Mapping[int, str]) -> str:
    """The key a slot asks with: the one it keeps from the ambiguous slot it retries, if
    any (core/retry.py), else its own."""
    return kept.get(item_index) or item_key(job_id, item_index)
