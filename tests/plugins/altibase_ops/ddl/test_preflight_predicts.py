"""Preflight predicts what Altibase would refuse mid-procedure (ddl/predict.py), from each server's
catalog, and refuses it before the service stops: nothing on either server changes."""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.predict import predict
from altibase_ops.ddl.preflight import PreflightError, preflight
from altibase_ops.ddl.procedure import steps_in_order
from altibase_ops.ddl.records import release_lock
from altibase_ops.ddl.steps import prepare_step
from altibase_ops.ddl.verify import post_checks
from altibase_ops.state.catalog import IndexKey, TableState
from altibase_ops.state.server import ServerState, read_state
from tests.plugins.altibase_ops.ddl.test_restore_matrix import (
    begin,
    request_for,
    run_procedure,
)
from tests.sim.helpers import code_of, query, run, wait_until

log = logging.getLogger("preflight-predicts")


def on_replicated_table(sim, node: str, *statements: str) -> None:
    """DDL on one server's replicated table, as a DBA with REPLICATION_DDL_ENABLE = 1 would run it."""
    run(sim, node, "ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 1", *statements,
        "ALTER SYSTEM SET REPLICATION_DDL_ENABLE = 0")


def with_rows(sim, *keys: int) -> None:
    run(sim, "node1", *[f"INSERT INTO SYS.T1 VALUES ({k}, {k})" for k in keys], sysdba=False)
    assert wait_until(lambda: query(sim, "node2", "SELECT COUNT(*) FROM SYS.T1") == [(len(keys),)])


def refused(sim, **extra) -> str:
    """Preflight's refusal of a request, after checking that nothing changed on either server."""
    before = {n: read_state(f"altibase_{n}", "REP1", ["SYS.T1"]).summary() for n in ("node1", "node2")}
    with pytest.raises(PreflightError) as info:
        preflight(request_for(sim, "active_standby", "can_stop", **extra), log)
    after = {n: read_state(f"altibase_{n}", "REP1", ["SYS.T1"]).summary() for n in ("node1", "node2")}
    assert {n: {**s, "gap": None} for n, s in after.items()} == {n: {**s, "gap": None} for n, s in before.items()}
    assert after["node1"]["admin_mode"] == 0 and after["node1"]["sender_running"]
    return str(info.value)


def test_dropping_the_primary_key_column_is_refused_before_the_service_stops(pair):
    message = refused(pair, ddl=["ALTER TABLE SYS.T1 DROP COLUMN C1"])
    assert "C1 is the PRIMARY KEY of SYS.T1" in message and "ERR-61113" in message
    assert "nothing was changed" in message


def test_a_not_null_column_without_a_default_is_refused_once_the_table_has_rows(pair):
    not_null = ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER NOT NULL)"]
    assert preflight(request_for(pair, "active_standby", "can_stop", ddl=not_null), log)  # empty: Altibase allows it
    with_rows(pair, 1, 2)
    assert "SYS.T1 has 2 rows and C3 is NOT NULL without a DEFAULT" in refused(pair, ddl=not_null)
    with_default = ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER DEFAULT 0 NOT NULL)"]
    assert preflight(request_for(pair, "active_standby", "can_stop", ddl=with_default), log)


def test_an_index_on_one_server_only_is_a_definition_difference_refused_before_drop_column(pair):
    # the probe's case: DROP COLUMN dropped the column and its data on one server and failed on the other
    on_replicated_table(pair, "node2", "CREATE INDEX SYS.T1_C2 ON SYS.T1 (C2)")
    message = refused(pair, ddl=["ALTER TABLE SYS.T1 DROP COLUMN C2"])
    assert "SYS.T1: its definition differs between the servers (only on node2: 'INDEX SYS.T1_C2 (C2)')" in message


