"""Two web, three worker and two daemon processes, each as on a host of its own, under faults.

Each process runs from a folder of its own with nothing shared but PostgreSQL and the
broker (no PROMETHEUS_MULTIPROC_DIR, no data folder). A web process, a worker and both
daemons are hit (SIGKILL, SIGSTOP) while jobs run; every invariant must hold after, and
each web process's /metrics must tell the same database-derived figures.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.database import Database
from core.users import NewUser
from devstack.processes import free_port
from harness.stack import WORKER_READY, RedisServer, Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, slice_states, submit
from tests.support.brokers import BrokerServer

JOBS_PER_WEB = 8
ITEMS = 200
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "100"}


def host(tmp_path: Path, env: dict[str, str], name: str) -> Stack:
    """A stack whose processes run from a folder of their own."""
    folder = tmp_path / name
    folder.mkdir()
    return Stack(env, folder / "logs", cwd=folder)


def figures(url: str) -> dict[str, float]:
    """The database-derived figures one web process's /metrics shows."""
    text = httpx.get(url + "/metrics", timeout=10).text
    shown: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("tally_items_created_total", "tally_outbox_backlog"):
                shown[sample.name] = sample.value
    return shown


def test_seven_processes_sharing_only_the_servers_stay_exact_under_faults(
    fault_env: dict[str, str], any_broker: BrokerServer, db: Database, user: NewUser, tmp_path: Path
) -> None:
    env = {**fault_env, **any_broker.env()}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    hosts = {name: host(tmp_path, env, name) for name in ("d1", "d2", "w1", "w2", "k1", "k2", "k3")}
    try:
        daemons = [hosts["d1"].reconcile(), hosts["d2"].reconcile()]
        webs = [hosts["w1"].web(), hosts["w2"].web()]
        workers = [hosts[k].worker(threads=4, env=LATENCY) for k in ("k1", "k2", "k3")]
        for url in webs:
            submit(url, user.token, [ITEMS] * JOBS_PER_WEB)
        wait_for(lambda: slice_states(db).get("done", 0) >= 6, timeout=60)

        hosts["w1"].children[-1].kill()  # a web process dies; the other one serves on
        workers[0].kill()
        daemons[0].signal_group(signal.SIGSTOP)  # a daemon freezes past its leader lease
        wait_for(lambda: slice_states(db).get("done", 0) >= 14, timeout=60)
        daemons[1].kill()  # ... and the other one dies
        workers[0] = hosts["k1"].worker(threads=4, env=LATENCY)
        workers[0].wait_for_log(WORKER_READY, timeout=60)
        daemons[0].signal_group(signal.SIGCONT)
        faults_over = time.monotonic()
        webs[0] = hosts["w1"].web()

        settle(db, faults_over, "web, worker and daemons hit on seven hosts")
        assert_exact(db, all_successful=True)
        seen = [figures(url) for url in webs]
        print(f"\n[many hosts] /metrics of each web process: {seen}")
        assert seen[0] == seen[1]
        assert seen[0]["tally_items_created_total"] == 2 * JOBS_PER_WEB * ITEMS
        assert seen[0]["tally_outbox_backlog"] == 0
    except BaseException:
        for stack in hosts.values():
            print(stack.report())
        raise
    finally:
        for stack in hosts.values():
            stack.stop_all()


def summed(url: str, name: str) -> float:
    """One sample's value summed over its labels, as one process exposes it."""
    text = httpx.get(url, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_the_measurements_of_every_process_add_up_when_each_is_scraped(
    fault_env: dict[str, str], redis_server: RedisServer, db: Database, user: NewUser,
    tmp_path: Path,
) -> None:  # fmt: skip
    env = {**fault_env, "REDIS_URL": redis_server.url, "TALLY_DRAMATIQ_METRICS": "true"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    daemons, workers = [], []
    hosts = [host(tmp_path, env, f"h{n}") for n in range(5)]
    try:
        for stack in hosts[:2]:
            port = free_port()
            stack.reconcile(TALLY_METRICS_PORT=str(port))
            daemons.append(f"http://127.0.0.1:{port}/metrics")
        url = hosts[0].web()
        for stack in hosts[2:]:
            folder, port = stack.cwd / "metrics", free_port()
            folder.mkdir()
            shared = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "dramatiq_prom_db": str(folder)}
            stack.worker(threads=4, env={**shared, **LATENCY, "dramatiq_prom_port": str(port)})
            workers.append(f"http://127.0.0.1:{port}/")
        jobs = submit(url, user.token, [ITEMS] * 6)
        settle(db, time.monotonic(), "no fault", after="the submits")
        calls = "tally_provider_call_seconds_count"
        wait_for(lambda: sum(summed(w, calls) for w in workers) == 6 * ITEMS, timeout=30)
        rows = "tally_apply_batch_rows_sum"
        wait_for(lambda: sum(summed(d, rows) for d in daemons) == len(jobs), timeout=30)
        print(
            f"\n[metrics] provider calls per worker host {[summed(w, calls) for w in workers]}, "
            f"outbox rows applied per daemon {[summed(d, rows) for d in daemons]}"
        )
    finally:
        for stack in hosts:
            stack.stop_all()
