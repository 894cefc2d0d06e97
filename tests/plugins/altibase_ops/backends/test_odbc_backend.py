"""The odbc backend: the Altibase ODBC connection string, password masking, error codes from pyodbc."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from altibase_ops.backends.odbc import database_error, odbc_connection_string, parse_odbc_error

PASSWORD = "Pa;ss}w0rd"
DRIVER = "/opt/altibase/lib/libaltibase_odbc-64bit-ul64.so"


def odbc_conn(**extra):
    return Connection(
        conn_id="altibase_node1", conn_type="altibase", host="altibase-svc-node1", port=20300,
        login="SYS", password=PASSWORD, extra=json.dumps({"backend": "odbc", "driver": DRIVER, **extra}),
    )


def test_odbc_connection_string_has_every_keyword():
    text = odbc_connection_string(odbc_conn(nls_use="UTF8"), user="SYS", sysdba=True)
    assert text == (
        f"DRIVER={{{DRIVER}}};Server=altibase-svc-node1;PORT=20300;User=SYS;"
        # the Altibase driver's own quoting ("…"), not ODBC's braces, which it does not read
        'Password="Pa;ss}w0rd";NLS_USE=UTF8;PRIVILEGE=SYSDBA'
    )


def test_odbc_connection_string_without_sysdba_or_nls():
    text = odbc_connection_string(odbc_conn(), user="SYS", sysdba=False)
    assert "PRIVILEGE" not in text and "NLS_USE" not in text


def test_masked_connection_string_hides_the_password():
    text = odbc_connection_string(odbc_conn(nls_use="UTF8"), user="SYS", sysdba=True, masked=True)
    assert "Password=***" in text
    assert "Pa;ss" not in text and "w0rd" not in text


def test_odbc_backend_needs_a_driver():
    conn = Connection(conn_id="c", conn_type="altibase", host="h", extra=json.dumps({"backend": "odbc"}))
    with pytest.raises(Exception, match="extra.driver"):
        odbc_connection_string(conn, user="SYS", sysdba=False)


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


def test_only_pyodbc_errors_are_read_as_database_errors():
    assert database_error(ValueError("HY000", "[HY000] x (266350) (SQLExecDirect)")) is None
