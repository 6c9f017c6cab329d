"""Metrics under `tally dev` as in production: every process writes to one shared folder.

prometheus-client's multiprocess mode keeps each process's measurements in files under
PROMETHEUS_MULTIPROC_DIR; the web process's /metrics merges them, so the worker's provider
calls, the daemons' applies and Dramatiq's own message metrics (TALLY_DRAMATIQ_METRICS, whose
dramatiq_prom_db names the same folder) appear beside the web's. The folder is emptied at
each start: files left by a previous run's processes would otherwise be counted again.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from devstack.processes import free_port

METRICS_FOLDER = "metrics"


def metrics_environment(data_dir: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Return the metrics variables for the processes, preparing the data folder's share.

    A PROMETHEUS_MULTIPROC_DIR given in the environment is used as it is, never emptied.
    """
    folder = base.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not folder:
        shared = data_dir / METRICS_FOLDER
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(mode=0o700)
        folder = str(shared)
    return {
        "PROMETHEUS_MULTIPROC_DIR": folder,
        "TALLY_DRAMATIQ_METRICS": base.get("TALLY_DRAMATIQ_METRICS", "true"),
        "dramatiq_prom_db": folder,
        # Dramatiq's own exposition (the same families as /metrics): this machine only, on
        # a free port rather than 9191, so that two stacks on one machine both start.
        "dramatiq_prom_host": base.get("dramatiq_prom_host", "127.0.0.1"),
        "dramatiq_prom_port": base.get("dramatiq_prom_port", str(free_port())),
    }
