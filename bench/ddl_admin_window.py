"""What a DBA cares about, DAG against a shell script in the same run: how long the Active stays in
admin mode, how long the application is stopped, and both again with a DDL that takes a minute.

The DAG (can_stop / active_standby, service_control simulator) runs under a real Airflow:
api-server, scheduler (LocalExecutor), dag-processor and triggerer as separate processes on SQLite,
not dag.test. The script is what a careful DBA would type: stop the application, the same statements
back to back with isql-sim, start the application. Every figure comes from the simulator's own
records: when ADMIN_MODE went to 1 and back to 0 on the Active, and when the application load
stopped and started again. The last lines are machine-readable, one figure a line.

    .venv/bin/python bench/ddl_admin_window.py [--slow-seconds 60] [--keep]
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


def outage(sim: SimulatorControl, server: str = "node1") -> float:
    """From the application's load stopping on ``server`` to it running again (the simulator's record)."""
    loads = [load for load in sim.load_status() if load["server"] == server]
    stopped = [load["stopped_at"] for load in loads if load.get("stopped_at")]
    restarted = [load["started_at"] for load in loads if load.get("started_at") and stopped
                 and load["started_at"] > stopped[0]]
    if not stopped or not restarted:
        raise RuntimeError(f"the load on {server} did not stop and start again: {loads}")
    return restarted[0] - stopped[0]


def shell_script(sim: SimulatorControl, work: Path) -> tuple[float, float]:
    """(admin window, outage) of the statements run back to back, between stopping and starting the load."""
    servers = {s["name"]: s for s in sim.servers()}
    lines = ["#!/bin/sh", "set -e"]
    for i, (node, sql) in enumerate(SHELL_STEPS):
        script = work / f"step{i}.sql"
        script.write_text(sql + "\n")
        lines.append(f"{BIN / 'isql-sim'} -s 127.0.0.1 -port {servers[node]['port']} -u sys -p manager "
                     f"-sysdba -silent -f {script} > /dev/null")
    (work / "steps.sh").write_text("\n".join(lines) + "\n")
    sim.load_stop("node1")
    subprocess.run(["sh", str(work / "steps.sh")], check=True)
    sim.load_start("node1", table="SYS.T1", interval=0.02)
    return admin_window(sim), outage(sim)


def airflow_run(sim: SimulatorControl, state: Path, home: Path) -> tuple[float, float, float]:
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
        return admin_window(sim), outage(sim), time.monotonic() - started
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


def measure(work: Path, kind: str, slow_seconds: float) -> tuple[float, float]:
    """(admin window, outage) of one run on a fresh pair with the application load running."""
    state = work / f"sim-{kind}-{int(slow_seconds)}"
    sim = fresh_pair(state)
    try:
        sim.load_start("node1", table="SYS.T1", interval=0.02)
        time.sleep(1)
        if slow_seconds:  # the Active's DDL takes this long (the standby's is quick)
            sim.fail_once("node1", r"^ALTER TABLE", f"SLOW:{slow_seconds}")
        if kind == "script":
            return shell_script(sim, work)
        window, out, run_seconds = airflow_run(sim, state, work / f"airflow-{int(slow_seconds)}")
        print(f"  (DAG run, slow DDL {slow_seconds:.0f} s: whole run {run_seconds:.0f} s)", flush=True)
        return window, out
    finally:
        stop_daemon(state)


def main() -> None:
    from altibase_ops.ddl.procedure import VARIANTS, admin_window_levels

    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-seconds", type=float, default=60, help="how long the slow DDL takes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddl-bench-"))
    try:
        script_window, script_outage = measure(work, "script", 0)
        dag_window, dag_outage = measure(work, "dag", 0)
        slow_script, _ = measure(work, "script", args.slow_seconds)
        slow_dag, _ = measure(work, "dag", args.slow_seconds)
        levels = max(admin_window_levels(t, m) for t, m in VARIANTS)
        print(f"admin mode on the Active: DAG {dag_window:.2f} s, script {script_window:.2f} s "
              f"(DAG - script {dag_window - script_window:.2f} s, ratio {dag_window / script_window:.1f}x)")
        print(f"application stopped: DAG {dag_outage:.2f} s, script {script_outage:.2f} s "
              f"(DAG - script {dag_outage - script_outage:.2f} s, ratio {dag_outage / script_outage:.1f}x)")
        print(f"admin mode with a {args.slow_seconds:.0f} s DDL: DAG {slow_dag:.2f} s, script {slow_script:.2f} s "
              f"(ratio {slow_dag / slow_script:.3f})")
        print(f"admin_window_s dag={dag_window:.2f} script={script_window:.2f}")
        print(f"outage_s dag={dag_outage:.2f} script={script_outage:.2f}")
        print(f"slow_ddl_admin_window_s dag={slow_dag:.2f} script={slow_script:.2f}")
        print(f"admin_window_levels max={levels}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
