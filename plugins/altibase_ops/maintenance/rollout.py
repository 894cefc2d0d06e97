"""Fleet rollout: which change runs on which pair, in which stage, and the lanes that run them.

``plan_rollout`` reads each targeted pair's history and lock on its servers and decides, per pair and
change (in file order): ``applied`` (recorded: never run twice), ``edited`` (recorded with another
checksum: the file changed after it ran — reported, not re-run), ``failed`` (the last run failed: a
person looks first, or ``retry_failed``), ``blocked`` (an earlier change on the pair is failed or
waiting), ``pending`` (runs now), ``found_applied`` (runs now, and its DDL is in the catalog on both
servers already: the run changes nothing, no outage, and records it so). A pair whose servers cannot be
read, or that another run holds, is left untouched and said so.

Stages: the first ``canary_pairs`` pairs with pending work, then the rest. A pair with a change left for a
person (failed, or blocked behind one) is a canary only when no other pair can be: a change that fails
on one pair must not stop the fleet window after window. The rest are dealt round-robin into
``concurrency`` lanes; a lane (``RolloutLaneOperator``, one mapped task) triggers one DDL run at a time
and waits for it deferrably, so the per-pair graph stays the DDL DAG's own, visible in the UI. The
rollout stops on the first failure: every lane looks before starting its next run.

**Refusals are recorded.** Before it triggers a run, a lane puts it through the DDL DAG's own gates
that come before the pair is held (its params, the Connections, the read-only preflight); a refusal is
written to the pair's history as ``failed`` with the refusal's message, so the next window leaves it for
a person like any failure. A DDL run that fails anyway and recorded no outcome (refused by its own gates:
the state changed since, or the window) is recorded ``failed`` by the lane. Neither is recorded while
another run holds the pair or its servers cannot be read: that is not the change's doing, and the next
window plans it again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DagRunTriggerException

from altibase_ops.ddl.preflight import PreflightError, check_connections, preflight
from altibase_ops.ddl.records import read_lock, sysdba_hook
from altibase_ops.ddl.request import DdlRequest, InvalidRequestError, Server
from altibase_ops.ddl.state import ddl_progress, read_all
from altibase_ops.ddl.statements import InvalidDdlError
from altibase_ops.maintenance.changes import Change
from altibase_ops.maintenance.history import (
    APPLIED_OUTCOMES,
    HistoryRow,
    expected_seconds,
    history_rows,
    latest,
    merge,
    record_change,
)
from altibase_ops.pairs import Pair
from altibase_ops.progress import run_url, task_address, xcom_writer

DDL_DAG_ID = "altibase_replicated_ddl"
# The lane's trigger looks at once (the run was just created: never final), then every 5 s. A DDL run
# lasts far longer than the seconds the scheduler may still be handling the lane's deferral, so the
# trigger never fires inside that window (apache/airflow#72716).
DDL_RUN_POLL_SECONDS = 5
# a change whose last run failed, and the changes after it: they wait for a person (or retry_failed)
LEFT_FOR_A_PERSON = ("failed", "blocked")


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
    return read_servers(pair.servers, pair.replication_name)


def read_servers(servers: list[dict[str, str]], replication_name: str) -> tuple[list[HistoryRow], str]:
    """``read_pair`` for a pair given as a DDL run's params give it (servers, replication)."""
    rows: list[HistoryRow] = []
    unreadable, locks = [], []
    for entry in servers:
        server = Server(entry["name"], entry["conn_id"], entry["role"])
        try:
            with sysdba_hook(server).session() as session:
                rows += history_rows(session, replication_name, server.name)
                locks.append(read_lock(session, replication_name))
        except Exception as exc:  # noqa: BLE001 - the pair is reported untouched, the others go on
            unreadable.append(f"{server.name}: {exc}")
    if unreadable:
        return merge(rows), "cannot read its history and lock: " + "; ".join(unreadable)
    held = next((lock for lock in locks if lock is not None), None)
    return merge(rows), f"held by {held.describe()}" if held else ""


def ddl_in_place(conf: dict[str, Any]) -> bool:
    """Whether a DDL run with these params would find every statement applied on every server (the
    catalogs, read-only, as preflight reads them); False when that cannot be read: the gates will say."""
    try:
        request = DdlRequest.from_params(conf)
        states = read_all(request, fingerprint=False)
        return set(ddl_progress(request, states).values()) == {"after"}
    except Exception:  # noqa: BLE001 - only a label of the plan; the lane's gates report the problem
        return False


