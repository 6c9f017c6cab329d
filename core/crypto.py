"""Encryption at rest for provider secrets (Fernet, key from the environment)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from core.errors import ConfigurationError


class SecretBox:
    """Encrypts and decrypts account secrets with one Fernet key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ConfigurationError("TALLY_FERNET_KEY is not set")
        try:
            self._fernet = Fernet(key.encode("ascii"))
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("TALLY_FERNET_KEY is not a valid Fernet key") from exc

    def seal(self, secret: str) -> bytes:
        """Return the encrypted form of a secret."""
        return self._fernet.encrypt(secret.encode("utf-8"))

    def open(self, sealed: bytes) -> str:
        """Return the plain secret from its encrypted form."""
        try:
            return self._fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken as exc:
            raise ConfigurationError("a stored secret cannot be decrypted with this key") from exc


def generate_key() -> str:
    """Return a new Fernet key as text."""
    return Fernet.generate_key().decode("ascii")
