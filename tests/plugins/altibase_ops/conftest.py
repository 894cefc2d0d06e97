"""Airflow Connections (``altibase_node1``, ``altibase_node2``) to the ``sim`` fixture's servers.

Defined as AIRFLOW_CONN_* environment variables, which is how Airflow itself resolves them
outside a metadata database; the hook, sensors and operators look them up like in production.
"""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def altibase_conns(sim, monkeypatch) -> dict[str, str]:
    """server name -> Airflow conn id, for every server of the running simulator."""
    conns = {}
    for server in sim.servers():
        conn_id = f"altibase_{server['name']}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "altibase", "host": server["host"], "port": server["port"],
            "login": "SYS", "password": "manager", "extra": {"backend": "simulator"},
        }))
        conns[server["name"]] = conn_id
    return conns
