"""The tasks of ``altibase_replicated_ddl``'s procedure: one operator per step, built from the model.

Each step operator is constructed from its ``Step`` only (which step, on which role's server); at run
time it rebuilds the run's request from the params (``DdlRequest.from_params``) and takes its server,
its SQL and its waits from there, through the functions of ``ddl/steps.py``. That happens when Airflow
renders the task's templates, so the task's "Rendered Template" view shows the server and the exact
SQL, and it happens again when a deferred task resumes.
"""

from __future__ import annotations

import copy
import dataclasses
import shlex
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import jinja2
from airflow.sdk import BaseBranchOperator, BaseOperator, Context, TaskGroup
from airflow.sdk.bases.operator import ExecutorSafeguard

from altibase_ops.backends.simulator import simulator_state_dir
from altibase_ops.ddl.plan import format_ddl_plan, plan_ddl_run
from altibase_ops.ddl.procedure import VARIANTS, Block, Step, procedure, variant_id
from altibase_ops.ddl.records import refresh_lease
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import BUSY, CLIENT_INFO, PEER_BUSY_WAIT_SECONDS
from altibase_ops.ddl.steps import (
    StepWaitError,
    prepare_step,
    run_ddl_step,
    step_check,
    step_script,
    step_service_target,
    wait_in_process,
)
from altibase_ops.ddl.verify import check_table_data
from altibase_ops.notify import AltibaseRunNotifier
from altibase_ops.operators.isql import IsqlOperator
from altibase_ops.progress import PROGRESS_INTERVAL_SECONDS, Progress, task_address, wait_title, xcom_writer
from altibase_ops.sensors.altibase import (
    DEFERRAL_MARGIN_SECONDS,
    IN_PROCESS_FIRST_SECONDS,
    ReplicationGapSensor,
    SessionCountSensor,
    SqlApplySensor,
)
from altibase_ops.service.operator import ServiceControlOperator, ServiceTarget
from altibase_ops.sql.isql import CONNECT_LABEL
from altibase_ops.sql.steps import StepError
from altibase_ops.triggers.altibase import check_deferral

PREFLIGHT_TASK_ID = "run_preflight"
HOLD_TASK_ID = "hold_pair"


def keep_alive(context: Context, request: DdlRequest, log: Any) -> None:
    """This run's sign of life on the pair's lock (its lease moves on); LockLostError when another run took
    the lock over: the step stops before it touches anything."""
    refresh_lease(request, context["ti"].run_id, log)


def preflight_start_times(context: Context) -> dict[str, int]:
    """Each server's V$INSTANCE.STARTUP_TIME_SEC as this run's preflight read it ({} without one)."""
    report = context["ti"].xcom_pull(task_ids=PREFLIGHT_TASK_ID) or {}
    return {name: int(value) for name, value in (report.get("started_at") or {}).items()}


class DdlStepMixin:
    """A step of the procedure that takes its server and settings from the run's request."""

    step: Step

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        self.apply_request(DdlRequest.from_params(context["params"]))

    def apply_request(self, request: DdlRequest) -> None:
        raise NotImplementedError


