"""AltibaseCheckTrigger: runs one of the checks of ``state/checks.py`` in the triggerer until it settles.

A deferred sensor holds no worker slot; this trigger polls instead. Each poll opens a fresh SYSDBA
connection and closes it (in a thread: the DB-API call blocks, and the triggerer's event loop must
not), so no session is held between polls. It fires once: ``done``, ``failed``, ``timeout`` (with
the last reading in the message) or ``error`` (the check itself raised, e.g. server unreachable).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from altibase_ops.progress import PROGRESS_INTERVAL_SECONDS, Progress, short_reading, wait_title, xcom_writer
from altibase_ops.state.checks import DONE, FAILED, run_check


class AltibaseCheckTrigger(BaseTrigger):
    """Poll ``check`` (a key of ``altibase_ops.state.checks.CHECKS``) every ``poke_interval`` seconds.

    :param deadline: epoch seconds after which the trigger gives up with a ``timeout`` event; an
        absolute time, so a trigger re-created after a triggerer restart keeps the same bound.
    :param not_before: epoch seconds before which the trigger does not fire, whatever it reads.
        Airflow 3.3 marks a deferred task failed when its trigger fires before the scheduler has
        processed the deferring process's exit (apache/airflow#71580, #72716, no release has the
        fix): the task must stay deferred until that stale "success" is drained.
    """

    def __init__(
        self,
        *,
        check: str,
        altibase_conn_id: str,
        arguments: dict[str, Any],
        poke_interval: float,
        deadline: float,
        client_info: str = "airflow",
        server_started_at: int | None = None,
        not_before: float = 0.0,
        progress: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.not_before = not_before
        # {"to": the task's address (progress.task_address), "began": epoch s}: where the last reading goes
        self.progress = progress
        self.server_started_at = server_started_at
        self.check = check
        self.altibase_conn_id = altibase_conn_id
        self.arguments = arguments
        self.poke_interval = poke_interval
        self.deadline = deadline
        self.client_info = client_info

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "check": self.check,
                "altibase_conn_id": self.altibase_conn_id,
                "arguments": self.arguments,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "client_info": self.client_info,
                "server_started_at": self.server_started_at,
                "not_before": self.not_before,
                "progress": self.progress,
            },
        )

    def _writer(self) -> Callable[[str], None]:
        return xcom_writer((self.progress or {}).get("to"))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        progress = None
        if self.progress:
            began = self.progress.get("began") or time.time()
            progress = Progress(wait_title(self.check, self.altibase_conn_id), self._writer(), began=began,
                                timeout=self.deadline - began,
                                interval=self.progress.get("interval", PROGRESS_INTERVAL_SECONDS))
        async for event in self._readings(progress):
            wait = self.not_before - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            yield event
            return

    async def _readings(self, progress: Progress | None) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                reading = await asyncio.to_thread(
                    run_check, self.check, self.altibase_conn_id, self.arguments, client_info=self.client_info,
                    server_started_at=self.server_started_at,
                )
            except Exception as exc:
                yield TriggerEvent({"status": "error", "message": str(exc), "value": None})
                return
            self.log.info("%s", reading.message)
            remaining = self.deadline - time.time()
            if progress is not None:  # a thread: the XCom write is a sync call to the supervisor
                ended = {DONE: "done", FAILED: "failed"}.get(reading.status, "gave up" if remaining <= 0 else "")
                await asyncio.to_thread(progress.report, short_reading(self.check, reading.value, reading.message),
                                        ended=ended)
            if reading.status in (DONE, FAILED):
                yield TriggerEvent(reading.as_event())
                return
            if remaining <= 0:
                yield TriggerEvent({
                    "status": "timeout",
                    "message": f"{self.check} check still not satisfied at its deadline; last reading: "
                               f"{reading.message}",
                    "value": reading.value,
                })
                return
            await asyncio.sleep(min(self.poke_interval, remaining))


# Extra time the framework waits past the trigger's own deadline: the trigger reports the timeout
# with the last reading; the framework's timeout is only the backstop should the trigger hang.
DEFER_GRACE_SECONDS = 60


def check_deferral(*, check: str, altibase_conn_id: str, arguments: dict[str, Any], poke_interval: float,
                   deadline: float, client_info: str, server_started_at: int | None,
                   margin: float, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """``trigger`` and ``timeout`` for ``defer()`` of a check that waits until ``deadline`` (epoch s):
    the trigger fires no sooner than ``margin`` from now (``not_before``), and publishes its readings
    to ``progress`` (``{"to": task address, "began": epoch s}``) when given."""
    return {"trigger": AltibaseCheckTrigger(check=check, altibase_conn_id=altibase_conn_id, arguments=arguments,
                                            poke_interval=poke_interval, deadline=deadline, client_info=client_info,
                                            server_started_at=server_started_at, not_before=time.time() + margin,
                                            progress=progress),
            "timeout": timedelta(seconds=max(deadline - time.time(), 0) + margin + DEFER_GRACE_SECONDS)}


class ApprovalTrigger(HITLTrigger):
    """``HITLTrigger`` that reads the answer no sooner than ``not_before`` (epoch seconds): an answer
    given before the deferral is picked up once the scheduler has surely processed the deferring
    process's exit (apache/airflow#71580, #72716; ``service.operator``)."""

    def __init__(self, *, not_before: float = 0.0, progress: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.not_before = not_before
        # {"to": task address, "began": when asked (epoch s), "what": the request's subject}: while no answer
        # comes, the task's XCom "progress" says how long the request has waited
        self.progress = progress

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "not_before": self.not_before,
                                                                      "progress": self.progress}

    def _writer(self) -> Callable[[str], None]:
        return xcom_writer((self.progress or {}).get("to"))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        progress = None
        if self.progress:
            began = self.progress.get("began") or time.time()
            progress = Progress(f"approval of {self.progress.get('what') or 'a service step'}", self._writer(),
                                began=began, timeout=self.timeout_datetime.timestamp() - began
                                if self.timeout_datetime else None)
        waiting = asyncio.create_task(self._publish_waiting(progress)) if progress else None
        try:
            await asyncio.sleep(max(0.0, self.not_before - time.time()))
            async for event in super().run():
                if waiting is not None:
                    waiting.cancel()
                    answer = "answered" if not (event.payload or {}).get("error") else \
                        f"ended without an answer ({event.payload.get('error_type') or event.payload.get('error')})"
                    await asyncio.to_thread(progress.report, "no answer yet", ended=answer)
                yield event
        finally:
            if waiting is not None:
                waiting.cancel()

    async def _publish_waiting(self, progress: Progress) -> None:
        """"no answer yet", at the progress' bounded rate, until the answer comes."""
        while True:
            await asyncio.to_thread(progress.report, "no answer yet")
            await asyncio.sleep(progress.interval)
