"""Identifier validation and the shared SQL templates under include/sql/checks."""

from __future__ import annotations

import pytest

from altibase_ops.sql.identifiers import InvalidIdentifierError, identifier, qualified_table
from altibase_ops.sql.templates import render_sql


@pytest.mark.parametrize("name", ["rep1", "REP_1", "a", "A" * 40, "SYSTEM_"])
def test_identifier_accepts_plain_names_and_upper_cases_them(name):
    assert identifier(name) == name.upper()


@pytest.mark.parametrize(
    "name",
    ["", "1rep", "_rep", "rep-1", "rep 1", "rep;DROP", "rep'", 'rep"', "A" * 41, "rep\n", None, 5, "V$REPGAP"],
)
def test_identifier_refuses_anything_else(name):
    with pytest.raises(InvalidIdentifierError):
        identifier(name)


def test_qualified_table_validates_both_parts():
    assert qualified_table("sys.t1") == "SYS.T1"
    for bad in ["t1", "sys.t1.x", "sys.", ".t1", "sys.t1;", "sys .t1"]:
        with pytest.raises(InvalidIdentifierError):
            qualified_table(bad)


def test_check_templates_render_validated_names():
    assert render_sql("checks/read_replication_gap.sql", replication_name="rep1").strip() == (
        "SELECT REP_NAME, REP_SN, REP_GAP FROM V$REPGAP WHERE REP_NAME = 'REP1';"
    )
    assert render_sql("checks/read_sql_apply_count.sql", replication_name=None).strip() == (
        "SELECT REP_NAME, SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER;"
    )
    assert "WHERE REP_NAME = 'REP1'" in render_sql("checks/read_sql_apply_count.sql", replication_name="Rep1")
    assert "SESSION_ID()" in render_sql("checks/list_sessions.sql")


def test_check_templates_refuse_injection():
    with pytest.raises(InvalidIdentifierError):
        render_sql("checks/read_replication_gap.sql", replication_name="x' OR '1'='1")
