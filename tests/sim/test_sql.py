"""The SQL subset: Altibase syntax in, Altibase-style results and errors out (issue item 3)."""

from __future__ import annotations

import pytest

from tests.sim.helpers import code_of, query, run


def err(engine, server, sql) -> str:
    return code_of(engine, server, sql, sysdba=False)


def test_create_insert_select_with_where_order_and_count(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 VARCHAR(10), c3 NUMERIC(10,2))",
        "INSERT INTO t1 VALUES (2, 'b', 1.5)", "INSERT INTO t1 (c1, c2) VALUES (1, 'a')",
        "INSERT INTO sys.t1 VALUES (3, 'it''s', NULL)")
    assert query(engine, "node1", "SELECT c1, c2 FROM t1 WHERE c1 >= 2 ORDER BY c1 DESC") == [(3, "it's"), (2, "b")]
    assert query(engine, "node1", "SELECT COUNT(*) FROM t1 WHERE c3 IS NULL") == [(2,)]
    assert query(engine, "node1", "SELECT c1 FROM t1 WHERE c2 = ? AND c1 < 5", ("a",)) == [(1,)]
    with engine.connect("node1") as conn:
        cur = conn.cursor().execute("SELECT COUNT(*) AS n, MAX(c1) FROM t1")
        assert [d[0] for d in cur.description] == ["N", "MAX(C1)"]


def test_update_delete_truncate_and_rowcounts(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)",
        *[f"INSERT INTO t1 VALUES ({i}, {i * 10})" for i in range(1, 6)])
    with engine.connect("node1") as conn:
        cur = conn.cursor()
        assert cur.execute("UPDATE t1 SET c2 = c2 + 1 WHERE c1 <= 2").rowcount == 2
        assert cur.message == "2 rows updated."
        assert cur.execute("DELETE FROM t1 WHERE c1 = 5").message == "1 row deleted."
        assert cur.execute("SELECT c2 FROM t1 ORDER BY c1").fetchall() == [(11,), (21,), (30,), (40,)]
        assert cur.execute("TRUNCATE TABLE t1").message == "Truncate success."
        assert cur.execute("SELECT COUNT(*) FROM t1").fetchall() == [(0,)]


def test_alter_table_add_uses_the_parenthesised_form_drop_and_modify(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)", "INSERT INTO t1 VALUES (1, 2)",
        "ALTER TABLE t1 ADD COLUMN (c3 VARCHAR(20) DEFAULT 'x', c4 INTEGER)")
    assert query(engine, "node1", "SELECT c1, c2, c3, c4 FROM t1") == [(1, 2, "x", None)]
    assert err(engine, "node1", "ALTER TABLE t1 ADD COLUMN c5 INTEGER") == "31001"
    run(engine, "node1", "ALTER TABLE t1 DROP COLUMN c4", "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT NOT NULL)")
    cols = query(engine, "node1", "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.IS_NULLABLE FROM SYSTEM_.SYS_COLUMNS_ c, "
                 "SYSTEM_.SYS_TABLES_ t WHERE c.TABLE_ID = t.TABLE_ID AND t.TABLE_NAME = 'T1' ORDER BY c.COLUMN_ORDER")
    assert cols == [("C1", 4, "F"), ("C2", -5, "F"), ("C3", 12, "T")]
    assert err(engine, "node1", "SELECT c4 FROM t1") == "31058"
    assert err(engine, "node1", "ALTER TABLE t1 ADD COLUMN (c2 INTEGER)") == "31022"


def test_indexes_and_constraint_errors(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER NOT NULL)",
        "CREATE INDEX t1_i1 ON t1 (c2)", "INSERT INTO t1 VALUES (1, 1)")
    assert err(engine, "node1", "CREATE INDEX t1_i1 ON t1 (c1)") == "3104C"
    assert err(engine, "node1", "INSERT INTO t1 VALUES (1, 5)") == "11058"
    assert err(engine, "node1", "INSERT INTO t1 VALUES (2, NULL)") == "31074"
    assert err(engine, "node1", "INSERT INTO t1 VALUES ('abc', 1)") == "21011"
    run(engine, "node1", "DROP INDEX t1_i1")
    assert err(engine, "node1", "DROP INDEX t1_i1") == "31014"
    assert err(engine, "node1", "CREATE TABLE t1 (c1 INTEGER)") == "31022"
    run(engine, "node1", "DROP TABLE t1")
    assert err(engine, "node1", "SELECT * FROM t1") == "31031"


