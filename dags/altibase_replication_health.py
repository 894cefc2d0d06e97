"""
# Replication health of Altibase pairs (scheduled)

Every 10 minutes, for every configured pair and each of its two servers, reads on one short,
non-SYSDBA session: **REP_GAP / REP_SN** (`V$REPGAP`; no REP_GAP_SIZE, which a 7.1 server lacks), the **sender status**
(`V$REPSENDER.STATUS`: 1 RUN, 2 RETRY, no row = not running), the **receivers**
(`V$REPRECEIVER`: peer, `SQL_APPLY_TABLE_COUNT`), **ADMIN_MODE** and
**REPLICATION_SQL_APPLY_ENABLE** (`V$PROPERTY`) and the **session count** (`V$SESSION`, without
the check's own session).

## Reading the grid
- **check_server** is mapped, one square per server, named `pair/server`. A square is red when
  that server needs a DBA: the task's error says which pair, which server and which value.
- **report** (always runs) logs one table of every server's readings and fails with the list of
  every problem, so the run is red exactly when someone must look, green otherwise.
- A server that is down or refuses the login is red on its own square; the others are still
  checked and reported (a pair with its standby down also shows the active's sender in RETRY).

## Thresholds (params; a manual trigger can change them for one run)
| finding | red when |
|---|---|
| gap | `REP_GAP > max_rep_gap` (units of REPLICATION_GAP_UNIT, 1 MiB by default) |
| stuck gap | the gap is not zero and the sender's `REP_SN` does not move for `stall_check_seconds` (0 turns this off) |
| stopped sender | a server whose role sends (active, active1, active2) has no running sender, or STATUS is not RUN |
| admin mode left on | `ADMIN_MODE = 1` (the check then reads nothing else: it never takes the SYSDBA session a maintenance run needs) |
| SQL apply left on | `REPLICATION_SQL_APPLY_ENABLE = 1`, or a receiver with `SQL_APPLY_TABLE_COUNT > 0` |
| missing replication / unreachable server | always |

`pairs`: `[{name, replication_name, servers: [{name, conn_id, role}, {…}]}]`, roles active/standby
or active1/active2, connections of type `altibase`.

## Configuring scheduled runs
A scheduled run has no trigger form, so it uses the param defaults. Both come from the environment
of the Airflow processes (read when the file is parsed — cheap, and no Variable, Connection or
database is touched at parse time):
- `ALTIBASE_HEALTH_SCHEDULE`: a cron expression or preset (`@hourly`); default `*/10 * * * *`.
- `ALTIBASE_HEALTH_PAIRS`: the `pairs` default as JSON; default: the fleet — `ALTIBASE_PAIRS`
  (else `pair1` = `altibase_node1` (active) / `altibase_node2` (standby), replication `REP1`) and the
  pairs of the file `ALTIBASE_PAIRS_FILE`, which the next parse reads again (a pair
  `altibase_provision` added is checked without a restart). A malformed value is an import error in
  the UI, not a failed run.

Set them for every Airflow component (in docker-compose: `x-airflow-common`). The thresholds'
defaults live here; change them in the file, or per run in the trigger form.

One run at a time (`max_active_runs=1`); no retries: the next scheduled run is the retry.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, task

from altibase_ops.health.config import pairs_from_env, schedule_from_env, targets
from altibase_ops.health.judgement import Thresholds, missing_results, read_and_judge, report_table

log = logging.getLogger(__name__)
SERVER_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "conn_id": {"type": "string"},
                   "role": {"type": "string", "enum": ["active", "standby", "active1", "active2"]}},
    "required": ["name", "conn_id", "role"],
}
PAIR_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"},
                   "replication_name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,39}$"},
                   "servers": {"type": "array", "items": SERVER_SCHEMA, "minItems": 2, "maxItems": 2}},
    "required": ["name", "replication_name", "servers"],
}

with DAG(
    dag_id=Path(__file__).stem,
    schedule=schedule_from_env(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two checks at once would only double the load on the servers
    tags=["altibase", "replication", "monitoring"],
    # No retries: a retry would only delay the red square; the next scheduled run checks again.
    default_args={"owner": "dba", "retries": 0},
    doc_md=__doc__,
    params={
        "pairs": Param(pairs_from_env(), type="array", items=PAIR_SCHEMA, minItems=1, title="Pairs",
                       description="Each pair: name, replication_name, and its two servers "
                                   "(name, Airflow connection id, role)."),
        "max_rep_gap": Param(100, type="integer", minimum=0, title="Max REP_GAP",
                             description="Red above this REP_GAP (units of REPLICATION_GAP_UNIT, 1 MiB by default)."),
        "stall_check_seconds": Param(10, type="number", minimum=0, maximum=120, title="Stuck-gap check (s)",
                                     description="With a non-zero gap, look again after this long: red if the "
                                                 "sender did not move. 0 turns the check off."),
    },
) as dag:

    @task
    def list_servers(**context) -> list[dict]:
        return targets(context["params"]["pairs"])

    # One mapped task per server, named pair/server in the grid; each fails on its own findings.
    @task(map_index_template="{{ task.op_kwargs['target']['label'] }}",
          execution_timeout=timedelta(minutes=5))
    def check_server(target: dict, **context) -> None:
        from airflow.sdk.exceptions import AirflowException

        result = read_and_judge(target, Thresholds.from_params(context["params"]), log)
        # Pushed before failing, so the report also shows the readings of the red servers.
        context["ti"].xcom_push(key="health", value=result)
        if result["problems"]:
            raise AirflowException("; ".join(result["problems"]))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> list[dict]:
        from airflow.sdk.exceptions import AirflowException

        ti = context["ti"]
        expected = ti.xcom_pull(task_ids="list_servers")
        if not expected:
            raise AirflowException("no server was checked: the pairs could not be read (see list_servers)")
        results = [r for r in ti.xcom_pull(task_ids=["check_server"], key="health") if r]
        log.info("Replication health:\n%s", report_table(results))
        problems = [p for r in results for p in r["problems"]] + missing_results(expected, results)
        if problems:
            raise AirflowException(f"{len(problems)} problem(s) need a DBA:\n" + "\n".join(problems))
        return results

    report_task = report()
    check_server.expand(target=list_servers()) >> report_task