def plan_rollout(changes: list[Change], pairs: list[Pair], *, maintenance_run_id: str, window_closes_at: datetime,
                 canary_pairs: int, concurrency: int, retry_failed: bool,
                 read: Any = read_pair, in_place: Any = ddl_in_place) -> dict[str, Any]:
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
        for item in items:  # the plan says what the history will say (a change made by hand before)
            if in_place(item["conf"]):
                statuses[item["change_id"]] = "found_applied"
        work.append((pair, items))
    # a pair with a change left for a person is a canary only when no other pair can be: a change that
    # fails on one pair must not hold the fleet back window after window (sorted() keeps the fleet's order)
    waiting = {p.name for p, _ in work if any(s in LEFT_FOR_A_PERSON for s in report[p.name]["changes"].values())}
    first = sorted(work, key=lambda w: w[0].name in waiting)[:canary_pairs]
    canary = [items for _, items in first]
    rest_pairs = [(p, items) for p, items in work if p.name not in {f.name for f, _ in first}]
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


def format_stages(rollout: dict[str, Any]) -> str:
    """The stages as a person reads them: each lane's pairs in order, each with its changes."""
    def lane(items: list[dict[str, Any]]) -> str:
        by_pair: dict[str, list[str]] = {}
        for item in items:
            by_pair.setdefault(item["pair"], []).append(item["change_id"])
        return ", ".join(f"{pair} ({', '.join(cids)})" for pair, cids in by_pair.items())

    lines = [f"canary, one at a time: {'; '.join(lane(items) for items in rollout['canary']) or 'none'}",
             f"then {len(rollout['rest'])} lane(s) side by side" + (":" if rollout["rest"] else "")]
    lines += [f"  lane {n}: {lane(items)}" for n, items in enumerate(rollout["rest"], 1)]
    return "\n".join(lines)


def gate_refusal(conf: dict[str, Any], log: Any, run_state: Any = None) -> str:
    """What the DDL DAG's gates before the pair is held say of a run with these params, now: its
    validation (the params, the Connections) and the read-only preflight. The refusal's message, or ""
    when they pass. Nothing is held or changed; an error that is no refusal (a bug) is raised."""
    try:
        request = DdlRequest.from_params(conf)
        check_connections(request)
        preflight(request, log, run_state=run_state)
    except (InvalidRequestError, InvalidDdlError, PreflightError) as exc:
        return str(exc)
    return ""


def record_failed(item: dict[str, Any], reason: str, run_id: str, dag_id: str, started_at: float, log: Any,
                  why_not: str) -> str:
    """Record a lane item's change as failed with ``reason`` in its pair's history, unless ``why_not``
    (``read_servers``: the pair is held by a run or cannot be read, so a refusal may be that run's doing
    or the servers', not the change's). Returns what became of the change, as a sentence's end."""
    if why_not:
        return f"NOT recorded as failed in the pair's history ({why_not}): the next window plans it again"
    conf = item["conf"]
    servers = [Server(s["name"], s["conn_id"], s["role"]) for s in conf["servers"]]
    written = record_change(servers, conf["replication_name"], item["change_id"], conf["change_checksum"], "failed",
                            run_id, dag_id, started_at, log, reason)
    if not written:
        return ("NOT recorded as failed in the pair's history (no server took the write: see the warnings above): "
                "the next window plans it again")
    return (f"recorded as failed in the pair's history on {', '.join(written)}: it waits for a person (fix the "
            "cause, then a window with retry_failed)")


def refusal_of(rows: list[HistoryRow], item: dict[str, Any], maintenance_run_id: str) -> HistoryRow | None:
    """The refusal a lane of ``maintenance_run_id`` recorded for the item, in its pair's history ``rows``."""
    return next((r for r in rows if r.change_id == item["change_id"] and r.run_id == maintenance_run_id
                 and r.outcome == "failed"), None)


