"""AltibaseHook: the backend a Connection must name, the SQL-hook methods against the simulator, error\ntranslation in one place, provider registration."""

from __future__ import annotations

import json

import pytest

from altibase_ops.backends import app_info
from altibase_ops.exceptions import AltibaseServerError, BackendNotConfiguredError
from altibase_ops.get_provider_info import get_provider_info
from altibase_ops.hooks.altibase import AltibaseHook
from tests.fakes.altibase_connstr import parse
from tests.sim.helpers import run


def test_server_error_names_server_and_code():
    err = AltibaseServerError("altibase_node1 (h:20300)", "4106E", "If ADMIN_MODE ...", action="login as SYS")
    assert "altibase_node1 (h:20300)" in str(err) and "[ERR-4106E : If ADMIN_MODE ...]" in str(err)


def test_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALTIBASE_ODD", json.dumps({"conn_type": "altibase", "host": "h",
                                                                "extra": {"backend": "jdbc"}}))
    with pytest.raises(BackendNotConfiguredError, match="has backend 'jdbc': set its extra 'backend'"):
        AltibaseHook(altibase_conn_id="altibase_odd").get_conn()


def test_a_connection_without_a_backend_is_refused_never_sent_to_the_simulator(sim, monkeypatch):
    # the simulator's node1 listens at this address: a silent default would log in there
    server = next(s for s in sim.servers() if s["name"] == "node1")
    monkeypatch.setenv("AIRFLOW_CONN_ALTIBASE_PROD", json.dumps({
        "conn_type": "altibase", "host": server["host"], "port": server["port"], "login": "SYS",
        "password": "manager"}))
    hook = AltibaseHook(altibase_conn_id="altibase_prod")
    with pytest.raises(BackendNotConfiguredError, match="has no 'backend' extra: set its extra 'backend' to 'odbc'"):
        hook.get_first("SELECT DUMMY FROM DUAL")
    ok, message = hook.test_connection()
    assert not ok and "'backend'" in message


def test_the_sql_hook_methods_return_what_db_api_returns(altibase_conns):
    hook = AltibaseHook(altibase_conn_id=altibase_conns["node1"], sysdba=True)
    hook.run(["CREATE TABLE SYS.H1 (C1 INTEGER PRIMARY KEY, C2 VARCHAR(10))",
              "INSERT INTO SYS.H1 VALUES (1, 'one')", "INSERT INTO SYS.H1 VALUES (2, 'two');"])
    assert hook.get_records("SELECT C1, C2 FROM SYS.H1 ORDER BY C1") == [(1, "one"), (2, "two")]
    assert hook.get_first("SELECT C2 FROM SYS.H1 WHERE C1 = ?", (2,)) == ("two",)
    assert hook.get_first("SELECT C2 FROM SYS.H1 WHERE C1 = 3") is None
    assert hook.get_records_as_dicts("SELECT C1 FROM SYS.H1 WHERE C1 = 1") == [{"C1": 1}]
    assert hook.run("SELECT COUNT(*) FROM SYS.H1", handler=lambda cursor: cursor.fetchall()) == [(2,)]
    with hook.session() as session:  # several statements, one connection
        assert session.execute("DELETE FROM SYS.H1 WHERE C1 = 2").rowcount == 1
        assert session.records("SELECT C1 FROM SYS.H1") == [(1,)]


def test_every_database_error_leaves_the_hook_with_server_code_and_statement(altibase_conns):
    hook = AltibaseHook(altibase_conn_id=altibase_conns["node1"])
    with pytest.raises(AltibaseServerError) as caught:
        hook.run("ALTER REPLICATION NOPE START")
    assert caught.value.code == "6111B" and caught.value.server.startswith("altibase_node1 (")
    assert "'ALTER REPLICATION NOPE START' failed: [ERR-6111B :" in str(caught.value)


