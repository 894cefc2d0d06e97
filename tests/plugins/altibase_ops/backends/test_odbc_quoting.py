"""Connection strings the Altibase driver reads back exactly: every password character class round-trips
through the driver's parser and the server's unquoting (``tests/fakes/altibase_connstr.py``)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from altibase_ops.backends import APP_INFO_MAX_BYTES, app_info
from altibase_ops.backends.odbc import UnrepresentableValueError, odbc_connection_string, password_value
from tests.fakes.altibase_connstr import ConnStrFormatError, parse, server_password, server_user

PASSWORDS = ["manager", "a=b", "a{b}c", "}", "{x}", "p;w", "[x]", "(x)", "x[y", 'a"b', "'q'", " lead", "trail ",
             " both ", "pässwörd", "パス", "a;b=c{d}[e](f)", "x" * 38, "y" * 40, ""]


def conn(password: str, user: str = "SYS", **extra) -> Connection:
    return Connection(conn_id="c", conn_type="altibase", host="altibase-svc-node1", port=20300, login=user,
                      password=password, extra=json.dumps({"backend": "odbc", "driver": "/opt/altibase/lib/x.so",
                                                           **extra}))


@pytest.mark.parametrize("password", PASSWORDS, ids=repr)
def test_every_password_reaches_the_server_as_written(password):
    pairs = parse(odbc_connection_string(conn(password), user="SYS", sysdba=True))
    assert server_password(pairs["PASSWORD"]) == password.encode().upper()
    assert server_password(pairs["PASSWORD"], case_sensitive=True) == password.encode()
    assert len(pairs["PASSWORD"]) <= 40 or not password.startswith(" ")
    assert pairs["SERVER"] == b"altibase-svc-node1" and pairs["PORT"] == b"20300"
    assert pairs["PRIVILEGE"] == b"SYSDBA" and server_user(pairs["USER"]) == b"SYS"


@pytest.mark.parametrize("password", ['a";b', '" x', 'x" ', '"quoted"'], ids=repr)
def test_a_password_the_syntax_cannot_carry_is_refused_before_any_connection(password):
    with pytest.raises(UnrepresentableValueError, match="cannot be written"):
        odbc_connection_string(conn(password), user="SYS", sysdba=False)


def test_braces_are_not_quoting_for_the_altibase_driver():
    # ODBC's {…} is what unixODBC reads; the Altibase driver takes it literally or fails on ';'
    with pytest.raises(ConnStrFormatError):
        parse("PWD={a;b};UID=SYS")
    assert parse("PWD={ab};UID=SYS")["PWD"] == b"{ab}"


def test_user_names_keep_their_case_only_when_quoted():
    assert server_user(parse(odbc_connection_string(conn("x", user="sys"), user="sys", sysdba=False))["USER"]) == b"SYS"
    string = odbc_connection_string(conn("x", user="Mixed User"), user="Mixed User", sysdba=False)
    assert server_user(parse(string)["USER"]) == b"Mixed User"


def test_the_masked_string_never_holds_the_password_and_the_driver_comes_first():
    text = odbc_connection_string(conn("s3cr;et"), user="SYS", sysdba=False, masked=True)
    assert "s3cr" not in text and text.startswith("DRIVER={/opt/altibase/lib/x.so};")
    assert password_value("s3cr;et") == '"s3cr;et"'


@pytest.mark.parametrize("label", ["airflow:altibase_replicated_ddl", "airflow:dag.task", "a;b", "  edge  ", '"quoted"',
                                   "(x)", "[y]", "x" * 200, "é" * 100, "airflow:" + "d" * 250 + ".task", ";"],
                         ids=repr)
def test_the_sessions_label_reaches_the_server_as_a_bare_app_info(label):
    # the driver keeps a quoted value's quotes and the server stores APP_INFO's bytes as they come
    # (ulnParse.c, mmtCmsConnection.cpp): only a bare value shows in V$SESSION as written
    value = app_info(label)
    pairs = parse(odbc_connection_string(conn("manager"), user="SYS", sysdba=True, app_info=value))
    if not value:
        assert "APP_INFO" not in pairs  # the driver refuses an empty APP_INFO (length 1..128)
        return
    assert pairs["APP_INFO"].decode() == value and len(pairs["APP_INFO"]) <= APP_INFO_MAX_BYTES
    assert server_password(pairs["PASSWORD"], case_sensitive=True) == b"manager"
    if ";" not in label and len(label.encode()) <= APP_INFO_MAX_BYTES and label == label.strip() \
            and not label.startswith(('"', "(", "[")):
        assert value == label  # an ordinary label goes as it is
