"""A private PgBouncer in transaction mode in front of the test PostgreSQL (Debian's package)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from sqlalchemy import make_url

from devstack.processes import Child, free_port, start
from harness.waiting import wait_for

BINARIES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
# PgBouncer refuses to run as root; it drops to this user (Debian's PostgreSQL owner).
RUN_AS = "postgres"

INI = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
max_db_connections = {pool_size}
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
"""


def binary() -> str | None:
    """PgBouncer's path, or None where it is not installed."""
    return shutil.which("pgbouncer") or next((b for b in BINARIES if os.path.exists(b)), None)


@dataclass
class PgBouncer:
    """PgBouncer on a free port, pooling `server_url`'s server in transaction mode."""

    directory: Path
    server_url: str
    pool_size: int = 20
    port: int = field(default_factory=free_port)
    child: Child | None = None

    def url(self, database_url: str) -> str:
        """The same database as `database_url`, reached through this PgBouncer."""
        return str(make_url(database_url).set(host="127.0.0.1", port=self.port))

    def start(self) -> None:
        """Write the configuration, start PgBouncer and wait until it lets a client in."""
        server = make_url(self.server_url)
        user = server.username or "postgres"
        self.directory.chmod(0o755)
        (self.directory / "userlist.txt").write_text(f'"{user}" ""\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            INI.format(
                host=server.host or "127.0.0.1",
                port=server.port or 5432,
                listen_port=self.port,
                directory=self.directory,
                pool_size=self.pool_size,
            )
        )
        command = [str(binary())] + (["-u", RUN_AS] if os.geteuid() == 0 else []) + [str(ini)]
        self.child = start("pgbouncer", command, env=os.environ, log=self.directory / "log")
        wait_for(lambda: self.answers(self.url(self.server_url)), timeout=15)

    def answers(self, url: str) -> bool:
        """Whether a client gets an answer through PgBouncer."""
        try:
            connection = psycopg2.connect(
                str(make_url(url).set(drivername="postgresql")), connect_timeout=2
            )
        except psycopg2.Error:
            return False
        connection.close()
        return True

    def stop(self) -> None:
        """Stop PgBouncer (SIGKILL: its clients only lose their connections)."""
        if self.child is not None:
            self.child.kill()
            self.child = None