class RolloutLaneOperator(BaseOperator):
    """One lane of a stage: trigger each DDL run in turn and wait for it without holding a worker.

    Before each run it looks whether any run of this rollout failed (then it stops, skipped, saying
    which), whether the run still fits in the maintenance window, and whether the DDL DAG's gates
    before the pair is held pass (``gate_refusal``): a refusal is recorded as failed in the pair's
    history and fails the lane. A DDL run that fails fails the lane, naming the run; the DDL run's own
    restore has already run by then, and a run that recorded no outcome is recorded failed.
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
            self._ddl_run_failed(item, state)
        self.log.info("change %s applied on pair %s (DDL run %s: %s)", item["change_id"], item["pair"], run_id,
                      run_url(DDL_DAG_ID, run_id))
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
            # a refused change fails its lane with no DDL run: the stage's lanes say so
            lanes = ti.get_task_states(dag_id=ti.dag_id, task_ids=[self.task_id], run_ids=[ti.run_id])
            if failed_lanes := sorted(k for k, v in lanes.get(ti.run_id, {}).items() if _state(v) == "failed"):
                raise AirflowSkipException(
                    f"the rollout stopped: lane {', '.join(failed_lanes)} failed (its log says which change and "
                    f"why); not started here: {not_started}")
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
                    self._ddl_run_failed(item, state)
                from airflow.providers.standard.triggers.external_task import DagStateTrigger

                self.log.info("DDL run %s exists already: waiting for it (%s)", item["run_id"],
                              run_url(DDL_DAG_ID, item["run_id"]))
                self._show_waiting(ti, item)
                self.defer(trigger=DagStateTrigger(dag_id=DDL_DAG_ID, states=["success", "failed"],
                                                   run_ids=[item["run_id"]], poll_interval=DDL_RUN_POLL_SECONDS),
                           method_name="execute_complete")
            checked_at = time.time()
            if reason := gate_refusal(item["conf"], self.log, run_state=ti.get_dagrun_state):
                self._refused(item, reason, ti, checked_at, not_started)
            self.log.info("change %s on pair %s: triggering DDL run %s (window closes in %d s): %s", item["change_id"],
                          item["pair"], item["run_id"], left, run_url(DDL_DAG_ID, item["run_id"]))
            self._show_waiting(ti, item)
            raise DagRunTriggerException(
                trigger_dag_id=DDL_DAG_ID, dag_run_id=item["run_id"], conf=item["conf"], logical_date=None,
                reset_dag_run=False, skip_when_already_exists=False, wait_for_completion=True,
                allowed_states=["success"], failed_states=["failed"], poke_interval=DDL_RUN_POLL_SECONDS,
                deferrable=True, note=f"change {item['change_id']} on pair {item['pair']} "
                                      f"(maintenance run {ti.run_id})")
        return done

    def _show_waiting(self, ti: Any, item: dict[str, Any]) -> None:
        """The lane's XCom "progress": the DDL run it waits for, with its link (the lane defers next)."""
        position = next(i for i, lane_item in enumerate(self.lane) if lane_item["run_id"] == item["run_id"]) + 1
        xcom_writer(task_address(ti))(
            f"change {item['change_id']} on pair {item['pair']} ({position} of {len(self.lane)} in this lane): "
            f"waiting for DDL run {run_url(DDL_DAG_ID, item['run_id'])} since "
            f"{datetime.now(UTC).strftime('%H:%M:%S')} UTC")

    def _refused(self, item: dict[str, Any], reason: str, ti: Any, checked_at: float, not_started: str) -> NoReturn:
        # recorded under this maintenance run: no DDL run exists, and this lane's log holds the refusal
        _, why_not = read_servers(item["conf"]["servers"], item["conf"]["replication_name"])
        what = record_failed(item, reason, ti.run_id, ti.dag_id, checked_at, self.log, why_not)
        raise AirflowFailException(
            f"change {item['change_id']} refused on pair {item['pair']} before anything held the pair; no DDL run "
            f"was triggered:\n{reason}\nThe change is {what}. The rollout stops here; not started: {not_started}")

    def _ddl_run_failed(self, item: dict[str, Any], state: str) -> NoReturn:
        run_id = item["run_id"]
        rows, why_not = read_servers(item["conf"]["servers"], item["conf"]["replication_name"])
        if any(r.run_id == run_id for r in rows):
            recorded = "its outcome is in the pair's history"
        else:  # refused by its own gates (the pair changed since the lane's look, or the window), or it could not write
            reason = (f"DDL run {run_id} ended {state} and recorded no outcome in this history: it stopped before it "
                      "held the pair, or could not write here; its failed task's log says why")
            recorded = "it recorded no outcome of its own; the change is " + record_failed(
                item, reason, run_id, DDL_DAG_ID, time.time(), self.log, why_not)
        raise AirflowFailException(
            f"change {item['change_id']} ended {state} on pair {item['pair']} (DDL run {run_url(DDL_DAG_ID, run_id)}: "
            "its failed task, "
            f"restore and summary say what it left; {recorded}); the rollout stops here")


def rollout_outcomes(plan: dict[str, Any], ti: Any) -> dict[str, str]:
    """``pair/change`` -> applied | failed | refused | untouched | <a DDL run's state> for every run the
    plan had; a refusal as the pair's history records it (``RolloutLaneOperator``)."""
    out: dict[str, str] = {}
    histories: dict[str, list[HistoryRow]] = {}  # read once per pair, only where a change did not start
    for lane in [*plan.get("canary", []), *plan.get("rest", [])]:
        for item in lane:
            key = f"{item['pair']}/{item['change_id']}"
            if not ti.get_dr_count(dag_id=DDL_DAG_ID, run_ids=[item["run_id"]]):
                if item["pair"] not in histories:
                    histories[item["pair"]] = read_servers(item["conf"]["servers"], item["conf"]["replication_name"])[0]
                refusal = refusal_of(histories[item["pair"]], item, ti.run_id)
                out[key] = ("refused, recorded failed: " + " ".join(refusal.reason.split()) if refusal
                            else "untouched")
                continue
            state = _state(ti.get_dagrun_state(dag_id=DDL_DAG_ID, run_id=item["run_id"]))
            out[key] = {"success": "applied"}.get(state, state)
    return out


def _state(value: Any) -> str:
    """A DAG run's state as its plain name (the SDK hands a DagRunState enum)."""
    return str(getattr(value, "value", value))
