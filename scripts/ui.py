"""`make ui` / `make ui-stop`: the Airflow UI on this machine, on the embedded simulator, in one command.

Starts, in the background: the simulator with a replicated pair seeded exactly as the DDL DAG expects
(node1 active, node2 standby; SYS.T1 and SYS.T2 in replication REP1, only the active sending) and an
application load writing to node1; then Airflow 3 (api-server, scheduler with LocalExecutor,
dag-processor, triggerer; SQLite) with this project's DAGs; the Connections in its metadata database
(pair1's, and those of the pair altibase_provision builds with its defaults); the fleet (`ALTIBASE_PAIRS`:
pair1, and the file `.ui/pairs.json` that provisioning adds to) and `ALTIBASE_SIM_STATE_DIR` in every
component's environment. Returns once the
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

from altibase_ops.pairs import PAIRS_FILE_ENV  # noqa: E402
from altibase_ops.provision.manifests import service_name  # noqa: E402
from altibase_ops.provision.request import default_conn_id, provision_params  # noqa: E402
from altibase_ops.provision.spec import ProvisionSpec  # noqa: E402
from altibase_sim.control import daemon_info, start_daemon, stop_daemon  # noqa: E402
from altibase_sim.scenarios import connection_uri, seed_replicated_pair  # noqa: E402
from scripts.local_airflow import ADMIN, AirflowUI, airflow_env, end_process_groups, free_port  # noqa: E402

WORK = Path(os.environ.get("ALTIBASE_UI_DIR") or ROOT / ".ui")  # the browser test gives its own
STATE = WORK / "ui.json"
FLEET = WORK / "pairs.json"  # the fleet's file (ALTIBASE_PAIRS_FILE), beside ALTIBASE_PAIRS' pair1
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


def connections(sim) -> dict[str, dict]:
    """The Connections of the seeded pair (altibase_node1/2: the DDL DAG's defaults) and of the instance
    altibase_provision builds with its defaults (host: each node's Service name, resolved by the
    simulator's registry once provisioning has registered the servers)."""
    out = {f"altibase_{server['name']}": json.loads(connection_uri(server)) for server in sim.servers()}
    spec = ProvisionSpec.from_params({name: param.value for name, param in provision_params().items()})
    for node in spec.nodes:
        out[default_conn_id(spec, node)] = {"conn_type": "altibase", "host": service_name(spec, node),
                                            "port": spec.service_port, "login": "SYS", "password": "manager",
                                            "extra": {"backend": "simulator"}}
    return {conn_id: {**conn, "extra": json.dumps(conn["extra"])} for conn_id, conn in out.items()}


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
    env = {k: v for k, v in airflow_env(ui.home, port, sim).items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({
        PAIRS_FILE_ENV: str(FLEET),  # altibase_provision adds the pairs it builds: no restart to use them
        "ALTIBASE_PAIRS": json.dumps([{
            "name": "pair1", "replication_name": "REP1", "service_control": {"mode": "simulator"},
            "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                        {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}]}]),
        "ALTIBASE_MAINTENANCE_SCHEDULE": "none",  # windows opened by hand here
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # the Test button on the Connections page
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",  # an edited DAG file shows up soon
    })
    print(f"Starting Airflow in {ui.home} (the first start migrates its database: about a minute) ...")
    ui.start(env, connections(sim))
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
  3. DAG altibase_provision → Trigger, keep the defaults: a dry run (the plan). Then untick "Dry run": it
     builds a second pair, altibase (Connections altibase_svc_node1/2, on the Connections page), and adds it
     to {FLEET}: half a minute later it is in the DDL DAG's Pair list and the health DAG's pairs.
  4. altibase_replication_health checks the fleet every 10 minutes; altibase_maintenance rolls the change
     files in include/changes/ out (copy one from include/changes/examples/ first). Its Trigger with the
     defaults only shows the plan; untick "Dry run" to roll out.

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
