"""Webhook signatures and the addresses deliveries may reach."""

from __future__ import annotations

import ipaddress

import pytest

from core.errors import InvalidInput
from core.webhook_address import check_url, forbidden
from core.webhook_signing import new_secret, signature, verify


def test_a_signature_verifies_only_for_its_secret_body_and_time() -> None:
    secret = new_secret()
    header = signature(secret, 1_700_000_000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=")
    assert verify(secret, header, b'{"a":1}', now=1_700_000_100)
    assert not verify(secret, header, b'{"a":2}', now=1_700_000_100)
    assert not verify(new_secret(), header, b'{"a":1}', now=1_700_000_100)
    assert not verify(secret, header, b'{"a":1}', now=1_700_001_000)  # a replay, too late
    assert not verify(secret, "v1=00", b'{"a":1}')


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_inside_addresses_are_forbidden(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "https_only", "words"),
    [
        ("http://93.184.216.34/x", True, "https"),
        ("https://127.0.0.1/x", True, "loopback"),
        ("https://user:pw@93.184.216.34/x", True, "credentials"),
        ("https://93.184.216.34:99999/x", True, "port"),
        ("https://" + "a" * 2050, True, "2048"),
        ("gopher://93.184.216.34/", False, "http"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, https_only: bool, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_url(url, allow_private=False, require_https=https_only)


def test_private_addresses_pass_when_the_operator_allows_them() -> None:
    assert check_url("http://127.0.0.1:9/x", allow_private=True, require_https=False)
