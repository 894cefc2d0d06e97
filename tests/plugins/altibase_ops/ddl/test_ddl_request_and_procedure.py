"""The procedure model and the parameter gate of altibase_replicated_ddl."""

from __future__ import annotations

import copy

import pytest

from altibase_ops.ddl.plan import plan_ddl_run
from altibase_ops.ddl.procedure import VARIANTS, admin_window_levels, procedure, steps_in_order
from altibase_ops.ddl.request import DdlRequest, InvalidRequestError, validate_request
from altibase_ops.ddl.statements import Column, is_applied, parse_ddl
from altibase_ops.state.catalog import TableState

GOOD = {
    "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active"},
                {"name": "node2", "conn_id": "altibase_node2", "role": "standby"}],
    "topology": "active_standby", "service_mode": "can_stop", "replication_name": "rep1",
    "tables": ["SYS.T1"], "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"],
    "service_control": {"mode": "manual"}, "dry_run": False,
}


def with_(path: str, value) -> dict:
    params = copy.deepcopy(GOOD)
    target = params
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return params


@pytest.mark.parametrize("path, value, message", [
    ("topology", "ring", "topology"),
    ("service_mode", "yolo", "service_mode"),
    ("servers", [GOOD["servers"][0]], "servers"),
    ("servers.1.role", "active", "roles"),
    ("servers.1.role", "active2", "roles"),
    ("servers.0.name", "node1; rm -rf /", "servers[0].name"),
    ("servers.1.conn_id", "altibase_node1", "different"),
    ("replication_name", "rep1; DROP", "replication_name"),
    ("replication_name", "1rep", "replication_name"),
    ("tables", ["T1"], "tables[0]"),
    ("tables", ["SYS.T1", "SYS.T1"], "twice"),
    ("tables", ["SYS.T-1"], "tables[0]"),
    ("ddl", [], "ddl"),
    ("ddl", ["DELETE FROM SYS.T1"], "DML"),
    ("ddl", ["INSERT INTO SYS.T1 VALUES (1, 2)"], "DML"),
    ("ddl", ["DROP TABLE SYS.T1"], "DROP TABLE"),
    ("ddl", ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER); DROP TABLE SYS.T2"], "one statement"),
    ("ddl", ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER) -- sneaky"], "comments"),
    ("ddl", ["ALTER TABLE SYS.T9 ADD COLUMN (C3 INTEGER)"], "not one of the listed tables"),
    ("ddl", ["ALTER TABLE T1 RENAME TO T2"], "not an accepted DDL form"),
    ("ddl", ["ALTER TABLE SYS.T1 ADD COLUMN C3 INTEGER"], "not an accepted DDL form"),
    ("service_control", {"mode": "telepathy"}, "service_control.mode"),
    ("service_control", {"mode": "kubernetes"}, "namespace"),
    ("service_control", {"mode": "kubernetes", "namespace": "db", "services": {"node9": "app"}},
     "'node9' is not a server of this run"),
    ("service_control", {"mode": "kubernetes", "namespace": "db", "services": {"node1": "App_1"}},
     "not a Service name"),
    ("service_control", {"mode": "kubernetes", "namespace": "db", "services": {"node1": "app"},
                         "server_selectors": {"node2": {"app": "has space"}}}, "server_selectors.node2"),
    ("service_control", {"mode": "kubernetes", "namespace": "db", "services": {"node1": "app"},
                         "endpoint_timeout_seconds": 0}, "endpoint_timeout_seconds"),
    ("gap_timeout_seconds", 0, "gap_timeout_seconds"),
    ("dry_run", "no", "dry_run"),
])
def test_each_kind_of_bad_parameter_is_refused_with_its_name(path, value, message):
    with pytest.raises(InvalidRequestError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        validate_request(with_(path, value))
    assert str(info.value).split(":")[0].split("[")[0].split(".")[0] in {*GOOD, "gap_timeout_seconds", "ddl",
                                                                        "servers", "tables"}


def test_every_task_rebuilds_the_same_request_from_the_params():
    request = DdlRequest.from_params(GOOD)
    assert request.replication_name == "REP1"
    assert DdlRequest.from_params(dict(GOOD)) == request  # pure: the same params, the same request
    assert GOOD == copy.deepcopy(GOOD) and DdlRequest.from_params(GOOD) == request  # and params untouched


def test_the_can_stop_stages_follow_the_manual():
    order = [s.step_id for s in steps_in_order("active_standby", "can_stop")]
    assert order == ["O1", "O1", "O2", "O3a", "O3b", "O3c", "O4", "O5", "O6", "O4", "O5", "O6", "O7", "O8",
                     "O9", "O9"]
    stages = procedure("active_standby", "can_stop")
    roles = {(s.step_id, s.name): s.role for s in steps_in_order("active_standby", "can_stop")}
    assert roles[("O2", "admin_mode_on")] == "active"  # the standby has no service: no admin mode
    assert [[b.task_id for b in stage] for stage in stages] == [
        ["O1_service_stop_on_active"], ["O1_O9_change_tables_on_both"], ["O9_service_resume_on_active"]]
    # each server's O4-O6 side by side, after the active's sender stopped, before it starts again
    change = stages[1][0]
    assert [[[s.step_id for s in lane] for lane in segment] for segment in change.segments] == [
        [["O1"]], [["O2", "O3a", "O3b", "O3c"]], [["O4", "O5", "O6"], ["O4", "O5", "O6"]], [["O7", "O8"]], [["O9"]]]
    active_active = procedure("active_active", "can_stop")[1][0]
    assert [{lane[0].role for lane in segment} for segment in active_active.segments[2:5]] == \
        [{"active1", "active2"}] * 3  # O2-O3c, O4-O6, O7-O8: on both, side by side


def happens_before(topology, mode):
    """(step id, role) -> its position; ``a < b`` when a ends before b starts in every run: an earlier
    stage, an earlier segment of the same block, or earlier in the same lane."""
    position = {}
    for n, stage in enumerate(procedure(topology, mode)):
        for block in stage:
            for k, segment in enumerate(block.segments):
                for lane_no, lane in enumerate(segment):
                    for i, step in enumerate(lane):
                        position[(step.step_id, step.role)] = (n, k, lane_no, i)

    def before(a, b):
        pa, pb = position[a], position[b]
        return pa[:2] < pb[:2] or (pa[:3] == pb[:3] and pa[3] < pb[3])
    return position, before


def test_the_rolling_turns_set_sql_apply_before_start_on_both_servers():
    for topology in ("active_active", "active_standby"):
        position, before = happens_before(topology, "rolling")
        ids = [s.step_id for s in steps_in_order(topology, "rolling")]
        for turn in ("t1_", "t2_"):
            r7 = [key for key in position if key[0] == f"{turn}R7"]
            r8 = [key for key in position if key[0] == f"{turn}R8"]
            assert len(r7) == 2 and r8 and all(before(a, b) for a in r7 for b in r8)  # SQL apply on both first
            r3 = [key for key in position if key[0] == f"{turn}R3"]
            r4 = next(key for key in position if key[0] == f"{turn}R4")
            assert len(r3) == 2 and all(before(a, r4) for a in r3)  # both senders stopped first
            r1d = next(key for key in position if key[0] == f"{turn}R1d")
            assert all(before(r1d, key) for key in position if key[0] in (f"{turn}R2", *(k[0] for k in r3)))
            assert ids.index(f"{turn}R4") < ids.index(f"{turn}R5") < ids.index(f"{turn}R6")
        assert ids.index("R11") < ids.index("R12")


def test_admin_mode_lasts_at_most_three_sequential_task_levels_in_every_variant():
    for topology, mode in VARIANTS:
        # one level: each admin-mode window is a single task (ddl/procedure.py, Block)
        assert admin_window_levels(topology, mode) == 1, (topology, mode)
    # and every admin mode on has its off in the same variant, on the same server
    for topology, mode in VARIANTS:
        on = [s.role for s in steps_in_order(topology, mode) if s.name == "admin_mode_on"]
        off = [s.role for s in steps_in_order(topology, mode) if s.name == "admin_mode_off"]
        assert sorted(on) == sorted(off) and on


def test_every_variant_has_unique_task_ids_and_a_plan():
    for topology, mode in VARIANTS:
        task_ids = [b.task_id for stage in procedure(topology, mode) for b in stage]
        assert len(task_ids) == len(set(task_ids)), (topology, mode)
        step_ids = [s.task_id for s in steps_in_order(topology, mode)]
        assert len(step_ids) == len(set(step_ids)), (topology, mode)  # the restore matrix names steps so
        for stage in procedure(topology, mode):
            for block in stage:
                for segment in block.segments:
                    # a lane runs on one server; the lanes of a segment on different servers
                    assert all(len({s.role for s in lane}) == 1 for lane in segment), block.task_id
                    assert len({lane[0].role for lane in segment}) == len(segment), block.task_id
    assert sum(len(stage) for t, m in VARIANTS for stage in procedure(t, m)) <= 50  # a readable DAG
    request = validate_request(GOOD)
    plan = plan_ddl_run(request)
    assert [p.statements for p in plan if p.step_id == "O5"] == [["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER);"]] * 2


def test_rolling_needs_a_pod_selector_for_every_server_traffic_can_move_onto():
    control = {"mode": "kubernetes", "namespace": "db", "services": {"node1": "app-node1"}}
    params = {**with_("service_mode", "rolling"), "service_control": control}
    with pytest.raises(InvalidRequestError, match="server_selectors.node2: needed to move traffic onto node2"):
        validate_request(params)
    control["server_selectors"] = {"node2": {"altibase.io/node": "node2"}}
    validate_request(params)


def test_the_plan_shows_where_each_services_traffic_goes_at_every_service_step():
    control = {"mode": "kubernetes", "namespace": "db", "services": {"node1": "app-node1", "node2": "app-node2"},
               "deployments": {"node1": "shop-node1"}}
    request = validate_request({**GOOD, "topology": "active_active", "service_mode": "rolling",
                                "servers": [{"name": "node1", "conn_id": "altibase_node1", "role": "active1"},
                                            {"name": "node2", "conn_id": "altibase_node2", "role": "active2"}],
                                "service_control": control})
    service_steps = {p.step_id: p.statements for p in plan_ddl_run(request) if p.action == "service"}
    assert service_steps["t1_R1c"][0].endswith("node1's application → node2; node2's application → node2")
    # turn 2: node1's Service comes back to node1 too, before node2 goes into admin mode
    assert service_steps["t2_R1c"][1:3] == [
        "-- Service app-node2 selects node1's pods (its Service selector); then wait for its EndpointSlices to show it",
        "-- Service app-node1 selects its own pods, as before the run; then wait for its EndpointSlices to show it"]
    assert "-- Deployment shop-node1: replicas as before the run" in service_steps["R13"]


@pytest.mark.parametrize("text, state, applied", [
    ("ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)", {"C1", "C2"}, False),
    ("ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)", {"C1", "C2", "C3"}, True),
    ("ALTER TABLE SYS.T1 DROP COLUMN C2", {"C1", "C2"}, False),
    ("ALTER TABLE SYS.T1 DROP COLUMN C2", {"C1"}, True),
    ("TRUNCATE TABLE SYS.T1", {"C1"}, None),
])
def test_already_applied_is_read_from_the_definition(text, state, applied):
    table = TableState({c: {"DATA_TYPE": 4, "PRECISION": 0, "SCALE": 0, "IS_NULLABLE": "T", "COLUMN_ORDER": i}
                        for i, c in enumerate(sorted(state))}, set())
    assert is_applied(parse_ddl(text), table) is applied


def test_modify_column_is_applied_only_when_the_type_matches():
    stmt = parse_ddl("ALTER TABLE SYS.T1 MODIFY COLUMN (C2 BIGINT NOT NULL)")
    assert stmt.columns == (Column("C2", "BIGINT", None, None, True),)
    base = {"PRECISION": 0, "SCALE": 0, "COLUMN_ORDER": 1}
    assert not is_applied(stmt, TableState({"C2": {**base, "DATA_TYPE": 4, "IS_NULLABLE": "T"}}, set()))
    assert is_applied(stmt, TableState({"C2": {**base, "DATA_TYPE": -5, "IS_NULLABLE": "F"}}, set()))


# ---------------------------------------------------------------------------- validation gaps (issue 10)
def _params(**changes):
    base = {"servers": [{"name": "node1", "conn_id": "a1", "role": "active"},
                        {"name": "node2", "conn_id": "a2", "role": "standby"}],
            "topology": "active_standby", "service_mode": "can_stop", "replication_name": "REP1",
            "tables": ["SYS.T1"], "ddl": ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)"],
            "service_control": {"mode": "manual"}}
    return {**base, **changes}


