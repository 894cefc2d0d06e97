"""`make demo`: the main job, end to end on this machine.

Starts the embedded Altibase simulator with an Active-Standby pair (the seed's tables, replication
REP1) and an application load, then runs the `altibase_replicated_ddl` DAG (service can stop) for a
real DDL: prints the plan, each step as it finishes, and the run summary (time in admin mode per
server, statements run, rows checked). Airflow runs in-process (`dag.test`) on a SQLite database
under .airflow-demo/; the simulator keeps its state under .sim-state/demo/.

    .venv/bin/python scripts/demo.py [--topology active_active] [--service-mode rolling]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = ROOT / ".airflow-demo"
STATE_DIR = ROOT / ".sim-state" / "demo"
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"  # the demo prints its own progress
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from airflow.sdk._shared.listeners import hookimpl  # noqa: E402 - after the environment above
from airflow.sdk.listener import get_listener_manager  # noqa: E402


def migrate() -> None:
    marker = AIRFLOW_HOME / ".migrated"
    if not marker.exists():
        AIRFLOW_HOME.mkdir(exist_ok=True)
        print("demo: creating the Airflow metadata database (once) …", flush=True)
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True, env=os.environ.copy())
        marker.touch()


class Progress:
    """A task-instance listener: prints each task of the run as it finishes (dag.test runs the tasks
    in this process, so their listener hooks fire here)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def _print(self, mark: str, task_instance: object) -> None:
        print(f"  [{time.monotonic() - self.started:6.1f}s] {mark} {task_instance.task_id}", flush=True)

    @hookimpl
    def on_task_instance_success(self, previous_state: object, task_instance: object) -> None:
        self._print("ok     ", task_instance)

    @hookimpl
    def on_task_instance_failed(self, previous_state: object, task_instance: object, error: object) -> None:
        self._print("FAILED ", task_instance)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: object, task_instance: object) -> None:
        self._print("skipped", task_instance)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", default="active_standby", choices=["active_standby", "active_active"])
    parser.add_argument("--service-mode", default="can_stop", choices=["can_stop", "rolling"])
    args = parser.parse_args()
    migrate()
    logging.disable(logging.WARNING)

    from altibase_ops.ddl.plan import format_ddl_plan, plan_ddl_run
    from altibase_ops.ddl.request import DdlRequest
    from altibase_sim.control import start_daemon, stop_daemon
    from altibase_sim.scenarios import connection_uri, seed_replicated_pair

    shutil.rmtree(STATE_DIR, ignore_errors=True)
    sim = start_daemon(STATE_DIR, ["node1", "node2"])
    try:
        seed_replicated_pair(sim, topology=args.topology)
        for server in sim.servers():
            os.environ[f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}"] = connection_uri(server)
            print(f"demo: simulator server {server['name']} at {server['host']}:{server['port']}")
        sim.load_start("node1", table="SYS.T1", sessions=2, interval=0.02)
        if args.topology == "active_active":
            sim.load_start("node2", table="SYS.T1", sessions=2, interval=0.02)
        roles = ("active", "standby") if args.topology == "active_standby" else ("active1", "active2")
        conf = {
            "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": roles[0]},
                        {"name": "node2", "conn_id": "altibase_node2", "role": roles[1]}],
            "topology": args.topology, "service_mode": args.service_mode, "replication_name": "REP1",
            "tables": ["SYS.T1"], "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER DEFAULT 0)"],
            "service_control": {"mode": "simulator", "state_dir": str(STATE_DIR)},
            "dry_run": False, "poke_interval_seconds": 0.5,
        }
        request = DdlRequest.from_params(conf)
        print("\n" + format_ddl_plan(request, plan_ddl_run(request)) + "\n", flush=True)
        time.sleep(1)  # let the application load commit rows before the service stops

        spec = importlib.util.spec_from_file_location("ddl_dag", ROOT / "dags" / "altibase_replicated_ddl.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print("demo: running altibase_replicated_ddl (each task as it finishes):", flush=True)
        get_listener_manager().add_listener(Progress())
        run = module.dag.test(run_conf=conf)
        summary = run.get_task_instance("summary").xcom_pull(task_ids="summary")
        sim.load_stop()
        print()
        if summary:
            print(summary["text"])
        committed = sum(load["committed"] for load in sim.load_status())
        print(f"\napplication load: {committed} rows committed during the demo; the run ended {run.state}.")
        if str(run.state) != "success":
            raise SystemExit(1)
    finally:
        stop_daemon(STATE_DIR)


if __name__ == "__main__":
    main()
