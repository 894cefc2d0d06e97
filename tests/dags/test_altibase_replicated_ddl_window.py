"""A DDL run's maintenance window, its record in the pair's history, and its notifications, in-process
against the simulator with a local SMTP server:

- a change run that must wait for ``not_before`` holds the pair only then, applies, and is recorded
  ``applied`` on both servers; the same change again finds it applied and records ``found_applied``;
- a run that would not end before ``not_after`` is refused before the pair is held: nothing changes;
- the SMTP server receives started, succeeded and failed, the last saying nothing was changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.dags.ddl_harness import columns, conf, prepare, query, run_dag, task_states
from tests.smtp_sink import SmtpSink

HISTORY = "SELECT CHANGE_ID, CHECKSUM, OUTCOME, RUN_ID, DURATION_SECONDS FROM SYS.AIRFLOW_CHANGE_HISTORY"


def test_a_run_waits_for_its_window_records_its_outcome_and_is_refused_when_it_would_not_fit(
        sim, monkeypatch, airflow_db):
    prepare(sim, monkeypatch, "active_standby", load=False)
    with SmtpSink() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection())
        monkeypatch.setenv("ALTIBASE_NOTIFY_EMAIL", "dba@example.com,oncall@example.com")
        change = {"change_id": "0001_add_c3", "change_checksum": "0123456789abcdef"}

        opens = datetime.now(UTC) + timedelta(seconds=8)
        first = run_dag(conf(sim, "active_standby", "can_stop", **change, not_before=opens.isoformat(),
                             not_after=(opens + timedelta(hours=1)).isoformat()))
        assert first.state == "success", task_states(first)
        held = next(ti for ti in first.get_task_instances() if ti.task_id == "hold_pair")
        assert held.start_date >= opens  # the pair was held only once the window had opened
        for node in ("node1", "node2"):
            assert columns(sim, node) == ["C1", "C2", "C3"]
            (row,) = query(sim, node, HISTORY)
            assert row[:4] == ("0001_add_c3", "0123456789abcdef", "applied", first.run_id) and row[4] >= 0

        again = run_dag(conf(sim, "active_standby", "can_stop", **change))
        assert again.state == "success" and task_states(again)["hold_pair"] == "skipped"  # nothing to do
        for node in ("node1", "node2"):
            outcomes = sorted(r[2] for r in query(sim, node, HISTORY))
            assert outcomes == ["applied", "found_applied"], node

        closes = datetime.now(UTC) + timedelta(seconds=30)  # a run here is expected to take at least 60 s
        refused = run_dag(conf(sim, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER)"],
                               not_after=closes.isoformat()))
        states = task_states(refused)
        assert refused.state == "failed" and states["wait_for_window"] == "failed", states
        assert states["hold_pair"] == "upstream_failed" and states["run_restore"] == "skipped", states
        for node in ("node1", "node2"):
            assert columns(sim, node) == ["C1", "C2", "C3"]
            assert query(sim, node, "SELECT COUNT(*) FROM SYS.AIRFLOW_DDL_LOCK") == [(0,)]
            assert len(query(sim, node, HISTORY)) == 2  # a refused run changed nothing and records nothing

        mails = smtp.received()
        subjects = [m.subject for m in mails]
        assert sum("] STARTED:" in s for s in subjects) == 1, subjects  # only the run that held the pair
        (succeeded,) = [m for m in mails if "] SUCCEEDED:" in m.subject]
        assert "change 0001_add_c3" in succeeded.subject and "time in admin mode per server" in succeeded.body
        assert sorted(succeeded.to) == ["dba@example.com", "oncall@example.com"]
        (failed,) = [m for m in mails if "] FAILED:" in m.subject]
        assert "Nothing was changed" in failed.body and refused.run_id in failed.body

        # a change (a maintenance run's) refused before the pair was held waits for a person: it is recorded
        late = run_dag(conf(sim, "active_standby", "can_stop", ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER)"],
                            change_id="0002_add_c4", change_checksum="fedcba9876543210",
                            not_after=(datetime.now(UTC) + timedelta(seconds=30)).isoformat()))
        assert late.state == "failed" and task_states(late)["hold_pair"] == "upstream_failed"
        for node in ("node1", "node2"):
            ((outcome, reason),) = query(sim, node, "SELECT OUTCOME, REASON FROM SYS.AIRFLOW_CHANGE_HISTORY "
                                                    "WHERE CHANGE_ID = '0002_add_c4'")
            assert outcome == "failed" and reason.startswith("the maintenance window closes at "), reason
            assert "the next maintenance window leaves it for a person (retry_failed runs it again)" in reason
            assert columns(sim, node) == ["C1", "C2", "C3"]