@pytest.mark.parametrize("look_alike", ["\u017f", "\u212a", "\u0131"])  # long s, Kelvin sign, dotless i
def test_unicode_look_alikes_in_ddl_are_refused_before_any_server_is_touched(look_alike):
    text = f"ALTER TABLE SYS.T1 ADD COLUMN (C{look_alike}3 INTEGER)"
    with pytest.raises(InvalidRequestError, match=r"non-ASCII characters outside a string literal \(U\+"):
        DdlRequest.from_params(_params(ddl=[text]))
    with pytest.raises(InvalidRequestError, match="non-ASCII"):
        DdlRequest.from_params(_params(ddl=[f"TRUNCATE TABLE {look_alike}YS.T1"]))


def test_a_string_literal_may_hold_any_character_and_a_semicolon_and_the_plan_keeps_it_whole():
    from altibase_ops.ddl.plan import plan_ddl_run

    text = "ALTER TABLE SYS.T1 ADD COLUMN (C3 VARCHAR(20) DEFAULT 'a;b 한글')"
    request = DdlRequest.from_params(_params(ddl=[text]))
    ddl_steps = [p for p in plan_ddl_run(request) if p.action == "ddl"]
    assert ddl_steps and all(p.statements == [text + ";"] for p in ddl_steps)


