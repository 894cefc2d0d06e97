"""Plan and summary made for people: the pair and its Connections, the outage beside the time in admin
mode, every bad entry at once, and a failed run's message that points at the task that explains it."""

from __future__ import annotations

import json
import logging

import pytest

from altibase_ops.ddl.plan import format_ddl_plan, plan_ddl_run
from altibase_ops.ddl.preflight import PreflightError, preflight
from altibase_ops.ddl.request import DdlRequest, InvalidRequestError
from altibase_ops.ddl.summary import failure_message, summarize
from altibase_ops.refusals import Refused, refusals_in_one_line
from altibase_ops.service.control import perform
from altibase_sim.scenarios import seed_replicated_pair

log = logging.getLogger("summary-for-people")
PAIRS = [{"name": "billing", "replication_name": "REP1",
          "servers": [{"name": "node1", "conn_id": "altibase_b1", "role": "active"},
                      {"name": "node2", "conn_id": "altibase_b2", "role": "standby"}]}]
PARAMS = {"pair": "billing", "service_mode": "can_stop", "tables": ["SYS.T1"],
          "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], "dry_run": False}
WHOLE = {"readable": True, "observed": True, "changed": [], "placement": "the application writes on node1",
         "writers": ["node1"], "invariant": {"whole": True, "problems": [], "intermediate": ""},
         "servers": {}}


@pytest.fixture
def billing(monkeypatch):
    monkeypatch.setenv("ALTIBASE_PAIRS", json.dumps(PAIRS))


def test_the_plan_names_the_pair_and_each_servers_connection(billing):
    request = DdlRequest.from_params({**PARAMS, "service_control": {"mode": "manual"}})
    text = format_ddl_plan(request, plan_ddl_run(request))
    first = text.splitlines()[0]
    assert first == ("Plan for pair billing: node1 (active, Connection altibase_b1), node2 (standby, Connection "
                     "altibase_b2)"), first
    steps = [line for line in text.splitlines() if line.startswith("[stage")]
    assert steps and all(line.split(" — ")[1].split(" (")[0] in ("node1 [altibase_b1]", "node2 [altibase_b2]")
                         for line in steps), steps


def test_the_summary_names_the_pair_and_says_each_servers_outage_beside_its_time_in_admin_mode(sim, billing):
    """The outage comes from the records the service control made (their times), not from which steps ran."""
    seed_replicated_pair(sim, topology="active_standby")
    sim.load_start("node1", table="SYS.T1", sessions=1, interval=0.02)
    control = {"mode": "simulator", "state_dir": str(sim.state_dir)}
    request = DdlRequest.from_params({**PARAMS, "service_control": control})
    records = perform("stop", control, "node1", "node2", [])
    records += perform("resume", control, "node1", "node2", records)
    stopped, back = records[0]["at"], records[-1]["at"]
    audits = [{"step_id": "O2", "conn_id": "altibase_b1", "started": stopped + 0.1, "seconds": 0.01,
               "statements": [{"statement": "ALTER SYSTEM SET ADMIN_MODE = 1", "result": "ok", "already_done": False}]},
              {"step_id": "O8", "conn_id": "altibase_b1", "started": stopped + 0.2, "seconds": 0.01,
               "statements": [{"statement": "ALTER SYSTEM SET ADMIN_MODE = 0", "result": "ok", "already_done": False}]}]
    result = summarize(request, audits, {"row_counts": {}}, None, log, WHOLE, records)
    lines = result["text"].splitlines()
    assert lines[0] == ("Run summary of pair billing: node1 (active, Connection altibase_b1), node2 (standby, "
                        "Connection altibase_b2)")
    node1 = next(line for line in lines if line.strip().startswith("node1 "))
    assert f"stopped {clock(stopped)} → resumed {clock(back)} ({back - stopped:.2f} s)" in node1, node1
    assert node1.endswith("admin mode 0.11 s"), node1
    assert next(line for line in lines if line.strip().startswith("node2 ")).strip().startswith(
        "node2        application not stopped by this run")
    assert result["outage_seconds"] == {"node1": round(back - stopped, 2)}
    assert (result["pair_name"], result["connections"]) == ("billing", {"node1": "altibase_b1", "node2": "altibase_b2"})


def test_an_outage_with_no_resume_on_record_says_so_instead_of_an_end(sim, billing):
    seed_replicated_pair(sim, topology="active_standby")
    sim.load_start("node1", table="SYS.T1", sessions=1, interval=0.02)
    control = {"mode": "simulator", "state_dir": str(sim.state_dir)}
    request = DdlRequest.from_params({**PARAMS, "service_control": control})
    records = perform("stop", control, "node1", "node2", [])
    result = summarize(request, [], None, None, log, WHOLE, records)
    assert f"stopped {clock(records[0]['at'])} → no resume recorded by this run" in result["text"]
    assert result["outage"]["node1"][0]["to"] is None


def clock(epoch: float) -> str:
    from altibase_ops.ddl.summary import clock as summary_clock

    return summary_clock(epoch)


def test_every_bad_ddl_entry_is_reported_at_once():
    params = {"servers": PAIRS[0]["servers"], "topology": "active_standby", "service_mode": "can_stop",
              "replication_name": "REP1", "tables": ["SYS.T1"], "service_control": {"mode": "manual"},
              "ddl": ["DELETE FROM SYS.T1", "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)",
                      "ALTER TABLE SYS.T9 ADD COLUMN (C3 INTEGER)"]}
    with pytest.raises(InvalidRequestError) as info:
        DdlRequest.from_params(params)
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["ddl[0]", "ddl[2]"], lines
    assert "not one of the listed tables" in lines[1]


def test_a_refusal_fails_its_task_with_the_message_alone():
    """Airflow 3.3.2 logs a traceback for every exception but SystemExit: a refusal leaves as one."""
    with pytest.raises(Refused) as info, refusals_in_one_line(log, InvalidRequestError):
        raise InvalidRequestError("ddl[0]: DML is not DDL\nddl[2]: SYS.T9 is not one of the listed tables")
    assert isinstance(info.value, SystemExit) and info.value.code == "ddl[0]: DML is not DDL"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ValueError), refusals_in_one_line(log, InvalidRequestError):  # a bug stays a bug
        raise ValueError("not a refusal")


