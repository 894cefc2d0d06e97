"""A lock that recover cannot break: a live run frozen inside its admin-mode window (SIGSTOP of the
process running its block) is refused to recover runs of the same and of another request, which change
nothing; resumed, it succeeds untouched.

The live run runs in a process of its own with an Airflow of its own (a copy of this worker's migrated
metadata database): to the recover runs it is another installation's run, so only its lease on the
servers can say it lives — the harder case (within one Airflow its run state says so as well).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dags.ddl_harness import assert_pair_healthy, columns, conf, prepare, query, run_dag, task_states

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNNER = """
import json, sys
from tests.dags.ddl_harness import run_dag
dagrun = run_dag(json.loads(sys.argv[1]))
print("RUN-STATE", dagrun.state, flush=True)
"""


def inside_window(sim) -> bool:
    """The live run is inside its admin window with the active's lane done (O4–O6: T1 back in its
    replication with C3) and the standby's DDL still running: no session of the run is open on node1."""
    from altibase_sim.dbapi import DatabaseError

    try:
        admin = query(sim, "node1", "SELECT VALUE1 FROM V$PROPERTY WHERE NAME = 'ADMIN_MODE'")
        items = {r[0] for r in query(sim, "node1", "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_")}
        return admin == [("1",)] and "T1" in items and columns(sim, "node1") == ["C1", "C2", "C3"]
    except DatabaseError as exc:
        if "41041" in str(exc):  # a step of the live run holds node1's SYSDBA session: not there yet
            return False
        raise


def lock_holder(sim) -> list[tuple]:
    return query(sim, "node1", "SELECT RUN_ID FROM SYS.AIRFLOW_DDL_LOCK")


def test_recover_runs_cannot_take_a_live_runs_lock_and_the_live_run_finishes_untouched(
        sim, monkeypatch, airflow_db, tmp_path):
    prepare(sim, monkeypatch, "active_standby")
    # the standby's DDL takes 20 s: the live run stays inside its window while we look
    sim.fail_once("node2", r"^ALTER TABLE SYS\.T1", "SLOW:20")
    home = tmp_path / "other-airflow"
    home.mkdir()
    shutil.copy(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", home / "airflow.db")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    live = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(conf(sim, "active_standby", "can_stop"))],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not inside_window(sim):
            if live.poll() is not None:
                Path("/tmp/live.out").write_text(live.stdout.read())
            assert live.poll() is None, "the live run ended before its window (see its output)"
            assert time.monotonic() < deadline, "the live run never opened its admin window"
            time.sleep(0.1)
        os.kill(live.pid, signal.SIGSTOP)  # frozen inside its window
        holder = lock_holder(sim)
        assert len(holder) == 1
        items_before = sorted(query(sim, "node1", "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_"))
        for other in (conf(sim, "active_standby", "can_stop", recover=True),
                      conf(sim, "active_standby", "can_stop", recover=True,
                           ddl=["ALTER TABLE SYS.T1 ADD COLUMN (C4 INTEGER)"])):
            refused = run_dag(other)
            states = task_states(refused)
            assert states["recover_leftovers"] == "failed", states  # refused at the lock, before restore
            assert {s for t, s in states.items() if "." in t} == {"skipped"}, states
            assert states["run_restore"] == "skipped", states
            # nothing was touched: the live run's lock, its admin mode, its tables out of the replication
            assert lock_holder(sim) == holder
            assert inside_window(sim)
            assert sorted(query(sim, "node1", "SELECT LOCAL_TABLE_NAME FROM SYSTEM_.SYS_REPL_ITEMS_")) == items_before
        os.kill(live.pid, signal.SIGCONT)
        output, _ = live.communicate(timeout=300)
    finally:
        if live.poll() is None:
            os.kill(live.pid, signal.SIGCONT)
            live.kill()
            live.wait()
    assert "RUN-STATE success" in output, output[-3000:]
    assert lock_holder(sim) == []
    assert_pair_healthy(sim, "active_standby", ["C1", "C2", "C3"])

