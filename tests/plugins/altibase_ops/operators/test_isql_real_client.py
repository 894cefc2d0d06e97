"""The local runner against a real server: the client follows the Connection's backend, and the
password reaches the client only through its standard input (the CONNECT line), never an argv or the
client's environment. A script stands in for Altibase's ``isql`` and records how it was called."""

from __future__ import annotations

import json
import stat
import sys

import pytest

from altibase_ops.ddl.preflight import PreflightError, check_connections
from altibase_ops.ddl.procedure import VARIANTS, procedure
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.steps import step_script
from altibase_ops.exceptions import BackendNotConfiguredError
from altibase_ops.operators.isql import IsqlOperator

PASSWORD = "S3cr;et pw"
FAKE_ISQL = r'''#!{python}
"""Stands in for Altibase's isql: records argv, environment and input; answers like iSQL on stdin."""
import json, os, sys
script = sys.stdin.read()
with open({record!r}, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv, "env": dict(os.environ), "stdin": script}}) + "\n")
lines = script.splitlines()
print("Connect success." if lines and lines[0].startswith("CONNECT ") else "[ERR-91020 : No Connection State]")
body = "\n".join(lines[1:])
for statement in [s for s in body.split(";") if s.strip()]:
    print(statement.split()[0].capitalize() + " success.")
'''


@pytest.fixture
def real_client(tmp_path, monkeypatch):
    record = tmp_path / "calls.jsonl"
    fake = tmp_path / "isql"
    fake.write_text(FAKE_ISQL.format(python=sys.executable, record=str(record)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    for node in ("node1", "node2"):
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{node.upper()}", json.dumps({
            "conn_type": "altibase", "host": f"altibase-svc-{node}", "port": 20300, "login": "SYS",
            "password": PASSWORD, "extra": {"backend": "odbc", "driver": "/opt/altibase/lib/x.so"}}))
    monkeypatch.setenv("ALTIBASE_ISQL_BINARY", str(fake))
    return record


def calls(record) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def params(topology: str, mode: str) -> dict:
    roles = ("active", "standby") if topology == "active_standby" else ("active1", "active2")
    return {"servers": [{"name": "node1", "conn_id": "altibase_node1", "role": roles[0]},
                        {"name": "node2", "conn_id": "altibase_node2", "role": roles[1]}],
            "topology": topology, "service_mode": mode, "replication_name": "REP1", "tables": ["SYS.T1"],
            "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], "service_control": {"mode": "manual"}}


def test_every_isql_step_of_every_variant_runs_the_real_client_and_no_argv_holds_the_password(real_client):
    steps = 0
    for topology, mode in VARIANTS:
        request = DdlRequest.from_params(params(topology, mode))
        for stage in procedure(topology, mode):
            for step in (s for block in stage for s in block.steps if s.action in ("isql", "ddl")):
                operator = IsqlOperator(task_id=step.task_id, altibase_conn_id=request.server(step.role).conn_id,
                                        sql=step_script(step, request), step_kind=step.step_kind)
                operator.execute(context={})
                steps += 1
    recorded = calls(real_client)
    assert len(recorded) == steps > 30
    for call in recorded:
        assert call["argv"][0].endswith("/isql") and "isql-sim" not in call["argv"][0]
        assert "/NOLOG" in call["argv"] and "-p" not in call["argv"] and "-u" not in call["argv"]
        assert not any("S3cr" in arg for arg in call["argv"])
        assert not any("S3cr" in value for value in call["env"].values())  # not even AIRFLOW_CONN_*
        assert call["stdin"].splitlines()[0] == 'CONNECT SYS/"S3cr;et pw" AS SYSDBA;'


def test_an_odbc_connection_without_a_client_stops_in_validation_naming_what_to_set(real_client, monkeypatch):
    monkeypatch.delenv("ALTIBASE_ISQL_BINARY")
    request = DdlRequest.from_params(params("active_standby", "can_stop"))
    with pytest.raises(PreflightError, match=r"node1: .*set the Connection's extra 'isql_binary' or the "
                                             r"worker's ALTIBASE_ISQL_BINARY"):
        check_connections(request)
    operator = IsqlOperator(task_id="t", altibase_conn_id="altibase_node1", sql="ALTER SYSTEM SET ADMIN_MODE = 0;")
    with pytest.raises(BackendNotConfiguredError, match="isql_binary"):
        operator.execute(context={})
    assert not real_client.exists()  # nothing ran
    check_connections(DdlRequest.from_params({**params("active_standby", "can_stop"), "runner": "kubernetes"}))
