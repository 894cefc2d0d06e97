"""End-to-end runs of altibase_replicated_ddl against the simulator, with an application load."""

from __future__ import annotations

import pytest

from tests.dags.ddl_harness import (
    ADD_C3,
    assert_pair_healthy,
    columns,
    conf,
    prepare,
    query,
    run_dag,
    task_states,
)

pytestmark = pytest.mark.e2e
VARIANTS = [("active_standby", "can_stop"), ("active_active", "can_stop"), ("active_active", "rolling"),
            ("active_standby", "rolling")]


@pytest.mark.parametrize("topology, service_mode", VARIANTS)
def test_each_variant_applies_the_ddl_under_a_live_load(sim, monkeypatch, airflow_db, topology, service_mode):
    prepare(sim, monkeypatch, topology)
    dagrun = run_dag(conf(sim, topology, service_mode))
    states = task_states(dagrun)
    assert str(dagrun.state) == "success", {t: s for t, s in states.items() if s not in ("success", "skipped")}
    assert states["run_restore"] == "skipped"  # nothing failed, so nothing to restore
    chosen = f"{service_mode}_{topology}."
    assert all(s == "success" for t, s in states.items() if t.startswith(chosen))
    assert all(s == "skipped" for t, s in states.items() if "." in t and not t.startswith(chosen))
    summary = dagrun.get_task_instance("summary").xcom_pull(task_ids="summary")
    # read at the end, not inferred: where the loads run, and the pair whole
    writers = ", ".join(sorted(load["server"] for load in sim.load_status() if load["running"]))
    assert summary["service"].startswith(f"application service: as before the run — the application writes on "
                                         f"{writers} ("), summary["service"]
    assert summary["whole"] and summary["pair"].startswith("pair: whole"), summary["pair"]
    if (topology, service_mode) == ("active_standby", "can_stop"):
        # the same request again: applied everywhere, the pair whole and free -> nothing to do, no outage
        changes = {s["name"]: len(s["admin_mode_changes"]) for s in sim.status()["servers"]}
        again = task_states(run_dag(conf(sim, topology, service_mode)))
        assert again["stop_if_dry_run"] == "success" and again["hold_pair"] == "skipped"
        assert all(s == "skipped" for t, s in again.items() if "." in t)
        assert {s["name"]: len(s["admin_mode_changes"]) for s in sim.status()["servers"]} == changes
        assert any(load["running"] for load in sim.load_status())  # the service was never stopped
    assert_pair_healthy(sim, topology, ["C1", "C2", "C3"])


def test_dry_run_plans_every_statement_and_changes_nothing(sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_standby", load=False)
    before = {n: query(sim, n, "SELECT NAME, VALUE1 FROM V$PROPERTY") for n in ("node1", "node2")}
    dagrun = run_dag(conf(sim, "active_standby", "can_stop", dry_run=True))
    states = task_states(dagrun)
    assert str(dagrun.state) == "success"
    assert states["plan"] == "success" and states["choose_variant"] == "skipped"
    plan = dagrun.get_task_instance("plan").xcom_pull(task_ids="plan")
    sent = [(p["step_id"], p["server"], s) for p in plan for s in p["statements"] if not s.startswith("--")]
    assert ("O4", "node2", "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1;") in sent
    assert ("O5", "node1", ADD_C3 + ";") in sent
    assert [p["step_id"] for p in plan][:3] == ["O1", "O1", "O2"]  # stop, wait for the sessions, admin mode
    assert plan[1]["task_id"] == plan[2]["task_id"] == "can_stop_active_standby.O1_O9_change_tables_on_both"
    for node in ("node1", "node2"):
        assert columns(sim, node) == ["C1", "C2"]
        assert query(sim, node, "SELECT NAME, VALUE1 FROM V$PROPERTY") == before[node]


def test_bad_input_fails_in_validate_params_before_any_server_is_touched(sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_standby")
    dagrun = run_dag(conf(sim, "active_standby", "can_stop", ddl=["DELETE FROM SYS.T1"]))
    states = task_states(dagrun)
    assert states["validate_params"] == "failed"
    assert states["run_preflight"] == "upstream_failed" and states["run_restore"] in ("skipped", "upstream_failed")
    assert any(load["running"] for load in sim.load_status())  # the service was never stopped
    for node in ("node1", "node2"):
        assert columns(sim, node) == ["C1", "C2"]
        assert query(sim, node, "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'") == [("0",)]


def test_a_smuggled_statement_never_reaches_a_server(sim, monkeypatch, airflow_db):
    """Through the DAG: the run stops in validate_params; the table the smuggled DELETE aimed at keeps its
    rows on both servers, and no server saw a login of the run."""
    prepare(sim, monkeypatch, "active_standby", load=False)
    for key in (1, 2, 3):
        query(sim, "node1", f"INSERT INTO SYS.T2 VALUES ({key}, {key})")
    query(sim, "node1", "ALTER REPLICATION REP1 FLUSH WAIT 10")
    dagrun = run_dag(conf(sim, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(40) DEFAULT 'x\nDELETE FROM SYS.T2;')"]))
    states = task_states(dagrun)
    assert states["validate_params"] == "failed" and states["recover_leftovers"] in ("upstream_failed", "skipped")
    for node in ("node1", "node2"):
        assert query(sim, node, "SELECT COUNT(*) FROM SYS.T2") == [(3,)], node
        assert query(sim, node, "SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = 'AIRFLOW_DDL_LOCK'") \
            == [(0,)], node  # no run of this DAG ever got as far as the lock


def test_a_recover_run_whose_service_control_names_the_replications_service_stops_before_it_touches_anything(
        sim, monkeypatch, airflow_db):
    """validate_params refuses service control over a Service the database itself uses (node1's replication
    sends to 'node2'), so recover_leftovers — which would restore traffic through it — never runs."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client import ApiClient, Configuration

    from tests.fakes.kubernetes_api import FakeApiServer

    prepare(sim, monkeypatch, "active_active", load=False)
    cluster = FakeApiServer()
    for node in ("node1", "node2"):
        cluster.put("services", {"metadata": {"name": node, "namespace": "db"},
                                 "spec": {"selector": {"altibase.io/node": node}}})
    client = ApiClient(Configuration(host="https://kubernetes.invalid"))
    client.rest_client.pool_manager = cluster
    monkeypatch.setattr(KubernetesHook, "get_conn", lambda hook: client)
    dagrun = run_dag(conf(sim, "active_active", "rolling", recover=True, service_control={
        "mode": "kubernetes", "namespace": "db", "services": {"node1": "node2", "node2": "node1"},
        "endpoint_timeout_seconds": 2}))
    states = task_states(dagrun)
    assert states["validate_params"] == "failed" and states["recover_leftovers"] in ("upstream_failed", "skipped")
    assert len(cluster.access_reviews) == 6  # asked for service control's permissions, then read the Services
    assert [(r.method, r.name) for r in cluster.calls()][:2] == [("GET", "node2"), ("GET", "node1")]
    assert {r.method for r in cluster.calls()} == {"GET"}  # the summary reads where traffic goes; no write
    for node in ("node1", "node2"):
        assert query(sim, node, "SELECT COUNT(*) FROM SYSTEM_.SYS_TABLES_ WHERE TABLE_NAME = 'AIRFLOW_DDL_LOCK'") \
            == [(0,)], node
