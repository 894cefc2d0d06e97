"""
# Scheduled maintenance: reviewed changes rolled out to the fleet

Applies the change files in `include/changes/` (`ALTIBASE_CHANGES_DIR`) to the pairs they name, each
through the DDL DAG (`altibase_replicated_ddl`): one DDL run per pair and change, in file order per pair,
inside the maintenance window.

| task | what it does |
|---|---|
| **load_changes** | reads and validates every change file against every pair it targets, with the DDL DAG's own rules; one bad file stops the run before anything is touched |
| **plan_rollout** | reads each pair's history (`SYS.AIRFLOW_CHANGE_HISTORY`) and lock on its servers: per pair and change, *applied* (never run twice), *edited* (the file changed after it ran: reported, not re-run), *failed* (a person looks first, or `retry_failed`), *blocked* (after a failed one), *pending*; a pair another run holds, or whose servers cannot be read, is left untouched |
| **canary** | the first `canary_pairs` pairs with pending changes, one DDL run at a time; a pair with a change left for a person (failed, or blocked behind one) only when no other pair can |
| **rollout** | the other pairs, in `concurrency` lanes (one mapped task each, named after its pairs), after the canary succeeded |
| **report** | every pair: done, failed, refused (with the reason recorded), untouched, edited — red when anything needs a person |

Each lane triggers a DDL run, waits for it without holding a worker (the DDL run is in the UI with its own
graph, approvals and summary), then the next. Before each run it looks whether any run or lane of this
rollout failed (then it stops: the rollout stops on the first failure), whether the run still fits in the
window (the pair's earlier runs say how long one takes), and whether the DDL DAG's gates before the pair
is held pass (its params, the Connections, the read-only preflight). A refusal triggers no DDL run: it is
recorded in the pair's history as *failed* with the refusal's message, so the next window leaves it for
a person like any failure, and fails the lane. A DDL run that fails with no outcome of its own in the
history (refused by its own gates) is recorded *failed* by the lane. Each DDL run gets the window's end as
`not_after`, and takes the pair's lock: a pair held by a manual run is not touched (nor recorded).

## Configuration (environment of every Airflow component, read when the file is parsed)
- `ALTIBASE_MAINTENANCE_SCHEDULE`: when the window opens (cron); default `0 2 * * 6` (Saturday 02:00 UTC).
- `ALTIBASE_MAINTENANCE_WINDOW_MINUTES`: how long it stays open; default 120.
- `ALTIBASE_PAIRS`: the fleet (pairs by name, their Connections, roles, service control), shared with the
  health DAG; `ALTIBASE_CHANGES_DIR`: the change files (default `include/changes`).

The window opens when the run is scheduled (a manual trigger opens it now). A manual trigger previews
by default (`dry_run`, ticked: the plan in `plan`'s log, nothing triggered); untick it to roll out by
hand. Scheduled runs always apply. One rollout at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, task

from altibase_ops.maintenance.changes import Change, changes_dir, load_changes
from altibase_ops.maintenance.config import previews, schedule_from_env, window_minutes_from_env
from altibase_ops.maintenance.rollout import (
    RolloutLaneOperator,
    format_report,
    format_stages,
    plan_rollout,
    rollout_outcomes,
)
from altibase_ops.pairs import pairs_from_env, validate_pairs

log = logging.getLogger(__name__)
DRAFT7 = {"$schema": "http://json-schema.org/draft-07/schema#"}
LANE_NAME = "{{ task.lane | map(attribute='pair') | unique | join(', ') }}"

with DAG(
    dag_id=Path(__file__).stem,
    schedule=schedule_from_env(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two rollouts at once would race for the same pairs
    tags=["altibase", "replication", "ddl", "maintenance"],
    default_args={"owner": "dba", "retries": 0},  # the next window is the retry
    doc_md=__doc__,
    params={
        "concurrency": Param(4, type="integer", minimum=1, maximum=32, title="Pairs at a time", section="Rollout",
                             description="How many pairs change at once after the canary (one lane each).",
                             **DRAFT7),
        "canary_pairs": Param(1, type="integer", minimum=0, maximum=32, title="Canary pairs", section="Rollout",
                              description="Pairs that go first, one at a time; the rest start only when they "
                                          "succeeded. 0: no canary stage.", **DRAFT7),
        "window_minutes": Param(window_minutes_from_env(), type="integer", minimum=1, maximum=1440,
                                title="Window length (min)", section="Rollout",
                                description="From the run's start; no DDL run begins that would not end inside.",
                                **DRAFT7),
        "retry_failed": Param(False, type="boolean", title="Retry failed changes", section="Rollout",
                              description="Run again a change whose last run on a pair failed (after a person "
                                          "looked at it). Off: such a pair is reported, not touched.", **DRAFT7),
        # Default true, as the DDL DAG's: Trigger with the defaults shows the plan; a rollout by hand needs
        # a person to untick it. The scheduled runs apply whatever this says (config.previews).
        "dry_run": Param(True, type="boolean", title="Dry run (plan only)", section="Rollout",
                         description="Show what would run where; trigger nothing. Untick to roll out now. "
                                     "Scheduled runs (the window opening) always apply.", **DRAFT7),
    },
) as dag:

    @task
    def load_change_files() -> list[dict]:
        pairs = validate_pairs(pairs_from_env())
        folder = changes_dir()
        changes = load_changes(folder, pairs)
        log.info("%d change file(s) in %s:\n%s", len(changes), folder, "\n".join(
            f"  {c.id} (approved by {c.approved_by}; {c.service_mode}; pairs {', '.join(c.pairs)}): "
            + "; ".join(c.ddl) for c in changes))
        return [c.as_dict() for c in changes]

    @task
    def plan(changes: list[dict], **context) -> dict:
        params, dag_run = context["params"], context["dag_run"]
        closes = (dag_run.run_after or pendulum.now("UTC")) + timedelta(minutes=params["window_minutes"])
        rollout = plan_rollout([Change.from_dict(c) for c in changes], validate_pairs(pairs_from_env()),
                               maintenance_run_id=dag_run.run_id, window_closes_at=closes,
                               canary_pairs=params["canary_pairs"], concurrency=params["concurrency"],
                               retry_failed=params["retry_failed"])
        log.info("window closes at %s. Per pair:\n%s", closes.isoformat(), format_report(rollout["report"]))
        log.info("%s", format_stages(rollout))
        if previews(params["dry_run"], dag_run.run_type):
            log.info("dry run (a manual trigger with Dry run ticked): nothing is triggered; untick it to roll out "
                     "now, or let the scheduled window apply it")
            rollout.update(canary=[], rest=[], run_ids=[], preview=True)
        return rollout

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from airflow.sdk.exceptions import AirflowException

        ti = context["ti"]
        planned = ti.xcom_pull(task_ids="plan")
        if not planned:
            raise AirflowException("no rollout: the change files or the fleet configuration were refused "
                                   "(see load_change_files)")
        outcomes = rollout_outcomes(planned, ti)
        log.info("Rollout:\n%s", format_report(planned["report"], outcomes))
        problems = [f"{key}: {state}" for key, state in outcomes.items() if state != "applied"]
        problems += [f"{pair}/{cid}: {status}" for pair, entry in planned["report"].items()
                     for cid, status in entry["changes"].items() if status in ("edited", "failed", "blocked")]
        problems += [f"{pair}: {entry['note']}" for pair, entry in planned["report"].items() if entry["note"]]
        if problems:
            raise AirflowException(f"{len(problems)} item(s) need a person:\n" + "\n".join(problems))
        return outcomes

    # a mapped task expands over a task's whole return value: one small task per stage hands it its lanes
    @task
    def lanes(rollout: dict, stage: str) -> list[list[dict]]:
        return rollout[stage]

    planned = plan(load_change_files())
    canary = RolloutLaneOperator.partial(task_id="canary", plan_task_id="plan", map_index_template=LANE_NAME).expand(
        lane=lanes.override(task_id="canary_lanes")(planned, "canary"))
    # NONE_FAILED: runs when the canary succeeded or had nothing to do (skipped); not after a failed canary
    rest = RolloutLaneOperator.partial(task_id="rollout", plan_task_id="plan", map_index_template=LANE_NAME,
                                       trigger_rule=TriggerRule.NONE_FAILED).expand(
        lane=lanes.override(task_id="rollout_lanes")(planned, "rest"))
    canary >> rest >> report()
