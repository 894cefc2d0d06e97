"""Input the DAG refuses before anything changes (issue 24): statements smuggled through a literal, objects
of another owner, requests too big for one admin-mode window."""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.request import MAX_DDL_ENTRIES, MAX_TABLES, DdlRequest, InvalidRequestError
from altibase_ops.ddl.statements import parse_ddl
from altibase_ops.ddl.steps import render_ddl_sql
from tests.plugins.altibase_ops.ddl.test_ddl_request_and_procedure import GOOD, with_
from tests.plugins.altibase_ops.ddl.test_restore_matrix import request_for

log = logging.getLogger("input-safety")

# every shape a second statement or an iSQL command could ride in on
SMUGGLED = [
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT 'x\nDELETE FROM SYS.T2;')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT 'x\rDELETE FROM SYS.T2;')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT 'x\r\nCONNECT OTHER/pw;')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT 'x\nEXIT\n')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT '-- x\n;DELETE FROM SYS.T2')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT '/* x\n*/ DELETE FROM SYS.T2')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT 'x\x00y')",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)\x1b[2J",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER);\nDELETE FROM SYS.T2",
    "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER) -- \nDELETE FROM SYS.T2",
]


@pytest.mark.parametrize("ddl", SMUGGLED, ids=range(len(SMUGGLED)))
def test_a_statement_smuggled_through_a_literal_or_a_line_break_is_refused_before_any_login(ddl):
    with pytest.raises(InvalidRequestError, match=r"ddl\[0\]"):
        DdlRequest.from_params(with_("ddl", [ddl]))


def test_an_accepted_statement_reaches_isql_on_one_line_whatever_its_line_breaks():
    """A statement written over several lines is sent as one line: no line of the script but the
    statement's own can be read by iSQL (its literals keep their spaces)."""
    written = "ALTER TABLE SYS.T1\n   ADD COLUMN (\tC3 VARCHAR(20)\r\n DEFAULT 'two  spaces')"
    request = DdlRequest.from_params(with_("ddl", [written]))
    script = render_ddl_sql("ddl/run_ddl.sql", request)
    assert [line for line in script.splitlines() if line.strip()] == ["ALTER TABLE SYS.T1 ADD COLUMN ( C3 VARCHAR(20) DEFAULT 'two  spaces');"]
    assert parse_ddl(written).text == script.strip().rstrip(";")


def test_an_index_of_another_owner_is_refused_in_validation():
    with pytest.raises(InvalidRequestError, match="would belong to OTHER, not to the table's owner SYS"):
        DdlRequest.from_params(with_("ddl", ["CREATE INDEX OTHER.I1 ON SYS.T1 (C2)"]))
    DdlRequest.from_params(with_("ddl", ["CREATE INDEX SYS.I1 ON SYS.T1 (C2)"]))  # the table's owner: fine


def test_dropping_an_index_of_another_owner_is_refused_in_preflight(pair):
    from altibase_ops.ddl.preflight import PreflightError, preflight

    for node in ("node1", "node2"):
        with pair.connect(node, sysdba=True) as conn:
            conn.cursor().execute('CREATE USER OTHER IDENTIFIED BY "other_pw"')
            # made outside the procedure (a DBA allowed DDL on replicated tables for a moment)
            conn.cursor().execute("ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 1")
            conn.cursor().execute("CREATE INDEX OTHER.I1 ON SYS.T1 (C2)")
            conn.cursor().execute("ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 0")
    request = request_for(pair, "active_standby", "can_stop", ddl=["DROP INDEX OTHER.I1"])
    with pytest.raises(PreflightError, match="index OTHER.I1 is owned by OTHER, not by the owner of its table SYS.T1"):
        preflight(request, log)


def test_a_request_too_big_for_one_admin_window_is_refused():
    many = [f"ALTER TABLE SYS.T1 ADD COLUMN (C{n} INTEGER)" for n in range(MAX_DDL_ENTRIES + 1)]
    with pytest.raises(InvalidRequestError, match=f"ddl: at most {MAX_DDL_ENTRIES} statements"):
        DdlRequest.from_params(with_("ddl", many))
    tables = [f"SYS.T{n}" for n in range(MAX_TABLES + 1)]
    with pytest.raises(InvalidRequestError, match=f"tables: at most {MAX_TABLES}"):
        DdlRequest.from_params({**GOOD, "tables": tables})


def _outside_the_procedure(pair, *statements: str) -> None:
    """DDL a DBA made on both servers earlier (allowing DDL on replicated tables for a moment)."""
    for node in ("node1", "node2"):
        with pair.connect(node, sysdba=True) as conn:
            conn.cursor().execute("ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 1")
            for statement in statements:
                conn.cursor().execute(statement)
            conn.cursor().execute("ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 0")


def test_a_column_of_the_same_name_with_another_type_is_a_conflict_not_applied(pair):
    from altibase_ops.ddl.preflight import PreflightError, preflight

    _outside_the_procedure(pair, "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(10))")
    request = request_for(pair, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"])
    with pytest.raises(PreflightError, match=r"already has a column C3 VARCHAR\(10, 0\), not the C3 INTEGER"):
        preflight(request, log)
    same = request_for(pair, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(10))"])
    assert preflight(same, log)["nothing_to_do"]  # the very definition asked for: applied


def test_an_index_of_the_same_name_on_other_columns_is_a_conflict_not_applied(pair):
    from altibase_ops.ddl.preflight import PreflightError, preflight

    _outside_the_procedure(pair, "CREATE INDEX SYS.I1 ON SYS.T1 (C2)")
    request = request_for(pair, "active_standby", "can_stop", ddl=["CREATE UNIQUE INDEX SYS.I1 ON SYS.T1 (C1)"])
    with pytest.raises(PreflightError, match=r"already has INDEX SYS.I1 \(C2\), not the UNIQUE INDEX SYS.I1 \(C1\)"):
        preflight(request, log)


def test_truncate_is_refused_in_rolling_mode_before_any_server_is_touched():
    from altibase_ops.ddl.request import DdlRequest, InvalidRequestError

    params = {"servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active1"},
                          {"name": "node2", "conn_id": "altibase_node2", "role": "active2"}],
              "topology": "active_active", "service_mode": "rolling", "replication_name": "REP1",
              "tables": ["SYS.T1"], "ddl": ["TRUNCATE TABLE SYS.T1"]}
    with pytest.raises(InvalidRequestError, match=r"ddl\[0\]: TRUNCATE cannot run rolling"):
        DdlRequest.from_params(params)
    assert DdlRequest.from_params({**params, "service_mode": "can_stop"}).ddl[0].kind == "truncate"
