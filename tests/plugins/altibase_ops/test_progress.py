"""A long wait's last reading, published where a person sees it (the task's XCom ``progress``), at a
bounded rate: the rate itself, and a deferred gap wait against the simulator."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import uuid4

import pytest
from airflow.sdk.exceptions import TaskDeferred

from altibase_ops.progress import Progress, duration, run_url
from altibase_ops.sensors.altibase import ReplicationGapSensor
from altibase_ops.triggers.altibase import AltibaseCheckTrigger, ApprovalTrigger
from tests.sim.helpers import run, seed_pair


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_waits_reading_is_written_at_most_once_per_interval_and_always_when_it_ends():
    clock, written = Clock(), []
    progress = Progress("altibase_node1: waiting for the replication gap to reach 0", written.append,
                        timeout=300, interval=30, clock=clock)
    for second, gap in enumerate([1200, 1100, 900, 700, 500, 300, 100, 50]):
        clock.now = 1_000_000.0 + second * 10  # a reading every 10 s
        progress.report(f"gap {gap}")
    clock.now += 5
    progress.report("gap 0", ended="done")
    # readings at 0, 10, …, 70 s: written at 0, 30 and 60 s (the interval), then the end
    assert len(written) == 4, written
    assert written[0].startswith("altibase_node1: waiting for the replication gap to reach 0: gap 1200 · waiting 0 s "
                                 "of at most 5 min · ")
    assert written[1].startswith("altibase_node1: waiting for the replication gap to reach 0: gap 1200 → gap 700 · "
                                 "waiting 30 s of at most 5 min"), written[1]
    assert " gap 1200 → gap 0 · done · " in written[-1], written[-1]


def test_a_short_wait_inside_an_admin_mode_window_writes_nothing():
    clock, written = Clock(), []
    progress = Progress("altibase_node1: waiting for the application's sessions to end", written.append,
                        interval=30, quiet_for=30, clock=clock)
    progress.report("2 sessions left")
    clock.now += 1
    progress.report("0 sessions left", ended="done")
    assert written == []
    clock.now += 40  # a long one does show
    progress.report("1 session left")
    assert written and "waiting 41 s" in written[0]


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (7, 185, 3600, 7800)] == ["7 s", "3 min 5 s", "1 h", "2 h 10 min"]


class RecordingTrigger(AltibaseCheckTrigger):
    """The trigger as the triggerer runs it, writing its progress to a list instead of the XCom table
    (that path is Airflow's own: BaseXCom.set); ``on_write`` lets the test act after a write."""

    written: list[str] = []
    on_write = staticmethod(lambda text: None)

    def _writer(self):
        def write(text: str) -> None:
            self.written.append(text)
            self.on_write(text)
        return write


def test_a_deferred_gap_wait_publishes_its_readings_to_its_task_at_a_bounded_rate(sim, altibase_conns):
    seed_pair(sim)
    sim.pause_sender("node1", "REP1")
    run(sim, "node1", *[f"INSERT INTO t1 VALUES ({i}, {i})" for i in range(3)])
    sensor = ReplicationGapSensor(task_id="o3b_gap", altibase_conn_id=altibase_conns["node1"], replication_name="rep1",
                                  timeout=30, poke_interval=0.05, in_process_first_seconds=0, deferral_margin_seconds=0)
    ti = SimpleNamespace(dag_id="altibase_replicated_ddl", task_id="o3b_gap", run_id="manual__1", map_index=-1)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context={"ti": ti})
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["progress"]["to"] == {"dag_id": "altibase_replicated_ddl", "task_id": "o3b_gap",
                                        "run_id": "manual__1", "map_index": -1}
    kwargs["progress"]["interval"] = 0.3
    written: list[str] = []
    at: list[float] = []

    def on_write(text: str) -> None:  # the gap drains once three readings were shown
        at.append(time.monotonic())
        if len(written) == 3:
            sim.resume_sender("node1", "REP1")

    RecordingTrigger.written, RecordingTrigger.on_write = written, staticmethod(on_write)

    async def first_event():
        async for event in RecordingTrigger(**kwargs).run():
            return event.payload

    assert asyncio.run(first_event())["status"] == "done"
    assert written[0].startswith("altibase_node1: waiting for the replication gap to reach 0: gap 3 · waiting ")
    assert " gap 3 → gap 0 · done · " in written[-1], written
    # polled every 0.05 s, shown at most every 0.3 s (the end at once)
    assert len(written) >= 4 and all(b - a >= 0.29 for a, b in zip(at[:-2], at[1:-1], strict=True)), (at, written)


class RecordingApprovalTrigger(ApprovalTrigger):
    written: list[str] = []

    def _writer(self):
        return self.written.append


def test_an_approval_that_waits_publishes_how_long_it_has_waited_for_its_request():
    """Before any answer can be read (not_before), the wait already shows in the task's progress."""
    asked = datetime.now(UTC) - timedelta(minutes=3)
    trigger = RecordingApprovalTrigger(
        ti_id=uuid4(), options=["Approve", "Reject"], params={}, timeout_datetime=asked + timedelta(hours=1),
        poke_interval=1.0, not_before=time.time() + 3600,
        progress={"to": {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1}, "began": asked.timestamp(),
                  "what": "'O1: stop the application service of node1'"})
    assert trigger.serialize()[1]["progress"]["what"] == "'O1: stop the application service of node1'"
    written: list[str] = []
    RecordingApprovalTrigger.written = written

    async def until_published():
        waiting = asyncio.ensure_future(anext(trigger.run()))
        for _ in range(1000):  # the publisher writes from a thread; the trigger itself sleeps until not_before
            if written:
                break
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(until_published())
    assert written and written[0].startswith("approval of 'O1: stop the application service of node1': no answer "
                                             "yet · waiting 3 min"), written
    assert "of at most 1 h · " in written[0], written


def test_a_ddl_runs_link_is_its_page_in_the_airflow_ui():
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    assert run_url("altibase_replicated_ddl", "maintenance__pair1__0001_add__scheduled__2026-12-08T02:00:00+00:00") \
        == f"{base}/dags/altibase_replicated_ddl/runs/maintenance__pair1__0001_add__scheduled__2026-12-08T02%3A00%3A00%2B00%3A00"