class DdlIsqlStepOperator(DdlStepMixin, IsqlOperator):
    """An iSQL step on its role's server. Leaves an audit record (XCom ``audit``): server,
    statements, when, how long, each statement's result — whether the step succeeds or fails. It reads
    its server first (``ddl.steps.prepare_step``): a server restarted since preflight fails the step
    before anything is sent, and only what is not done there yet is sent."""

    template_fields: Sequence[str] = (*IsqlOperator.template_fields, "runner", "password_secret_name",
                                      "password_secret_key")

    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=f"(the {step.role} server)", sql=f"-- {step.template}, for this run",
                         step_kind=step.step_kind, **kwargs)
        self.step = step

    def apply_request(self, request: DdlRequest) -> None:
        self.altibase_conn_id = request.server(self.step.role).conn_id
        self.runner = request.runner
        self.namespace = request.pod_namespace
        self.startup_timeout_seconds = request.pod_startup_timeout_seconds
        self.password_secret_name = request.password_secret.name
        self.password_secret_key = request.password_secret.key
        self.sql = step_script(self.step, request)

    def execute(self, context: Context) -> Any:
        request = DdlRequest.from_params(context["params"])
        keep_alive(context, request, self.log)
        return self.run_step(context, request, preflight_start_times(context))

    def run_step(self, context: Context, request: DdlRequest, started_at: dict[str, int]) -> Any:
        """The step on its server, audited. Talks to Airflow only through ``_push_audit`` (a block's lanes
        call it from threads)."""
        started = time.time()
        outcome = "failed"
        try:
            script = prepare_step(self.step, request, started_at, self.log)
            self.sql = str(script)
            if not self.sql:
                outcome = "success"
                return None
            if self.step.action == "ddl":  # between its records on the server (ddl/records.py)
                value = run_ddl_step(self.step, request, script, context["ti"].run_id,
                                     lambda: self._execute_when_free(context))
            else:
                value = self._execute_when_free(context)
            outcome = "success"
            return value
        finally:
            self._push_audit(context, {
                "step_id": self.step.step_id, "task_id": self.task_id, "server_role": self.step.role,
                "conn_id": self.altibase_conn_id, "started": started, "seconds": round(time.time() - started, 3),
                "outcome": outcome,
                "statements": [{"statement": r.statement, "result": r.summary, "code": r.code,
                                "already_done": r.accepted} for r in self.results]})

    def _push_audit(self, context: Context, audit: dict[str, Any]) -> None:
        context["ti"].xcom_push(key="audit", value=audit)

    def _execute_when_free(self, context: Context) -> Any:
        """Run the script; a login refused because the server's single SYSDBA session is taken (a START
        step of the same stage reading this server) ran nothing, so it is tried again for a while."""
        deadline = time.monotonic() + PEER_BUSY_WAIT_SECONDS
        while True:
            try:
                return super().execute(context)
            except StepError as exc:
                login = exc.results[0] if exc.results else None
                refused = login is not None and login.statement == CONNECT_LABEL and login.code == BUSY
                if not refused or time.monotonic() > deadline:
                    raise
                self.log.info("the SYSDBA session of %s is taken (ERR-%s); trying again", self.altibase_conn_id, BUSY)
                time.sleep(0.5)


