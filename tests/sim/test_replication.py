"""Replication that really moves data (issue item 5)."""

from __future__ import annotations

import time

import pytest

from altibase_sim import dbapi
from tests.sim.helpers import query, run, seed_pair, wait_until


def count(engine, server, table="T1") -> int:
    return query(engine, server, f"SELECT COUNT(*) FROM {table}")[0][0]


def test_changes_ship_asynchronously_at_the_configured_rate_so_a_gap_is_visible(engine):
    seed_pair(engine)
    engine.set_sender_rate("node1", "REP1", 200)
    run(engine, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(100)])
    gap, rep_sn, last_sn = query(engine, "node1", "SELECT REP_GAP, REP_SN, REP_LAST_SN FROM V$REPGAP "
                                                  "WHERE REP_NAME = 'REP1'")[0]
    assert gap >= 1 and gap == last_sn - rep_sn  # 7.1: log records not yet acknowledged
    assert count(engine, "node2") < 100
    started = time.monotonic()
    run(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 10")
    assert time.monotonic() - started > 0.1  # it had to wait for the throttled sender
    assert count(engine, "node2") == 100
    assert query(engine, "node1", "SELECT REP_GAP FROM V$REPGAP") == [(0,)]


def test_updates_and_deletes_replicate_both_ways(engine):
    seed_pair(engine)
    run(engine, "node1", "INSERT INTO t1 VALUES (1, 1)", "INSERT INTO t1 VALUES (2, 2)")
    run(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    run(engine, "node2", "UPDATE t1 SET c2 = 20 WHERE c1 = 2", "DELETE FROM t1 WHERE c1 = 1",
        "INSERT INTO t1 VALUES (3, 3)", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    assert query(engine, "node1", "SELECT c1, c2 FROM t1 ORDER BY c1") == [(2, 20), (3, 3)]
    receiver = query(engine, "node1", "SELECT INSERT_SUCCESS_COUNT, UPDATE_SUCCESS_COUNT, DELETE_SUCCESS_COUNT "
                     "FROM V$REPRECEIVER")
    assert receiver == [(1, 1, 1)]


def test_changes_made_while_stopped_are_kept_and_shipped_after_start(engine):
    seed_pair(engine)
    run(engine, "node1", "ALTER REPLICATION rep1 STOP", *[f"INSERT INTO t1 VALUES ({i}, 0)" for i in range(10)])
    time.sleep(0.05)
    assert count(engine, "node2") == 0
    run(engine, "node1", "ALTER REPLICATION rep1 START", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    assert count(engine, "node2") == 10


def test_flush_wait_times_out_on_a_paused_sender_and_flush_all_drains(engine):
    seed_pair(engine)
    engine.pause_sender("node1", "REP1")
    run(engine, "node1", "INSERT INTO t1 VALUES (1, 1)")
    with pytest.raises(dbapi.Error) as info:
        run(engine, "node1", "ALTER REPLICATION rep1 FLUSH WAIT 1")
    assert info.value.code == "61075"
    engine.resume_sender("node1", "REP1")
    run(engine, "node1", "ALTER REPLICATION rep1 FLUSH ALL WAIT 5")
    assert count(engine, "node2") == 1


def test_quickstart_skips_and_reset_discards_what_is_pending(engine):
    seed_pair(engine)
    run(engine, "node1", "ALTER REPLICATION rep1 STOP", "INSERT INTO t1 VALUES (1, 1)",
        "ALTER REPLICATION rep1 QUICKSTART", "INSERT INTO t1 VALUES (2, 2)", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    assert query(engine, "node2", "SELECT c1 FROM t1") == [(2,)]


def test_sync_copies_existing_rows(engine):
    seed_pair(engine, start=False)
    run(engine, "node1", *[f"INSERT INTO t1 VALUES ({i}, 0)" for i in range(5)], "ALTER REPLICATION rep1 SYNC")
    assert count(engine, "node2") == 5


def test_a_table_outside_the_replication_does_not_replicate(engine):
    seed_pair(engine, tables=("T1", "T2"))
    run(engine, "node1", "ALTER REPLICATION rep1 STOP")
    run(engine, "node2", "ALTER REPLICATION rep1 STOP")
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1", "INSERT INTO t1 VALUES (1, 1)",
        "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1", "ALTER REPLICATION rep1 START",
        "INSERT INTO t1 VALUES (2, 2)", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    # the row committed while T1 was out of the replication never reaches the peer: the divergence the
    # vendor's procedure prevents by stopping the service first
    assert query(engine, "node2", "SELECT c1 FROM t1") == [(2,)]


def test_sql_apply_mode_applies_by_column_name_and_counts_until_definitions_match(engine):
    """One rolling turn by hand (R2-R9 on node1), then node2's turn and R11/R12."""
    seed_pair(engine, tables=("T1", "T2"))
    for node in ("node1", "node2"):
        run(engine, node, "ALTER REPLICATION rep1 STOP")
    # a type change: the shared column differs (a nullable column added on one side would not count)
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1",
        "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1")
    with pytest.raises(dbapi.Error) as info:
        run(engine, "node1", "ALTER REPLICATION rep1 START")
    assert info.value.code == "6100D"
    for node in ("node1", "node2"):  # R7 on both servers before R8: the receiver's setting decides
        run(engine, node, "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    for node in ("node1", "node2"):
        run(engine, node, "ALTER REPLICATION rep1 START")
    run(engine, "node1", "INSERT INTO t1 (c1, c2) VALUES (1, 1)", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    run(engine, "node2", "INSERT INTO t1 VALUES (2, 2)", "ALTER REPLICATION rep1 FLUSH WAIT 5")
    for node in ("node1", "node2"):
        assert query(engine, node, "SELECT * FROM t1 ORDER BY c1") == [(1, 1), (2, 2)]
        assert query(engine, node, "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER") == [(1,)]
    # node2's turn
    for node in ("node1", "node2"):
        run(engine, node, "ALTER REPLICATION rep1 FLUSH WAIT 5", "ALTER REPLICATION rep1 STOP")
    run(engine, "node2", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1",
        "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1")
    for node in ("node1", "node2"):
        run(engine, node, "ALTER REPLICATION rep1 START")
    for node in ("node1", "node2"):
        assert wait_until(lambda n=node: query(engine, n, "SELECT SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER") == [(0,)])
        run(engine, node, "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 0")


def test_a_definition_change_under_a_running_replication_stops_shipping_without_sql_apply(engine):
    seed_pair(engine)
    run(engine, "node1", "ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 1", "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)",
        "INSERT INTO t1 VALUES (1, 1)")
    time.sleep(0.2)
    assert count(engine, "node2") == 0
    assert query(engine, "node1", "SELECT STATUS, NET_ERROR_FLAG FROM V$REPSENDER") == [(2, 1)]


def test_a_replicated_row_whose_unique_key_with_a_null_is_taken_on_the_receiver_is_a_conflict_not_a_second_row(engine):
    # the receiver compares keys as the server does (NULL equals NULL): (1, NULL) twice is a conflict there
    for me, peer in (("node1", "node2"), ("node2", "node1")):
        run(engine, me, "CREATE TABLE T5 (C1 INTEGER PRIMARY KEY, C2 INTEGER, C3 INTEGER, UNIQUE (C2, C3))",
            f"CREATE REPLICATION R5 WITH '{peer}', 20301 FROM SYS.T5 TO SYS.T5")
    run(engine, "node2", "INSERT INTO T5 VALUES (5, 1, NULL)")  # node2 sends nothing: there only
    run(engine, "node1", "ALTER REPLICATION R5 START", "INSERT INTO T5 VALUES (6, 1, NULL)",
        "INSERT INTO T5 VALUES (7, 2, NULL)", "ALTER REPLICATION R5 FLUSH WAIT 10")
    assert query(engine, "node2", "SELECT C1 FROM T5 ORDER BY C1") == [(5,), (7,)]
    assert query(engine, "node2", "SELECT INSERT_FAILURE_COUNT FROM V$REPRECEIVER WHERE REP_NAME = 'R5'") == [(1,)]
