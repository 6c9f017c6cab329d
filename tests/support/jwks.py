"""Signing keys made in the test and a real HTTP server publishing them as a JWKS."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "authenticated"
SECRET = "a-test-signing-secret-of-at-least-32-characters"


@dataclass
class SigningKey:
    """A private key, its key id and algorithm, and its public JWK."""

    kid: str
    algorithm: str
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        writer = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        found: dict[str, Any] = writer.to_jwk(public, as_dict=True)
        return {**found, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, self.algorithm, headers={"kid": self.kid})


def claims(sub: str | None = None, **changes: Any) -> dict[str, Any]:
    """Claims as Supabase issues them: sub, aud, role, exp an hour away."""
    now = int(time.time())
    given: dict[str, Any] = {
        "sub": sub or str(uuid.uuid4()),
        "aud": AUDIENCE,
        "role": "authenticated",
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    given.update(changes)
    return {k: v for k, v in given.items() if v is not None}


def hs256(sub: str | None = None, secret: str = SECRET, **changes: Any) -> str:
    """A JWT signed with the shared secret."""
    return jwt.encode(claims(sub, **changes), secret, "HS256")


@dataclass
class JwksServer:
    """Serves GET /jwks.json with the keys currently published; counts the fetches."""

    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps({"keys": [key.jwk() for key in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.shutdown()
        self._http.server_close()