def test_autocommit_is_on_by_default_and_rollback_undoes_when_off(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)")
    with engine.connect("node1") as conn:
        assert conn.autocommit is True
        conn.autocommit = False
        cur = conn.cursor()
        cur.execute("INSERT INTO t1 VALUES (1)")
        assert query(engine, "node1", "SELECT COUNT(*) FROM t1") == [(0,)]  # not visible before COMMIT
        cur.execute("ROLLBACK")
        cur.execute("INSERT INTO t1 VALUES (2)")
        cur.execute("COMMIT")
    assert query(engine, "node1", "SELECT c1 FROM t1") == [(2,)]


@pytest.mark.parametrize("sql", [
    "MERGE INTO t1 USING t2 ON (1=1)",
    "SELECT * FROM t1 UNION SELECT * FROM t1",
    "GRANT SELECT ON t1 TO app",
    "SELECT c1 FROM t1; DROP TABLE t1",
    "SELECT FOO(c1) FROM t1",
    "ALTER TABLE t1 RENAME TO t2",
    "ALTER SESSION SET AUTOCOMMIT = FALSE",
    "CREATE VIEW v AS SELECT * FROM t1",
])
def test_statements_outside_the_subset_are_syntax_errors_not_silent_successes(engine, sql):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)")
    assert err(engine, "node1", sql) == "31001"
    assert query(engine, "node1", "SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = 'T1'") == [(1,)]


def test_session_id_dual_and_properties(engine):
    with engine.connect("node1", client_info="me") as conn:
        cur = conn.cursor()
        sid = cur.execute("SELECT SESSION_ID() FROM DUAL").fetchone()[0]
        rows = cur.execute("SELECT ID, CLIENT_APP_INFO FROM V$SESSION WHERE ID = SESSION_ID()").fetchall()
        assert rows == [(sid, "me")]
    props = dict(query(engine, "node1", "SELECT NAME, VALUE1 FROM V$PROPERTY WHERE NAME LIKE 'REPLICATION_%'"))
    assert props["REPLICATION_DDL_ENABLE"] == "0" and props["REPLICATION_SQL_APPLY_ENABLE"] == "0"
    assert props["REPLICATION_GAP_UNIT"] == "1048576"
    run(engine, "node1", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1", sysdba=False)
    assert query(engine, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'REPLICATION_SQL_APPLY_ENABLE'") == \
        [("1",)]
    assert err(engine, "node1", "ALTER SYSTEM SET NO_SUCH_PROPERTY = 1") == "0104B"
    assert err(engine, "node1", "ALTER SYSTEM SET ADMIN_MODE = 7") == "0104C"


def test_indices_dictionary_lists_indexes_with_their_table(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)", "CREATE UNIQUE INDEX t1_u ON t1 (c2)")
    rows = query(engine, "node1", "SELECT i.INDEX_NAME, i.IS_UNIQUE, t.TABLE_NAME FROM SYSTEM_.SYS_INDICES_ i, "
                 "SYSTEM_.SYS_TABLES_ t WHERE i.TABLE_ID = t.TABLE_ID")
    # the primary key's index is listed too, under a system name, as Altibase does
    assert rows == [("__SYS_IDX_ID_1001", "T", "T1"), ("T1_U", "T", "T1")]


def test_group_by_having_and_limit(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)",
        *[f"INSERT INTO t1 VALUES ({k}, {k % 3})" for k in range(1, 8)])
    assert query(engine, "node1", "SELECT c2, COUNT(*) FROM t1 GROUP BY c2 HAVING COUNT(*) > 2 ORDER BY c2") == \
        [(1, 3)]
    assert query(engine, "node1", "SELECT c1 FROM t1 ORDER BY c1 DESC LIMIT 2") == [(7,), (6,)]
    assert err(engine, "node1", "SELECT c1 FROM t1 LIMIT x") == "31001"
