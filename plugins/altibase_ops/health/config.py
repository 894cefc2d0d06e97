"""Which pairs the health DAG checks and when: from the environment, validated when the file is parsed.

A typo is an import error in the UI, not a red run at 3 am. Reads no Variable, Connection or
database, so it is cheap at parse time.
"""

from __future__ import annotations

import os
from typing import Any

from altibase_ops.pairs import DEFAULT_PAIRS, PAIRS_ENV, InvalidPairsError, validate_pairs
from altibase_ops.pairs import pairs_from_env as fleet_pairs

__all__ = ["DEFAULT_PAIRS", "InvalidPairsError", "pairs_from_env", "schedule_from_env", "targets"]

SCHEDULE_ENV = "ALTIBASE_HEALTH_SCHEDULE"
HEALTH_PAIRS_ENV = "ALTIBASE_HEALTH_PAIRS"  # overrides the fleet ($ALTIBASE_PAIRS) for this DAG only
DEFAULT_SCHEDULE = "*/10 * * * *"
SENDING_ROLES = {"active", "active1", "active2"}  # in Active-Standby only the active sends


def schedule_from_env(environ: dict[str, str] | None = None) -> str:
    """The DAG's schedule: ``$ALTIBASE_HEALTH_SCHEDULE`` (cron or preset), else every 10 minutes."""
    value = (os.environ if environ is None else environ).get(SCHEDULE_ENV, "").strip()
    return value or DEFAULT_SCHEDULE


def pairs_from_env(environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The pairs scheduled runs check: ``$ALTIBASE_HEALTH_PAIRS`` if set, else the fleet
    (``$ALTIBASE_PAIRS``, see ``altibase_ops.pairs``), else ``DEFAULT_PAIRS``. Validated at parse time."""
    environ = os.environ if environ is None else environ
    if environ.get(HEALTH_PAIRS_ENV, "").strip():
        return fleet_pairs(environ, HEALTH_PAIRS_ENV)
    return fleet_pairs(environ, PAIRS_ENV)


def targets(pairs: Any) -> list[dict[str, Any]]:
    """One check target per server of every pair, after validating the whole list."""
    out: list[dict[str, Any]] = []
    for pair in validate_pairs(pairs):
        servers = pair.servers
        for server, peer in (servers, servers[::-1]):
            out.append({"label": f"{pair.name}/{server['name']}", "pair": pair.name,
                        "replication_name": pair.replication_name, "topology": pair.topology,
                        "server": server["name"], "conn_id": server["conn_id"], "role": server["role"],
                        "peer": peer["name"], "expects_sender": server["role"] in SENDING_ROLES})
    return out
