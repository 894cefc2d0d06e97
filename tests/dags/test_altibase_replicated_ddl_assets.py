"""Schema changes as Airflow Assets: a DDL run that changed a table emits one Asset event per table
(``altibase://<pair>/<USER>.<TABLE>``, the change in its extra) from ``run_post_checks``, through the
alias ``altibase_schema_changes``; a run that applied nothing emits none."""

from __future__ import annotations

import pytest

from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from tests.dags.ddl_harness import conf, run_dag, task_states

pytestmark = pytest.mark.e2e
ADD_C4 = "ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER DEFAULT 7)"
INDEX_T2 = "CREATE INDEX SYS.T2_C2 ON SYS.T2 (C2)"


def asset_events(run_id: str) -> list[tuple[str, dict, list[str]]]:
    """(asset URI, extra, source aliases) of the events the run emitted, from Airflow's database."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run_id)).all()
        return sorted((e.asset.uri, e.extra, sorted(a.name for a in e.source_aliases)) for e in events)


def test_a_ddl_run_emits_an_asset_event_per_changed_table_and_a_run_that_applied_nothing_none(
        sim, monkeypatch, airflow_db):
    # T3 keeps the replication from losing its last table while T1 and T2 are out of it (ERR-6106F)
    seed_replicated_pair(sim, tables=("SYS.T1", "SYS.T2", "SYS.T3"))
    for server in sim.servers():
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))
    run = conf(sim, "active_standby", "can_stop", tables=["SYS.T1", "SYS.T2"], ddl=[ADD_C4, INDEX_T2])
    dagrun = run_dag(run)
    assert str(dagrun.state) == "success", task_states(dagrun)
    events = asset_events(dagrun.run_id)
    # the fleet's pair1 (ALTIBASE_PAIRS' default) is the run's replication and Connections
    assert [(uri, aliases) for uri, _, aliases in events] == [
        ("altibase://pair1/SYS.T1", ["altibase_schema_changes"]), ("altibase://pair1/SYS.T2", ["altibase_schema_changes"])]
    t1 = events[0][1]
    assert t1["pair"] == "pair1" and t1["table"] == "SYS.T1" and t1["run_id"] == dagrun.run_id
    assert t1["changes"] == [{"statement": ADD_C4, "kind": "add_column", "servers": ["node1", "node2"]}]
    assert events[1][1]["changes"][0]["statement"] == INDEX_T2
    # the same request again: applied everywhere already, nothing runs and nothing is emitted
    again = run_dag(run)
    assert task_states(again)["run_post_checks"] == "skipped"
    assert asset_events(again.run_id) == []
