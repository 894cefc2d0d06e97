"""What a person reads of a refused or failed run, through the DAG against the simulator: every bad entry
at once, in one line per task with no traceback, and a summary that points at the task that explains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from altibase_ops.ddl.window import WORKER_WAIT_SECONDS
from tests.dags.ddl_harness import ADD_C3, conf, prepare, run_dag, task_states

pytestmark = pytest.mark.e2e


def test_a_refused_run_names_every_bad_entry_without_a_traceback_and_its_summary_points_at_validate_params(
        sim, monkeypatch, airflow_db, capfd, caplog):
    prepare(sim, monkeypatch, "active_standby", load=False)
    capfd.readouterr()
    caplog.clear()
    dagrun = run_dag(conf(sim, "active_standby", "can_stop",
                          ddl=["DELETE FROM SYS.T1", ADD_C3, "ALTER TABLE SYS.T9 ADD COLUMN (C3 INTEGER)"]))
    states = task_states(dagrun)
    assert states["validate_params"] == "failed" and states["summary"] == "failed", states
    out, err = capfd.readouterr()
    logged = out + err + caplog.text  # the first dag.test of a process logs to stdout, later ones through logging
    assert "ddl[0]: " in logged and "ddl[2]: SYS.T9 is not one of the listed tables" in logged
    assert "validate_params refused the run's params before any server was touched" in logged
    assert "Task exited" in logged and "Task failed with exception" not in logged and "Traceback" not in logged


def test_a_failed_runs_summary_points_at_the_failed_gate_and_not_at_a_skipped_run_restore(
        sim, monkeypatch, airflow_db, capfd, caplog):
    prepare(sim, monkeypatch, "active_standby", load=False)
    capfd.readouterr()
    caplog.clear()
    dagrun = run_dag(conf(sim, "active_standby", "can_stop", tables=["SYS.T9"],
                          ddl=["ALTER TABLE SYS.T9 ADD COLUMN (C3 INTEGER)"]))
    states = task_states(dagrun)
    assert states["run_preflight"] == "failed" and states["run_restore"] == "skipped", states
    out, err = capfd.readouterr()
    logged = out + err + caplog.text  # the first dag.test of a process logs to stdout, later ones through logging
    assert "the procedure did not complete: run_preflight failed: its log says why; run_restore did not run " \
           "(skipped)" in logged
    assert "run_restore's log" not in logged and "MissingTableError" not in logged  # the summary read the pair


def test_a_run_that_waits_for_its_window_shows_what_it_waits_for_in_its_progress(sim, monkeypatch, airflow_db):
    """wait_for_window defers (no reading on a purple square): its XCom "progress" says until when."""
    prepare(sim, monkeypatch, "active_standby", load=False)
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=WORKER_WAIT_SECONDS + 15)  # defers after the gates
    dagrun = run_dag(conf(sim, "active_standby", "can_stop", not_before=opens.isoformat()))
    assert str(dagrun.state) == "success", task_states(dagrun)
    progress = dagrun.get_task_instance("wait_for_window").xcom_pull(task_ids="wait_for_window", key="progress")
    assert progress.startswith(f"waiting for the maintenance window to open at {opens.isoformat()} ("), progress
    assert progress.endswith("UTC); nothing is held yet"), progress
