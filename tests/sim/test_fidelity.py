"""The simulator is never more lenient than Altibase 7.1 where the DAGs can see it.

Each test is one rule of docs/simulator-fidelity.md (the rule, its source in the server tree or the
manuals, and this test).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from altibase_sim import dbapi
from altibase_sim.simulation import Simulation
from tests.sim.helpers import code_of, error_of, query, run, seed_pair, wait_until


def prop(engine, server: str, name: str) -> str:
    return query(engine, server, "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = ?", (name,), sysdba=True)[0][0]


# ---------------------------------------------------------------------------------- properties, restart
def test_alter_system_lives_in_memory_a_restart_brings_back_the_configuration_file(engine):
    engine.set_config("node1", "QUERY_TIMEOUT", 300)  # the file; read at the next start
    assert prop(engine, "node1", "QUERY_TIMEOUT") == "600"
    started = query(engine, "node1", "SELECT STARTUP_TIME_SEC FROM V$INSTANCE")[0][0]
    run(engine, "node1", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    assert prop(engine, "node1", "ADMIN_MODE") == "1"
    engine.restart_server("node1")
    assert prop(engine, "node1", "ADMIN_MODE") == "0"  # the application can log in again
    assert prop(engine, "node1", "REPLICATION_SQL_APPLY_ENABLE") == "0"
    assert prop(engine, "node1", "QUERY_TIMEOUT") == "300"
    assert query(engine, "node1", "SELECT STARTUP_TIME_SEC FROM V$INSTANCE")[0][0] > started
    run(engine, "node1", "SELECT 1 FROM DUAL", sysdba=False)  # a plain login works: admin mode is gone


def test_a_configuration_file_with_admin_mode_1_keeps_it_across_a_restart(engine):
    engine.set_config("node1", "ADMIN_MODE", 1)
    engine.restart_server("node1")
    assert code_of(engine, "node1", "SELECT 1 FROM DUAL", sysdba=False) == "4106E"
    engine.set_config("node1", "ADMIN_MODE", None)
    engine.restart_server("node1")
    assert prop(engine, "node1", "ADMIN_MODE") == "0"


def test_a_restart_fault_lets_the_statement_finish_and_restarts_when_the_session_ends(engine):
    run(engine, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    started = query(engine, "node1", "SELECT STARTUP_TIME_SEC FROM V$INSTANCE", sysdba=True)[0][0]
    engine.fail_once("node1", r"^CREATE TABLE", "RESTART")
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)", "INSERT INTO t1 VALUES (1)")
    assert query(engine, "node1", "SELECT COUNT(*) FROM t1") == [(1,)]  # ran, and committed
    assert query(engine, "node1", "SELECT STARTUP_TIME_SEC FROM V$INSTANCE")[0][0] > started
    assert prop(engine, "node1", "ADMIN_MODE") == "0"


# ---------------------------------------------------------------------------------- the handshake
def test_start_refuses_different_item_lists_with_the_item_count_error(engine):
    seed_pair(engine, tables=("T1", "T2"), start=False)
    run(engine, "node2", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t2 TO sys.t2")
    refused = error_of(engine, "node1", "ALTER REPLICATION rep1 START")
    # the receiver's ERR-610CD text inside the sender's ERR-6100D (rpxSenderHandshake.cpp)
    assert refused.code == "6100D" and "item count does not match [2:1]" in str(refused)
    run(engine, "node1", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    run(engine, "node2", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    assert "item count" in str(error_of(engine, "node1", "ALTER REPLICATION rep1 START"))  # SQL apply cannot help
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t2 TO sys.t2")
    run(engine, "node1", "ALTER REPLICATION rep1 START")


def test_a_different_primary_key_fails_the_handshake_even_with_sql_apply(engine):
    for node in ("node1", "node2"):
        pk = "c1" if node == "node1" else "c1, c2"
        run(engine, node, "CREATE TABLE t1 (c1 INTEGER, c2 INTEGER, PRIMARY KEY (" + pk + "))",
            "CREATE TABLE t2 (c1 INTEGER PRIMARY KEY)",
            f"CREATE REPLICATION rep1 WITH '{'node2' if node == 'node1' else 'node1'}', 20301 "
            "FROM sys.t1 TO sys.t1, FROM sys.t2 TO sys.t2", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    assert "primary key column counts" in str(error_of(engine, "node1", "ALTER REPLICATION rep1 START"))


def test_an_added_nullable_column_is_not_compared_but_a_receiver_only_not_null_column_is(engine):
    seed_pair(engine, tables=("T1", "T2"), start=False)
    for node in ("node1", "node2"):
        run(engine, node, "ALTER REPLICATION rep1 DROP TABLE FROM sys.t2 TO sys.t2")
    run(engine, "node1", "ALTER TABLE t2 ADD COLUMN (c3 INTEGER)")  # on the sender only: not replicated
    for node in ("node1", "node2"):
        run(engine, node, "ALTER REPLICATION rep1 ADD TABLE FROM sys.t2 TO sys.t2")
    run(engine, "node1", "ALTER REPLICATION rep1 START")
    run(engine, "node1", "INSERT INTO t2 VALUES (1, 1, 1)", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    assert query(engine, "node2", "SELECT c1, c2 FROM t2") == [(1, 1)]
    assert query(engine, "node2", "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER") == [(0,)]
    # the other direction: node1 receives, and has C3 that node2 lacks; NOT NULL there is refused
    run(engine, "node1", "ALTER REPLICATION rep1 STOP", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t2 TO sys.t2",
        "ALTER TABLE t2 MODIFY COLUMN (c3 INTEGER NOT NULL)", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t2 TO sys.t2")
    assert "exists only on the receiver" in str(error_of(engine, "node2", "ALTER REPLICATION rep1 START"))


def test_a_unique_index_on_one_side_fails_start_or_puts_the_table_in_sql_apply(engine):
    for node, peer in (("node1", "node2"), ("node2", "node1")):
        run(engine, node, "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)",
            "CREATE TABLE t2 (c1 INTEGER PRIMARY KEY, c2 INTEGER)")
        if node == "node2":  # before the replication exists: DDL allowed
            run(engine, node, "CREATE UNIQUE INDEX t1_c2 ON t1 (c2)",
                "CREATE INDEX t2_c2 ON t2 (c2)")  # a non-unique index is not compared
        run(engine, node, f"CREATE REPLICATION rep1 WITH '{peer}', 20301 FROM sys.t1 TO sys.t1, FROM sys.t2 TO sys.t2")
    assert "unique indexes differ" in str(error_of(engine, "node1", "ALTER REPLICATION rep1 START"))
    run(engine, "node2", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")  # the receiver's property decides
    run(engine, "node1", "ALTER REPLICATION rep1 START")
    assert wait_until(lambda: query(engine, "node2", "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER") == [(1,)])
    # fixed at handshake time: switching the property off does not change the running receiver
    run(engine, "node2", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 0")
    assert query(engine, "node2", "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER") == [(1,)]


def test_a_slow_fault_delays_the_statement_and_then_runs_it(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)")
    engine.fail_once("node1", r"^ALTER TABLE", "SLOW:0.5")
    began = time.monotonic()
    run(engine, "node1", "ALTER TABLE t1 ADD COLUMN (c2 INTEGER)")
    assert time.monotonic() - began >= 0.5
    assert [c[0] for c in query(engine, "node1", "SELECT COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ WHERE COLUMN_ORDER = 2")] == ["C2"]


# ---------------------------------------------------------------------------------- DDL out of the replication
def test_dropping_a_single_column_primary_key_drops_the_key_and_the_table_cannot_be_replicated_again(engine):
    seed_pair(engine, tables=("T1", "T2"), start=False)
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1", "INSERT INTO t1 VALUES (1, 1)",
        "ALTER TABLE t1 DROP COLUMN c1")  # validateDropCol lets it through on a table out of the replication
    keys = ("SELECT COUNT(*) FROM SYSTEM_.SYS_CONSTRAINTS_ k, SYSTEM_.SYS_TABLES_ t WHERE k.TABLE_ID = t.TABLE_ID "
            "AND t.TABLE_NAME = 'T1' AND k.CONSTRAINT_TYPE = 3")
    assert query(engine, "node1", keys) == [(0,)]  # the primary key went with its column
    assert query(engine, "node1", "SELECT c2 FROM t1") == [(1,)]
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1") == "61113"


def test_drop_column_refuses_the_last_column_and_part_of_a_composite_key_and_drops_its_indexes(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER, c2 INTEGER, c3 INTEGER, PRIMARY KEY (c1, c2))",
        "CREATE INDEX t1_c3 ON t1 (c3)", "CREATE INDEX t1_c2_c3 ON t1 (c2, c3)", "CREATE TABLE t2 (c1 INTEGER)")
    assert code_of(engine, "node1", "ALTER TABLE t1 DROP COLUMN c2") == "31321"
    assert code_of(engine, "node1", "ALTER TABLE t2 DROP COLUMN c1") == "31026"
    run(engine, "node1", "ALTER TABLE t1 DROP COLUMN c3")  # findDelIndexAndDelMeta: its indexes go with it
    assert query(engine, "node1", "SELECT INDEX_NAME FROM SYSTEM_.SYS_INDICES_ WHERE INDEX_NAME LIKE 'T1_%'") == []
    assert code_of(engine, "node1", "DROP INDEX t1_c3") == "31014"


def test_a_not_null_column_without_a_default_is_refused_on_a_table_with_rows_only(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)", "ALTER TABLE t1 ADD COLUMN (c2 INTEGER NOT NULL)",
        "INSERT INTO t1 VALUES (1, 1)")
    assert code_of(engine, "node1", "ALTER TABLE t1 ADD COLUMN (c3 INTEGER NOT NULL)") == "3104A"
    run(engine, "node1", "ALTER TABLE t1 ADD COLUMN (c3 INTEGER DEFAULT 0 NOT NULL)")


def test_drop_index_cannot_drop_a_primary_keys_index(engine):
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)")
    name = query(engine, "node1", "SELECT i.INDEX_NAME FROM SYSTEM_.SYS_INDICES_ i, SYSTEM_.SYS_CONSTRAINTS_ k "
                                  "WHERE i.INDEX_ID = k.INDEX_ID AND k.CONSTRAINT_TYPE = 3")[0][0]
    assert name.startswith("__SYS_IDX_ID_")
    assert code_of(engine, "node1", f'DROP INDEX "{name}"') == "3119E"


# ---------------------------------------------------------------------------------- FLUSH and the gap
def test_flush_waits_for_the_peers_acknowledgement_so_a_down_peer_times_it_out(engine):
    seed_pair(engine, start=False)
    run(engine, "node1", "ALTER REPLICATION rep1 START")
    engine.server_down("node2")
    run(engine, "node1", "INSERT INTO t1 VALUES (1, 1)")
    started = time.monotonic()
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 2") == "61075"
    assert time.monotonic() - started >= 2
    # without WAIT it runs until the statement's query timeout
    engine.set_config("node1", "QUERY_TIMEOUT", 1)
    engine.restart_server("node1")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 FLUSH") == "01044"
    engine.server_up("node2")
    run(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 10")
    assert query(engine, "node2", "SELECT COUNT(*) FROM t1") == [(1,)]


def test_the_gap_counts_all_log_not_only_the_replicated_tables(engine):
    seed_pair(engine)
    run(engine, "node1", "CREATE TABLE local_only (c1 INTEGER PRIMARY KEY)")
    engine.pause_sender("node1", "REP1")
    run(engine, "node1", *[f"INSERT INTO local_only VALUES ({i})" for i in range(5)])
    gap, rep_sn, last_sn = query(engine, "node1", "SELECT REP_GAP, REP_SN, REP_LAST_SN FROM V$REPGAP")[0]
    assert gap == 5 == last_sn - rep_sn
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 1") == "61075"
    engine.resume_sender("node1", "REP1")
    run(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    assert query(engine, "node1", "SELECT REP_GAP FROM V$REPGAP") == [(0,)]


def test_71_has_no_rep_gap_size_and_start_flag_is_0_after_a_plain_start(engine, tmp_path):
    seed_pair(engine)
    assert code_of(engine, "node1", "SELECT REP_GAP_SIZE FROM V$REPGAP") == "31058"
    assert query(engine, "node1", "SELECT START_FLAG FROM V$REPGAP") == [(0,)]
    assert query(engine, "node1", "SELECT START_FLAG FROM V$REPSENDER") == [(0,)]
    later = Simulation(tmp_path / "v73")
    try:
        later.add_server("node1", version="7.3")
        run(later, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)",
            "CREATE REPLICATION rep1 WITH 'node2', 20301 FROM sys.t1 TO sys.t1", "ALTER REPLICATION rep1 START RETRY")
        assert query(later, "node1", "SELECT REP_GAP, REP_GAP_SIZE FROM V$REPGAP") == [(0, 0)]
    finally:
        later.shutdown()


# ---------------------------------------------------------------------------------- errors
def test_replication_item_errors_are_the_servers(engine):
    seed_pair(engine, tables=("T1", "T2"), start=False)
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.nope TO sys.nope") == "61111"
    run(engine, "node1", "CREATE TABLE t3 (c1 INTEGER PRIMARY KEY)")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t3 TO sys.t3") == "6111A"
    # ADD TABLE of an item already there hits the item catalog's unique index (not documented; the DAGs
    # read the items first and never rely on it), not the SYNC error 3129B
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1") == "11058"
    # validation comes before the started check: a wrong table is named even while replication runs
    run(engine, "node1", "ALTER REPLICATION rep1 START")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t3 TO sys.t3") == "6111A"
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1") == "610FE"
    message = str(pytest.raises(dbapi.Error, run, engine, "node1",
                                "ALTER REPLICATION rep1 DROP TABLE FROM sys.nope TO sys.nope").value)
    assert "[ERR-61111 : Table not found : NOPE]" in message


def test_sysdba_is_for_sys_only(engine):
    run(engine, "node1", "CREATE USER app IDENTIFIED BY secret")
    assert code_of(engine, "node1", "SELECT 1 FROM DUAL", user="APP", password="secret", sysdba=True) == "41043"
    assert code_of(engine, "node1", "SELECT 1 FROM DUAL", user="NOBODY", password="x") == "31010"
    assert code_of(engine, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1", user="APP", password="secret",
                   sysdba=False) == "311B1"
    assert code_of(engine, "node1", "ALTER SYSTEM SET NO_SUCH_PROPERTY = 1") == "0104B"
    run(engine, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    assert code_of(engine, "node1", "SELECT 1 FROM DUAL", user="APP", password="secret", sysdba=True) == "41043"


def test_isql_prints_a_failed_login_on_stdout_and_exits_255(sim):
    port = sim.server("node1")["port"]
    out = subprocess.run([sys.executable, "-m", "altibase_sim.isql", "-s", "127.0.0.1", "-port", str(port),
                          "-u", "SYS", "-p", "wrong", "-silent"], input="SELECT 1 FROM DUAL;\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 255
    assert "ERR-4102E" in out.stdout and out.stderr == ""
    # a script's statements after a refused CONNECT meet iSQL's own "no connection" (dbcDiagnostic.cpp)
    script = "CONNECT SYS/wrong;\nSELECT 1 FROM DUAL;\n"
    out = subprocess.run([sys.executable, "-m", "altibase_sim.isql", "-s", "127.0.0.1", "-port", str(port),
                          "/nolog", "-silent"], input=script, capture_output=True, text=True, timeout=60)
    assert "ERR-4102E" in out.stdout and "[ERR-91020 : No Connection State]" in out.stdout, out.stdout


def test_isql_prints_the_real_clients_row_count_lines_for_0_1_and_n_rows(sim):
    # ut/isql/src/iSQLExecuteCommand.cpp PrintCount: "No rows <verb>." for 0, "1 row …", "N rows …"
    port = sim.server("node1")["port"]
    script = ("CREATE TABLE t9 (c1 INTEGER PRIMARY KEY, c2 INTEGER);\n"
              "INSERT INTO t9 VALUES (1, 0);\nINSERT INTO t9 VALUES (2, 0);\nINSERT INTO t9 VALUES (3, 0);\n"
              "UPDATE t9 SET c2 = 1 WHERE c1 = 9;\nUPDATE t9 SET c2 = 1 WHERE c1 = 1;\nUPDATE t9 SET c2 = 2;\n"
              "DELETE FROM t9 WHERE c1 = 9;\nDELETE FROM t9 WHERE c1 = 1;\nDELETE FROM t9;\n"
              "SELECT c1 FROM t9;\n")
    out = subprocess.run([sys.executable, "-m", "altibase_sim.isql", "-s", "127.0.0.1", "-port", str(port),
                          "-u", "SYS", "-p", "manager", "-silent"], input=script,
                         capture_output=True, text=True, timeout=60)
    assert [line for line in out.stdout.splitlines() if line.strip() and not line.startswith(("C1", "--"))] == [
        "Create success.", "1 row inserted.", "1 row inserted.", "1 row inserted.",
        "No rows updated.", "1 row updated.", "3 rows updated.",
        "No rows deleted.", "1 row deleted.", "2 rows deleted.", "No rows selected."]


def test_isqls_session_shows_the_real_clients_app_info(sim):
    # ut/isql/src/iSQLExecuteCommand.cpp ConnectDB: APP_INFO = PRODUCT_PREFIX"isql" ("" for Altibase)
    port = sim.server("node1")["port"]
    out = subprocess.run([sys.executable, "-m", "altibase_sim.isql", "-s", "127.0.0.1", "-port", str(port),
                          "-u", "SYS", "-p", "manager", "-silent"],
                         input="SELECT CLIENT_APP_INFO FROM V$SESSION WHERE ID = SESSION_ID();\n",
                         capture_output=True, text=True, timeout=60)
    assert [line.strip() for line in out.stdout.splitlines()][:4] == ["CLIENT_APP_INFO", "-" * 15, "isql",
                                                                      "1 row selected."]


@pytest.mark.parametrize("statement, code", [
    ("ALTER TABLE t1 ADD COLUMN (c3 INTEGER)", "312C4"),
    ("TRUNCATE TABLE t1", "312C4"),
    ("DROP TABLE t1", "3103F"),
])
def test_ddl_on_a_replicated_table_is_refused_as_the_server_does(engine, statement, code):
    seed_pair(engine)
    assert code_of(engine, "node1", statement) == code


def test_a_unique_constraint_is_a_key_constraint_its_columns_cannot_be_dropped_one_by_one(engine):
    """qdbAlter.cpp validateDropCol checks every unique key (PRIMARY KEY and UNIQUE alike): a column of a
    multi-column one is ERR-31321; SYS_CONSTRAINTS_ lists it as type 2 with its index; DROP INDEX of that
    index is ERR-3119E; a single-column UNIQUE goes with its column."""
    run(engine, "node1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER, c3 INTEGER, c4 INTEGER, "
                         "UNIQUE (c2, c3), CONSTRAINT t1_u4 UNIQUE (c4))")
    assert code_of(engine, "node1", "ALTER TABLE t1 DROP COLUMN c3") == "31321"
    kinds = query(engine, "node1", "SELECT k.CONSTRAINT_TYPE, k.COLUMN_CNT, i.INDEX_NAME FROM SYSTEM_.SYS_CONSTRAINTS_ k, "
                                   "SYSTEM_.SYS_INDICES_ i WHERE k.INDEX_ID = i.INDEX_ID ORDER BY k.COLUMN_CNT DESC")
    assert [(t, n) for t, n, _ in kinds] == [(2, 2), (3, 1), (2, 1)]
    assert code_of(engine, "node1", f'DROP INDEX "{kinds[0][2]}"') == "3119E"
    run(engine, "node1", "INSERT INTO t1 VALUES (1, 1, NULL, 1)")
    assert code_of(engine, "node1", "INSERT INTO t1 VALUES (2, 1, NULL, 2)") == "11058"  # NULL equals NULL
    run(engine, "node1", "ALTER TABLE t1 DROP COLUMN c4")
    assert [t for t, _, _ in query(engine, "node1", "SELECT k.CONSTRAINT_TYPE, k.COLUMN_CNT, i.INDEX_NAME FROM "
                                   "SYSTEM_.SYS_CONSTRAINTS_ k, SYSTEM_.SYS_INDICES_ i WHERE k.INDEX_ID = i.INDEX_ID")] \
        == [3, 2]
