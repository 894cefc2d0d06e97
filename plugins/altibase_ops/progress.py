"""A long wait's last reading, where a person sees it in the UI: the task instance's XCom ``progress``.

Why an XCom and not the task instance's note: Airflow 3.3.2's execution API lets neither a task nor a
trigger set a note (no such route; apache/airflow#61066 proposed ``set_task_instance_note`` and was
closed), and a trigger cannot reach the task state store or the rendered fields either. Both a worker
and a trigger can set an XCom (the triggerer serves ``SetXCom``), and a deferral keeps the task's XComs
(they are cleared only when a task starts afresh). So a wait that polls or defers for long — a replication
gap, sessions, SQL apply, an approval, the maintenance window, a lane's DDL run — writes one short line
there: what it waits for, the last reading, since when and for how long at most. At most once per
``PROGRESS_INTERVAL_SECONDS`` (every write is an API call and a database row update), and once more when
the wait ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

PROGRESS_KEY = "progress"
PROGRESS_INTERVAL_SECONDS = 30.0
MAX_PROGRESS_CHARS = 300

log = logging.getLogger(__name__)


def run_url(dag_id: str, run_id: str) -> str:
    """A DAG run's page in the Airflow UI ([api] base_url, as Airflow builds a task's log URL)."""
    from urllib.parse import quote

    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def task_address(ti: Any) -> dict[str, Any]:
    """Where a task's XComs live: what a trigger needs to write its task's ``progress``."""
    return {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
            "map_index": -1 if getattr(ti, "map_index", None) is None else ti.map_index}


def xcom_writer(address: dict[str, Any] | None) -> Callable[[str], None]:
    """A writer of the task's ``progress`` XCom, usable in a worker and in the triggerer (a sync call from a
    thread off the triggerer's event loop). None of its failures reaches the wait: logged only."""
    def write(text: str) -> None:
        if not address:
            return
        try:
            from airflow.sdk.bases.xcom import BaseXCom

            BaseXCom.set(PROGRESS_KEY, text, **address)
        except Exception as exc:  # noqa: BLE001 - the reading is a courtesy; the wait goes on
            log.warning("could not publish the wait's progress: %s", exc)
    return write


class Progress:
    """One wait's published reading, written at most every ``interval`` seconds (and when it ends)."""

    def __init__(self, what: str, write: Callable[[str], None], *, timeout: float | None = None,
                 began: float | None = None, interval: float = PROGRESS_INTERVAL_SECONDS,
                 quiet_for: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        """``quiet_for``: write nothing before the wait has lasted this long (a wait inside an admin-mode
        window: most end in a second, and a write is an API call)."""
        self.what, self.write, self.timeout, self.interval, self.clock = what, write, timeout, interval, clock
        self.began = clock() if began is None else began
        self.quiet_for = quiet_for
        self.first: str | None = None
        self._written_at: float | None = None

    def line(self, reading: str, ended: str = "") -> str:
        """``<what>: <first> → <last> · waiting 3 min 5 s of at most 5 min · 23:44:05 UTC``."""
        now = self.clock()
        shown = reading if self.first in (None, reading) else f"{self.first} → {reading}"
        bound = f" of at most {duration(self.timeout)}" if self.timeout else ""
        state = ended or f"waiting {duration(now - self.began)}{bound}"
        text = f"{self.what}: {shown} · {state} · {time.strftime('%H:%M:%S', time.gmtime(now))} UTC"
        return text if len(text) <= MAX_PROGRESS_CHARS else text[:MAX_PROGRESS_CHARS - 1] + "…"

    def report(self, reading: str, *, ended: str = "") -> bool:
        """Publish ``reading`` unless one was written less than ``interval`` ago (an end is always written)."""
        if self.first is None:
            self.first = reading
        now = self.clock()
        if self._written_at is None and now - self.began < self.quiet_for:
            return False  # a short wait: nothing shown, nothing to end either
        if not ended and self._written_at is not None and now - self._written_at < self.interval:
            return False
        self.write(self.line(reading, ended))
        self._written_at = now
        return True


# what each check waits for, as a person says it
WAIT_GOALS = {"replication_gap": "the replication gap to reach 0", "sessions": "the application's sessions to end",
              "sql_apply": "SQL apply mode to end"}


def wait_title(check: str, conn_id: str) -> str:
    return f"{conn_id}: waiting for {WAIT_GOALS.get(check, check)}"


def duration(seconds: float) -> str:
    """A wait's length as a person says it: 45 s, 3 min 5 s, 2 h 10 min."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    return f"{seconds // 3600} h" + (f" {seconds % 3600 // 60} min" if seconds % 3600 // 60 else "")


def short_reading(check: str, value: Any, message: str) -> str:
    """A check's reading in a few words ("gap 1,200", "2 sessions left"); else its message, cut."""
    value = value or {}
    if check == "replication_gap" and "rep_gap" in value:
        return f"gap {value['rep_gap']:,}"
    if check == "sessions" and "count" in value:
        return f"{value['count']} session{'s' if value['count'] != 1 else ''} left"
    if check == "sql_apply" and value.get("counts"):
        return "SQL apply tables " + ", ".join(f"{rep} {count}" for rep, count in value["counts"].items())
    return message if len(message) <= 160 else message[:159] + "…"