@pytest.mark.parametrize("states, says, not_says", [
    ({"validate_params": "failed", "run_restore": "skipped"}, "validate_params failed: its log says why",
     "run_restore's log"),
    ({"validate_params": "success", "run_preflight": "failed", "run_restore": "skipped"},
     "run_preflight failed: its log says why; run_restore did not run (skipped)", "put the pair back"),
    ({"hold_pair": "success", "can_stop_active_standby.O1_O9_change_tables_on_both": "failed",
      "run_restore": "success"},
     "can_stop_active_standby.O1_O9_change_tables_on_both failed: its log says why; run_restore put the pair back",
     "did not run"),
    ({"can_stop_active_standby.O1_O9_change_tables_on_both": "failed", "run_restore": "failed"},
     "run_restore failed: its log says what each server is left in", "did not run"),
])
def test_a_failed_runs_message_points_at_the_task_that_explains_it_and_at_run_restore_only_when_it_ran(
        states, says, not_says):
    message = failure_message(states, ["can_stop_active_standby.O1_O9_change_tables_on_both"])
    assert says in message and not_says not in message, message


def test_a_missing_table_is_reported_missing_first_without_the_advice_for_a_table_out_of_the_replication(pair):
    request = DdlRequest.from_params({
        "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                    {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
        "topology": "active_standby", "service_mode": "can_stop", "replication_name": "REP1",
        "tables": ["SYS.T9"], "ddl": ["ALTER TABLE SYS.T9 ADD COLUMN (C3 INTEGER)"],
        "service_control": {"mode": "manual"}})
    with pytest.raises(PreflightError) as info:
        preflight(request, log)
    problems = str(info.value).splitlines()[1:]
    assert problems[0] == "- node1: table SYS.T9 does not exist", problems
    assert "- node2: table SYS.T9 does not exist" in problems, problems
    assert not any("not in replication" in p for p in problems), problems
