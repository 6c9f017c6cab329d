"""A RabbitMQ virtual host of a test's own on this machine's server (rabbitmqctl)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import quote

import pika
import pika.exceptions

HOST = "127.0.0.1"
PORT = 5672
USER = PASSWORD = "guest"  # the server's default user, allowed from localhost only


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl quietly; return its output."""
    command = ["rabbitmqctl", "--quiet", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def available() -> str | None:
    """Why RabbitMQ cannot be used here, or None when it can."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmq-server is not installed (apt-get install rabbitmq-server; .ci/run does)"
    try:
        pika.BlockingConnection(
            pika.URLParameters(f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/")
        ).close()
    except pika.exceptions.AMQPError:
        return f"RabbitMQ does not answer at {HOST}:{PORT} (.ci/run starts it)"
    return None


@dataclass
class RabbitVhost:
    """One virtual host: its queues are the test's alone, and it can lose them."""

    name: str

    @property
    def url(self) -> str:
        """The AMQP URL of this virtual host."""
        return f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{quote(self.name, safe='')}"

    def create(self) -> None:
        """Add the virtual host and let the default user in."""
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, USER, ".*", ".*", ".*")

    def delete(self) -> None:
        """Remove the virtual host and every queue in it."""
        rabbitmqctl("delete_vhost", self.name)

    def messages(self, column: str = "messages") -> dict[str, int]:
        """Messages per queue: ready and unacknowledged together, or `messages_ready`."""
        out = rabbitmqctl("list_queues", "-p", self.name, "name", column, "--no-table-headers")
        pairs = (line.split() for line in out.splitlines() if line.strip())
        return {name: int(count) for name, count in pairs}

    def purge(self) -> int:
        """Delete every ready message of every queue; return how many there were.

        Messages a consumer holds unacknowledged stay: RabbitMQ redelivers them if the
        consumer's connection drops.
        """
        ready = self.messages("messages_ready")
        for queue in ready:
            rabbitmqctl("purge_queue", "-p", self.name, queue)
        return sum(ready.values())