def test_dropping_an_indexed_column_drops_the_index_on_both_servers_and_says_so(pair, caplog):
    for node in ("node1", "node2"):
        on_replicated_table(pair, node, "CREATE INDEX SYS.T1_C2 ON SYS.T1 (C2)")
    with_rows(pair, 1, 2, 3)
    request = request_for(pair, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 DROP COLUMN C2"])
    with caplog.at_level(logging.INFO, logger=log.name):
        report = begin(request, "run-1")
    assert "drops SYS.T1_C2 with the column" in " ".join(report["notes"])
    run_procedure(request, started_at=report["started_at"])
    post_checks(request, log)
    release_lock(request, "run-1", log)
    for node in ("node1", "node2"):
        table = read_state(f"altibase_{node}", "REP1", ["SYS.T1"]).tables["SYS.T1"]
        assert list(table.columns) == ["C1"] and table.signature()[1:] == ["PRIMARY KEY (C1)"]


def test_an_index_name_another_table_uses_is_refused(pair):
    run(pair, "node1", "CREATE TABLE SYS.T3 (C1 INTEGER PRIMARY KEY, C2 INTEGER)", "CREATE INDEX SYS.IX ON SYS.T3 (C2)")
    message = refused(pair, ddl=["CREATE INDEX SYS.IX ON SYS.T1 (C2)"])
    assert "node1: 'CREATE INDEX SYS.IX ON SYS.T1 (C2)': the name SYS.IX is taken by an index of SYS.T3" in message
    assert "ERR-3104C" in message and "node2:" not in message  # node2 has no SYS.IX: it would have succeeded there


def test_columns_that_are_not_there_are_refused_not_taken_as_done(pair):
    message = refused(pair, ddl=["ALTER TABLE SYS.T1 DROP COLUMN C9"])
    # a dropped column looks like a done DROP COLUMN; only this tool's record can say it was
    assert "column C9 is not in SYS.T1, and no run of this request dropped it" in message
    message = refused(pair, ddl=["ALTER TABLE SYS.T1 MODIFY COLUMN (C8 BIGINT)", "CREATE INDEX SYS.IX ON SYS.T1 (C9)"])
    assert "column C8 is not in SYS.T1" in message and "column C9 is not in SYS.T1" in message
    # a column an earlier statement of the same request adds is there for the next one
    assert preflight(request_for(pair, "active_standby", "can_stop", ddl=[
        "ALTER TABLE SYS.T1 ADD COLUMN (C9 INTEGER)", "CREATE INDEX SYS.IX ON SYS.T1 (C9)"]), log)


def test_a_ddl_applied_by_hand_on_one_server_is_not_resumed_as_if_this_tool_began_it(pair):
    on_replicated_table(pair, "node2", "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)")
    message = refused(pair, ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"])
    assert "applied on ['node2'] but not on ['node1'], and no run of this request holds the pair" in message


def test_drop_index_runs_once_and_the_same_request_again_has_nothing_to_do(pair):
    for node in ("node1", "node2"):
        on_replicated_table(pair, node, "CREATE INDEX SYS.T1_C2 ON SYS.T1 (C2)")
    ddl = ["DROP INDEX SYS.T1_C2"]
    request = request_for(pair, "active_standby", "can_stop", ddl=ddl)
    run_procedure(request, started_at=begin(request, "run-1")["started_at"])
    post_checks(request, log)
    release_lock(request, "run-1", log)
    again = request_for(pair, "active_standby", "can_stop", ddl=ddl)
    assert preflight(again, log)["nothing_to_do"] is True
    ddl_step = next(s for s in steps_in_order("active_standby", "can_stop") if s.action == "ddl")
    assert prepare_step(ddl_step, again, None, log) == ""  # the index is gone: nothing to send, no ERR-31014


def test_drop_index_of_a_named_primary_key_is_refused(pair):
    # a key declared CONSTRAINT PK_T1 PRIMARY KEY has an index by that name (the simulator names its
    # keys' indexes __SYS_IDX_ID_n only, so the catalog is written out here)
    columns = {c: {"DATA_TYPE": 4, "PRECISION": 10, "SCALE": 0, "IS_NULLABLE": "F", "COLUMN_ORDER": i}
               for i, c in enumerate(("C1", "C2"), start=1)}
    state = ServerState("altibase_node1", index_tables={"SYS.PK_T1": "SYS.T1"}, tables={"SYS.T1": TableState(
        columns, {"SYS.PK_T1"}, {"SYS.PK_T1": IndexKey(("C1",), True, "PRIMARY KEY")})})
    request = request_for(pair, "active_standby", "can_stop", ddl=["DROP INDEX SYS.PK_T1"])
    assert predict(request, "node1", state).problems == [
        "node1: 'DROP INDEX SYS.PK_T1': SYS.PK_T1 is the index of SYS.T1's PRIMARY KEY; DROP INDEX cannot drop it "
        "(Altibase refuses: ERR-3119E)"]


def test_a_unique_index_over_a_key_two_rows_share_on_one_server_only_is_refused_naming_the_server_and_key(pair):
    with_rows(pair, 1, 2)
    run(pair, "node2", "INSERT INTO SYS.T1 VALUES (3, 2)", sysdba=False)  # the standby sends nothing: node2 only
    unique = ["CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)"]
    message = refused(pair, ddl=unique)
    assert "node2: 'CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)': 2 rows of SYS.T1 share the key (C2=2)" in message
    assert "ERR-11058" in message and "node1: 'CREATE UNIQUE" not in message
    run(pair, "node2", "DELETE FROM SYS.T1 WHERE C1 = 3", sysdba=False)
    assert preflight(request_for(pair, "active_standby", "can_stop", ddl=unique), log)


def test_the_duplicate_key_check_reads_no_table_larger_than_its_bound_and_says_how_to_check_it(pair):
    with_rows(pair, 1, 2, 3)
    message = refused(pair, ddl=["CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)"], scan_max_rows=2)
    assert "SYS.T1 has 3 rows, more than scan_max_rows (2)" in message and "HAVING COUNT(*) > 1" in message
    assert preflight(request_for(pair, "active_standby", "can_stop", ddl=["CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)"],
                                 scan_max_rows=3), log)


def test_a_unique_key_of_only_nulls_is_not_a_duplicate_and_a_truncate_before_the_index_empties_the_table(pair):
    run(pair, "node1", *[f"INSERT INTO SYS.T1 VALUES ({k}, NULL)" for k in (1, 2)], sysdba=False)
    assert wait_until(lambda: query(pair, "node2", "SELECT COUNT(*) FROM SYS.T1") == [(2,)])
    assert preflight(request_for(pair, "active_standby", "can_stop",
                                 ddl=["CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)"]), log)
    run(pair, "node1", "UPDATE SYS.T1 SET C2 = 7", sysdba=False)
    assert wait_until(lambda: query(pair, "node2", "SELECT COUNT(*) FROM SYS.T1 WHERE C2 = 7") == [(2,)])
    assert "share the key (C2=7)" in refused(pair, ddl=["CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)"])
    assert preflight(request_for(pair, "active_standby", "can_stop",
                                 ddl=["TRUNCATE TABLE SYS.T1", "CREATE UNIQUE INDEX SYS.T1_U ON SYS.T1 (C2)"]), log)


def test_two_values_swapped_between_rows_on_one_server_are_seen_by_the_data_check(pair):
    from altibase_ops.ddl.verify import compare_table_data

    run(pair, "node1", "INSERT INTO SYS.T1 VALUES (1, 10)", "INSERT INTO SYS.T1 VALUES (2, 20)", sysdba=False)
    assert wait_until(lambda: query(pair, "node2", "SELECT COUNT(*) FROM SYS.T1") == [(2,)])
    request = request_for(pair, "active_standby", "can_stop")
    assert compare_table_data(request, attempts=1)[1]
    # the standby sends nothing: swapped there only (same row count, same sums)
    run(pair, "node2", "UPDATE SYS.T1 SET C2 = 30 - C2", sysdba=False)
    data, equal = compare_table_data(request, attempts=1)
    assert not equal and data["SYS.T1"]["node1"]["C2"] == data["SYS.T1"]["node2"]["C2"]
    assert data["SYS.T1"]["node1"]["W_C2"] != data["SYS.T1"]["node2"]["W_C2"]


def test_preflight_refuses_a_pair_diverged_before_the_run_naming_the_table_and_the_first_differing_keys(pair):
    with_rows(pair, 1, 2, 3)
    run(pair, "node2", "UPDATE SYS.T1 SET C2 = 4 - C2 WHERE C1 IN (1, 3)", sysdba=False)  # 1 and 3 swap values
    message = refused(pair)
    assert "SYS.T1: its data differ between the servers while nothing writes (W_C2 differ; first differing keys: " \
           "C1=1; C1=3)" in message


def test_under_live_load_preflight_notes_it_could_not_compare_instead_of_calling_it_a_divergence(pair):
    with_rows(pair, 1, 2, 3)
    run(pair, "node2", "UPDATE SYS.T1 SET C2 = 4 - C2 WHERE C1 IN (1, 3)", sysdba=False)
    held = pair.hold_session("node1", client_info="the application")
    try:
        report = preflight(request_for(pair, "active_standby", "can_stop"), log)
    finally:
        pair.release_session(held)
    assert any("not compared before the outage: the application is connected (sessions on node1: 1)" in n
               and "O9 compares them with the service stopped" in n for n in report["notes"]), report["notes"]


def test_a_pair_whose_data_agree_is_noted_with_what_the_comparison_could_see(pair, caplog):
    with_rows(pair, 1, 2, 3)
    report = preflight(request_for(pair, "active_standby", "can_stop"), log)
    assert "SYS.T1: the same on both servers (3 rows; row count, sums, and values moved between rows in C1, C2)" \
        in report["notes"], report["notes"]
    bounded = preflight(request_for(pair, "active_standby", "can_stop", scan_max_rows=2), log)
    assert "SYS.T1: not compared before the outage, more than scan_max_rows (2) rows; O9 compares them with the " \
           "service stopped" in bounded["notes"], bounded["notes"]


def test_dropping_a_column_of_a_multi_column_unique_constraint_is_predicted_as_the_server_refuses_it(pair):
    run(pair, "node1", "CREATE TABLE SYS.T3 (C1 INTEGER PRIMARY KEY, C2 INTEGER, C3 INTEGER, UNIQUE (C2, C3))")
    state = read_state("altibase_node1", "REP1", ["SYS.T3"])
    request = request_for(pair, "active_standby", "can_stop", tables=["SYS.T3"],
                          ddl=["ALTER TABLE SYS.T3 DROP COLUMN C3"])
    assert predict(request, "node1", state).problems == [
        "node1: 'ALTER TABLE SYS.T3 DROP COLUMN C3': C3 is part of the UNIQUE (C2, C3) of SYS.T3 (Altibase refuses "
        "to drop a column of a multi-column key constraint: ERR-31321)"]
    assert code_of(pair, "node1", "ALTER TABLE SYS.T3 DROP COLUMN C3") == "31321"  # as the server says
