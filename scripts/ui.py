"""`make ui` / `make ui-stop`: the Airflow UI on this machine, on the embedded simulator, in one command.

Starts, in the background: the simulator with a replicated pair seeded exactly as the DDL DAG expects
(node1 active, node2 standby; SYS.T1 and SYS.T2 in replication REP1, only the active sending) and an
application load writing to node1; then Airflow 3 (api-server, scheduler with LocalExecutor,
dag-processor, triggerer; SQLite) with this project's DAGs, the two Connections, the fleet
(`ALTIBASE_PAIRS`: pair1) and `ALTIBASE_SIM_STATE_DIR` in every component's environment. Returns once the
UI answers and prints the URL, the login and what to try first. Everything lives under `.ui/`;
`make ui-stop` stops exactly the processes it started (by their ids) and the simulator.

    .venv/bin/python scripts/ui.py start [--port 8080]
    .venv/bin/python scripts/ui.py stop
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from altibase_sim.control import daemon_info, start_daemon, stop_daemon  # noqa: E402
from altibase_sim.scenarios import seed_replicated_pair  # noqa: E402
from scripts.local_airflow import ADMIN, AirflowUI, airflow_env, end_process_groups, free_port  # noqa: E402

WORK = Path(os.environ.get("ALTIBASE_UI_DIR") or ROOT / ".ui")  # the browser test gives its own
STATE = WORK / "ui.json"
LOAD = {"table": "SYS.T1", "sessions": 2, "interval": 0.2}  # the application: a few inserts a second
PASSWORD = "admin"  # a local-only UI (127.0.0.1) for trying things out
BIN = ROOT / ".venv" / "bin"
UNPAUSED = ("altibase_replicated_ddl", "altibase_replication_health", "altibase_maintenance",
            "altibase_provision", "altibase_teardown")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def running() -> dict | None:
    if not STATE.exists():
        return None
    state = json.loads(STATE.read_text())
    alive = [pid for pid in state["pids"].values() if Path(f"/proc/{pid}").exists()]
    return state if alive else None


def start(port: int) -> None:
    if state := running():
        print(f"Already running (make ui-stop stops it):\n{state['url']}")
        return
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "airflow").mkdir(parents=True)
    print("Starting the simulator (node1 active, node2 standby, replication REP1 on SYS.T1 and SYS.T2) ...")
    sim = start_daemon(WORK / "sim", ["node1", "node2"])
    seed_replicated_pair(sim)
    sim.load_start("node1", **LOAD)
    port = port if port_free(port) else free_port()
    ui = AirflowUI(home=WORK / "airflow", port=port, password=PASSWORD)
    env = airflow_env(ui.home, port, sim)
    env.update({
        "ALTIBASE_PAIRS": json.dumps([{
            "name": "pair1", "replication_name": "REP1", "service_control": {"mode": "simulator"},
            "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                        {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}]}]),
        "ALTIBASE_MAINTENANCE_SCHEDULE": "none",  # windows opened by hand here
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # the Test button on the Connections page
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",  # an edited DAG file shows up soon
    })
    print(f"Starting Airflow in {ui.home} (the first start migrates its database: about a minute) ...")
    ui.start(env)
    STATE.write_text(json.dumps({"url": ui.url, "home": str(ui.home), "sim": str(WORK / "sim"), "port": port,
                                 "password": PASSWORD,
                                 "pids": {name: proc.pid for name, proc in ui.processes.items()}}))
    try:
        ui.wait_ready("altibase_replicated_ddl", timeout=300)
        for dag_id in UNPAUSED:
            ui.api(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")
    except BaseException:
        stop()
        raise
    sim_cmd = f"ALTIBASE_SIM_STATE_DIR={WORK / 'sim'} {BIN / 'altibase-sim'}"
    print(f"""
Airflow is up, on the simulator. Open:
{ui.url}
Login: {ADMIN} / {PASSWORD}

Try first:
  1. DAG altibase_replicated_ddl → Trigger, keep the defaults: a dry run. Open the run's plan task,
     tab Rendered Templates: every statement per server, in order. Nothing changes.
  2. Trigger again with "Dry run" unticked. The default service control, manual, asks you to stop the
     application service (Required Actions). On the simulator the application is its load:
       stop it:    {sim_cmd} load stop
       resume it:  {sim_cmd} load start --server node1 --sessions {LOAD['sessions']} --interval {LOAD['interval']}
     then Approve. (Service control {{"mode": "simulator"}}, or Pair = pair1, does both for you.)
     The summary: the run's summary task, tab XCom.
  3. altibase_replication_health checks pair1 every 10 minutes; altibase_maintenance rolls the change
     files in include/changes/ out (copy one from include/changes/examples/ first).

Logs: {ui.home}/*.log. Stop everything: make ui-stop""")


def stop() -> None:
    state = json.loads(STATE.read_text()) if STATE.exists() else None
    if state:
        def exited(pid: int, timeout: float) -> None:  # not our children (make ui has ended): watch /proc
            deadline = time.monotonic() + timeout
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)

        end_process_groups(list(state["pids"].values()), exited, grace=15)
        ui = AirflowUI(home=Path(state["home"]), port=0)
        deadline = time.monotonic() + 10
        while (left := ui.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        STATE.unlink()
        if left:
            raise SystemExit(f"processes of this Airflow still running: {left}")
    sim_dir = WORK / "sim"
    if daemon_info(sim_dir):
        stop_daemon(sim_dir)
    print("Stopped." if state else "Nothing was running.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    if args.command == "start":
        start(args.port)
    else:
        stop()


if __name__ == "__main__":
    main()