def test_provider_info_registers_the_connection_type():
    info = get_provider_info()
    assert info["package-name"] == "altibase-airflow-ops"
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "altibase"
    assert conn_type["hook-class-name"] == "altibase_ops.hooks.altibase.AltibaseHook"
    # required: no default, so a Connection form left empty is refused, never a silent simulator
    assert conn_type["conn-fields"]["backend"]["schema"] == {"type": "string", "enum": ["odbc", "simulator"]}


def test_providers_manager_lists_the_altibase_hook():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "altibase-airflow-ops" in manager.providers
    assert "extra__altibase__backend" in manager.connection_form_widgets
    assert manager.field_behaviours["altibase"]["relabeling"] == {"host": "Server", "login": "User"}


def test_hook_errors_name_the_server_and_the_altibase_code(sim, altibase_conns):
    run(sim, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    with pytest.raises(Exception, match=r"altibase_node1 \(127\.0\.0\.1:\d+\): login as SYS failed: \[ERR-4106E") as info:
        AltibaseHook(altibase_conn_id=altibase_conns["node1"]).get_conn()
    assert info.value.code == "4106E" and "manager" not in str(info.value)
    sim.server_down("node2")
    with pytest.raises(Exception, match=r"altibase_node2 .*\[ERR-50032") as info:
        AltibaseHook(altibase_conn_id=altibase_conns["node2"], sysdba=True).get_records("SELECT 1 FROM DUAL")
    assert info.value.code == "50032"


def test_simulator_backend_works_without_pyodbc(sim, altibase_conns, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyodbc", None)  # any "import pyodbc" now fails
    rows = AltibaseHook(altibase_conn_id=altibase_conns["node1"]).get_records("SELECT DUMMY FROM DUAL;")
    assert rows == [("X",)]


def test_hook_test_connection_reports_success_and_the_refusal(sim, altibase_conns):
    hook = AltibaseHook(altibase_conn_id=altibase_conns["node1"])
    assert hook.test_connection() == (True, "Connected to Altibase through altibase_node1")
    run(sim, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    ok, message = hook.test_connection()
    assert not ok and "ERR-4106E" in message


# reschedule mode


# a label no bare APP_INFO can carry as it is: ';', edge spaces, a leading quote, over 128 bytes
LONG_LABEL = '  "airflow:' + "altibase_replicated_ddl;" * 8 + "é" * 20 + " "


def test_the_hooks_client_info_is_the_odbc_drivers_app_info(monkeypatch):
    # No Altibase driver here: a stand-in pyodbc keeps the string the hook hands the driver, and the
    # driver's own parsing rules (tests/fakes/altibase_connstr.py) read it back.
    import sys
    import types

    strings = []
    monkeypatch.setitem(sys.modules, "pyodbc", types.SimpleNamespace(
        Error=Exception, connect=lambda text, **kwargs: strings.append(text)))
    monkeypatch.setenv("AIRFLOW_CONN_ALTIBASE_REAL", json.dumps({
        "conn_type": "altibase", "host": "altibase-svc-node1", "port": 20300, "login": "SYS",
        "password": "manager", "extra": {"backend": "odbc", "driver": "/opt/altibase/lib/x.so"}}))
    AltibaseHook(altibase_conn_id="altibase_real", client_info="airflow:altibase_replicated_ddl").get_conn()
    AltibaseHook(altibase_conn_id="altibase_real", client_info=LONG_LABEL).get_conn()
    assert parse(strings[0])["APP_INFO"] == b"airflow:altibase_replicated_ddl"
    sent = parse(strings[1])["APP_INFO"]
    assert sent.decode() == app_info(LONG_LABEL) and 1 <= len(sent) <= 128
    assert sent.startswith(b"airflow:") and b";" not in sent


def test_v_session_shows_what_the_odbc_driver_would_send_for_the_hooks_client_info(sim, altibase_conns):
    hook = AltibaseHook(altibase_conn_id=altibase_conns["node1"], client_info=LONG_LABEL)
    [(shown,)] = hook.get_records("SELECT CLIENT_APP_INFO FROM V$SESSION WHERE ID = SESSION_ID()")
    assert shown == app_info(LONG_LABEL) and len(shown.encode()) <= 128 and not shown.startswith((" ", '"'))
