"""What the rollout reads and writes on the servers, against two simulator pairs (p1, p2): the history's
REASON, a failure left for a person keeping a pair out of the canary stage, a DDL run that failed with
no outcome of its own recorded as failed."""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException

from altibase_ops.ddl.records import take_lock
from altibase_ops.ddl.request import DdlRequest, Server
from altibase_ops.maintenance.changes import load_changes
from altibase_ops.maintenance.history import REASON_BYTES, record_change
from altibase_ops.maintenance.rollout import RolloutLaneOperator, plan_rollout, read_pair, run_id_for
from altibase_ops.pairs import validate_pairs
from altibase_sim.control import SimulatorControl, start_daemon, stop_daemon
from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from tests.dags.ddl_harness import query

log = logging.getLogger("maintenance-refusals")
HISTORY = "SELECT CHANGE_ID, OUTCOME, RUN_ID, DAG_ID, REASON FROM SYS.AIRFLOW_CHANGE_HISTORY ORDER BY RUN_ID"


@pytest.fixture
def fleet_sim(tmp_path, monkeypatch) -> Iterator[SimulatorControl]:
    """Two running pairs, p1 (p1a, p1b) and p2 (p2a, p2b), each with an Airflow Connection per server."""
    state_dir = tmp_path / "sim"
    sim = start_daemon(state_dir, ["p1a", "p1b", "p2a", "p2b"])
    try:
        for pair in ("p1", "p2"):
            seed_replicated_pair(sim, (f"{pair}a", f"{pair}b"))
        for server in sim.servers():
            monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))
        yield sim
    finally:
        stop_daemon(state_dir)


def fleet() -> list:
    return validate_pairs([{"name": p, "replication_name": "REP1",
                            "servers": [{"name": f"{p}a", "conn_id": f"altibase_{p}a", "role": "active"},
                                        {"name": f"{p}b", "conn_id": f"altibase_{p}b", "role": "standby"}]}
                           for p in ("p1", "p2")])


def servers(pair: str) -> list[Server]:
    return [Server(f"{pair}a", f"altibase_{pair}a", "active"), Server(f"{pair}b", f"altibase_{pair}b", "standby")]


def write_changes(folder, **ddl: str):
    folder.mkdir()
    for change_id, statement in ddl.items():
        (folder / f"{change_id}.yaml").write_text(textwrap.dedent(f"""\
            id: {change_id}
            approved_by: test
            pairs: all
            service_mode: can_stop
            tables: [SYS.T1]
            ddl: ["{statement}"]
            """))
    return load_changes(folder, fleet())


def test_the_history_keeps_a_failures_reason_and_a_table_of_an_earlier_version_gains_the_column(fleet_sim):
    # a history table as the previous version made it (no REASON), with one applied run in it
    for node in ("p1a", "p1b"):
        query(fleet_sim, node, "CREATE TABLE SYS.AIRFLOW_CHANGE_HISTORY (REPLICATION_NAME VARCHAR(40) NOT NULL, "
                               "CHANGE_ID VARCHAR(100) NOT NULL, CHECKSUM VARCHAR(16) NOT NULL, OUTCOME VARCHAR(16) "
                               "NOT NULL, RUN_ID VARCHAR(250) NOT NULL, DAG_ID VARCHAR(250) NOT NULL, STARTED_AT "
                               "VARCHAR(20) NOT NULL, ENDED_AT VARCHAR(20) NOT NULL, DURATION_SECONDS INTEGER NOT "
                               "NULL, PRIMARY KEY (REPLICATION_NAME, CHANGE_ID, RUN_ID))")
        query(fleet_sim, node, "INSERT INTO SYS.AIRFLOW_CHANGE_HISTORY VALUES ('REP1', '0001_a', 'c1', 'applied', "
                               "'run-1', 'altibase_replicated_ddl', '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 60)")
    rows, why_not = read_pair(fleet()[0])  # read before any write: the old table, no REASON column yet
    assert why_not == "" and [(r.change_id, r.outcome, r.reason) for r in rows] == [("0001_a", "applied", "")]

    long_reason = "preflight found problems, nothing was changed:\n- " + "é" * REASON_BYTES
    written = record_change(servers("p1"), "REP1", "0002_b", "c2", "failed", "window-1", "altibase_maintenance",
                            time.time(), log, long_reason)
    assert written == ["p1a", "p1b"]
    for node in ("p1a", "p1b"):
        (old, new) = query(fleet_sim, node, HISTORY)
        assert old == ("0001_a", "applied", "run-1", "altibase_replicated_ddl", None)
        assert new[:4] == ("0002_b", "failed", "window-1", "altibase_maintenance")
        assert len(new[4].encode()) <= REASON_BYTES and new[4].endswith(" […]")  # cut to fit, and says so
        assert new[4].startswith("preflight found problems, nothing was changed:\n- éé")
    rows, _ = read_pair(fleet()[0])
    assert [r.reason for r in rows if r.change_id == "0002_b"] == [new[4]]


