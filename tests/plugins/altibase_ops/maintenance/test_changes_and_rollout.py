"""Change files, the rollout plan and its per-pair decisions: the pure parts of scheduled maintenance."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from altibase_ops.maintenance.changes import InvalidChangeError, load_change, load_changes
from altibase_ops.maintenance.config import previews
from altibase_ops.maintenance.history import HistoryRow, change_checksum, expected_seconds
from altibase_ops.maintenance.rollout import format_stages, pair_statuses, plan_rollout, run_id_for
from altibase_ops.pairs import InvalidPairsError, validate_pairs


def fleet(*names: str, topology: str = "active_standby") -> list:
    roles = ("active", "standby") if topology == "active_standby" else ("active1", "active2")
    return validate_pairs([{"name": n, "replication_name": "REP1",
                            "servers": [{"name": f"{n}a", "conn_id": f"altibase_{n}a", "role": roles[0]},
                                        {"name": f"{n}b", "conn_id": f"altibase_{n}b", "role": roles[1]}],
                            "service_control": {"mode": "manual"}} for n in names])


GOOD = """\
    id: {id}
    approved_by: Kim DBA
    pairs: {pairs}
    service_mode: can_stop
    tables: [SYS.T1]
    ddl:
      - {ddl}
"""


def write(folder, change_id="0001_c3", pairs="all", ddl="ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)", text=None):
    path = folder / f"{change_id}.yaml"
    path.write_text(text if text is not None else textwrap.dedent(GOOD).format(id=change_id, pairs=pairs, ddl=ddl))
    return path


def test_a_change_file_loads_for_every_pair_it_names(tmp_path):
    write(tmp_path, "0002_idx", pairs="[p2]", ddl="CREATE INDEX SYS.T1_C3 ON SYS.T1 (C3)")
    write(tmp_path, "0001_c3")
    changes = load_changes(tmp_path, fleet("p1", "p2"))
    assert [c.id for c in changes] == ["0001_c3", "0002_idx"]  # file-name order
    assert changes[0].pairs == ("p1", "p2") and changes[1].pairs == ("p2",)
    params = changes[0].ddl_params(fleet("p1")[0])
    assert params["servers"][0]["conn_id"] == "altibase_p1a" and params["dry_run"] is False
    assert params["change_id"] == "0001_c3" and params["change_checksum"] == changes[0].checksum


@pytest.mark.parametrize("change_id, text, message", [
    ("0001_x", "id: 0001_y\napproved_by: a\npairs: all\nservice_mode: can_stop\ntables: [SYS.T1]\n"
               "ddl: ['ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)']", "must be the file name"),
    ("0001_x", "id: 0001_x\npairs: all\nservice_mode: can_stop\ntables: [SYS.T1]\nddl: []", r"missing \['approved_by'\]"),
    ("0001_x", "id: 0001_x\napproved_by: a\npairs: [nope]\nservice_mode: can_stop\ntables: [SYS.T1]\n"
               "ddl: ['ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)']", r"pairs \['nope'\] are not configured"),
    ("0001_x", "id: 0001_x\napproved_by: a\npairs: all\nservice_mode: can_stop\ntables: [SYS.T1]\n"
               "ddl: ['DROP TABLE SYS.T1']", "on pair p1: ddl"),
    ("0001_x", "id: 0001_x\napproved_by: a\npairs: all\nservice_mode: can_stop\ntables: [SYS.T1]\n"
               "ddl: ['ALTER TABLE SYS.T2 ADD COLUMN (C3 INTEGER)']", "not one of the listed tables"),
    ("0001_x", "id: 0001_x\napproved_by: a\npairs: all\nservice_mode: sometimes\ntables: [SYS.T1]\n"
               "ddl: ['ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)']", "service_mode"),
    ("0001_x", "id: 0001_x\napproved_by: ' '\npairs: all\nservice_mode: can_stop\ntables: [SYS.T1]\n"
               "ddl: ['ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)']", "approved_by must say who"),
    ("0001_x", "id: 0001_x\napproved_by: a\nowner: b\npairs: all\nservice_mode: can_stop\ntables: [SYS.T1]\n"
               "ddl: ['ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)']", r"unknown field\(s\) \['owner'\]"),
    ("0001_x", "id: [", "not readable YAML"),
])
def test_a_bad_change_file_is_refused_naming_the_file_and_the_field(tmp_path, change_id, text, message):
    write(tmp_path, "0000_ok")
    write(tmp_path, change_id, text=text)
    with pytest.raises(InvalidChangeError, match=message) as exc:
        load_changes(tmp_path, fleet("p1"))
    assert f"{change_id}.yaml" in str(exc.value)


def test_the_checksum_covers_what_runs_not_who_or_where(tmp_path):
    base = load_change(write(tmp_path, "0001_c3", pairs="[p1]"), {p.name: p for p in fleet("p1", "p2")})
    wider = load_change(write(tmp_path, "0001_c3", pairs="all"), {p.name: p for p in fleet("p1", "p2")})
    edited = load_change(write(tmp_path, "0001_c3", ddl="ALTER TABLE SYS.T1 ADD COLUMN (C3 BIGINT)"),
                         {p.name: p for p in fleet("p1", "p2")})
    assert base.checksum == wider.checksum != edited.checksum
    assert change_checksum(["SYS.T1"], ["ALTER  TABLE SYS.T1\n ADD COLUMN (C3 INTEGER)"]) == base.checksum


def row(change_id, outcome, checksum, ended="2026-11-01T00:00:00Z", seconds=20):
    return HistoryRow(change_id, checksum, outcome, f"run-{ended}", "altibase_replicated_ddl", ended, ended, seconds)


def test_each_change_on_a_pair_is_applied_edited_failed_blocked_or_pending(tmp_path):
    for cid in ("0001_a", "0002_b", "0003_c", "0004_d"):
        write(tmp_path, cid, ddl=f"ALTER TABLE SYS.T1 ADD COLUMN (C{cid[-1].upper()} INTEGER)")
    changes = load_changes(tmp_path, fleet("p1"))
    rows = [row("0001_a", "applied", changes[0].checksum), row("0002_b", "found_applied", "0" * 16),
            row("0003_c", "failed", changes[2].checksum)]
    assert pair_statuses(changes, "p1", rows, retry_failed=False) == {
        "0001_a": "applied", "0002_b": "edited", "0003_c": "failed", "0004_d": "blocked"}
    assert pair_statuses(changes, "p1", rows, retry_failed=True) == {
        "0001_a": "applied", "0002_b": "edited", "0003_c": "pending", "0004_d": "pending"}
    # a failed run followed by an applied one: applied
    later = [*rows, row("0003_c", "applied", changes[2].checksum, ended="2026-11-02T00:00:00Z")]
    assert pair_statuses(changes, "p1", later, retry_failed=False)["0003_c"] == "applied"


def test_the_plan_sends_a_canary_first_then_the_rest_in_bounded_lanes(tmp_path):
    write(tmp_path, "0001_a")
    write(tmp_path, "0002_b", ddl="CREATE INDEX SYS.T1_C3 ON SYS.T1 (C3)")
    pairs = fleet("p1", "p2", "p3", "p4", "p5")
    changes = load_changes(tmp_path, pairs)
    history = {"p4": ([row("0001_a", "applied", changes[0].checksum, seconds=100)], ""),
               "p5": ([], "held by run 'manual__x' of altibase_replicated_ddl on host")}
    closes = datetime(2026, 12, 5, 4, tzinfo=UTC)
    plan = plan_rollout(changes, pairs, maintenance_run_id="scheduled__1", window_closes_at=closes, canary_pairs=1,
                        concurrency=2, retry_failed=False, read=lambda p: history.get(p.name, ([], "")))
    lanes = lambda stage: [[(i["pair"], i["change_id"]) for i in lane] for lane in plan[stage]]  # noqa: E731
    assert lanes("canary") == [[("p1", "0001_a"), ("p1", "0002_b")]]
    assert lanes("rest") == [[("p2", "0001_a"), ("p2", "0002_b"), ("p4", "0002_b")],
                             [("p3", "0001_a"), ("p3", "0002_b")]]
    assert plan["report"]["p5"] == {"changes": {"0001_a": "untouched", "0002_b": "untouched"},
                                    "note": "held by run 'manual__x' of altibase_replicated_ddl on host"}
    item = plan["rest"][0][2]
    assert item["run_id"] == run_id_for("scheduled__1", "p4", "0002_b")
    assert item["expected_seconds"] == 150  # the pair's longest applied run, +50 %
    assert item["conf"]["not_after"] == closes.isoformat() and item["conf"]["change_id"] == "0002_b"
    assert len(set(plan["run_ids"])) == len(plan["run_ids"]) == 7


def test_the_stages_name_each_pair_once_with_its_changes_not_a_list_per_change(tmp_path):
    write(tmp_path, "0001_a")
    write(tmp_path, "0002_b", ddl="CREATE INDEX SYS.T1_C3 ON SYS.T1 (C3)")
    pairs = fleet("pair1", "p2", "p3")
    plan = plan_rollout(load_changes(tmp_path, pairs), pairs, maintenance_run_id="m", canary_pairs=1,
                        window_closes_at=datetime.now(UTC) + timedelta(hours=1), concurrency=2,
                        retry_failed=False, read=lambda p: ([], ""), in_place=lambda conf: False)
    assert format_stages(plan) == ("canary, one at a time: pair1 (0001_a, 0002_b)\n"
                                   "then 2 lane(s) side by side:\n"
                                   "  lane 1: p2 (0001_a, 0002_b)\n"
                                   "  lane 2: p3 (0001_a, 0002_b)")
    assert format_stages({"canary": [], "rest": []}) == "canary, one at a time: none\nthen 0 lane(s) side by side"


def test_a_manual_trigger_with_dry_run_ticked_previews_and_the_scheduler_s_runs_apply():
    from airflow.sdk.api.datamodels._generated import DagRunType

    assert previews(True, "manual") is True  # the form's default: the plan only
    assert previews(True, DagRunType.MANUAL) is True  # as a task's context gives it
    assert previews(False, "manual") is False  # a person unticked it: a rollout by hand
    for run_type in ("scheduled", "backfill", "asset_triggered"):  # the default dry_run, and they still apply
        assert previews(True, run_type) is False, run_type


def test_concurrency_above_the_pairs_makes_one_lane_per_pair_and_no_canary_is_allowed(tmp_path):
    write(tmp_path, "0001_a")
    pairs = fleet("p1", "p2")
    plan = plan_rollout(load_changes(tmp_path, pairs), pairs, maintenance_run_id="m", canary_pairs=0,
                        window_closes_at=datetime.now(UTC) + timedelta(hours=1), concurrency=10,
                        retry_failed=False, read=lambda p: ([], ""))
    assert plan["canary"] == [] and [len(lane) for lane in plan["rest"]] == [1, 1]


def test_expected_duration_comes_from_the_pairs_earlier_runs():
    assert expected_seconds([]) == 300
    assert expected_seconds([row("a", "applied", "x", seconds=10)]) == 60  # at least a minute
    assert expected_seconds([row("a", "applied", "x", seconds=200), row("b", "failed", "x", seconds=900)]) == 300


def test_a_fleet_with_a_pair_listed_twice_or_bad_roles_is_refused():
    (pair,) = [{"name": "p1", "replication_name": "REP1",
                "servers": [{"name": "a", "conn_id": "c_a", "role": "active"},
                            {"name": "b", "conn_id": "c_b", "role": "standby"}]}]
    with pytest.raises(InvalidPairsError, match="listed twice"):
        validate_pairs([pair, pair])
    with pytest.raises(InvalidPairsError, match="neither active/standby"):
        validate_pairs([{**pair, "servers": [{**pair["servers"][0], "role": "active1"}, pair["servers"][1]]}])
    with pytest.raises(InvalidPairsError, match="runner"):
        validate_pairs([{**pair, "runner": "ssh"}])
