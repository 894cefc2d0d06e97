"""AltibaseHook: ODBC connection string, password masking, error codes, provider registration."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from altibase_ops.hooks import AltibaseHook, AltibaseServerError, odbc_connection_string, parse_odbc_error
from altibase_ops.provider_info import get_provider_info

PASSWORD = "Pa;ss}w0rd"
DRIVER = "/opt/altibase/lib/libaltibase_odbc-64bit-ul64.so"


def odbc_conn(**extra):
    return Connection(
        conn_id="altibase_node1", conn_type="altibase", host="altibase-svc-node1", port=20300,
        login="SYS", password=PASSWORD, extra=json.dumps({"backend": "odbc", "driver": DRIVER, **extra}),
    )


def test_odbc_connection_string_has_every_keyword():
    text = odbc_connection_string(odbc_conn(nls_use="UTF8"), sysdba=True)
    assert text == (
        f"DRIVER={{{DRIVER}}};Server=altibase-svc-node1;PORT=20300;User=SYS;"
        "Password={Pa;ss}}w0rd};NLS_USE=UTF8;PRIVILEGE=SYSDBA"
    )


def test_odbc_connection_string_without_sysdba_or_nls():
    text = odbc_connection_string(odbc_conn(), sysdba=False)
    assert "PRIVILEGE" not in text and "NLS_USE" not in text


def test_masked_connection_string_hides_the_password():
    text = odbc_connection_string(odbc_conn(nls_use="UTF8"), sysdba=True, masked=True)
    assert "Password=***" in text
    assert "Pa;ss" not in text and "w0rd" not in text


def test_odbc_backend_needs_a_driver():
    conn = Connection(conn_id="c", conn_type="altibase", host="h", extra=json.dumps({"backend": "odbc"}))
    with pytest.raises(Exception, match="extra.driver"):
        odbc_connection_string(conn, sysdba=False)


def test_parse_odbc_error_reads_the_native_error_as_altibase_code():
    # pyodbc: args = (SQLSTATE, "[SQLSTATE] driver message (native error) (function)")
    exc = Exception("HY000", "[HY000] [Altibase][ODBC Driver] If ADMIN_MODE is activated, ... (266350) "
                             "(SQLDriverConnect)")
    code, message = parse_odbc_error(exc)
    assert code == "4106E"  # 266350 == 0x4106E
    assert "ADMIN_MODE" in message


def test_parse_odbc_error_without_native_code_keeps_sqlstate():
    exc = Exception("08001", "[08001] Client unable to establish connection (0) (SQLDriverConnect)")
    code, message = parse_odbc_error(exc)
    assert code is None and "SQLSTATE 08001" in message


def test_server_error_names_server_and_code():
    err = AltibaseServerError("altibase_node1 (h:20300)", "4106E", "If ADMIN_MODE ...", action="login as SYS")
    assert "altibase_node1 (h:20300)" in str(err) and "[ERR-4106E : If ADMIN_MODE ...]" in str(err)


def test_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALTIBASE_ODD", json.dumps({"conn_type": "altibase", "host": "h",
                                                                "extra": {"backend": "jdbc"}}))
    with pytest.raises(Exception, match="unknown backend 'jdbc'"):
        AltibaseHook(altibase_conn_id="altibase_odd").get_conn()


def test_provider_info_registers_the_connection_type():
    info = get_provider_info()
    assert info["package-name"] == "altibase-airflow-ops"
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "altibase"
    assert conn_type["hook-class-name"] == "altibase_ops.hooks.AltibaseHook"
    assert conn_type["conn-fields"]["backend"]["schema"]["enum"] == ["simulator", "odbc"]


def test_providers_manager_lists_the_altibase_hook():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "altibase-airflow-ops" in manager.providers
    assert "extra__altibase__backend" in manager.connection_form_widgets
    assert manager.field_behaviours["altibase"]["relabeling"] == {"host": "Server", "login": "User"}