def test_the_canary_skips_a_pair_whose_change_waits_for_a_person_and_another_pair_goes_first(fleet_sim, tmp_path):
    changes = write_changes(tmp_path / "changes", **{"0001_c3": "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)",
                                                     "0002_c4": "ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER)"})
    # p1 is first in the fleet; its 0002 was refused in an earlier window and waits for a person, while
    # 0001 (a file added since, sorted first) is pending on both pairs
    record_change(servers("p1"), "REP1", "0002_c4", changes[1].checksum, "failed", "window-1", "altibase_maintenance",
                  time.time(), log, "preflight found problems, nothing was changed:\n- p1a: table SYS.T1 ...")
    plan = plan_rollout(changes, fleet(), maintenance_run_id="window-2", canary_pairs=1, concurrency=2,
                        window_closes_at=datetime.now(UTC) + timedelta(hours=1), retry_failed=False)
    stage = lambda name: [[(i["pair"], i["change_id"]) for i in lane] for lane in plan[name]]  # noqa: E731
    assert plan["report"]["p1"]["changes"] == {"0001_c3": "pending", "0002_c4": "failed"}
    assert stage("canary") == [[("p2", "0001_c3"), ("p2", "0002_c4")]]
    assert stage("rest") == [[("p1", "0001_c3")]]  # p1's pending change still runs, after the canary

    # once a person looked (retry_failed), nothing waits: p1 is the fleet's first pair again
    plan = plan_rollout(changes, fleet(), maintenance_run_id="window-3", canary_pairs=1, concurrency=2,
                        window_closes_at=datetime.now(UTC) + timedelta(hours=1), retry_failed=True)
    assert stage("canary") == [[("p1", "0001_c3"), ("p1", "0002_c4")]]


def test_a_ddl_run_that_failed_and_recorded_no_outcome_is_recorded_failed_unless_the_pair_is_held(
        fleet_sim, tmp_path):
    (change,) = write_changes(tmp_path / "changes", **{"0001_c3": "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"})
    plan = plan_rollout([change], fleet(), maintenance_run_id="window-1", canary_pairs=0, concurrency=2,
                        window_closes_at=datetime.now(UTC) + timedelta(hours=1), retry_failed=False)
    items = {lane[0]["pair"]: lane[0] for lane in plan["rest"]}
    lane = RolloutLaneOperator(task_id="rollout", lane=[items["p1"], items["p2"]], plan_task_id="plan")

    def ended(item: dict, state: str) -> None:  # the lane resumes as its DagStateTrigger's event says
        lane.execute_complete({}, ("DagStateTrigger", {"dag_id": "altibase_replicated_ddl",
                                                       "run_ids": [item["run_id"]], item["run_id"]: state}))

    # p1: its DDL run failed and wrote nothing (refused by its own gates): the lane records it
    with pytest.raises(AirflowFailException, match="no outcome of its own; the change is recorded as failed in "
                                                   "the pair's history on p1a, p1b: it waits for a person"):
        ended(items["p1"], "failed")
    ddl_run = run_id_for("window-1", "p1", "0001_c3")
    for node in ("p1a", "p1b"):
        ((cid, outcome, run_id, dag_id, reason),) = query(fleet_sim, node, HISTORY)
        assert (cid, outcome, run_id, dag_id) == ("0001_c3", "failed", ddl_run, "altibase_replicated_ddl")
        assert reason.startswith(f"DDL run {ddl_run} ended failed and recorded no outcome in this history")
    # ...and a run whose outcome is in the history is not recorded twice
    with pytest.raises(AirflowFailException, match="its outcome is in the pair's history"):
        ended(items["p1"], "failed")
    assert all(len(query(fleet_sim, node, HISTORY)) == 1 for node in ("p1a", "p1b"))

    # p2: another run holds the pair, so its failure may be that run's doing: nothing is recorded
    other = DdlRequest.from_params({**change.ddl_params(fleet()[1]), "tables": ["SYS.T2"],
                                    "ddl": ["ALTER TABLE SYS.T2 ADD COLUMN (C9 INTEGER)"]})
    take_lock(other, "manual__someone", "altibase_replicated_ddl on host", log)
    with pytest.raises(AirflowFailException, match=r"the change is NOT recorded as failed in the pair's history "
                                                   r"\(held by run 'manual__someone'"):
        ended(items["p2"], "failed")
    assert query(fleet_sim, "p2a", "SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = "
                                   "'AIRFLOW_CHANGE_HISTORY'") == [(0,)]


def test_the_plan_says_found_applied_for_a_change_already_in_the_catalog_of_both_servers(fleet_sim, tmp_path):
    # C2 is in the seed's SYS.T1 on both servers of both pairs: as a change a person made before by hand
    changes = write_changes(tmp_path / "changes", **{"0001_c2": "ALTER TABLE SYS.T1 ADD COLUMN (C2 INTEGER)",
                                                     "0002_c3": "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"})
    plan = plan_rollout(changes, fleet(), maintenance_run_id="window-1", canary_pairs=1, concurrency=1,
                        window_closes_at=datetime.now(UTC) + timedelta(hours=1), retry_failed=False)
    assert plan["report"]["p1"]["changes"] == {"0001_c2": "found_applied", "0002_c3": "pending"}
    # it still runs (nothing changes there, no outage), so the history says found_applied as the plan did
    assert [(i["pair"], i["change_id"]) for i in plan["canary"][0]] == [("p1", "0001_c2"), ("p1", "0002_c3")]
