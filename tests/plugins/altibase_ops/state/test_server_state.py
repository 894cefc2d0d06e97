"""``state.server.read_state``: one short session reads what every job decides on."""

from __future__ import annotations

import pytest

from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.state.catalog import IndexKey
from altibase_ops.state.server import read_state
from tests.sim.helpers import run, seed_pair, wait_until


def test_reads_properties_replication_senders_tables_and_rows(sim, altibase_conns):
    seed_pair(sim, tables=("T1", "T2"))
    # (an index on a replicated table would be refused: ERR-312C4 with REPLICATION_DDL_ENABLE = 0)
    run(sim, "node1", "INSERT INTO SYS.T1 VALUES (1, 1)", "CREATE TABLE SYS.T3 (C1 INTEGER PRIMARY KEY, C2 INTEGER)",
        "CREATE INDEX SYS.T3_C2 ON SYS.T3 (C2)")
    state = read_state(altibase_conns["node1"], "REP1", ["SYS.T1", "SYS.T3", "SYS.T9"], count_rows=True)
    assert state.properties["ADMIN_MODE"] == 0 and state.replication_exists and state.is_started
    assert state.items == {"SYS.T1", "SYS.T2"} and state.item_count == 2
    assert state.sender_running and state.sender_status in (1, 2)
    assert set(state.tables) == {"SYS.T1", "SYS.T3"}  # a table that does not exist is left out
    assert [c[0] for c in state.tables["SYS.T1"].signature()[:2]] == ["C1", "C2"]
    assert state.tables["SYS.T1"].signature()[2:] == ["PRIMARY KEY (C1)"]  # named by what it is, not __SYS_IDX_ID_n
    assert "SYS.T3_C2" in state.tables["SYS.T3"].indexes and state.index_tables["SYS.T3_C2"] == "SYS.T3"
    assert state.tables["SYS.T3"].primary_key == ("C1",)
    assert state.tables["SYS.T3"].index_keys["SYS.T3_C2"] == IndexKey(("C2",), unique=False, constraint=None)
    assert state.row_counts == {"SYS.T1": 1, "SYS.T3": 0}
    assert wait_until(lambda: read_state(altibase_conns["node1"], "REP1", []).gap == 0, timeout=10)


def test_an_observer_without_sysdba_is_refused_in_admin_mode(sim, altibase_conns):
    seed_pair(sim, tables=("T1",))
    run(sim, "node2", "ALTER SYSTEM SET ADMIN_MODE = 1")
    with pytest.raises(AltibaseServerError) as caught:
        read_state(altibase_conns["node2"], "REP1", [], sysdba=False)
    assert caught.value.code == "4106E"
    assert read_state(altibase_conns["node2"], "REP1", []).properties["ADMIN_MODE"] == 1  # SYSDBA still reads
