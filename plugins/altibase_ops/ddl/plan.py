"""The dry-run plan: every step of the chosen variant with the exact statements it would send."""

from __future__ import annotations

from dataclasses import dataclass, field

from altibase_ops.ddl.procedure import Step, procedure
from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.steps import step_routes, step_script
from altibase_ops.service.operator import describe_routes
from altibase_ops.sql.steps import split_statements


@dataclass
class PlannedStep:
    stage: int
    step_id: str
    task_id: str
    title: str
    server: str
    action: str
    statements: list[str] = field(default_factory=list)


def render_step(step: Step, request: DdlRequest) -> list[str]:
    """The statements a step sends (checks are described, not sent)."""
    if step.action in ("isql", "ddl"):
        return [statement + ";" for statement in split_statements(step_script(step, request))]
    if step.action == "gap":
        return [f"-- wait until V$REPGAP shows {request.replication_name} with REP_GAP = 0 "
                f"(at most {request.gap_timeout_seconds}s)"]
    if step.action == "sessions":
        return [f"-- wait until SELECT COUNT(*) FROM V$SESSION WHERE ID <> SESSION_ID() is 0 "
                f"(at most {request.sessions_timeout_seconds}s)"]
    if step.action == "sql_apply":
        return [f"-- confirm V$REPRECEIVER.SQL_APPLY_TABLE_COUNT = 0 for {request.replication_name}"]
    if step.action == "verify":
        return [f"-- FLUSH WAIT on every running sender, then the row count and the sums of the exact-numeric "
                f"columns of {', '.join(request.tables)} on every server: must be equal"]
    return render_service_step(step, request)


def render_service_step(step: Step, request: DdlRequest) -> list[str]:
    """The traffic model after a service step, and in kubernetes mode what each Service selects."""
    control = request.service_control
    routes = step_routes(step, request)
    lines = [f"-- service {step.service} ({control['mode']}): {describe_routes(routes)}"]
    if control["mode"] != "kubernetes":
        return lines
    for server, target in routes.items():
        service = (control.get("services") or {}).get(server)
        if service:
            pods = ("no pod" if target is None else "its own pods, as before the run" if target == server else
                    f"{target}'s pods {(control.get('server_selectors') or {}).get(target) or '(its Service selector)'}")
            lines.append(f"-- Service {service} selects {pods}; then wait for its EndpointSlices to show it")
        deployment = (control.get("deployments") or {}).get(server)
        if deployment:
            lines.append(f"-- Deployment {deployment}: {'0 replicas' if target is None else 'replicas as before the run'}")
    return lines


def plan_ddl_run(request: DdlRequest) -> list[PlannedStep]:
    """Every step with its statements, under the task (block) that runs it and its stage number."""
    plan = []
    for number, stage in enumerate(procedure(request.topology, request.service_mode), start=1):
        for block in stage:
            for step in block.steps:
                plan.append(PlannedStep(number, step.step_id, f"{request.variant}.{block.task_id}", step.title,
                                        request.server(step.role).name, step.action, render_step(step, request)))
    return plan


def format_ddl_plan(request: DdlRequest, plan: list[PlannedStep]) -> str:
    # the pair and its Connections first: two runs on two pairs must not look alike
    conn_ids = {s.name: s.conn_id for s in request.servers}
    lines = [f"Plan for {request.describe_pair()}",
             f"{request.variant} on replication {request.replication_name}, tables {', '.join(request.tables)}", ""]
    for item in plan:
        lines.append(f"[stage {item.stage:>2}] {item.step_id:<8} {item.title} — {item.server} "
                     f"[{conn_ids[item.server]}] ({item.task_id})")
        lines += [f"              {s}" for s in item.statements]
    return "\n".join(lines)
