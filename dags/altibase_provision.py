"""
# Provision Altibase: pods, volumes, Services and a replicated pair proven to work

The seed's page of YAML and `kubectl` (`docs/procedures.md`, P1–P7) as one parameterised, repeatable
run. With `dry_run` (the default) it renders and shows everything it would send, and stops.

| task | step | what it does |
|---|---|---|
| **plan** | — | validates the params and each node's Connection (host must be that node's Service); shows the manifests, the P6 SQL per node and the P7 proof per direction |
| **stop_if_dry_run** | — | ends the run here when `dry_run` is set |
| **apply** | P1–P5 | kubernetes: SYS password Secret checked, then every object read and created, left alone or patched (Deployments / StatefulSet + headless Service / bare Pods, one Service per node with `service-port` and `replication-port`, emptyDir / NFS / PVC volumes at `…/dbs` and `…/logs`, probes, resources). simulator: one server per node, registered under its Service names |
| **wait_until_ready** | — | reschedules until every pod is Ready and rolled out (fails at once on a bad image, missing Secret, crash loop) and each node accepts a login through its Connection |
| **inspect** | — | reads every node first; refuses a table or replication that exists with another definition (other columns, other peer, other tables) |
| **p6_create_objects** | P6 | per node, one iSQL script: `CREATE TABLE …`, then (pair) `CREATE REPLICATION rep WITH '<the other node's Service>', 20301 FROM sys.t TO sys.t` (existing ones count as done) |
| **p6_start_replication** | P6 | `ALTER REPLICATION rep START` on every sending node, once both have the object (already started counts as done): node1 only with `replication_roles = active_standby` (the default: the pair the DDL DAG expects), both with `active_active` |
| **p7_proof** | P7 | per sending node: insert a row there, wait for gap 0 there, wait until the peer shows it, remove it (a teardown task: it runs whenever the insert succeeded, and only then) |
| **verify** | — | tables on every node, the replication started on the senders only, no proof row left anywhere; logs the pair in the DDL DAG's terms (servers with roles, replication) and adds it, named after the instance, to the fleet's file (`ALTIBASE_PAIRS_FILE`): the DDL and health DAGs use it without a restart |

Params: `name`, `namespace`, `image` (pinned), `topology` (single | pair), `workload` (deployment |
statefulset | pod), `storage` (pvc with class and size, the default | nfs with server and paths | emptydir:
tests and demos only, the plan warns what a pod deletion loses), `fs_group` (the image's group, the pods'
fsGroup), `client_services` (a Service per node for the application, for the DDL DAG's service control), ports,
the Secret with the SYS password, `tables` (default the seed's `t1 (c1 INTEGER PRIMARY KEY, c2 INTEGER)` and
a `t2` like it: the DDL DAG never has to take a replication's last table out), `replication_roles`
(`active_standby`, the default: node1 sends, node2 receives; `active_active`: both send),
`replication_name` (default `rep1`), `target` (kubernetes | simulator), the iSQL `runner`
(local | kubernetes), one `altibase` Connection per node, the Kubernetes connection, waits, `dry_run`.

Reaching the servers: one `altibase` Connection per node whose host is that node's Service name
(`altibase-svc-node1`, or `….<namespace>.svc`) — `plan` refuses one that points elsewhere. Left empty,
`altibase_conn_ids` names them after the Services: `<name>_svc_node1`, `<name>_svc_node2` (`make ui`
creates those of the default instance). With
`target = simulator` the servers are registered under those names and the worker resolves them
through the simulator's registry (`ALTIBASE_SIM_STATE_DIR`), so the same Connections and SQL serve
both targets. Readiness, the read-first step, the sensors and P7 connect from the worker; the
`runner` decides only where the iSQL steps run.

Re-running with the same params succeeds and changes nothing: objects are read before they are
created or patched, and each SQL step accepts only its own "already done" code.

**Teardown is a second DAG, `altibase_teardown`**, not a mode of this one: it is the only
destructive operation, so it gets its own trigger form (no field here can turn a provisioning run
into a deletion), its own run history and can get its own access rights; and each graph shows only
its own steps. It stops and drops the replication and deletes the workloads and Services, keeping
persistent data unless `delete_data` is ticked.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, task, task_group

from altibase_ops.provision.inspect import inspect_servers, verify_provisioned
from altibase_ops.provision.operators import (
    ApplyInstanceOperator,
    InstanceReadySensor,
    ProofGapSensor,
    ProofRowOperator,
    ProofRowSensor,
    ProvisionIsqlOperator,
)
from altibase_ops.provision.plan import plan_provisioning, proof_kwargs, step_kwargs
from altibase_ops.provision.request import (
    ProvisionError,
    ProvisionRequest,
    connection_problems,
    provision_params,
)
from altibase_ops.sql.steps import StepKind

log = logging.getLogger(__name__)

with DAG(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # Two runs on one instance would race each other's creates and proof rows.
    max_active_runs=1,
    tags=["altibase", "kubernetes", "provisioning", "replication"],
    # No blind retries: every step is re-runnable, so a person clears a failed one after reading why.
    default_args={"owner": "dba", "retries": 0},
    doc_md=__doc__,
    params={
        **provision_params(),
        # Default true: a trigger with the defaults shows the manifests and the SQL and changes
        # nothing; creating objects in a cluster needs a person to untick it on purpose.
        "dry_run": Param(True, type="boolean", title="Dry run (show manifests and SQL only)"),
    },
) as dag:

    @task
    def plan(**context) -> list[dict]:
        request = ProvisionRequest.from_params(context["params"])
        if problems := connection_problems(request):
            raise ProvisionError("cannot provision; nothing was changed:\n  - " + "\n  - ".join(problems))
        rendered = plan_provisioning(request)
        log.info("%s", rendered["text"])
        for warning in rendered["warnings"]:  # emptyDir on a cluster: said again, as a warning
            log.warning("%s", warning)
        context["ti"].xcom_push(key="plan", value={"manifests": rendered["manifests"], "text": rendered["text"]})
        return rendered["nodes"]  # what the P6 steps and the P7 proof map over

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def stop_if_dry_run(**context) -> bool:
        if context["params"]["dry_run"]:
            log.info("dry_run is set: the plan above is what a real run would apply and send; nothing was changed")
            return False
        return True

    @task
    def inspect(**context) -> dict:
        return inspect_servers(ProvisionRequest.from_params(context["params"]), log)

    @task_group(group_id="p7_proof")
    def p7_proof(origin_conn_id, peer_conn_id, insert, select, delete):
        # NONE_FAILED: in Active-Standby the standby's START is skipped (it does not send); the active's proof
        # still runs (a node without a proof row skips itself)
        inserted = ProofRowOperator(task_id="insert_proof_row", altibase_conn_id=origin_conn_id, sql=insert,
                                    trigger_rule=TriggerRule.NONE_FAILED)
        sent = ProofGapSensor(task_id="gap_zero_on_origin", altibase_conn_id=origin_conn_id,
                              replication_name="{{ params.replication_name }}")
        arrived = ProofRowSensor(task_id="read_on_peer", altibase_conn_id=peer_conn_id, sql=select)
        removed = ProofRowOperator(task_id="remove_proof_row", altibase_conn_id=origin_conn_id, sql=delete)
        # The removal is the insert's teardown: it runs whenever this run inserted the row (proof passed
        # or not), and never when the insert failed, so a row that was already there is left alone.
        inserted >> sent >> arrived >> removed.as_teardown(setups=inserted)

    @task(trigger_rule=TriggerRule.NONE_FAILED)  # a single server has no P7: its skip is not a failure
    def verify(**context) -> dict:
        params = context["params"]
        return verify_provisioned(ProvisionRequest.from_params(context["params"]), log, timeout=float(params["proof_timeout_seconds"]),
                                  interval=float(params["poke_interval_seconds"]))

    planned = plan()
    applied = ApplyInstanceOperator(task_id="apply")
    ready = InstanceReadySensor(task_id="wait_until_ready")
    inspected = inspect()

    def p6(step: str, step_kind: StepKind):
        return ProvisionIsqlOperator.partial(
            task_id=f"p6_{step}", step_kind=step_kind, map_index_template="{{ task.node }}",
        ).expand_kwargs(planned.map(step_kwargs(step)))

    created = p6("create_objects", StepKind.PROVISION_CREATE)
    started = p6("start_replication", StepKind.REPLICATION_START)
    proven = p7_proof.expand_kwargs(planned.map(proof_kwargs))
    verified = verify()

    planned >> stop_if_dry_run() >> applied >> ready >> inspected >> created >> started >> proven >> verified
    # A group's teardown is not one of its leaves: verify waits for the proof rows' removal explicitly.
    dag.get_task("p7_proof.remove_proof_row") >> verified
