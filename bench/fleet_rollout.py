"""One DDL across a fleet of 20 simulator pairs against the same DDL on one pair, through the
maintenance DAG under a real Airflow (api-server, scheduler with LocalExecutor, dag-processor,
triggerer; SQLite), in one run. Prints the wall time of each maintenance run, side by side, the ratio,
and where the time goes (the DDL runs' own durations, the task processes started, the machine's busy
CPU time during each run).

    .venv/bin/python bench/fleet_rollout.py [--pairs 20] [--concurrency 20] [--keep]

Both runs: no canary stage (``canary_pairs=0``: the canary is a deliberate extra DDL run in series),
``service_control`` simulator, ``can_stop``, ``ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)``. The single
pair and the fleet are different pairs of one simulator and one Airflow, so both runs pay the same
start-up costs. The last lines are machine-readable, one figure a line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from altibase_sim.control import start_daemon, stop_daemon  # noqa: E402
from altibase_sim.scenarios import seed_replicated_pair  # noqa: E402
from scripts.local_airflow import AirflowUI, airflow_env, free_port  # noqa: E402

DDL_DAG, MAINTENANCE = "altibase_replicated_ddl", "altibase_maintenance"
DDL = "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"


def change(change_id: str, pairs: list[str]) -> str:
    return (f"id: {change_id}\napproved_by: bench\npairs: {json.dumps(pairs)}\nservice_mode: can_stop\n"
            f"tables: [SYS.T1]\nddl: [\"{DDL}\"]\n")


def when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy (all cores; /proc/stat), so far."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rollout(ui: AirflowUI, run_id: str, concurrency: int) -> dict:
    cpu0 = busy_cpu_seconds()
    ui.api(f"dags/{MAINTENANCE}/dagRuns", {"dag_run_id": run_id, "logical_date": None,
                                           "conf": {"concurrency": concurrency, "canary_pairs": 0, "dry_run": False}})
    while (state := ui.run_state(MAINTENANCE, run_id)) not in ("success", "failed"):
        ui.check_running()
        time.sleep(2)
    run = ui.api(f"dags/{MAINTENANCE}/dagRuns/{run_id}")
    if state != "success":
        raise SystemExit(f"{run_id} {state}:\n{ui.failure_report(MAINTENANCE, run_id)}")
    ddl = [r for r in ui.api(f"dags/{DDL_DAG}/dagRuns?limit=200")["dag_runs"] if r["dag_run_id"].endswith(f"__{run_id}")]
    durations = sorted(when(r["end_date"]) - when(r["start_date"]) for r in ddl)
    tis = sum(ui.api(f"dags/{DDL_DAG}/dagRuns/{r['dag_run_id']}/taskInstances?limit=200&state=success&state=failed"
                     )["total_entries"] for r in ddl)
    return {"wall": when(run["end_date"]) - when(run["start_date"]), "ddl_runs": len(ddl),
            "ddl_mean": sum(durations) / len(durations), "ddl_max": durations[-1], "tasks_run": tis,
            "cpu": busy_cpu_seconds() - cpu0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    names = ["single"] + [f"f{i:02d}" for i in range(args.pairs)]
    state_dir = work / "sim"
    sim = start_daemon(state_dir, [f"{n}{s}" for n in names for s in "ab"])
    ui = AirflowUI(home=work / "airflow", port=free_port())
    ui.home.mkdir()
    try:
        for name in names:
            seed_replicated_pair(sim, (f"{name}a", f"{name}b"))
        fleet = [{"name": n, "replication_name": "REP1",
                  "servers": [{"name": f"{n}a", "conn_id": f"altibase_{n}a", "role": "active"},
                              {"name": f"{n}b", "conn_id": f"altibase_{n}b", "role": "standby"}],
                  "service_control": {"mode": "simulator", "state_dir": str(state_dir)}} for n in names]
        changes = work / "changes"
        changes.mkdir()
        env = airflow_env(ui.home, ui.port, sim)
        env.update({"ALTIBASE_PAIRS": json.dumps(fleet), "ALTIBASE_CHANGES_DIR": str(changes),
                    "ALTIBASE_MAINTENANCE_SCHEDULE": "none",
                    # twenty runs' task processes talk to one api-server on SQLite, whose writer lock keeps
                    # connections checked out: the default pool (5 + 10) runs dry (a production fleet
                    # runs on PostgreSQL, as docker-compose.yaml does)
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "40", "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "40"})
        ui.start(env)
        ui.wait_ready(MAINTENANCE)
        ui.wait_ready(DDL_DAG)
        for dag_id in (DDL_DAG, MAINTENANCE):
            ui.api(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")
        (changes / "0001_one_pair.yaml").write_text(change("0001_one_pair", ["single"]))
        one = rollout(ui, "one_pair", args.concurrency)
        (changes / "0002_fleet.yaml").write_text(change("0002_fleet", names[1:]))
        many = rollout(ui, "fleet", args.concurrency)
    finally:
        leftovers = ui.stop()
        stop_daemon(state_dir)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: {work}")
    if leftovers:
        raise SystemExit(f"processes still running after stop: {leftovers}")
    print(f"{'':<28}{'1 pair':>10}{f'{args.pairs} pairs':>12}")
    for label, key in (("maintenance run, wall (s)", "wall"), ("DDL runs", "ddl_runs"),
                       ("DDL run, mean (s)", "ddl_mean"), ("DDL run, longest (s)", "ddl_max"),
                       ("task processes run", "tasks_run"), ("CPU busy, all cores (s)", "cpu")):
        print(f"{label:<28}{one[key]:>10.1f}{many[key]:>12.1f}")
    cores = os.cpu_count() or 1
    print(f"cores: {cores}; concurrency {args.concurrency}; no canary")
    print(f"CPU per task process (s): {one['cpu'] / one['tasks_run']:.2f} (1 pair), "
          f"{many['cpu'] / many['tasks_run']:.2f} ({args.pairs} pairs); the {args.pairs}-pair run kept the cores "
          f"{100 * many['cpu'] / (many['wall'] * cores):.0f} % busy")
    print(f"fleet_one_pair_s {one['wall']:.2f}")
    print(f"fleet_{args.pairs}_pairs_s {many['wall']:.2f}")
    print(f"fleet_ratio {many['wall'] / one['wall']:.2f}")


if __name__ == "__main__":
    main()
