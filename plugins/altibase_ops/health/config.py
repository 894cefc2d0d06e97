"""Which pairs the health DAG checks and when: from the environment, validated when the file is parsed.

A typo is an import error in the UI, not a red run at 3 am. Reads no Variable, Connection or
database, so it is cheap at parse time.
"""

from __future__ import annotations

import json
import os
from typing import Any

from altibase_ops.ddl.request import TOPOLOGY_ROLES
from altibase_ops.sql.identifiers import (
    CONN_ID_PATTERN,
    SERVER_NAME_PATTERN,
    InvalidIdentifierError,
    identifier,
)

SCHEDULE_ENV = "ALTIBASE_HEALTH_SCHEDULE"
PAIRS_ENV = "ALTIBASE_HEALTH_PAIRS"
DEFAULT_SCHEDULE = "*/10 * * * *"
DEFAULT_PAIRS: list[dict[str, Any]] = [{
    "name": "pair1", "replication_name": "REP1",
    "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
}]
SENDING_ROLES = {"active", "active1", "active2"}  # in Active-Standby only the active sends


class InvalidPairsError(ValueError):
    """The ``pairs`` configuration is unusable; the message names the entry."""


def schedule_from_env(environ: dict[str, str] | None = None) -> str:
    """The DAG's schedule: ``$ALTIBASE_HEALTH_SCHEDULE`` (cron or preset), else every 10 minutes."""
    value = (os.environ if environ is None else environ).get(SCHEDULE_ENV, "").strip()
    return value or DEFAULT_SCHEDULE


def pairs_from_env(environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The pairs scheduled runs check: ``$ALTIBASE_HEALTH_PAIRS`` (JSON), else ``DEFAULT_PAIRS``.

    Validated here, at parse time, so a typo is an import error in the UI, not a red run at 3 am.
    """
    raw = (os.environ if environ is None else environ).get(PAIRS_ENV, "").strip()
    if not raw:
        return DEFAULT_PAIRS
    try:
        pairs = json.loads(raw)
    except ValueError as exc:
        raise InvalidPairsError(f"{PAIRS_ENV} is not JSON: {exc}") from None
    targets(pairs)
    return pairs


def targets(pairs: Any) -> list[dict[str, Any]]:
    """One check target per server of every pair, after validating the whole list."""
    if not isinstance(pairs, list) or not pairs:
        raise InvalidPairsError("pairs: give at least one pair {name, replication_name, servers}")
    out: list[dict[str, Any]] = []
    labels: set[str] = set()
    for i, pair in enumerate(pairs):
        where = f"pairs[{i}]"
        if not isinstance(pair, dict) or set(pair) - {"name", "replication_name", "servers"}:
            raise InvalidPairsError(f"{where}: expected an object with name, replication_name and servers")
        name = pair.get("name")
        if not isinstance(name, str) or not SERVER_NAME_PATTERN.fullmatch(name):
            raise InvalidPairsError(f"{where}.name: {name!r} is not a name (letters, digits, _ . -)")
        try:
            replication = identifier(pair.get("replication_name"))
        except InvalidIdentifierError as exc:
            raise InvalidPairsError(f"{where}.replication_name: {exc}") from None
        servers = pair.get("servers")
        if not isinstance(servers, list) or len(servers) != 2:
            raise InvalidPairsError(f"{where}.servers: a pair is exactly two entries {{name, conn_id, role}}")
        for j, server in enumerate(servers):
            if (not isinstance(server, dict) or set(server) != {"name", "conn_id", "role"}
                    or not SERVER_NAME_PATTERN.fullmatch(str(server["name"])) or not CONN_ID_PATTERN.fullmatch(str(server["conn_id"]))):
                raise InvalidPairsError(f"{where}.servers[{j}]: expected {{name, conn_id, role}} with a server "
                                        f"name and an Airflow connection id, got {server!r}")
        roles = sorted(s["role"] for s in servers)
        topology = next((t for t, r in TOPOLOGY_ROLES.items() if sorted(r) == roles), None)
        if topology is None:
            raise InvalidPairsError(f"{where}.servers: roles {roles} are neither active/standby nor "
                                    "active1/active2")
        if servers[0]["name"] == servers[1]["name"] or servers[0]["conn_id"] == servers[1]["conn_id"]:
            raise InvalidPairsError(f"{where}.servers: the two servers need different names and conn_ids")
        for server, peer in (servers, servers[::-1]):
            label = f"{name}/{server['name']}"
            if label in labels:
                raise InvalidPairsError(f"{where}: {label} is listed twice (pair names must be unique)")
            labels.add(label)
            out.append({"label": label, "pair": name, "replication_name": replication, "topology": topology,
                        "server": server["name"], "conn_id": server["conn_id"], "role": server["role"],
                        "peer": peer["name"], "expects_sender": server["role"] in SENDING_ROLES})
    return out
