"""
# Tear down an Altibase instance made by `altibase_provision`

The undo of `altibase_provision` (a separate DAG so that no field of the provisioning form can turn a
run into a deletion): stop and drop the replication, then delete the workloads and Services.
**Persistent data is kept** unless `delete_data` is ticked: PersistentVolumeClaims stay (and NFS
directories are never touched), so provisioning again with the same name finds its data; in the
simulator the servers' files stay. An emptyDir's data ends with its pod either way.

| task | what it does |
|---|---|
| **plan** | reads what is there: each node's replication (through its Connection) and the instance's objects (by its labels, kubernetes) or servers (simulator); shows the SQL and what would be deleted. Refuses when a node does not answer while its objects still exist: deleting them would leave its replication behind in the kept data |
| **stop_if_dry_run** | ends the run here when `dry_run` is set |
| **stop_replication** | `ALTER REPLICATION rep STOP` on every node that has it (not started counts as done) |
| **drop_replication** | `DROP REPLICATION rep` on every node that has it (already gone counts as done) |
| **delete_instance** | deletes the StatefulSet/Deployments/Pods and Services found by the instance's labels (whatever workload or topology made them), and the claims only with `delete_data`; simulator: removes the servers |
| **wait_until_deleted** | reschedules until nothing of the instance is left, pods included |
| **leave_fleet** | takes the pair (named after the instance) out of the fleet's file (`ALTIBASE_PAIRS_FILE`), where provisioning put it |

Re-running after a success (or after a failure, once its cause is fixed) finishes the job: what is
already gone is skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, task

from altibase_ops.pairs import remove_from_fleet
from altibase_ops.provision.inspect import plan_teardown
from altibase_ops.provision.operators import (
    DeleteInstanceOperator,
    InstanceDeletedSensor,
    ProvisionIsqlOperator,
)
from altibase_ops.provision.plan import step_kwargs
from altibase_ops.provision.request import (
    ProvisionError,
    ProvisionRequest,
    connection_problems,
    teardown_params,
)
from altibase_ops.sql.steps import StepKind

log = logging.getLogger(__name__)

with DAG(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["altibase", "kubernetes", "provisioning", "replication"],
    # No blind retries: a person reads why a deletion step failed before it runs again.
    default_args={"owner": "dba", "retries": 0},
    doc_md=__doc__,
    params={
        **teardown_params(),
        # Default true: a trigger with the defaults only shows what would be stopped and deleted.
        "dry_run": Param(True, type="boolean", title="Dry run (show what would be deleted only)"),
    },
) as dag:

    @task
    def plan(**context) -> list[dict]:
        request = ProvisionRequest.from_params(context["params"])
        if problems := connection_problems(request):
            raise ProvisionError("cannot tear down; nothing was changed:\n  - " + "\n  - ".join(problems))
        found = plan_teardown(request, log)
        context["ti"].xcom_push(key="plan", value={"objects": found["objects"], "text": found["text"]})
        return found["nodes"]  # the nodes that still have the replication: what the SQL steps map over

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def stop_if_dry_run(**context) -> bool:
        if context["params"]["dry_run"]:
            log.info("dry_run is set: the plan above is what a real run would do; nothing was changed")
            return False
        return True

    planned = plan()
    stopped = ProvisionIsqlOperator.partial(
        task_id="stop_replication", step_kind=StepKind.REPLICATION_STOP, map_index_template="{{ task.node }}",
    ).expand_kwargs(planned.map(step_kwargs("stop_replication")))
    dropped = ProvisionIsqlOperator.partial(
        task_id="drop_replication", step_kind=StepKind.REPLICATION_DROP, map_index_template="{{ task.node }}",
    ).expand_kwargs(planned.map(step_kwargs("drop_replication")))
    # Runs when the SQL steps had nothing to do (mapped over no node: skipped), not when one failed.
    deleted = DeleteInstanceOperator(task_id="delete_instance", trigger_rule=TriggerRule.NONE_FAILED)

    planned >> stop_if_dry_run() >> stopped >> dropped >> deleted
    @task
    def leave_fleet(**context) -> str:  # a pair that is gone would only turn the health DAG red
        said = remove_from_fleet(context["params"]["name"])
        log.info("%s", said)
        return said

    deleted >> InstanceDeletedSensor(task_id="wait_until_deleted") >> leave_fleet()
