"""Preflight's gates that need a server: one server behind two Connections, a refused login."""

from __future__ import annotations

import json
import logging

import pytest

from altibase_ops.ddl.preflight import PreflightError, check_connections, preflight
from altibase_ops.ddl.request import DdlRequest
from altibase_sim.scenarios import connection_uri

log = logging.getLogger("preflight-gates")


def request(conn1: str = "altibase_node1", conn2: str = "altibase_node2") -> DdlRequest:
    return DdlRequest.from_params({
        "servers": [{"name": "node1", "conn_id": conn1, "role": "active"},
                    {"name": "node2", "conn_id": conn2, "role": "standby"}],
        "topology": "active_standby", "service_mode": "can_stop", "replication_name": "REP1",
        "tables": ["SYS.T1"], "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"],
        "service_control": {"mode": "manual"}})


def test_two_connections_to_one_server_are_refused_by_address_and_by_identity(pair, monkeypatch):
    node1 = pair.server("node1")
    # the same address written two ways: refused before any server is read
    monkeypatch.setenv("AIRFLOW_CONN_TWIN", connection_uri({**node1, "host": "localhost"}))
    with pytest.raises(PreflightError, match="both point at"):
        check_connections(request(conn2="twin"))
    # an address that hides it (a proxy, a second Service): the servers' own identity tells
    monkeypatch.setattr("altibase_ops.ddl.preflight.server_address", lambda conn_id: (conn_id, 1))
    check_connections(request(conn2="twin"))
    with pytest.raises(PreflightError, match="reach the same server"):
        preflight(request(conn2="twin"), log)
    preflight(request(), log)  # the real pair passes


def test_a_wrong_password_is_reported_as_a_refused_login_not_an_unreachable_server(pair, monkeypatch):
    wrong = json.loads(connection_uri(pair.server("node2")))
    monkeypatch.setenv("AIRFLOW_CONN_ALTIBASE_NODE2", json.dumps({**wrong, "password": "not-it"}))
    with pytest.raises(PreflightError) as info:
        preflight(request(), log)
    assert "refused the password" in str(info.value) and "not reachable" not in str(info.value)
    assert "not-it" not in str(info.value)
