"""The maintenance window of a DDL run (``not_before`` / ``not_after``), checked before the pair is held.

The run waits for ``not_before`` without holding a worker, then refuses to begin when the run is not
expected to end before ``not_after``: the expected duration is the longest of the pair's last applied
runs in its history (``maintenance/history.py``) with a margin, or a default for a pair without one.
A refusal changes nothing: the pair is not held yet.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator

from altibase_ops.ddl.request import DdlRequest
from altibase_ops.maintenance.history import expected_seconds, read_history
from altibase_ops.progress import duration, task_address, xcom_writer
from altibase_ops.refusals import fail_in_one_line

# The XCom key under which a gate before the pair's lock leaves its refusal (the summary records it).
REFUSED_KEY = "refused"
# Shorter waits sleep on the worker: a trigger that fires within seconds of the deferral can meet
# Airflow 3.3.2's deferral race (apache/airflow#72716); longer ones defer, and fire well after it.
WORKER_WAIT_SECONDS = 15


class MaintenanceWindowOperator(BaseOperator):
    """Wait for ``not_before``; refuse when the run would not end before ``not_after``."""

    ui_color = "#fff4e0"

    def execute(self, context: Any) -> dict[str, Any]:
        request = DdlRequest.from_params(context["params"])
        if request.not_before:
            wait = (request.not_before - datetime.now(UTC)).total_seconds()
            if wait > WORKER_WAIT_SECONDS:
                from airflow.providers.standard.triggers.temporal import DateTimeTrigger

                self.log.info("the window opens at %s: waiting %d s without holding a worker",
                              request.not_before.isoformat(), wait)
                # the deferred square shows no reading: say in the task's XCom "progress" what it waits for
                xcom_writer(task_address(context["ti"]))(
                    f"waiting for the maintenance window to open at {request.not_before.isoformat()} "
                    f"({duration(wait)} from {datetime.now(UTC).strftime('%H:%M:%S')} UTC); nothing is held yet")
                self.defer(trigger=DateTimeTrigger(moment=request.not_before), method_name="execute_complete")
            if wait > 0:
                time.sleep(wait)
        return self._check_fits(request, context)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        return self._check_fits(DdlRequest.from_params(context["params"]), context)

    def _check_fits(self, request: DdlRequest, context: Any) -> dict[str, Any]:
        if request.not_after is None:
            self.log.info("no not_after: the run may take as long as it needs")
            return {"window_closes_at": None}
        rows, unreadable = read_history(request.servers, request.replication_name)
        need = expected_seconds(rows)
        left = (request.not_after - datetime.now(UTC)).total_seconds()
        basis = ("the longest of this pair's last applied runs, with a margin" if any(r.outcome == "applied" for r in rows)
                 else "no applied run in this pair's history: the default estimate")
        if left < need:
            again = ("The pair's history records it as failed, so the next maintenance window leaves it for a "
                     "person (retry_failed runs it again)" if request.change_id else "Trigger it again in the next window")
            refusal = (f"the maintenance window closes at {request.not_after.isoformat()} ({max(0, int(left))} s from "
                       f"now); a run on this pair is expected to take {need} s ({basis}). Nothing was changed: the "
                       f"pair was not held. {again}.")
            context["ti"].xcom_push(key=REFUSED_KEY, value=refusal)
            fail_in_one_line(self.log, refusal)  # a refusal, not a bug: its message, no traceback
        self.log.info("the window closes in %d s; the run is expected to take %d s (%s)%s", left, need, basis,
                      f"; history unreadable on {unreadable}" if unreadable else "")
        return {"window_closes_at": request.not_after.isoformat(), "expected_seconds": need}
