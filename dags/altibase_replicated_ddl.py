"""
# DDL on replicated Altibase tables

Runs the vendor's procedure for DDL on tables under replication, with every replication property at
its default (`docs/procedures.md`), as a task graph:

| variant | steps |
|---|---|
| service can stop, Active-Standby / Active-Active | O1 stop service, confirm no sessions · O2 admin mode on · O3a flush, O3b gap 0, O3c stop replication · O4 remove tables from replication · O5 DDL · O6 add tables back · O7 start replication · O8 admin mode off · O9 resume service |
| service cannot stop (rolling), Active-Active | per server in turn: R1a flush, R1b gap 0, R1c move service, R1d no sessions · R2 admin on · R3 stop replication (both) · R4 remove · R5 DDL · R6 add · R7 SQL apply on (both) · R8 start (both) · R9 admin off; then R11 SQL apply count 0, R12 SQL apply off, R13 service back |
| rolling, Active-Standby (extension) | the standby's turn, a switchover (SW1–SW3), the active's turn, R11–R12, and the service back on the active with the standby no longer sending (R13a–R13e) |

Each server's admin-mode window is one task (a block; its id names the step range, e.g.
`O1_O9_change_tables_on_both`), in which each server's steps run side by side where the manual allows
(O4–O6 on both servers at once): admin mode spans one task level in every variant. Each block's log
shows its steps as they start and end, and its audit keeps one record per step.

Before anything changes: **validate_params** (identifiers, DDL forms, roles, connections; on Kubernetes
the permissions the run will use, asked with SelfSubjectAccessReview, and service control that names none
of the database's own Services) and a
read-only **preflight** (replication and tables present, senders as the topology needs, admin mode 0,
DDL properties at default, same table definitions, the last-table trap, the pair not held by another
run). **plan** shows the exact statements per server (its log, and its Rendered Templates tab); with `dry_run` (the default) the run ends there,
and so does a run whose DDL is already applied on a whole pair ("nothing to do"). **hold_pair** takes
the pair's lock on the servers themselves before anything changes (`SYS.AIRFLOW_DDL_LOCK`). **choose_variant** runs the
chosen variant and skips the others at once — all of them when the pair was not held, so a refused run
ends without painting each stage.

After: **post_checks** (definitions equal with the DDL applied, replication running with gap 0, admin
mode 0, SQL apply 0, the same data: row counts and column sums), **restore** (when something failed:
tables back in replication, a running sender for every server the application writes on, admin mode 0
where every table is replicated, the application back where it ran — after a switchover by R13 — and
the pair's invariant read again; the lock is released only when the pair is whole, else a precise
operator message; with a server down, what is safe on the survivor), and **summary** (in its log: the
pair and each server's Connection, the outage — application stopped → resumed, per server, from the service
steps' records — beside the time in admin mode, every statement per server, restore's included; where the
application writes and the pair's state, *read* at the end; a failed run names the task whose log
explains it). A long wait shows its last reading in its task's XCom `progress`.

With `recover`, **recover_leftovers** takes the pair's lock first — only from a holder that is over in
Airflow or whose lease ran out — and then restores (README, "Recovery").

Runs on different pairs go side by side; a second run on the same pair — of this Airflow or another —
is refused by the pair's lock, naming the first. With `not_before` / `not_after` (a maintenance window;
the maintenance DAG sets `not_after`), **wait_for_window** waits for the window to open without holding a
worker and refuses a run not expected to end before it closes; nothing is held or changed before. A run
that held the pair, or found its DDL applied, is recorded in the pair's history
(`SYS.AIRFLOW_CHANGE_HISTORY`). Notifications (started, approval, succeeded, failed) go to the channels
set in the environment (README, "Scheduled maintenance").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, AssetAlias, Label, Param, TriggerRule, task

from altibase_ops.ddl.assets import SCHEMA_CHANGES_ALIAS, schema_change_events
from altibase_ops.ddl.cluster import check_cluster
from altibase_ops.ddl.operators import (
    DdlPlanOperator,
    VariantBranchOperator,
    audit_records,
    build_variant,
    preflight_start_times,
    service_history,
    step_task_ids,
)
from altibase_ops.ddl.preflight import PreflightError, check_connections, preflight
from altibase_ops.ddl.procedure import VARIANTS
from altibase_ops.ddl.records import PairLockedError, holder_name, refresh_lease, release_lock, take_lock
from altibase_ops.ddl.request import (
    DEFAULT_SCAN_MAX_ROWS,
    MAX_DDL_ENTRIES,
    MAX_TABLES,
    DdlRequest,
    InvalidRequestError,
)
from altibase_ops.ddl.restore import procedure_began, restore, wait_for_steps_to_settle
from altibase_ops.ddl.statements import DDL_SQL_FILTERS, InvalidDdlError
from altibase_ops.ddl.summary import failure_advice, failure_message, observe_pair, summarize
from altibase_ops.ddl.verify import post_checks
from altibase_ops.ddl.window import REFUSED_KEY, MaintenanceWindowOperator
from altibase_ops.maintenance.history import record_outcome
from altibase_ops.notify import notify
from altibase_ops.operators.isql import DEFAULT_POD_STARTUP_TIMEOUT
from altibase_ops.pairs import pairs_from_env
from altibase_ops.refusals import fail_in_one_line, refusals_in_one_line
from altibase_ops.sql.templates import SQL_DIR, SQL_FILTERS
from altibase_ops.sys_password import DEFAULT_SECRET_KEY, DEFAULT_SECRET_NAME

log = logging.getLogger(__name__)
# Airflow re-checks every Param's schema against its metaschema for each task when it serialises the
# DAG (tasks x 17 params); the draft-07 metaschema checks ~4x faster than the default 2020-12.
DRAFT7 = {"$schema": "http://json-schema.org/draft-07/schema#"}
MAX_ACTIVE_RUNS = 32
SERVER_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "conn_id": {"type": "string"},
                   "role": {"type": "string", "enum": ["active", "standby", "active1", "active2"]}},
    "required": ["name", "conn_id", "role"],
}

with DAG(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # Runs on different pairs go side by side; the pair's lock (hold_pair) refuses a second run on the
    # same pair, naming the first.
    max_active_runs=MAX_ACTIVE_RUNS,
    tags=["altibase", "replication", "ddl"],
    default_args={"owner": "dba", "retries": 0},  # no blind retries: a step is re-run by a person, on purpose
    doc_md=__doc__,
    template_searchpath=[str(SQL_DIR)],
    user_defined_filters={**SQL_FILTERS, **DDL_SQL_FILTERS},
    # The trigger form, in the order a DBA fills it in: what, where, how, then the safety settings.
    params={
        "tables": Param(["SYS.T1"], type="array", items={"type": "string"}, minItems=1, maxItems=MAX_TABLES,
                        title="Tables",
                        section="What", description="USER.TABLE, each in the replication on every server.", **DRAFT7),
        "ddl": Param(["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"], type="array", items={"type": "string"},
                     minItems=1, maxItems=MAX_DDL_ENTRIES, title="DDL statements", section="What",
                     description="One statement per entry, each on a listed table (ALTER TABLE … ADD COLUMN (…) "
                                 "/ DROP COLUMN / MODIFY COLUMN (…), CREATE/DROP INDEX, TRUNCATE TABLE).", **DRAFT7),
        # Default true: triggering with the defaults shows the plan and changes nothing; a change needs
        # a person to untick it on purpose.
        "dry_run": Param(True, type="boolean", title="Dry run (plan only)", section="What",
                         description="Show every statement per server (task plan) and change nothing. Untick to "
                                     "run the procedure.", **DRAFT7),
        "pair": Param("", enum=["", *(p["name"] for p in pairs_from_env())], title="Pair (from ALTIBASE_PAIRS)",
                      section="Where",
                      description="A configured pair by name: its servers, topology, replication and service "
                                  "control. Empty: the three fields below say where.", **DRAFT7),
        "servers": Param(
            [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
             {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
            type="array", items=SERVER_SCHEMA, minItems=2, maxItems=2, title="Servers", section="Where",
            description="The pair: each server's name, Airflow connection id and role (active/standby, or "
                        "active1/active2). The pairs of ALTIBASE_PAIRS are listed in the README.", **DRAFT7),
        "topology": Param("active_standby", enum=["active_standby", "active_active"], title="Topology",
                          section="Where", description="active_standby: only the active carries the service and "
                                                       "sends; active_active: both do.", **DRAFT7),
        "replication_name": Param("REP1", type="string", pattern="^[A-Za-z][A-Za-z0-9_]{0,39}$",
                                  title="Replication name", section="Where", **DRAFT7),
        "service_mode": Param("can_stop", enum=["can_stop", "rolling"], title="Service mode", section="How",
                              description="can_stop: the application stops for the change (O1–O9). rolling: it "
                                          "stays up, one server at a time (R1–R13, SQL apply mode).", **DRAFT7),
        # the form labels an enum's null option with values_display["null"] (else it prints "null")
        "service_control_mode": Param(None, type=["null", "string"], enum=[None, "manual", "simulator", "kubernetes"],
                                      values_display={"null": "the pair's (else manual)", "manual": "manual",
                                                      "simulator": "simulator", "kubernetes": "kubernetes"},
                                      title="Service control", section="How",
                                      description="Who stops and resumes the application. manual: a person, asked "
                                                  "in Required Actions. simulator: the simulator's load (make ui, "
                                                  "tests). kubernetes: the Services' endpoints (its section below). "
                                                  "Empty: the pair's (Pair above), else manual.", **DRAFT7),
        "simulator_state_dir": Param(None, type=["null", "string"], title="Simulator state directory",
                                     section="Service control: simulator",
                                     description="Empty: ALTIBASE_SIM_STATE_DIR, as the Connections use it.", **DRAFT7),
        "kubernetes_namespace": Param(None, type=["null", "string"], title="Namespace of the application",
                                      section="Service control: kubernetes", **DRAFT7),
        "kubernetes_services": Param(None, type=["null", "object"], title="Client Services",
                                     section="Service control: kubernetes",
                                     description='Server name → the Service the application connects through, '
                                                 'e.g. {"node1": "app-db"}: a Service of its own, never the one '
                                                 'the Connections or the replication use (refused).', **DRAFT7),
        "kubernetes_deployments": Param(None, type=["null", "object"], title="Application Deployments",
                                        section="Service control: kubernetes",
                                        description='Server name → the Deployment to scale to 0 and back.', **DRAFT7),
        "kubernetes_server_selectors": Param(None, type=["null", "object"], title="Pod labels per server",
                                             section="Service control: kubernetes",
                                             description='Server name → the labels of its pods (rolling: where '
                                                         'traffic can move).', **DRAFT7),
        "service_control": Param({}, type="object", title="Service control as JSON",
                                 section="Service control: as JSON (advanced)",
                                 description='Overrides the fields above when not empty: {"mode": "manual"}, '
                                             '{"mode": "simulator", "state_dir": …}, {"mode": "kubernetes", '
                                             '"namespace": …, "services": {server: Service}, "deployments": {server: '
                                             'Deployment}, "server_selectors": {server: {labels}}, '
                                             '"endpoint_timeout_seconds": …} (README, "service control").', **DRAFT7),
        "runner": Param("local", enum=["local", "kubernetes"], title="iSQL runner", section="How",
                        description="local: the Connection's client on the worker (the real `is` for an odbc "
                                    "Connection, isql-sim for the simulator). kubernetes: a pod per step from the "
                                    "altibase image.", **DRAFT7),
        "recover": Param(False, type="boolean", title="Recover first", section="Safety",
                         description="Run the restore path before preflight: for a run that follows a failed "
                                     "one (admin mode left on, replication left stopped). Never needed otherwise.", **DRAFT7),
        "lock_lease_seconds": Param(3600, type="integer", minimum=1, title="Lock lease (seconds)", section="Safety",
                                    description="Another run (recover included) takes this run's lock of the pair "
                                                "only when this run is over in Airflow, or when it showed no sign of "
                                                "life for this long plus its longest wait. Longer than any one DDL "
                                                "statement may take.", **DRAFT7),
        "scan_max_rows": Param(DEFAULT_SCAN_MAX_ROWS, type="integer", minimum=1, title="Preflight scan limit (rows)",
                               section="Safety",
                               description="Preflight reads a table's rows (duplicate keys of a new unique index) "
                                           "only up to this many rows per server; a larger table is refused with "
                                           "the check to run by hand.", **DRAFT7),
        "gap_timeout_seconds": Param(300, type="integer", minimum=1, title="Gap wait (seconds)", section="Safety",
                                     description="How long the replication gap may take to reach 0 before a step "
                                                 "gives up (and restore runs).", **DRAFT7),
        "sessions_timeout_seconds": Param(300, type="integer", minimum=1, title="Sessions wait (seconds)",
                                          section="Safety",
                                          description="How long to wait for the application's sessions to end "
                                                      "after the service stopped (O1, R1d).", **DRAFT7),
        "approval_timeout_minutes": Param(60, type="integer", minimum=1, title="Approval wait (minutes)",
                                          section="Safety",
                                          description="Manual service control: how long a request waits for a "
                                                      "person; then the run stops and restore runs.", **DRAFT7),
        "flush_wait_seconds": Param(60, type="integer", minimum=1, title="FLUSH WAIT (seconds)", section="Safety",
                                    description="The n of ALTER REPLICATION … FLUSH WAIT n.", **DRAFT7),
        "poke_interval_seconds": Param(5, type="number", minimum=0.1, title="Sensor poke interval (seconds)",
                                       section="Safety", description="How often a wait reads the server again.",
                                       **DRAFT7),
        "pod_namespace": Param("default", type="string", title="iSQL pods: namespace", section="Runner kubernetes",
                               **DRAFT7),
        "password_secret_name": Param(DEFAULT_SECRET_NAME, type="string", title="iSQL pods: SYS password Secret",
                                      section="Runner kubernetes",
                                      description="The Secret provisioning uses too; the pods read it, Airflow never does.",
                                      **DRAFT7),
        "password_secret_key": Param(DEFAULT_SECRET_KEY, type="string", title="iSQL pods: key in the Secret",
                                     section="Runner kubernetes", **DRAFT7),
        "pod_startup_timeout_seconds": Param(DEFAULT_POD_STARTUP_TIMEOUT, type="integer", minimum=1,
                                             title="iSQL pods: startup timeout (seconds)", section="Runner kubernetes",
                                             description="Includes a node's first pull of the altibase image.",
                                             **DRAFT7),
        "not_before": Param(None, type=["null", "string"], title="Window opens (UTC, ISO 8601)",
                            section="Maintenance window and change",
                            description="Wait (without holding a worker) until then before holding the pair. "
                                        "Empty: start at once.", **DRAFT7),
        "not_after": Param(None, type=["null", "string"], title="Window closes (UTC, ISO 8601)",
                           section="Maintenance window and change",
                           description="Refuse to begin when the run is not expected to end by then (from the "
                                       "pair's history of earlier runs). Empty: no limit.", **DRAFT7),
        # null, not "": the trigger form refuses an empty string for a string field (its Trigger button stays
        # disabled), so optional text params default to null
        "change_id": Param(None, type=["null", "string"], title="Change id", section="Maintenance window and change",
                           description="Set by the maintenance DAG (a change file's id); recorded in the pair's "
                                       "history (SYS.AIRFLOW_CHANGE_HISTORY). Empty for a manual run. A new id "
                                       "makes the same statements a new request: a TRUNCATE that ran runs again.",
                           **DRAFT7),
        "change_checksum": Param(None, type=["null", "string"], title="Change checksum", section="Maintenance window and change",
                                 description="Set by the maintenance DAG with change_id.", **DRAFT7),
    },
) as dag:

    # Every task rebuilds the validated request from the params (DdlRequest.from_params): XCom carries
    # only what tasks produce (the plan, audit records, what a service step changed).
    @task
    def validate_params(**context) -> None:
        # a refusal is a message for a person: the task fails with it alone, no traceback
        with refusals_in_one_line(log, InvalidRequestError, InvalidDdlError, PreflightError):
            request = DdlRequest.from_params(context["params"])
            # each Connection must exist, name its backend and (local runner) have an iSQL client for it:
            # a typo or a missing client fails here, not mid-procedure
            check_connections(request)
            # the cluster, before recover_leftovers or any step can change it: service control names no
            # Service of the database's own
            check_cluster(request, log)
        log.info("the params are valid for %s", request.describe_pair())

    @task
    def recover_leftovers(**context) -> dict | None:
        request = DdlRequest.from_params(context["params"])
        if not request.recover or request.dry_run:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("recover is off: nothing to recover")  # shown as skipped, not green
        # the pair's lock first: a live holder is refused whatever recover says, before anything is touched
        ti = context["ti"]
        take_lock(request, ti.run_id, holder_name(ti.dag_id), log, run_state=ti.get_dagrun_state)
        ti.xcom_push(key="held_at", value=time.time())  # this run holds the pair from here on
        audits: list = []
        try:
            return restore(request, [], log, resumable_ok=True, audits=audits)
        finally:
            ti.xcom_push(key="audit", value=audits)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def run_preflight(**context) -> dict:
        try:
            return preflight(DdlRequest.from_params(context["params"]), log, run_state=context["ti"].get_dagrun_state)
        except PreflightError as exc:
            context["ti"].xcom_push(key=REFUSED_KEY, value=str(exc))  # the summary records it in the history
            fail_in_one_line(log, str(exc))

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def stop_if_dry_run(**context) -> bool:
        request = DdlRequest.from_params(context["params"])
        if request.dry_run:
            log.info("dry_run is set: the plan above is what a real run would send; nothing was changed")
            return False
        checked = context["ti"].xcom_pull(task_ids="run_preflight") or {}
        if checked.get("nothing_to_do"):
            log.info("nothing to do: the DDL is applied on every server and the replication is whole; no step "
                     "runs, the service is not touched")
            for line in checked.get("ran_earlier") or []:
                log.info("%s: this request ran it already, so it does not run again; to run the same statements "
                         "again, trigger with a new change_id (a new request)", line)
            record_outcome(request, "found_applied", context["ti"].run_id, context["ti"].dag_id, time.time(), log)
            return False
        return True

    # Before anything changes: the pair's lock, on the servers themselves (ddl/records.py), so a second
    # run — of this Airflow or another — is refused naming the holder.
    @task
    def hold_pair(**context) -> dict:
        request = DdlRequest.from_params(context["params"])
        ti = context["ti"]
        with refusals_in_one_line(log, PairLockedError):
            held = take_lock(request, ti.run_id, holder_name(ti.dag_id), log, run_state=ti.get_dagrun_state)
        context["ti"].xcom_push(key="held_at", value=time.time())  # the history's start of this run
        notify("started", context, "The pair is held; the procedure begins.")
        return held

    # Each table this run changed is an Asset event (altibase://<pair>/<USER>.<TABLE>, ddl/assets.py):
    # the URIs are known only once the servers are read, hence the alias.
    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, outlets=[AssetAlias(SCHEMA_CHANGES_ALIAS)])
    def run_post_checks(**context) -> dict:
        request = DdlRequest.from_params(context["params"])
        run_id = context["ti"].run_id
        refresh_lease(request, run_id, log)
        result = post_checks(request, log)
        for uri, extra in schema_change_events(request, context["params"], run_id):
            log.info("schema change: %s %s", uri, [c["statement"] for c in extra["changes"]])
            context["outlet_events"][AssetAlias(SCHEMA_CHANGES_ALIAS)].add(Asset(uri), extra=extra)
        release_lock(request, run_id, log)  # the pair is whole: the next run may come
        return result

    # Runs only when something failed: waits for steps still running elsewhere, then restores.
    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def run_restore(**context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        ti = context["ti"]
        if not procedure_began(context):
            # the failure came before any step ran (validation, preflight, the lock): nothing was changed;
            # a lock this run took is given back (only this run's row is ever deleted)
            if ti.xcom_pull(task_ids="hold_pair"):
                release_lock(DdlRequest.from_params(context["params"]), ti.run_id, log)
            raise AirflowSkipException("the procedure never started, so there is nothing to restore")
        request = DdlRequest.from_params(context["params"])
        refresh_lease(request, ti.run_id, log)  # LockLostError: another run took the pair over; touch nothing
        wait_for_steps_to_settle(context, request, log)
        history = service_history(context, request)
        audits: list = []
        try:
            result = restore(request, history, log, started_at=preflight_start_times(context), audits=audits)
        finally:
            ti.xcom_push(key="audit", value=audits)
        if result["whole"]:
            release_lock(request, ti.run_id, log)  # restored whole: the next run may come
        else:
            log.info("the pair stays held by this run: %s", result["intermediate"])
        return result

    # The run's summary, for a person: its log (formatted) and XCom return_value (text, steps, outage).
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context) -> dict:
        try:
            request = DdlRequest.from_params(context["params"])
        except (InvalidRequestError, InvalidDdlError, TypeError, ValueError):
            # validate_params failed and said why: point there, in one line, not a second traceback
            fail_in_one_line(log, "validate_params refused the run's params before any server was touched: its "
                                  "log says which and why")
        ti = context["ti"]
        audits = audit_records(ti.xcom_pull(task_ids=[*step_task_ids(request), "recover_leftovers", "run_restore"],
                                            key="audit") or [])
        post = ti.xcom_pull(task_ids="run_post_checks")
        restored = ti.xcom_pull(task_ids="run_restore")
        recovered = ti.xcom_pull(task_ids="recover_leftovers")
        history = service_history(context, request)
        observation = observe_pair(request, history)
        # the outage is read from what the service steps and restore recorded, with their times
        records = [*(recovered or {}).get("service", []), *history, *(restored or {}).get("service", [])]
        result = summarize(request, audits, post, restored, log, observation, records)
        held_at = ti.xcom_pull(task_ids="hold_pair", key="held_at")
        if held_at is not None:  # the run held the pair: its outcome goes into the pair's history
            record_outcome(request, "applied" if post is not None else "failed", ti.run_id, ti.dag_id, held_at, log)
        refused = [r for r in ti.xcom_pull(task_ids=["run_preflight", "wait_for_window"], key=REFUSED_KEY) or [] if r]
        if held_at is None and refused and request.change_id:
            # a change refused before the pair was held waits for a person, like any failure (maintenance)
            record_outcome(request, "failed", ti.run_id, ti.dag_id, time.time(), log, reason=refused[0])
        recovered_at = ti.xcom_pull(task_ids="recover_leftovers", key="held_at")
        began = held_at is not None or recovered_at is not None
        if held_at is None and recovered_at is not None and (recovered or {}).get("whole"):
            # recover made the pair whole, then a gate stopped the run before hold_pair: nothing of it holds
            release_lock(request, ti.run_id, log)
        if post is None:
            ti.xcom_push(key="summary", value=result)  # kept for a failed run too
            # the task that holds the explanation, from the states Airflow has now (run_restore only if it ran)
            states = {task_id: str(getattr(state, "value", state)) for task_id, state in
                      ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}).items()}
            message = f"{failure_message(states, step_task_ids(request))} {result['service']}"
            notify("failed", context,
                   f"{message}\n\n{failure_advice(restored, began, observation)}\n\n{result['text']}")
            fail_in_one_line(log, message)
        notify("succeeded", context, result["text"])
        return result

    validated = validate_params()
    recovered = recover_leftovers()
    checked = run_preflight()
    planned = DdlPlanOperator(task_id="plan")  # the plan is also its Rendered Templates tab
    gate = stop_if_dry_run()
    branch = VariantBranchOperator(task_id="choose_variant")
    window = MaintenanceWindowOperator(task_id="wait_for_window")
    validated >> recovered >> checked >> planned >> gate >> window >> hold_pair() >> branch

    post = run_post_checks()
    restored = run_restore()
    all_steps = []
    for topology, service_mode in VARIANTS:
        group, first, last = build_variant(topology, service_mode)
        branch >> Label(f"{service_mode.replace('_', ' ')} / {topology.replace('_', '-')}") >> first
        last >> post
        all_steps.append(group)
    [post, *all_steps] >> restored
    [post, restored] >> summary()
