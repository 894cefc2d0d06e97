"""One Airflow pool per Altibase server: how DAGs keep SYSDBA work on a server strictly serial.

Why: after ``ADMIN_MODE = 1`` only a SYSDBA login is accepted, and a server allows one SYSDBA
session at a time (a second login gets ERR-41041). Two tasks talking to the same server at once —
an iSQL step and a sensor's poke, or steps of two DAG runs — would refuse each other's login.

How: every task that opens a SYSDBA session on server ``X`` (IsqlOperator, the three sensors) runs
with ``pool=server_pool("X")``; the pool has one slot. Create the pools once per deployment with
``include_deferred=True``, so that a deferred sensor keeps its slot while the triggerer polls (its
polls are SYSDBA logins too)::

    airflow pools import pools.json      # pools.json = json.dumps(pool_definitions(["node1", "node2"]))
    # or: airflow pools set altibase_node1 1 "SYSDBA work on node1" --include-deferred

Tasks on different servers (A1 and A2 of a pair) are not serialised against each other. A sensor
that still meets a busy server (e.g. a person logged in as SYSDBA) reads it as "not yet" and polls
again (see ``state.checks.run_check``).
"""

from __future__ import annotations

import re

from altibase_ops.sql.identifiers import SERVER_NAME_PATTERN

POOL_PREFIX = "altibase_"


def server_pool(server: str) -> str:
    """The pool of one server: ``altibase_<server>`` with ``-``/``.`` folded to ``_``, lower case."""
    if not SERVER_NAME_PATTERN.fullmatch(server or ""):
        raise ValueError(f"{server!r} is not a server name (letters, digits, '_', '-', '.'; up to 63)")
    return POOL_PREFIX + re.sub(r"[-.]", "_", server.lower())


def pool_definitions(servers: list[str]) -> dict[str, dict]:
    """``airflow pools import`` content: one single-slot pool per server, counting deferred tasks."""
    return {
        server_pool(server): {
            "slots": 1,
            "description": f"SYSDBA work on Altibase server {server}: one task at a time",
            "include_deferred": True,
        }
        for server in servers
    }
