"""Fleet rollout: which change runs on which pair, in which stage, and the lanes that run them.

``plan_rollout`` reads each targeted pair's history and lock on its servers and decides, per pair and
change (in file order): ``applied`` (recorded: never run twice), ``edited`` (recorded with another
checksum: the file changed after it ran — reported, not re-run), ``failed`` (the last run failed: a
person looks first, or ``retry_failed``), ``blocked`` (an earlier change on the pair is failed or
waiting), ``pending`` (runs now). A pair whose servers cannot be read, or that another run holds, is
left untouched and said so.

Stages: the first ``canary_pairs`` pairs with pending work, then the rest. The rest are dealt round-robin
into ``concurrency`` lanes; a lane (``RolloutLaneOperator``, one mapped task) triggers one DDL run at a time
and waits for it deferrably, so the per-pair graph stays the DDL DAG's own, visible in the UI. The
rollout stops on the first failure: every lane looks before starting its next run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DagRunTriggerException

from altibase_ops.ddl.records import read_lock, sysdba_hook
from altibase_ops.ddl.request import Server
from altibase_ops.maintenance.changes import Change
from altibase_ops.maintenance.history import (
    APPLIED_OUTCOMES,
    HistoryRow,
    expected_seconds,
    history_rows,
    latest,
    merge,
)
from altibase_ops.pairs import Pair

DDL_DAG_ID = "altibase_replicated_ddl"
# The lane's trigger looks at once (the run was just created: never final), then every 5 s. A DDL run
# lasts far longer than the seconds the scheduler may still be handling the lane's deferral, so the
# trigger never fires inside that window (apache/airflow#72716).
DDL_RUN_POLL_SECONDS = 5


def run_id_for(maintenance_run_id: str, pair: str, change_id: str) -> str:
    """The DDL run's id: the same maintenance run, pair and change always name the same DDL run."""
    return f"maintenance__{pair}__{change_id}__{maintenance_run_id}"[:250]


def pair_statuses(changes: list[Change], pair: str, rows: list[HistoryRow], retry_failed: bool) -> dict[str, str]:
    """Per change targeting ``pair``, in file order, what this rollout does with it (see module doc)."""
    out: dict[str, str] = {}
    stuck = False
    for change in changes:
        if pair not in change.pairs:
            continue
        last = latest(rows, change.id)
        if last is not None and last.outcome in APPLIED_OUTCOMES:
            out[change.id] = "applied" if last.checksum == change.checksum else "edited"
        elif stuck:
            out[change.id] = "blocked"
        elif last is not None and last.outcome == "failed" and not retry_failed:
            out[change.id] = "failed"
            stuck = True
        else:
            out[change.id] = "pending"  # runs after the earlier pending ones, in the same lane
    return out


def read_pair(pair: Pair) -> tuple[list[HistoryRow], str]:
    """The pair's history, and why it must be left alone ("" when it may be changed): one session per
    server reads both its history and the pair's lock."""
    rows: list[HistoryRow] = []
    unreadable, locks = [], []
    for entry in pair.servers:
        server = Server(entry["name"], entry["conn_id"], entry["role"])
        try:
            with sysdba_hook(server).session() as session:
                rows += history_rows(session, pair.replication_name, server.name)
                locks.append(read_lock(session, pair.replication_name))
        except Exception as exc:  # noqa: BLE001 - the pair is reported untouched, the others go on
            unreadable.append(f"{server.name}: {exc}")
    if unreadable:
        return merge(rows), "cannot read its history and lock: " + "; ".join(unreadable)
    held = next((lock for lock in locks if lock is not None), None)
    return merge(rows), f"held by {held.describe()}" if held else ""


def plan_rollout(changes: list[Change], pairs: list[Pair], *, maintenance_run_id: str, window_closes_at: datetime,
                 canary_pairs: int, concurrency: int, retry_failed: bool,
                 read: Any = read_pair) -> dict[str, Any]:
    """The rollout: stages of lanes of DDL runs, and a report of every (pair, change)."""
    report: dict[str, dict[str, Any]] = {}
    work: list[tuple[Pair, list[dict[str, Any]]]] = []
    by_id = {c.id: c for c in changes}
    for pair in pairs:
        if not any(pair.name in c.pairs for c in changes):
            continue
        rows, why_not = read(pair)
        statuses = pair_statuses(changes, pair.name, rows, retry_failed)
        if why_not:
            statuses = {cid: ("untouched" if s == "pending" else s) for cid, s in statuses.items()}
        report[pair.name] = {"changes": statuses, "note": why_not}
        pending = [cid for cid, s in statuses.items() if s == "pending"]
        if not pending:
            continue
        budget = expected_seconds(rows)
        items = [{"pair": pair.name, "change_id": cid, "expected_seconds": budget,
                  "run_id": run_id_for(maintenance_run_id, pair.name, cid),
                  "conf": {**by_id[cid].ddl_params(pair), "not_after": window_closes_at.isoformat()}}
                 for cid in pending]
        work.append((pair, items))
    canary = [items for _, items in work[:canary_pairs]]
    rest_pairs = work[canary_pairs:]
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(min(concurrency, len(rest_pairs)))]
    for i, (_, items) in enumerate(rest_pairs):
        lanes[i % len(lanes)].extend(items)
    return {"canary": canary, "rest": lanes,
            "run_ids": [item["run_id"] for _, items in work for item in items],
            "report": report, "window_closes_at": window_closes_at.isoformat()}


