"""ServiceControlOperator: one service step of a procedure, by a person or automatically."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
    TaskAwaitingInput,
)

from altibase_ops.progress import task_address
from altibase_ops.sensors.altibase import DEFERRAL_MARGIN_SECONDS
from altibase_ops.service.control import perform, stamped
from altibase_ops.triggers.altibase import ApprovalTrigger

# Airflow 3.3.2 resumes a parked or deferred task the instant a person answers; with the LocalExecutor,
# an answer that comes before the scheduler has processed the exit of the process that parked the task
# fails the resumed task ("finished with state success, but the task instance's state attribute is
# queued"; apache/airflow#71580, #72716 — 5 of 20 immediate answers in tests/dags/test_approval_race.py
# before this). A task cannot read its answer on the worker (the task supervisor does not serve HITL
# reads), and an answer to a task that is neither parked nor deferred is only recorded. So a manual step
# asks, then steps aside *rescheduled* (an answer now is recorded, nothing resumes) for
# APPROVAL_FIRST_LOOK_SECONDS; it comes back, defers, and its trigger reads the answer no sooner than
# DEFERRAL_MARGIN_SECONDS after that deferral. An answer given in the first seconds — the fast click
# the race needs — is therefore always taken by the trigger. Left: an answer landing in the ~1-2 s
# right after the step comes back and defers resumes it directly, as before.
APPROVAL_FIRST_LOOK_SECONDS = 10
# A service step's attempts ended from outside (see _final); each new attempt asks again.
SERVICE_STEP_RETRIES = 2


@dataclass(frozen=True)
class ServiceTarget:
    """What one service step acts on: whose service, its peer, how, and what to tell a person."""

    control: dict[str, Any]  # {"mode": "manual" | "kubernetes" | "simulator", ...}
    server: str
    peer: str
    approval_timeout: timedelta = timedelta(hours=1)
    context_md: str = ""  # what the change is about, shown above the request in manual mode
    routes: dict[str, str | None] | None = None  # server -> the server its traffic goes to (None: stopped)

    def describe_routes(self) -> str:
        return describe_routes(self.routes or {})


def describe_routes(routes: dict[str, str | None]) -> str:
    """The traffic after a service step, as a person reads it (the approval, the dry-run plan)."""
    return "; ".join(f"{server}'s application → {'stopped' if target is None else target}"
                     for server, target in routes.items())


class ServiceControlOperator(HITLOperator):
    """One service step. ``manual``: asks a person (Approve / Reject, with a timeout that fails the
    task so the restore path runs); otherwise does it and records what it changed.

    Give the target directly (``control``, ``server``, ``peer``) or override ``service_target`` to
    derive it from the run's params (the DDL DAG does).

    :param action: stop | resume | move_to_peer | restore
    :param control: the ``service_control`` mode and its settings.
    :param server: the server whose service this is about; ``peer``: the other one of the pair.
    :param history_task_ids: earlier service steps of the run whose records resume/restore put back.
    :param step_id: the procedure's step id (O1, R1c, …), first in the approval's subject.
    """

    template_fields: Sequence[str] = ("subject", "body")

    def __init__(self, *, action: str, control: dict[str, Any] | None = None, server: str = "", peer: str = "",
                 history_task_ids: Sequence[str] = (), approval_timeout: timedelta = timedelta(hours=1),
                 step_id: str = "", **kwargs: Any) -> None:
        super().__init__(
            subject=f"{step_id}: {action.replace('_', ' ')} the application service",
            body=kwargs.pop("body", None),
            options=["Approve", "Reject"],
            response_timeout=approval_timeout,
            **kwargs,
        )
        self.action = action
        self.control = control
        self.server = server
        self.peer = peer
        self.approval_timeout = approval_timeout
        self.history_task_ids = list(history_task_ids)
        self.step_id = step_id
        # whatever the DAG's default: only an attempt ended from outside is repeated (see _final)
        self.retries = SERVICE_STEP_RETRIES
        self.retry_delay = timedelta(seconds=2)

    def service_target(self, context: Context) -> ServiceTarget:
        if not self.control or not self.server:
            raise AirflowException(f"{self.task_id}: no service target (give control and server)")
        return ServiceTarget(self.control, self.server, self.peer, self.approval_timeout)

    def execute(self, context: Context) -> Any:
        with _final():
            return self._execute(context)

    def _execute(self, context: Context) -> Any:
        target = self.service_target(context)
        if target.control["mode"] == "manual":
            self.response_timeout = target.approval_timeout
            # the step id first: in the Required Actions list it tells O1 from O9, R1c from R13
            self.subject = f"{self.step_id}: {self.action.replace('_', ' ')} the application service of {target.server}"
            wanted = f" When done, traffic must be: {target.describe_routes()}." if target.routes else ""
            again = context["ti"].try_number > 1 and not context.get("task_reschedule_count")
            self.body = ("**Asked again**: the previous answer was lost when Airflow ended the step's earlier "
                         "attempt (apache/airflow#72716); answer as you would have.\n\n" if again else "") + (
                f"{target.context_md}\n\n" if target.context_md else "") + (
                f"Please **{self.action.replace('_', ' ')}** the application service of **{target.server}** "
                f"(peer: {target.peer}), then approve.{wanted} Reject aborts the run; the restore path then puts "
                f"the servers back (admin mode off, replication restarted where safe). The buttons open about "
                f"{APPROVAL_FIRST_LOOK_SECONDS} s after this request appears (reload the page).")
            return self._ask(context, target)
        history = [r for records in (context["ti"].xcom_pull(task_ids=self.history_task_ids) or []) if records
                   for r in records]
        records = perform(self.action, target.control, target.server, target.peer, history, routes=target.routes)
        self.log.info("service %s on %s (%s): %s", self.action, target.server, target.control["mode"], records)
        return records

    def _ask(self, context: Context, target: ServiceTarget) -> Any:
        """Write the request and step aside rescheduled; when back, wait for the answer in the triggerer."""
        if not context.get("task_reschedule_count"):
            try:
                super().execute(context)  # writes the request (the Required Action), then would park
            except TaskAwaitingInput:  # Airflow 3.3 (pinned): HITLOperator parks; the step does not
                pass
            self.log.info("asked; the answer is collected from %d s on", APPROVAL_FIRST_LOOK_SECONDS)
            raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=APPROVAL_FIRST_LOOK_SECONDS))
        asked = context["ti"].get_first_reschedule_date(context) or datetime.now(UTC)
        self.defer(trigger=ApprovalTrigger(ti_id=context["task_instance"].id, options=self.options,
                                           defaults=self.defaults, params=self.serialized_params,
                                           multiple=self.multiple, timeout_datetime=asked + target.approval_timeout,
                                           poke_interval=1.0, not_before=time.time() + DEFERRAL_MARGIN_SECONDS,
                                           progress={"to": task_address(context["ti"]), "began": asked.timestamp(),
                                                     "what": f"'{self.subject}'"}),
                   method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        with _final():
            result = super().execute_complete(context, event)
            if "Approve" not in result["chosen_options"]:
                raise AirflowException(f"service step {self.action} was rejected by {result['responded_by_user']}; "
                                       "the run stops here and the restore path runs")
            server = self.service_target(context).server
            # when the person said it was done: the summary's outage is read from these times
            return stamped([{"kind": "manual", "server": server, "approved_by": str(result["responded_by_user"])}],
                           self.action, server)


@contextmanager
def _final() -> Iterator[None]:
    """Every failure a service step raises itself is final (no retry: a rejection, a timeout, a
    Kubernetes refusal). Its retries (``SERVICE_STEP_RETRIES``) are for an attempt ended from outside —
    Airflow 3.3.2's state-mismatch race fails a resumed task even though its answer was Approve — and
    a new attempt asks the person again."""
    try:
        yield
    except (AirflowRescheduleException, AirflowSkipException, AirflowFailException):
        raise
    except Exception as exc:
        raise AirflowFailException(str(exc)) from exc
