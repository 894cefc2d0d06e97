"""What the tool records on the servers (ddl/records.py): the pair's lock, and what a DDL step ran —
so a re-run never truncates twice, resumes only what this request began, and a second run is refused."""

from __future__ import annotations

import logging

import pytest

from altibase_ops.ddl.preflight import PreflightError, preflight
from altibase_ops.ddl.procedure import steps_in_order
from altibase_ops.ddl.records import PairLockedError, release_lock, take_lock
from altibase_ops.ddl.restore import restore
from altibase_ops.ddl.verify import post_checks
from tests.plugins.altibase_ops.ddl.test_restore_matrix import (
    begin,
    request_for,
    run_procedure,
    run_step,
    step_named,
)

log = logging.getLogger("run-records")


def count(sim, node: str) -> int:
    with sim.connect(node, sysdba=True) as conn:
        return conn.cursor().execute("SELECT COUNT(*) FROM SYS.T1").fetchone()[0]


def insert(sim, *keys: int) -> None:
    with sim.connect("node1") as conn:
        for key in keys:
            conn.cursor().execute(f"INSERT INTO SYS.T1 VALUES ({key}, {key})")


def test_a_truncate_that_ran_is_never_run_again_for_the_same_request(pair):
    insert(pair, 1, 2, 3)
    request = request_for(pair, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"])
    run_procedure(request, started_at=begin(request, "run-1")["started_at"])
    post_checks(request, log)
    release_lock(request, "run-1", log)
    assert count(pair, "node1") == count(pair, "node2") == 0
    insert(pair, 10, 11)  # the application writes again
    # the same request once more: applied everywhere (recorded), the pair whole -> nothing to do
    again = request_for(pair, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"])
    assert preflight(again, log)["nothing_to_do"] is True
    # and even a step run by hand skips it: the server's record says DONE
    from altibase_ops.ddl.steps import prepare_step

    ddl_step = next(s for s in steps_in_order("active_standby", "can_stop") if s.action == "ddl")
    assert prepare_step(ddl_step, again, None, log) == ""
    assert count(pair, "node1") == 2


def test_a_truncate_that_began_and_never_reported_is_not_run_blindly(pair):
    from altibase_ops.ddl.records import UnsureWhetherAppliedError, record
    from altibase_ops.ddl.steps import prepare_step

    request = request_for(pair, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"])
    record(request.server("active"), request, [0], "BEGAN", "run-that-died")
    ddl_step = next(s for s in steps_in_order("active_standby", "can_stop") if s.action == "ddl" and s.role == "active")
    with pytest.raises(UnsureWhetherAppliedError, match="never reported back.*UPDATE SYS.AIRFLOW_DDL_APPLIED"):
        prepare_step(ddl_step, request, None, log)


def test_a_table_that_is_not_replicated_is_refused_not_added(pair):
    with pair.connect("node1", sysdba=True) as conn:
        conn.cursor().execute("CREATE TABLE SYS.T3 (C1 INTEGER PRIMARY KEY, C2 INTEGER)")
    with pair.connect("node2", sysdba=True) as conn:
        conn.cursor().execute("CREATE TABLE SYS.T3 (C1 INTEGER PRIMARY KEY, C2 INTEGER)")
    request = request_for(pair, "active_standby", "can_stop", tables=["SYS.T3"],
                          ddl=["ALTER TABLE SYS.T3 ADD COLUMN (C3 INTEGER)"])
    with pytest.raises(PreflightError, match=r"SYS\.T3 not in replication REP1, and no run of this request took it out"):
        preflight(request, log)


def test_the_pair_is_held_by_one_run_and_a_failed_one_is_taken_over_only_by_recover(pair):
    first = request_for(pair, "active_standby", "can_stop")
    begin(first, "run-A")
    other = request_for(pair, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER)"])
    with pytest.raises(PreflightError, match="another request: .*held by run 'run-A'"):
        preflight(other, log)
    with pytest.raises(PairLockedError, match="held by run 'run-A'"):
        take_lock(other, "run-B", "another airflow", log)
    # run A stops after O4 (tables out of the replication on both servers): only this request resumes it
    # (each server's O4–O6 runs in a lane of its own, side by side: each got through O4 before the run stopped)
    history = run_procedure(first, stop_at_step="O5_run_ddl_on_active")
    run_step(step_named(first, "O4_drop_table_on_standby"), first, history)
    with pytest.raises(PreflightError, match="(?s)held by run 'run-A'.*That run is alive.*wait for it to end"):
        preflight(request_for(pair, "active_standby", "can_stop"), log)
    again = request_for(pair, "active_standby", "can_stop", recover=True)
    restore(again, history, log, resumable_ok=True)
    run_procedure(again, started_at=begin(again, "run-C")["started_at"])
    post_checks(again, log)
    release_lock(again, "run-C", log)
    preflight(other, log)  # free again: the other request may run now


def test_the_summary_reads_where_the_application_writes_and_the_pair_state(pair):
    """Observed, not inferred: the same steps read differently when the application is not where it was."""
    from altibase_ops.ddl.summary import observe_pair, pair_statement, service_statement
    from altibase_ops.service.control import perform

    request = request_for(pair, "active_standby", "can_stop")
    pair.load_start("node1", table="SYS.T1", interval=0.05)
    observed = observe_pair(request, [])
    assert service_statement(observed).startswith("application service: as before the run — the application "
                                                  "writes on node1")
    assert pair_statement(observed).startswith("pair: whole")
    history = perform("move_to_peer", request.service_control, "node1", "node2", [])  # moved, as at SW2
    observed = observe_pair(request, history)
    assert service_statement(observed).startswith("application service: NOT as before the run — the application "
                                                  "writes on node2")
    # the standby takes writes but does not send: the invariant names it, with the one action
    assert "node2: the application writes here but its sender of REP1 is not running" in pair_statement(observed)
    perform("restore", request.service_control, "", "", history)
    assert service_statement(observe_pair(request, [])).startswith("application service: as before the run")


def test_a_run_refused_on_its_second_server_gives_back_the_first(pair):
    """Two runs racing for one pair: the loser holds nothing afterwards (never half a lock)."""
    first = request_for(pair, "active_standby", "can_stop")
    take_lock(first, "run-A", "this airflow", log)
    with pair.connect("node1", sysdba=True) as conn:  # as if run A had taken node2 only so far
        conn.cursor().execute("DELETE FROM SYS.AIRFLOW_DDL_LOCK")
    other = request_for(pair, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER)"])
    with pytest.raises(PairLockedError, match="on node2 is held by run 'run-A'"):
        take_lock(other, "run-B", "another airflow", log)
    for node, holders in (("node1", []), ("node2", [("run-A",)])):
        with pair.connect(node, sysdba=True) as conn:
            assert conn.cursor().execute("SELECT RUN_ID FROM SYS.AIRFLOW_DDL_LOCK").fetchall() == holders, node


def test_the_refusal_names_a_live_holder_and_never_advises_recover(pair):
    """The message of a refused run: the holder, its run, its age, its heartbeat, and what to do."""
    first = request_for(pair, "active_standby", "can_stop")
    take_lock(first, "run-A", "altibase_replicated_ddl on host-a", log, run_state=lambda dag, run: "running")
    again = request_for(pair, "active_standby", "can_stop", recover=True)
    with pytest.raises(PairLockedError) as info:
        take_lock(again, "run-B", "altibase_replicated_ddl on host-b", log, run_state=lambda dag, run: "running")
    text = str(info.value)
    assert "run 'run-A'" in text and "last heartbeat" in text and "That run is alive" in text
    assert "trigger this request again with recover=true" not in text
    # the holder's run is over: the same request with recover takes it over, and says why
    taken = take_lock(again, "run-B", "altibase_replicated_ddl on host-b", log, run_state=lambda dag, run: "failed")
    assert all("its Airflow run is failed" in how for how in taken.values())


def test_only_the_servers_own_answer_marks_a_statement_failed_a_broken_link_leaves_it_unknown():
    from altibase_ops.ddl.steps import StepScript, statement_outcomes
    from altibase_ops.sql.isql import CONNECT_LABEL
    from altibase_ops.sql.steps import StatementResult

    script = StepScript("TRUNCATE TABLE SYS.T1;\nTRUNCATE TABLE SYS.T2;\nTRUNCATE TABLE SYS.T3;\n")
    script.ddl_numbers = (0, 1, 2)
    # real iSQL's own code for a broken link (ut/isql/dbc/dbcDiagnostic.cpp): the server may have run it
    broken = [StatementResult("ok", "Connect success.", statement=CONNECT_LABEL),
              StatementResult("error", "[ERR-91015 : Communication failure.]", "91015",
                              statement="TRUNCATE TABLE SYS.T1")]
    assert statement_outcomes(script, broken) == {}
    results = [StatementResult("ok", "Connect success.", statement=CONNECT_LABEL),
               StatementResult("ok", "Truncate success.", statement="TRUNCATE TABLE SYS.T1"),
               StatementResult("error", "[ERR-11075 : …]", "11075", statement="TRUNCATE TABLE SYS.T2"),
               StatementResult("error", "[ERR-51043 : …]", "51043", statement="TRUNCATE TABLE SYS.T3")]
    assert statement_outcomes(script, results) == {0: "DONE", 1: "FAILED"}  # 2: the link broke, unknown
    unlabelled = [StatementResult("ok", "Truncate success."), StatementResult("error", "[ERR-11075 : …]", "11075")]
    assert statement_outcomes(script, unlabelled) == {}  # results the client did not tie to statements


def test_a_lock_and_records_left_under_the_earlier_key_are_still_this_change_ids_request(pair):
    """Before a change id was part of the request's key, a maintenance run's lock and records carried the
    key of its statements alone; its retry (same change id) still takes the lock over and sees its
    TRUNCATE done, instead of being refused as "another request" and truncating again."""
    from altibase_ops.ddl.records import record

    old = request_for(pair, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"])
    earlier_run = "maintenance__pair1__0007_truncate__scheduled__2026-12-01"  # a lane's run id names the change
    take_lock(old, earlier_run, "an earlier version", log)
    for server in old.servers:
        record(server, old, [0], "BEGAN", earlier_run)
        record(server, old, [0], "DONE", earlier_run)
    retry = request_for(pair, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"], change_id="0007_truncate",
                        recover=True)
    held = take_lock(retry, "run-retry", "this version", log, run_state=lambda dag_id, run_id: "failed")
    assert all(v.startswith(f"taken over from {earlier_run}") for v in held.values()), held
    from altibase_ops.ddl.state import read_all

    assert {n: s.ddl_records for n, s in read_all(retry).items()} == {"node1": {0: "DONE"}, "node2": {0: "DONE"}}
    # the same statements under another change id are another request: nothing of the earlier run is theirs
    other = request_for(pair, "active_standby", "can_stop", ddl=["TRUNCATE TABLE SYS.T1"], change_id="0008_again")
    assert {n: s.ddl_records for n, s in read_all(other).items()} == {"node1": {}, "node2": {}}
