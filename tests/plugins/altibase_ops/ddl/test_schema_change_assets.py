"""Which Asset events a run emits (``ddl/assets.py``), read from the servers' records of what ran: only
the statements this run applied (a DONE record of this run on a server), per table, under the pair's
name in the fleet."""

from __future__ import annotations

import json

from altibase_ops.ddl.assets import pair_name, schema_change_events
from altibase_ops.ddl.records import record as write_record
from tests.plugins.altibase_ops.ddl.test_restore_matrix import request_for


def record(server, request, numbers, state, run_id):
    """What a DDL step writes (steps.run_ddl_step): BEGAN before the statements, then how they ended."""
    write_record(server, request, numbers, "BEGAN", run_id)
    if state != "BEGAN":
        write_record(server, request, numbers, state, run_id)


def test_only_statements_this_run_applied_are_schema_change_events(pair):
    request = request_for(pair, "active_standby", "can_stop", tables=["SYS.T1", "SYS.T2"],
                          ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)", "CREATE INDEX SYS.T2_C2 ON SYS.T2 (C2)"])
    assert schema_change_events(request, {}, "run_b") == []  # nothing recorded: nothing applied
    node1, node2 = request.servers
    record(node1, request, [0], "DONE", "run_a")  # an earlier run applied the ADD COLUMN on node1
    record(node2, request, [0], "DONE", "run_b")  # this run on node2
    record(node1, request, [1], "BEGAN", "run_b")  # began, never reported: not known to be applied
    record(node2, request, [1], "FAILED", "run_b")  # refused: nothing applied
    [(uri, extra)] = schema_change_events(request, {}, "run_b")
    assert uri == "altibase://pair1/SYS.T1"
    assert extra["changes"] == [{"statement": "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)", "kind": "add_column",
                                 "servers": ["node2"]}]
    assert extra["replication_name"] == "REP1" and extra["change_id"] is None
    json.dumps(extra)  # an event's extra is JSON
    assert schema_change_events(request, {}, "run_c") == []


def test_the_pair_is_the_param_else_the_fleets_pair_with_these_connections_else_the_connections(pair, monkeypatch):
    request = request_for(pair, "active_standby", "can_stop")
    assert pair_name({"pair": "east"}, request) == "east"
    monkeypatch.setenv("ALTIBASE_PAIRS", json.dumps([
        {"name": "other", "replication_name": "REP9", "servers": [
            {"name": "node1", "conn_id": "altibase_node1", "role": "active"},
            {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}]},
        {"name": "west", "replication_name": "REP1", "servers": [
            {"name": "a", "conn_id": "altibase_node2", "role": "active"},
            {"name": "b", "conn_id": "altibase_node1", "role": "standby"}]}]))
    assert pair_name({}, request) == "west"
    monkeypatch.setenv("ALTIBASE_PAIRS", json.dumps([{"name": "elsewhere", "replication_name": "REP1", "servers": [
        {"name": "x", "conn_id": "altibase_x", "role": "active"},
        {"name": "y", "conn_id": "altibase_y", "role": "standby"}]}]))
    assert pair_name({}, request) == "altibase_node1+altibase_node2"


def test_a_dropped_index_is_a_change_of_every_listed_table_its_table_unreadable_after_the_drop(pair):
    request = request_for(pair, "active_standby", "can_stop", tables=["SYS.T1", "SYS.T2"],
                          ddl=["DROP INDEX SYS.T1_OLD"])
    record(request.servers[0], request, [0], "DONE", "run_d")
    uris = [uri for uri, _ in schema_change_events(request, {"pair": "p"}, "run_d")]
    assert uris == ["altibase://p/SYS.T1", "altibase://p/SYS.T2"]
