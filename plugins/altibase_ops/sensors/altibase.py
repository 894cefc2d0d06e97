"""Sensors that wait for a server state: replication gap 0, no other sessions, no SQL apply.

All three are deferrable by default (poll on the worker for up to ``IN_PROCESS_FIRST_SECONDS``; if
not there yet, hand the wait to ``AltibaseCheckTrigger`` in the triggerer, holding no worker slot,
which fires no sooner than ``DEFERRAL_MARGIN_SECONDS`` after the deferral). With ``deferrable=False`` they
are ordinary sensors, usable with ``mode="reschedule"``. Either way every poke opens one SYSDBA
connection and closes it, and logs the value it read, so the task log shows progress.

Serialise them with the other SYSDBA work on the same server through the server's pool
(``altibase_ops.pools.server_pool``). ``TimeoutsFromParams`` takes a sensor's
timeout from a DAG param.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from altibase_ops.progress import task_address
from altibase_ops.state.checks import DONE, FAILED, run_check
from altibase_ops.triggers.altibase import check_deferral

# Most waits end within seconds (the application already stopped, the gap already drained): poll on
# the worker that long before paying a deferral's scheduler round trips.
IN_PROCESS_FIRST_SECONDS = 15.0
# A trigger fires no sooner than this after the deferral (``AltibaseCheckTrigger.not_before``):
# Airflow 3.3 fails a deferred task whose trigger fires before the scheduler drained the deferring
# process's exit (apache/airflow#71580, #72716); under load that drain took up to ~6 s upstream.
DEFERRAL_MARGIN_SECONDS = 10.0


class TimeoutsFromParams:
    """Mixin for a sensor whose timeout and poke interval are DAG params, read at run time (a trigger
    form's values), not at parse time: ``timeout_param`` names the timeout's param (seconds), and
    ``poke_interval_seconds`` is the poke interval's, when the DAG has it."""

    timeout_param = ""
    poke_interval_param = "poke_interval_seconds"

    def execute(self, context: Context) -> Any:
        params = context["params"]
        self.timeout = float(params[self.timeout_param])
        if self.poke_interval_param in params:
            self.poke_interval = float(params[self.poke_interval_param])
        return super().execute(context)  # type: ignore[misc]


class AltibaseCheckFailed(AirflowException):
    """The server is in a state that waiting cannot fix (e.g. the replication's sender is stopped)."""


class _AltibaseCheckSensor(BaseSensorOperator):
    """Common poke/defer logic; subclasses name their check and its arguments."""

    check_name: str
    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        altibase_conn_id: str,
        deferrable: bool = True,
        poke_interval: float = 10,
        timeout: float = 1800,  # bound every wait: Airflow's default sensor timeout is a week
        in_process_first_seconds: float = IN_PROCESS_FIRST_SECONDS,
        deferral_margin_seconds: float = DEFERRAL_MARGIN_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.in_process_first_seconds = in_process_first_seconds
        self.deferral_margin_seconds = deferral_margin_seconds
        self.altibase_conn_id = altibase_conn_id
        self.deferrable = deferrable
        # V$INSTANCE.STARTUP_TIME_SEC the server must still have (a procedure step sets it): a server
        # that restarted fails the check instead of being waited on
        self.server_started_at: int | None = None

    def check_arguments(self) -> dict[str, Any]:
        raise NotImplementedError

    def _client_info(self) -> str:
        # shown in V$SESSION.CLIENT_APP_INFO (the ODBC driver's APP_INFO): whose session it is
        return f"airflow:{self.dag_id}.{self.task_id}"

    def poke(self, context: Context) -> PokeReturnValue:
        reading = run_check(self.check_name, self.altibase_conn_id, self.check_arguments(),
                            client_info=self._client_info(), server_started_at=self.server_started_at)
        self.log.info("%s", reading.message)
        # kept for the timeout message: BaseSensorOperator's own says only how long it waited
        self._last_reading = reading.message
        if reading.status == FAILED:
            raise AltibaseCheckFailed(reading.message)
        return PokeReturnValue(is_done=reading.status == DONE, xcom_value=reading.value)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(f"{exc} Last reading: {getattr(self, '_last_reading', None)}") from exc
        began = time.time()
        in_process_until = time.monotonic() + min(self.in_process_first_seconds, self.timeout)
        while True:
            reading = self.poke(context)
            if reading.is_done:
                return reading.xcom_value
            if time.monotonic() + min(self.poke_interval, 1.0) > in_process_until:
                break
            time.sleep(min(self.poke_interval, 1.0))
        deadline = began + self.timeout  # the whole wait, the in-process part included
        if time.time() >= deadline:  # a short timeout spent on the worker: no deferral to fail later
            raise AirflowSensorTimeout(f"{self.check_name} check on {self.altibase_conn_id} still not satisfied "
                                       f"after {self.timeout:.0f} s; last reading: {self._last_reading}")
        ti = context.get("ti")  # the trigger writes its readings to this task's XCom "progress"
        self.defer(**check_deferral(check=self.check_name, altibase_conn_id=self.altibase_conn_id,
                                    arguments=self.check_arguments(), poke_interval=self.poke_interval,
                                    deadline=deadline, client_info=self._client_info(),
                                    server_started_at=self.server_started_at, margin=self.deferral_margin_seconds,
                                    progress=None if ti is None else {"to": task_address(ti), "began": began}),
                   method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        status, message = event.get("status"), event.get("message")
        if status == DONE:
            self.log.info("%s", message)
            return event.get("value")
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        if status == FAILED:
            raise AltibaseCheckFailed(message)
        raise AirflowException(f"{self.check_name} check on {self.altibase_conn_id} failed: {message}")


class ReplicationGapSensor(_AltibaseCheckSensor):
    """Wait until the replication's gap is 0 on this server (steps O3b, R1b).

    Success only when V$REPGAP has the replication's row with REP_GAP = 0.
    No row means its sender is not running — never success: the task fails saying so.
    Run ``ALTER REPLICATION rep FLUSH WAIT n`` first for a gap that reflects everything committed.

    :param altibase_conn_id: the server (an ``altibase`` Connection).
    :param replication_name: the replication (validated identifier).
    """

    check_name = "replication_gap"
    template_fields: Sequence[str] = ("altibase_conn_id", "replication_name")

    def __init__(self, *, altibase_conn_id: str, replication_name: str, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=altibase_conn_id, **kwargs)
        self.replication_name = replication_name

    def check_arguments(self) -> dict[str, Any]:
        return {"replication_name": self.replication_name}


class SessionCountSensor(_AltibaseCheckSensor):
    """Wait until the server has at most ``max_sessions`` sessions besides the sensor's own (O1, R1d).

    Every poke logs who is still connected (user, client info, login time).

    :param altibase_conn_id: the server (an ``altibase`` Connection).
    :param max_sessions: other sessions tolerated (0: none).
    """

    check_name = "sessions"
    template_fields: Sequence[str] = ("altibase_conn_id",)

    def __init__(self, *, altibase_conn_id: str, max_sessions: int = 0, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=altibase_conn_id, **kwargs)
        self.max_sessions = max_sessions

    def check_arguments(self) -> dict[str, Any]:
        return {"max_sessions": int(self.max_sessions)}


class SqlApplySensor(_AltibaseCheckSensor):
    """Wait until no receiver on this server is in SQL apply mode (R11).

    Success when SQL_APPLY_TABLE_COUNT is 0 on every V$REPRECEIVER row of the replication (of all
    replications when ``replication_name`` is None). A named replication without a receiver row
    waits: its peer's sender is not connected yet.

    :param altibase_conn_id: the server (an ``altibase`` Connection).
    :param replication_name: the replication, or None for every replication on the server.
    """

    check_name = "sql_apply"
    template_fields: Sequence[str] = ("altibase_conn_id", "replication_name")

    def __init__(self, *, altibase_conn_id: str, replication_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(altibase_conn_id=altibase_conn_id, **kwargs)
        self.replication_name = replication_name

    def check_arguments(self) -> dict[str, Any]:
        return {"replication_name": self.replication_name}
