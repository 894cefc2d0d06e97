"""Every rule and error of altibase-facts.md that the DAGs can run into (issue item 4)."""

from __future__ import annotations

import pytest

from altibase_sim import dbapi
from altibase_sim.simulation import Simulation
from tests.sim.helpers import code_of, query, run, seed_pair, wait_until


@pytest.mark.parametrize("ddl", [
    "ALTER TABLE t1 ADD COLUMN (c3 INTEGER)",
    "ALTER TABLE t1 DROP COLUMN c2",
    "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)",
    "TRUNCATE TABLE t1",
    "CREATE INDEX t1_i ON t1 (c2)",
])
def test_ddl_on_a_replicated_table_is_refused_with_312C4(engine, ddl):
    seed_pair(engine, tables=("T1", "T2"), start=False)
    assert code_of(engine, "node1", ddl) == "312C4"
    # allowed once the table has left the replication (what O4/R4 are for)
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1", ddl)


def test_drop_index_and_drop_table_of_replicated_tables(engine):
    run(engine, "node1", "CREATE TABLE t2 (c1 INTEGER PRIMARY KEY, c2 INTEGER)", "CREATE INDEX t2_i ON t2 (c2)")
    run(engine, "node2", "CREATE TABLE t2 (c1 INTEGER PRIMARY KEY, c2 INTEGER)")
    seed_pair(engine, start=False)
    run(engine, "node1", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t2 TO sys.t2")
    assert code_of(engine, "node1", "DROP INDEX t2_i") == "312C4"
    assert code_of(engine, "node1", "DROP TABLE t2") == "3103F"
    run(engine, "node1", "ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 1")
    assert code_of(engine, "node1", "DROP TABLE t2") == "3103F"  # whatever the properties


def test_replication_state_errors(engine):
    seed_pair(engine, tables=("T1", "T2"), start=False)
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 STOP") == "61027"
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 FLUSH") == "61027"
    assert code_of(engine, "node1", "ALTER REPLICATION nope START") == "6111B"
    assert code_of(engine, "node1", "CREATE REPLICATION rep1 WITH 'node2', 20301 FROM sys.t1 TO sys.t1") == "61100"
    run(engine, "node1", "ALTER REPLICATION rep1 START")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 START") == "6100A"
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 QUICKSTART") == "6100A"
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1") == "610FE"
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t1 TO sys.t1") == "610FE"
    assert code_of(engine, "node1", "DROP REPLICATION rep1") == "610FE"
    run(engine, "node1", "ALTER REPLICATION rep1 STOP")
    # no such table at all: table not found (qmv validation); a table that exists but is not an item: 6111A
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t9 TO sys.t9") == "61111"
    run(engine, "node1", "CREATE TABLE t9 (c1 INTEGER PRIMARY KEY)")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t9 TO sys.t9") == "6111A"
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t2 TO sys.t2") == "6106F"
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 ADD TABLE FROM sys.t2 TO sys.t2") == "11058"
    run(engine, "node1", "DROP REPLICATION rep1")


def test_add_or_drop_table_refused_while_the_peer_still_sends(engine):
    seed_pair(engine, tables=("T1", "T2"))
    run(engine, "node1", "ALTER REPLICATION rep1 STOP")  # this side stopped, but node2 still sends to it
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1") == "6109F"
    run(engine, "node2", "ALTER REPLICATION rep1 STOP")
    run(engine, "node1", "ALTER REPLICATION rep1 DROP TABLE FROM sys.t1 TO sys.t1")


def test_handshake_fails_when_peer_down_missing_or_definitions_differ(engine):
    seed_pair(engine, start=False)
    engine.server_down("node2")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 START") == "6100D"
    engine.server_up("node2")
    # different definitions: refused unless the receiver is in SQL apply mode
    run(engine, "node2", "DROP REPLICATION rep1", "ALTER TABLE t1 MODIFY COLUMN (c2 BIGINT)",
        "CREATE REPLICATION rep1 WITH 'node1', 20301 FROM sys.t1 TO sys.t1")
    with pytest.raises(dbapi.Error, match="differ") as info:
        run(engine, "node1", "ALTER REPLICATION rep1 START")
    assert info.value.code == "6100D"
    run(engine, "node2", "ALTER SYSTEM SET REPLICATION_SQL_APPLY_ENABLE = 1")
    run(engine, "node1", "ALTER REPLICATION rep1 START")


def test_start_retry_starts_despite_a_failed_handshake_and_port_zero_disables(engine):
    seed_pair(engine, start=False)
    engine.server_down("node2")
    run(engine, "node1", "ALTER REPLICATION rep1 START RETRY")
    assert query(engine, "node1", "SELECT STATUS, NET_ERROR_FLAG FROM V$REPSENDER") == [(2, 1)]
    engine.server_up("node2")
    assert wait_until(lambda: query(engine, "node1", "SELECT STATUS FROM V$REPSENDER") == [(1,)])
    engine.add_server("node3", replication_port=0)
    run(engine, "node3", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)")
    assert code_of(engine, "node3", "CREATE REPLICATION r WITH 'node1', 20301 FROM sys.t1 TO sys.t1") == "61023"


def test_replication_statements_need_sys(engine):
    run(engine, "node1", "CREATE USER app IDENTIFIED BY app1", "CREATE TABLE t1 (c1 INTEGER PRIMARY KEY)")
    assert code_of(engine, "node1", "ALTER REPLICATION rep1 START", sysdba=False, user="APP", password="app1") \
        == "31084"
    # the ALTER SYSTEM privilege is checked first (311B1); 4107F is for a privileged user other than SYS
    assert code_of(engine, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1", sysdba=False, user="APP",
                   password="app1") == "311B1"
    run(engine, "node1", "CREATE TABLE t (c1 INTEGER PRIMARY KEY)", sysdba=False, user="APP", password="app1")
    assert query(engine, "node1", "SELECT u.USER_NAME FROM SYSTEM_.SYS_TABLES_ t, SYSTEM_.SYS_USERS_ u "
                 "WHERE t.USER_ID = u.USER_ID AND t.TABLE_NAME = 'T'") == [("APP",)]
    with pytest.raises(dbapi.Error) as info:
        engine.connect("node1", user="APP", password="wrong")
    assert info.value.code == "4102E"


def test_admin_mode_login_rule_one_sysdba_session_and_existing_sessions_kept(engine):
    run(engine, "node1", "CREATE USER app IDENTIFIED BY app1")
    app = engine.connect("node1", user="APP", password="app1", client_info="app")
    plain_sys = engine.connect("node1")
    with engine.connect("node1", sysdba=True) as dba:
        with pytest.raises(dbapi.Error) as second:
            engine.connect("node1", sysdba=True)
        assert second.value.code == "41041"
        dba.cursor().execute("ALTER SYSTEM SET ADMIN_MODE = 1")
        for kwargs in ({"user": "APP", "password": "app1"}, {}):  # plain SYS included
            with pytest.raises(dbapi.Error) as refused:
                engine.connect("node1", **kwargs)
            assert refused.value.code == "4106E"
        # sessions that were already open stay open and keep working
        assert app.cursor().execute("SELECT COUNT(*) FROM V$SESSION").fetchone() == (3,)
        plain_sys.cursor().execute("SELECT 1 FROM DUAL")
        dba.cursor().execute("ALTER SYSTEM SET ADMIN_MODE = 0")
    engine.connect("node1", user="APP", password="app1").close()
    app.close()
    plain_sys.close()


def test_repgap_rows_exist_only_while_the_sender_runs_and_count_in_gap_units(tmp_path):
    engine = Simulation(tmp_path / "engine73")
    for name in ("node1", "node2"):
        engine.add_server(name, version="7.3")  # REP_GAP_SIZE and gap units came after 7.1
    try:
        _repgap_rows_in_gap_units(engine)
    finally:
        engine.shutdown()


def _repgap_rows_in_gap_units(engine):
    seed_pair(engine)
    assert [r[0] for r in query(engine, "node1", "SELECT REP_NAME FROM V$REPGAP")] == ["REP1"]
    engine.pause_sender("node1", "REP1")
    run(engine, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(20)])
    size = query(engine, "node1", "SELECT REP_GAP, REP_GAP_SIZE FROM V$REPGAP")[0]
    assert size[0] == 1 and size[1] > 0  # ceil(size / 1 MiB)
    run(engine, "node1", "ALTER SYSTEM SET REPLICATION_GAP_UNIT = 100")
    gap, gap_size = query(engine, "node1", "SELECT REP_GAP, REP_GAP_SIZE FROM V$REPGAP")[0]
    assert gap == -(-gap_size // 100) and gap > 1
    run(engine, "node1", "ALTER REPLICATION rep1 STOP")
    assert query(engine, "node1", "SELECT * FROM V$REPGAP") == []  # no row: never "gap 0"
    assert query(engine, "node1", "SELECT * FROM V$REPSENDER") == []
    assert query(engine, "node1", "SELECT IS_STARTED FROM SYSTEM_.SYS_REPLICATIONS_") == [(0,)]