class DdlBlockOperator(DdlIsqlStepOperator):
    """A block of the procedure (``procedure.Block``): its steps, segment after segment, in one task.

    iSQL steps run as ``DdlIsqlStepOperator`` runs one (state first, restart check, records around the
    DDL); waits are in-process polls (``ddl.steps.wait_in_process``, never a deferral: inside admin
    mode they last seconds), except the waits that open the block; the data check compares both
    servers. The lanes of a segment (steps on different servers) run side by side in threads, each on
    its own copy of this operator; the next segment starts when every lane ended, and a lane's failure
    fails the block after the others ended (restore then finds no step still running). The log shows
    each step as it starts and ends; XCom ``audit`` holds one record per step, pushed as each one
    ends, whether the block succeeds or fails there. A re-run repeats the block from its first step:
    every step reads its server first and skips what is done."""

    def __init__(self, *, block: Block, **kwargs: Any) -> None:
        first_isql = next((s for s in block.steps if s.action in ("isql", "ddl")), block.steps[0])
        super().__init__(step=first_isql, **kwargs)
        self.block = block
        self.deferrable = False  # a pod inside a block is waited for in-process, like every wait here

    def apply_request(self, request: DdlRequest) -> None:
        super().apply_request(request)
        # the rendered view shows the whole block: every step's statements, waits as comments
        self.sql = "\n".join(f"-- {step.step_id} on the {step.role}: {step.title}\n" + (
            step_script(step, request) if step.action in ("isql", "ddl") else "-- (a check, polled in-process)")
            for step in self.block.steps)

    def execute(self, context: Context) -> Any:
        request = DdlRequest.from_params(context["params"])
        started_at = preflight_start_times(context)
        self._audits: list[dict[str, Any]] = []
        self._audit_lock = threading.Lock()
        self._lane_runners: list[DdlBlockOperator] = []
        opening = True  # the waits before the block's first statement may defer
        value = None
        for segment in self.block.segments:
            keep_alive(context, request, self.log)  # between segments: no lane holds a session now
            if len(segment) == 1:
                for step in segment[0]:
                    opening = opening and step.action in _SENSORS
                    value = self._run_step(step, request, started_at, context, opening)
                continue
            opening = False
            value = self._run_lanes(segment, request, started_at, context)
        return value

    def _run_step(self, step: Step, request: DdlRequest, started_at: dict[str, int], context: Context,
                  opening: bool = False) -> Any:
        self.log.info("%s starts on %s: %s", step.step_id, request.server(step.role).name, step.title)
        begun = time.monotonic()
        if step.action in ("isql", "ddl"):
            self.step, self.step_kind, self.results = step, step.step_kind, []
            self.altibase_conn_id = request.server(step.role).conn_id
            value = self.run_step(context, request, started_at)
        elif step.action == "verify":
            value = check_table_data(request, self.log)
        elif opening:
            value = self._opening_wait(step, request, started_at, context)
        else:
            value = wait_in_process(step, request, started_at, self.log, progress=self._progress(step, request, context))
        self.log.info("%s ends on %s after %.2f s", step.step_id, request.server(step.role).name,
                      time.monotonic() - begun)
        return value

    def _run_lanes(self, lanes: tuple[tuple[Step, ...], ...], request: DdlRequest, started_at: dict[str, int],
                   context: Context) -> Any:
        """Each lane in a thread on its own copy of this operator (a step's script, results and server are
        per lane); the first failure is raised once every lane has ended."""
        def run_lane(lane: tuple[Step, ...]) -> Any:
            runner = copy.copy(self)
            runner._log = self.log  # a copy drops it (BaseOperator.__getstate__); same task log
            # Airflow refuses (or warns about) an operator's execute called outside its task runner; a
            # new thread starts with an empty context, so the lane's operator is the runner's task here
            ExecutorSafeguard.tracker.set(runner)
            self._lane_runners.append(runner)
            value = None
            for step in lane:
                value = runner._run_step(step, request, started_at, context)
            return value

        with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix=self.block.name) as pool:
            futures = [pool.submit(run_lane, lane) for lane in lanes]
            wait(futures)
        for future in futures:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return futures[-1].result()

    def on_kill(self) -> None:
        for runner in getattr(self, "_lane_runners", []):
            runner.on_kill()
        super().on_kill()

    def _progress(self, step: Step, request: DdlRequest, context: Context) -> Progress:
        """A wait inside the block shows its reading in the task's XCom ``progress`` once it lasts (most end
        in a second: those write nothing); lanes write one at a time, as they push their audits."""
        write = xcom_writer(task_address(context["ti"]))

        def write_locked(text: str) -> None:
            with self._audit_lock:
                write(text)

        check, _, timeout = step_check(step, request)
        return Progress(wait_title(check, request.server(step.role).conn_id), write_locked, timeout=timeout,
                        quiet_for=PROGRESS_INTERVAL_SECONDS)

    def _opening_wait(self, step: Step, request: DdlRequest, started_at: dict[str, int], context: Context) -> Any:
        """A wait before the block's first statement (the application leaving): polled here for a while,
        then handed to the triggerer — nothing of the block has changed anything yet, so the block
        starts over when it fires (the waits that passed pass again at once)."""
        check, arguments, timeout = step_check(step, request)
        server = request.server(step.role)
        expected = started_at.get(server.name)
        began = time.time()
        try:
            return wait_in_process(step, request, started_at, self.log,
                                   timeout=min(IN_PROCESS_FIRST_SECONDS, timeout))
        except StepWaitError as exc:
            if exc.failed or time.time() - began >= timeout:
                raise
        self.defer(**check_deferral(check=check, altibase_conn_id=server.conn_id, arguments=arguments,
                                    poke_interval=request.poke_interval_seconds, deadline=began + timeout,
                                    client_info=CLIENT_INFO, server_started_at=None if expected is None else int(expected),
                                    margin=DEFERRAL_MARGIN_SECONDS,
                                    progress={"to": task_address(context["ti"]), "began": began}),
                   method_name="execute_after_wait", kwargs={"step_id": step.step_id})

    def execute_after_wait(self, context: Context, event: dict[str, Any], step_id: str = "") -> Any:
        """An opening wait ended in the triggerer: run the block from its start (that wait passes now)."""
        if event.get("status") != "done":
            raise StepWaitError(f"{step_id or self.block.steps[0].step_id}: {event.get('message')}")
        self.log.info("%s", event.get("message"))
        return self.execute(context)

    def _push_audit(self, context: Context, audit: dict[str, Any]) -> None:
        with self._audit_lock:  # lanes end steps concurrently; each push carries the whole list so far
            self._audits.append(audit)
            context["ti"].xcom_push(key="audit", value=list(self._audits))


