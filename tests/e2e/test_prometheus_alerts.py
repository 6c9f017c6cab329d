"""The shipped rules on a real Prometheus scraping real tally processes.

Prometheus (Debian's server; .ci/run installs it) scrapes a web process's /metrics every
second and evaluates ops/prometheus/rules.yml as shipped, except that each alert's `for:`
is cut to one second so the test waits for the daemons' lease, not for minutes. Stopping
the reconcile daemons must fire TallyNoReconcileLeader through Prometheus's HTTP API, and
starting one again must resolve it. Every query of the Grafana dashboard must be accepted.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.migrate import PROJECT_ROOT
from devstack.processes import free_port
from harness.stack import DAEMON_STARTED, Stack
from harness.waiting import wait_for

PROMETHEUS = shutil.which("prometheus")
RULES = PROJECT_ROOT / "ops" / "prometheus" / "rules.yml"
DASHBOARD = PROJECT_ROOT / "ops" / "grafana" / "tally.json"
FAST = {
    "TALLY_APPLY_INTERVAL": "0.2",
    "TALLY_HEARTBEAT_INTERVAL": "0.3",
    "TALLY_LEADER_RETRY_SECONDS": "0.5",
    "TALLY_LEADER_LEASE_SECONDS": "2",
}
ALERT = "TallyNoReconcileLeader"


def prometheus_config(folder: Path, web_url: str) -> Path:
    """A config scraping the web process every second, with the shipped rules' alerts sped up."""
    rules = folder / "rules.yml"
    rules.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 1s", RULES.read_text()))
    config = folder / "prometheus.yml"
    target = web_url.removeprefix("http://")
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {"job_name": "tally", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    return config


def api(url: str, path: str, **params: str) -> Any:
    """The `data` of a Prometheus API answer (which must say success)."""
    answer = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def alert_state(url: str, name: str) -> str:
    """'firing', 'pending' or 'inactive' for an alert of the rules."""
    alerts = api(url, "alerts")["alerts"]
    states = [a["state"] for a in alerts if a["labels"]["alertname"] == name]
    return states[0] if states else "inactive"


def value(url: str, query: str) -> float | None:
    """The single value of an instant query, or None without a sample."""
    result = api(url, "query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.skipif(
    PROMETHEUS is None, reason="Prometheus is not installed (apt-get install prometheus)"
)
def test_stopping_the_daemons_fires_the_leader_alert_and_a_daemon_resolves_it(
    process_env: dict[str, str], tmp_path: Path, db: Any
) -> None:
    with Stack({**process_env, **FAST}, tmp_path / "logs") as stack:
        web = stack.web()
        daemons = [stack.reconcile(), stack.reconcile()]
        for daemon in daemons:
            daemon.wait_for_log(DAEMON_STARTED, timeout=30)
        port = free_port()
        command = [
            str(PROMETHEUS),
            f"--config.file={prometheus_config(tmp_path, web)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        stack.start("prometheus", command)
        prometheus = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(prometheus), timeout=30)

        wait_for(lambda: value(prometheus, 'up{job="tally"}') == 1, timeout=30)
        wait_for(lambda: value(prometheus, "max(tally_reconcile_leader)") == 1, timeout=30)
        assert alert_state(prometheus, ALERT) == "inactive"
        for query in dashboard_queries():
            api(prometheus, "query", query=query)  # the dashboard's every query is accepted

        for daemon in daemons:
            daemon.stop()
        wait_for(lambda: alert_state(prometheus, ALERT) == "firing", timeout=60)
        firing = [a for a in api(prometheus, "alerts")["alerts"] if a["state"] == "firing"]
        assert {a["labels"]["alertname"] for a in firing} >= {ALERT}

        stack.reconcile()
        wait_for(lambda: alert_state(prometheus, ALERT) == "inactive", timeout=60)


def dashboard_queries() -> list[str]:
    """Every query of the Grafana dashboard's panels."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