def format_report(report: dict[str, dict[str, Any]], outcomes: dict[str, str] | None = None) -> str:
    """One line per pair: each change's status (and this run's outcome where it ran)."""
    lines = []
    for pair, entry in report.items():
        parts = [f"{cid}: {(outcomes or {}).get(f'{pair}/{cid}', status)}" for cid, status in entry["changes"].items()]
        lines.append(f"  {pair:<16} " + ", ".join(parts) + (f"  ({entry['note']})" if entry["note"] else ""))
    return "\n".join(lines) or "  (no pair is targeted by any change)"


class RolloutLaneOperator(BaseOperator):
    """One lane of a stage: trigger each DDL run in turn and wait for it without holding a worker.

    Before each run it looks whether any run of this rollout failed (then it stops, skipped, saying
    which) and whether the run still fits in the maintenance window. A DDL run that fails fails the
    lane, naming the run; the DDL run's own restore has already run by then.
    """

    ui_color = "#e8f0fe"

    def __init__(self, *, lane: list[dict[str, Any]], plan_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lane = lane
        self.plan_task_id = plan_task_id

    def execute(self, context: Any) -> list[str]:
        return self._run_from(context, 0, [])

    def execute_complete(self, context: Any, event: tuple[str, dict[str, Any]]) -> list[str]:
        _, data = event
        run_id = data["run_ids"][0]
        index = next(i for i, item in enumerate(self.lane) if item["run_id"] == run_id)
        item, state = self.lane[index], _state(data.get(run_id))
        if state != "success":
            raise AirflowFailException(
                f"change {item['change_id']} ended {state} on pair {item['pair']} (DDL run {run_id}: its "
                "restore and summary say what it left); the rollout stops here")
        self.log.info("change %s applied on pair %s (DDL run %s)", item["change_id"], item["pair"], run_id)
        done = [i["run_id"] for i in self.lane[: index + 1]]
        return self._run_from(context, index + 1, done)

    def _run_from(self, context: Any, index: int, done: list[str]) -> list[str]:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id) or {}
        closes = datetime.fromisoformat(plan["window_closes_at"])
        for position in range(index, len(self.lane)):
            item = self.lane[position]
            not_started = ", ".join(f"{i['change_id']} on {i['pair']}" for i in self.lane[position:])
            if ti.get_dr_count(dag_id=DDL_DAG_ID, run_ids=plan["run_ids"], states=["failed"]):  # one call, then which
                failed = next((rid for rid in plan["run_ids"]
                               if ti.get_dr_count(dag_id=DDL_DAG_ID, run_ids=[rid], states=["failed"])), "?")
                raise AirflowSkipException(
                    f"the rollout stopped: DDL run {failed} failed; not started here: {not_started}")
            left = (closes - datetime.now(UTC)).total_seconds()
            if left < item["expected_seconds"]:
                raise AirflowSkipException(
                    f"the maintenance window closes at {closes.isoformat()} ({max(0, int(left))} s left); "
                    f"change {item['change_id']} on {item['pair']} needs about {item['expected_seconds']} s; "
                    f"not started: {not_started}")
            if ti.get_dr_count(dag_id=DDL_DAG_ID, run_ids=[item["run_id"]]):
                # this lane ran before (cleared, or a worker lost): follow the run it already started
                state = _state(ti.get_dagrun_state(dag_id=DDL_DAG_ID, run_id=item["run_id"]))
                if state == "success":
                    self.log.info("DDL run %s exists already and succeeded", item["run_id"])
                    done.append(item["run_id"])
                    continue
                if state == "failed":
                    raise AirflowFailException(f"change {item['change_id']} failed on pair {item['pair']} (DDL run "
                                               f"{item['run_id']}); the rollout stops here")
                from airflow.providers.standard.triggers.external_task import DagStateTrigger

                self.log.info("DDL run %s exists already: waiting for it", item["run_id"])
                self.defer(trigger=DagStateTrigger(dag_id=DDL_DAG_ID, states=["success", "failed"],
                                                   run_ids=[item["run_id"]], poll_interval=DDL_RUN_POLL_SECONDS),
                           method_name="execute_complete")
            self.log.info("change %s on pair %s: triggering DDL run %s (window closes in %d s)", item["change_id"],
                          item["pair"], item["run_id"], left)
            raise DagRunTriggerException(
                trigger_dag_id=DDL_DAG_ID, dag_run_id=item["run_id"], conf=item["conf"], logical_date=None,
                reset_dag_run=False, skip_when_already_exists=False, wait_for_completion=True,
                allowed_states=["success"], failed_states=["failed"], poke_interval=DDL_RUN_POLL_SECONDS,
                deferrable=True, note=f"change {item['change_id']} on pair {item['pair']} "
                                      f"(maintenance run {ti.run_id})")
        return done


def rollout_outcomes(plan: dict[str, Any], ti: Any) -> dict[str, str]:
    """``pair/change`` -> applied | failed | untouched | <a DDL run's state> for every run the plan had."""
    out: dict[str, str] = {}
    for lane in [*plan.get("canary", []), *plan.get("rest", [])]:
        for item in lane:
            key = f"{item['pair']}/{item['change_id']}"
            if not ti.get_dr_count(dag_id=DDL_DAG_ID, run_ids=[item["run_id"]]):
                out[key] = "untouched"
                continue
            state = _state(ti.get_dagrun_state(dag_id=DDL_DAG_ID, run_id=item["run_id"]))
            out[key] = {"success": "applied"}.get(state, state)
    return out


def _state(value: Any) -> str:
    """A DAG run's state as its plain name (the SDK hands a DagRunState enum)."""
    return str(getattr(value, "value", value))