class _DdlCheckStep(DdlStepMixin):
    """A sensor step: its server, check arguments and timeout from the request; the server must still
    be the process preflight read (a restart fails the wait)."""

    def execute(self, context: Context) -> Any:
        request = DdlRequest.from_params(context["params"])
        keep_alive(context, request, self.log)  # the lease covers the longest wait (a deferral included)
        self.server_started_at = preflight_start_times(context).get(request.server(self.step.role).name)
        return super().execute(context)  # type: ignore[misc]

    def apply_request(self, request: DdlRequest) -> None:
        self.altibase_conn_id = request.server(self.step.role).conn_id
        _, arguments, self.timeout = step_check(self.step, request)
        # the check's arguments are the sensor's own (replication_name, max_sessions): same names
        for name, value in arguments.items():
            setattr(self, name, value)
        self.poke_interval = request.poke_interval_seconds


class DdlGapSensor(_DdlCheckStep, ReplicationGapSensor):
    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=f"(the {step.role} server)", replication_name="(this run's)", **kwargs)
        self.step = step


class DdlSessionSensor(_DdlCheckStep, SessionCountSensor):
    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=f"(the {step.role} server)", max_sessions=0, **kwargs)
        self.step = step


class DdlSqlApplySensor(_DdlCheckStep, SqlApplySensor):
    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=f"(the {step.role} server)", replication_name="(this run's)", **kwargs)
        self.step = step


class DdlServiceStepOperator(ServiceControlOperator):
    """A service step (O1, O9, R1c, R13…) on its role's server, as the run's service_control says."""

    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(action=step.service, step_id=step.step_id, **kwargs)
        self.step = step

    def execute(self, context: Context) -> Any:
        if not context.get("task_reschedule_count"):  # a manual step's first look; its lease covers the approval
            keep_alive(context, DdlRequest.from_params(context["params"]), self.log)
        return super().execute(context)

    def service_target(self, context: Context) -> ServiceTarget:
        request = DdlRequest.from_params(context["params"])
        target = step_service_target(self.step, request)
        server = request.server(self.step.role)
        if target.control["mode"] == "manual" and on_simulator(server.conn_id):
            # a person trying the DAG on the simulator (make ui): "the application" is its load; the commands
            # carry the state directory the worker uses, so they can be pasted as they are
            state = f"ALTIBASE_SIM_STATE_DIR={shlex.quote(str(simulator_state_dir()))} "
            target = dataclasses.replace(target, context_md=(
                f"{target.context_md}\n\nOn the simulator the application is its load: "
                f"`{state}altibase-sim load stop --server {server.name}` stops it, `{state}altibase-sim load start "
                f"--server {server.name}` starts it again (`load status` shows how it ran)."))
        return target


def on_simulator(conn_id: str) -> bool:
    """Whether a Connection leads to the embedded simulator (only for wording: never fails a step)."""
    try:
        from airflow.sdk import Connection

        from altibase_ops.backends import backend_name

        return backend_name(Connection.get(conn_id)) == "simulator"
    except Exception:  # noqa: BLE001
        return False


_SENSORS = {"gap": DdlGapSensor, "sessions": DdlSessionSensor, "sql_apply": DdlSqlApplySensor}


def build_block(block: Block, service_history: list[str]) -> BaseOperator:
    """One block's task: a sensor or a service step stands alone (it may wait long, or for a person);
    every other block runs its steps in one process."""
    step = block.steps[0]
    common = {"task_id": block.task_id,
              "doc_md": "\n".join(f"- **{s.step_id}** on the {s.role} — {s.title}" for s in block.steps)}
    if block.action in _SENSORS:
        return _SENSORS[block.action](step=step, **common)
    if block.action == "service":
        # in manual mode the step asks a person; the notifier tells them, with the link to the request
        return DdlServiceStepOperator(step=step, history_task_ids=list(service_history),
                                      notifiers=[AltibaseRunNotifier("approval")], **common)
    return DdlBlockOperator(block=block, **common)


