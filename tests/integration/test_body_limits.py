"""A real uvicorn server refuses large bodies with a JSON 413 and its memory stays flat."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from core.database import Database
from core.users import NewUser, create_user
from harness.stack import Stack

MB = 1024 * 1024
SENT = 100 * MB  # what a client tries to send
GROWTH = 40 * MB  # the most the server's memory may grow meanwhile


@dataclass
class Web:
    """A web process: its address and its process."""

    host: str
    port: int
    process: psutil.Process

    def rss(self) -> int:
        """Resident memory of the server, in bytes."""
        return int(self.process.memory_info().rss)


@pytest.fixture
def web(process_env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[Web]:
    stack = Stack(process_env, tmp_path / "logs")
    try:
        address = urlsplit(stack.web())
        assert address.hostname and address.port
        yield Web(address.hostname, address.port, psutil.Process(stack.children[0].pid))
    finally:
        stack.stop_all()


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "big", credits=10)


def head(user: NewUser, length: str) -> bytes:
    """The request line and headers of a submit whose body follows."""
    return (
        "POST /api/jobs HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {user.token}\r\nContent-Type: application/json\r\n{length}\r\n"
    ).encode()


def keep_sending(connection: socket.socket, pieces: Iterator[bytes], stop: threading.Event) -> None:
    """Send until the pieces run out, the server stops reading, or the test is done."""
    try:
        for piece in pieces:
            if stop.is_set():
                return
            connection.sendall(piece)
    except OSError:
        return


def answer_while_sending(web: Web, request_head: bytes, pieces: Iterator[bytes]) -> bytes:
    """Send a head, then keep sending the body from a thread; return the first answer read."""
    stop = threading.Event()
    with socket.create_connection((web.host, web.port), timeout=20) as connection:
        connection.sendall(request_head)
        sender = threading.Thread(target=keep_sending, args=(connection, pieces, stop))
        sender.start()
        received = b""
        try:
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        finally:
            stop.set()
            connection.shutdown(socket.SHUT_RDWR)
            sender.join(timeout=20)
    return received


def assert_413(answer: bytes) -> None:
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower()
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def megabytes(total: int) -> Iterator[bytes]:
    """A JSON-looking body, one megabyte at a time."""
    yield b'{"count": 1, "pad": "'
    for _ in range(total // MB):
        yield b"x" * MB


def chunked(total: int) -> Iterator[bytes]:
    """The same body in HTTP/1.1 chunked transfer encoding, which says no length up front."""
    for piece in megabytes(total):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


def test_a_declared_length_above_the_limit_is_refused_before_reading(
    web: Web, user: NewUser
) -> None:
    before = web.rss()
    answer = answer_while_sending(web, head(user, f"Content-Length: {SENT}\r\n"), megabytes(SENT))
    assert_413(answer)
    assert web.rss() - before < GROWTH


def test_a_chunked_body_is_refused_once_it_passes_the_limit(web: Web, user: NewUser) -> None:
    before = web.rss()
    answer = answer_while_sending(web, head(user, "Transfer-Encoding: chunked\r\n"), chunked(SENT))
    assert_413(answer)
    assert web.rss() - before < GROWTH
