"""`tally dev`: the whole service on this machine, with private servers unless URLs are given."""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

from core.errors import ConfigurationError
from core.settings import normalize_database_url
from devstack.discovery import RunningStack, publish, withdraw
from devstack.metrics import metrics_environment
from devstack.ownership import DataDirClaim
from devstack.supervisor import Supervisor

DATABASE_NAME = "tally"
FERNET_KEY_FILE = "fernet.key"
WEB_READY_TIMEOUT = 30.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dev` sub-command."""
    parser = subparsers.add_parser(
        "dev",
        help="run every Procfile process locally (private PostgreSQL and Redis by default)",
        description="Run release, web, worker and reconcile. Without DATABASE_URL and "
        "REDIS_URL, start private PostgreSQL and Redis servers in the data folder.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".tally"), help="default ./.tally")
    parser.add_argument("--port", type=_positive, default=8000, help="web port (default 8000)")
    parser.add_argument(
        "--workers", type=_positive, default=1, help="number of `worker` processes (default 1)"
    )
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    """Parse a positive integer argument."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _stop_and_say(supervisor: Supervisor, what: str, stop: Callable[[], None]) -> None:
    """Stop something and say so."""
    stop()
    supervisor.say(f"{what} stopped")


def fernet_key(data_dir: Path, env: Mapping[str, str]) -> str:
    """Return TALLY_FERNET_KEY, else the data folder's key (created, mode 0600, on first use)."""
    given = env.get("TALLY_FERNET_KEY", "")
    if given:
        return given
    path = data_dir / FERNET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    from core.crypto import generate_key

    key = generate_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


def children_environment(
    base: Mapping[str, str],
    *,
    database_url: str,
    redis_url: str,
    port: int,
    key: str,
    metrics: Mapping[str, str],
) -> dict[str, str]:
    """Return the environment of the Procfile's processes: ours plus the run's settings."""
    return {
        **base,
        **metrics,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "TALLY_FERNET_KEY": key,
        "TALLY_ENV": "development",
        # Webhook receivers under development listen on this machine.
        "TALLY_WEBHOOK_ALLOW_PRIVATE": base.get("TALLY_WEBHOOK_ALLOW_PRIVATE", "true"),
    }


def start_servers(data_dir: Path, stack: ExitStack, supervisor: Supervisor) -> tuple[str, str]:
    """Return the database and Redis URLs, starting private servers for those not given."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if database_url:
        supervisor.say("using DATABASE_URL from the environment")
    else:
        from devstack.embedded import EmbeddedPostgres

        postgres = EmbeddedPostgres.start(data_dir)
        stack.callback(_stop_and_say, supervisor, "PostgreSQL", postgres.stop)
        supervisor.watch(f"PostgreSQL (pid {postgres.pid})", postgres.alive)
        database_url = postgres.ensure_database(DATABASE_NAME)
        supervisor.say(f"private PostgreSQL (pid {postgres.pid}) in {postgres.pgdata}")
    if redis_url:
        supervisor.say("using REDIS_URL from the environment")
    else:
        from devstack.embedded import EmbeddedRedis

        redis = EmbeddedRedis.start(data_dir)
        stack.callback(_stop_and_say, supervisor, "Redis", redis.stop)
        supervisor.watch(f"Redis (pid {redis.pid})", redis.alive)
        redis_url = redis.url
        supervisor.say(f"private Redis (pid {redis.pid}) at {redis_url}")
    return database_url, redis_url


def ensure_port_free(port: int) -> None:
    """Refuse to start when the web port is taken, before anything else is started."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            raise ConfigurationError(f"port {port} is in use; choose another with --port") from exc


def wait_for_port(supervisor: Supervisor, port: int, timeout: float) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port, unless the run stops."""
    deadline = time.monotonic() + timeout
    while supervisor.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def dashboard_link(url: str, token: str) -> str:
    """Return a link that opens the dashboard signed in with `token`.

    The token rides in the fragment, which a browser never sends: no server log sees it. The
    dashboard reads it once, keeps it as a pasted token, and removes it from the address bar.
    """
    return f"{url}/#token={token}"


def banner(stack: RunningStack, token: str, data_dir: Path) -> str:
    """Return what to tell the developer once everything runs."""
    return "\n".join(
        [
            "",
            f"  tally is running at {stack.url}",
            f"  dashboard, signed in as the demo user: {dashboard_link(stack.url, token)}",
            f"  database: {stack.database_url}",
            f"  redis:    {stack.redis_url}",
            f"  demo token (also in {data_dir / 'demo-token'}):",
            f"    TOKEN={token}",
            "  try:",
            f'    curl -H "Authorization: Bearer $TOKEN" -X POST {stack.url}/api/jobs'
            " -d '{\"count\": 50}'",
            "  `tally` commands run in this folder use this stack; elsewhere, paste:",
            f"    {stack.export_line()}",
            "",
            "  Ctrl-C to stop",
            "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    """Run the service until Ctrl-C or SIGTERM, then stop everything; return the exit status."""
    data_dir = Path(args.data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    claim = DataDirClaim(data_dir)
    claim.acquire()
    try:
        ensure_port_free(args.port)
        return run_claimed(args, data_dir)
    finally:
        claim.release()


def run_claimed(args: argparse.Namespace, data_dir: Path) -> int:
    """Start the servers and the formation in a data folder this process holds."""
    supervisor = Supervisor()
    with supervisor.handle_signals(), ExitStack() as stack:
        try:
            database_url, redis_url = start_servers(data_dir, stack, supervisor)
        except ConfigurationError:
            if supervisor.signalled:  # Ctrl-C in the terminal also interrupts initdb
                return 0
            raise
        stack.callback(_stop_and_say, supervisor, "all processes", supervisor.stop)
        env = children_environment(
            os.environ,
            database_url=database_url,
            redis_url=redis_url,
            port=args.port,
            key=fernet_key(data_dir, os.environ),
            metrics=metrics_environment(data_dir, os.environ),
        )
        return serve(supervisor, env, args, data_dir)


def serve(
    supervisor: Supervisor, env: Mapping[str, str], args: argparse.Namespace, data_dir: Path
) -> int:
    """Run release, then the other processes until a signal (0) or a process exits (1)."""
    status = supervisor.run_release(env) if supervisor.poll() is None else 0
    if supervisor.signalled:
        return 0
    if status != 0:
        supervisor.say("release failed; not starting the other processes")
        return 1
    from devstack.demo_user import ensure_demo_user

    _user_id, token = ensure_demo_user(normalize_database_url(env["DATABASE_URL"]), data_dir)
    supervisor.start(env, {"worker": args.workers})
    wait_for_port(supervisor, args.port, WEB_READY_TIMEOUT)
    running = RunningStack(
        url=f"http://127.0.0.1:{args.port}",
        database_url=env["DATABASE_URL"],
        redis_url=env["REDIS_URL"],
        token_file=str(data_dir / "demo-token"),
    )
    if supervisor.poll() is None:
        publish(data_dir, running)
        supervisor.announce(banner(running, token, data_dir))
    try:
        reason = supervisor.wait()
    finally:
        withdraw(data_dir)
    supervisor.say(f"stopping ({reason})")
    return 0 if supervisor.signalled else 1