def build_variant(topology: str, service_mode: str) -> tuple[TaskGroup, list[Any], list[Any]]:
    """The variant's TaskGroup: stage after stage, the blocks of a stage in parallel.
    Returns (group, first-stage tasks, last-stage tasks)."""
    variant = variant_id(topology, service_mode)
    with TaskGroup(group_id=variant, tooltip=f"DDL, {service_mode.replace('_', ' ')}, "
                                             f"{topology.replace('_', '-')}") as group:
        previous: list[Any] = []
        first: list[Any] = []
        service_history: list[str] = []
        for stage in procedure(topology, service_mode):
            tasks = [build_block(block, service_history) for block in stage]
            service_history += [f"{variant}.{block.task_id}" for block in stage if block.action == "service"]
            for upstream in previous:
                upstream >> tasks
            previous = tasks
            first = first or tasks
    return group, first, previous


def step_task_ids(request: DdlRequest, action: str | None = None) -> list[str]:
    """The task ids of the run's variant (of one action, e.g. ``service``), in procedure order."""
    return [f"{request.variant}.{b.task_id}" for stage in procedure(request.topology, request.service_mode)
            for b in stage if action is None or b.action == action]


def service_history(context: Context, request: DdlRequest) -> list[dict[str, Any]]:
    """What this run's service steps changed (their records, in procedure order): what restore puts back
    and what manual placement is judged by."""
    records = context["ti"].xcom_pull(task_ids=step_task_ids(request, "service")) or []
    return [record for batch in records if batch for record in batch]


def audit_records(values: list[Any]) -> list[dict[str, Any]]:
    """The audit records of a run's tasks (XCom ``audit``: one record per step task, a list per block)."""
    return [record for value in values if value
            for record in (value if isinstance(value, list) else [value]) if record]


class VariantBranchOperator(BaseBranchOperator):
    """Branch on topology and service mode; skips every task of the other variants at once.

    Airflow's own branch skips only the branch's direct downstream and lets the skip travel one
    stage per scheduler loop; with variants of up to 13 stages that would keep the post-checks
    waiting for nothing. It runs whatever its upstream did (``ALL_DONE``): when the pair was not
    held (validation, preflight or the lock failed), it skips every variant at once, so the run ends
    in seconds with only the failed gate red, instead of painting each stage upstream_failed.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trigger_rule="all_done", **kwargs)

    def choose_branch(self, context: Context) -> list[str]:
        if not context["ti"].xcom_pull(task_ids=HOLD_TASK_ID):
            self.log.info("%s did not hold the pair (an earlier task failed and says why): no step runs, nothing "
                          "was changed; skipping every variant", HOLD_TASK_ID)
            return []
        request = DdlRequest.from_params(context["params"])
        return [f"{request.variant}.{s.task_id}" for s in procedure(request.topology, request.service_mode)[0]]

    def skip_all_except(self, ti: Any, branch_task_ids: Any) -> None:
        chosen = {task_id.split(".", 1)[0] for task_id in branch_task_ids}
        others = {variant_id(t, m) for t, m in VARIANTS} - chosen
        self.log.info("following %s; skipping the variants %s", sorted(chosen), sorted(others))
        self.skip(ti, [task for task in self.dag.tasks if task.task_id.split(".", 1)[0] in others])


class DdlPlanOperator(BaseOperator):
    """The plan: every statement a real run would send, per server, in order. Besides the log, it is the
    task's rendered ``plan`` field: the task's "Rendered Templates" tab shows it, no log to open."""

    template_fields: Sequence[str] = ("plan",)
    ui_color = "#eef6e8"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = "(made when the run starts: every statement a real run sends, per server, in order)"
        self._steps: list[Any] = []

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        super().render_template_fields(context, jinja_env)
        request = DdlRequest.from_params(context["params"])
        self._steps = plan_ddl_run(request)
        verdict = ("DRY RUN: this is what a real run would send; nothing is changed." if request.dry_run else
                   "A real run: these statements are sent once the pair is held.")
        self.plan = f"{verdict}\n\n{format_ddl_plan(request, self._steps)}"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        self.log.info("%s", self.plan)
        return [vars(s) for s in self._steps]
