"""Which addresses a webhook may reach: public ones only, unless the operator allows private.

Checked on the addresses a name resolves to, at connect time (so a name that resolves to a
public address when registered and a private one later is still refused), and again for
every redirect, since each is a new connection.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from core.errors import InvalidInput

MAX_URL_LENGTH = 2048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenAddress(InvalidInput):
    """A webhook URL names or resolves to an address deliveries may not reach."""


def forbidden(address: Address) -> bool:
    """Whether an address is loopback, private, link-local or otherwise not public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses `host` resolves to, or ForbiddenAddress if any of them is forbidden."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ForbiddenAddress(f"{host} does not resolve", field="url") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not allow_private:
        for text in addresses:
            if forbidden(ipaddress.ip_address(text.split("%")[0])):
                raise ForbiddenAddress(
                    f"{host} resolves to a loopback, private or link-local address", field="url"
                )
    return addresses


def check_url(url: str, allow_private: bool, require_https: bool) -> str:
    """Return a webhook URL that may be registered, or raise InvalidInput saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url must be at most {MAX_URL_LENGTH} characters", field="url")
    parts = urlsplit(url)
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        wanted = "an https URL" if require_https else "an http or https URL"
        raise InvalidInput(f"url must be {wanted}", field="url")
    if parts.username or parts.password:
        raise InvalidInput("url must not carry credentials", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidInput("url has an invalid port", field="url") from exc
    resolve(parts.hostname, port, allow_private)
    return url
