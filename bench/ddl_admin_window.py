"""How long the Active stays in admin mode (the service outage) when the DAG runs the procedure,
against the same statements run back to back by a shell script with isql-sim.

The DAG runs under a real Airflow: api-server, scheduler (LocalExecutor), dag-processor and
triggerer as separate processes on SQLite, not dag.test. Both measurements read the simulator's own
record of when ADMIN_MODE went to 1 and back to 0 on the Active.

    .venv/bin/python bench/ddl_admin_window.py [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from altibase_sim.control import SimulatorControl, start_daemon, stop_daemon  # noqa: E402
from altibase_sim.scenarios import connection_uri, seed_replicated_pair  # noqa: E402

DDL = "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"
SHELL_STEPS = [  # the can_stop / active_standby statements between O2 and O8, as the DAG sends them
    ("node1", "ALTER SYSTEM SET ADMIN_MODE = 1;"),
    ("node1", "ALTER REPLICATION REP1 FLUSH WAIT 60;"),
    ("node1", "SELECT REP_NAME, REP_GAP FROM V$REPGAP WHERE REP_NAME = 'REP1';"),
    ("node1", "ALTER REPLICATION REP1 STOP;"),
    ("node1", "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1;"),
    ("node2", "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1;"),
    ("node1", DDL + ";"),
    ("node2", DDL + ";"),
    ("node1", "ALTER REPLICATION REP1 ADD TABLE FROM SYS.T1 TO SYS.T1;"),
    ("node2", "ALTER REPLICATION REP1 ADD TABLE FROM SYS.T1 TO SYS.T1;"),
    ("node1", "ALTER REPLICATION REP1 START;"),
    ("node1", "ALTER SYSTEM SET ADMIN_MODE = 0;"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sql_one(db: Path, sql: str, params: tuple = ()) -> object:
    """One value from Airflow's SQLite metadata database (read-only, tolerant of a busy writer)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute(sql, params).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def admin_window(sim: SimulatorControl, server: str = "node1") -> float:
    changes = next(s for s in sim.status()["servers"] if s["name"] == server)["admin_mode_changes"]
    on = [t for t, v in changes if v == 1]
    off = [t for t, v in changes if v == 0]
    if not on or not off or off[-1] < on[-1]:
        raise RuntimeError(f"admin mode did not go on and off on {server}: {changes}")
    return off[-1] - on[-1]


def fresh_pair(state: Path) -> SimulatorControl:
    shutil.rmtree(state, ignore_errors=True)
    sim = start_daemon(state, ["node1", "node2"])
    seed_replicated_pair(sim, topology="active_standby")
    return sim


def shell_script(sim: SimulatorControl, work: Path) -> float:
    servers = {s["name"]: s for s in sim.servers()}
    lines = ["#!/bin/sh", "set -e"]
    for i, (node, sql) in enumerate(SHELL_STEPS):
        script = work / f"step{i}.sql"
        script.write_text(sql + "\n")
        lines.append(f"{BIN / 'isql-sim'} -s 127.0.0.1 -port {servers[node]['port']} -u sys -p manager "
                     f"-sysdba -silent -f {script} > /dev/null")
    (work / "steps.sh").write_text("\n".join(lines) + "\n")
    subprocess.run(["sh", str(work / "steps.sh")], check=True)
    return admin_window(sim)


def airflow_run(sim: SimulatorControl, state: Path, home: Path) -> tuple[float, float]:
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "8",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__API_AUTH__JWT_SECRET": "bench-secret-" + str(port),
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    for server in sim.servers():
        env[f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}"] = connection_uri(server)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    logs = home / "logs-bench"
    logs.mkdir(exist_ok=True)
    procs = []
    try:
        for component in (["api-server", "--port", str(port)], ["scheduler"], ["dag-processor"], ["triggerer"]):
            out = open(logs / f"{component[0]}.log", "w")  # noqa: SIM115 - owned by the child
            procs.append(subprocess.Popen([str(BIN / "airflow"), *component], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        conf = {"servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                            {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
                "topology": "active_standby", "service_mode": "can_stop", "replication_name": "REP1",
                "tables": ["SYS.T1"], "ddl": [DDL], "dry_run": False, "poke_interval_seconds": 1,
                "service_control": {"mode": "simulator", "state_dir": str(state)}}
        deadline = time.monotonic() + 300
        db = home / "airflow.db"
        while True:  # the dag-processor must have parsed the DAG before it can be triggered
            if sql_one(db, "SELECT dag_id FROM serialized_dag WHERE dag_id = 'altibase_replicated_ddl'"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the DAG was not parsed in time; see " + str(logs))
            time.sleep(2)
        run_id = f"bench_{int(time.time())}"
        started = time.monotonic()
        subprocess.run([str(BIN / "airflow"), "dags", "trigger", "altibase_replicated_ddl", "--run-id", run_id,
                        "--conf", json.dumps(conf)], env=env, check=True, capture_output=True)
        while True:
            state_now = sql_one(db, "SELECT state FROM dag_run WHERE run_id = ?", (run_id,))
            if state_now in ("success", "failed"):
                break
            if time.monotonic() - started > 600:
                raise RuntimeError("the run did not finish in 10 minutes; see " + str(logs))
            time.sleep(1)
        if state_now != "success":
            raise RuntimeError(f"the DAG run ended {state_now}; see {logs}")
        return admin_window(sim), time.monotonic() - started
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddl-bench-"))
    state = work / "sim"
    try:
        sim = fresh_pair(state)
        try:
            script = shell_script(sim, work)
        finally:
            stop_daemon(state)
        sim = fresh_pair(state)
        try:
            sim.load_start("node1", table="SYS.T1", interval=0.02)
            time.sleep(1)
            dag_window, run_seconds = airflow_run(sim, state, work / "airflow")
        finally:
            stop_daemon(state)
        print(f"admin mode on the Active, shell script (isql-sim, back to back): {script:7.2f} s")
        print(f"admin mode on the Active, DAG under the scheduler (LocalExecutor): {dag_window:7.2f} s "
              f"(whole run {run_seconds:.0f} s)")
        print(f"ratio DAG / script: {dag_window / script:.1f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