def test_a_huge_ddl_entry_is_refused_and_quoted_short():
    huge = "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)" + " " * 100_000
    with pytest.raises(InvalidRequestError) as info:
        DdlRequest.from_params(_params(ddl=[huge]))
    assert "longer than 4000 characters" in str(info.value) and len(str(info.value)) < 400
    with pytest.raises(InvalidRequestError) as info:
        DdlRequest.from_params(_params(ddl=["ALTER TABLE SYS.T1 ADD COLUMN (" + "X" * 3000 + ")"]))
    assert len(str(info.value)) < 700  # the statement is quoted once, cut


def test_a_pair_by_name_says_where_and_its_service_control_applies_when_the_form_gives_none(monkeypatch):
    import json

    monkeypatch.setenv("ALTIBASE_PAIRS", json.dumps([
        {"name": "billing", "replication_name": "REP_B", "service_control": {"mode": "simulator"},
         "servers": [{"name": "b1", "conn_id": "altibase_b1", "role": "active1"},
                     {"name": "b2", "conn_id": "altibase_b2", "role": "active2"}]}]))
    request = validate_request({**GOOD, "pair": "billing", "service_control": {}})
    assert [(s.name, s.conn_id, s.role) for s in request.servers] == [("b1", "altibase_b1", "active1"),
                                                                      ("b2", "altibase_b2", "active2")]
    assert (request.topology, request.replication_name, request.service_control) == (
        "active_active", "REP_B", {"mode": "simulator"})
    assert validate_request({**GOOD, "pair": "billing"}).service_control == {"mode": "manual"}  # the form's wins
    assert validate_request({**GOOD, "service_control": {}}).service_control == {"mode": "manual"}  # no pair
    with pytest.raises(InvalidRequestError, match=r"pair: 'orders' is not a configured pair .*\['billing'\]"):
        validate_request({**GOOD, "pair": "orders"})


def test_service_control_is_a_mode_and_only_that_modes_fields():
    assert validate_request({**GOOD, "service_control": {}, "service_control_mode": "simulator"}).service_control == {
        "mode": "simulator"}
    k8s = validate_request({**GOOD, "service_control": {}, "service_control_mode": "kubernetes",
                            "kubernetes_namespace": "shop", "kubernetes_services": {"node1": "app-db"},
                            "simulator_state_dir": "/ignored"})
    assert k8s.service_control == {"mode": "kubernetes", "namespace": "shop", "services": {"node1": "app-db"}}
    with pytest.raises(InvalidRequestError, match="namespace: required for mode 'kubernetes'"):
        validate_request({**GOOD, "service_control": {}, "service_control_mode": "kubernetes",
                          "kubernetes_services": {"node1": "app-db"}})
    # the JSON object, when given, says it all (the maintenance DAG and the API give it)
    assert validate_request({**GOOD, "service_control_mode": "simulator"}).service_control == {"mode": "manual"}
