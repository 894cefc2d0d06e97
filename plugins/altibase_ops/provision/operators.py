"""The tasks of ``altibase_provision`` and ``altibase_teardown``: apply, readiness, P6 iSQL, P7 proof,
deletion. Each derives what it needs from the run's params (``ProvisionRequest.from_params``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from altibase_ops import kube_access
from altibase_ops.exceptions import AltibaseServerError
from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.operators.isql import IsqlOperator
from altibase_ops.provision.inspect import instance_remaining
from altibase_ops.provision.kube_apply import (
    apply_manifests,
    check_password_secret,
    check_pods_ready,
    kubernetes_apis,
    teardown,
)
from altibase_ops.provision.manifests import render_manifests
from altibase_ops.provision.request import CLIENT_INFO, ProvisionError, ProvisionRequest
from altibase_ops.provision.simulator_target import (
    simulator_apply,
    simulator_not_ready,
    simulator_teardown,
)
from altibase_ops.sensors.altibase import ReplicationGapSensor, TimeoutsFromParams
from altibase_ops.sql.steps import StepError, StepKind, run_script

# Login errors that waiting cannot fix: a readiness wait fails at once on them.
_LOGIN_REFUSED = frozenset({"31010", "4102E"})  # User not found / Invalid password



class ApplyInstanceOperator(BaseOperator):
    """P1–P5: create or update the instance's objects (kubernetes) or its servers (simulator).

    Kubernetes: the SYS password Secret is checked first (names only), then every manifest is read
    and created, left alone or patched (``kube_apply.apply_manifests``). Returns one line per object.
    """

    ui_color = "#e4ecd4"

    def execute(self, context: Context) -> list[str]:
        request = ProvisionRequest.from_params(context["params"])
        spec = request.spec
        if request.target == "kubernetes":
            manifests = render_manifests(spec)
            # every permission of the run (the iSQL pods' too), before the first object is created
            needs = kube_access.provisioning({m["kind"] for m in manifests}, runner=request.runner)
            if problems := kube_access.access_problems(request.kubernetes_conn_id, {spec.namespace: needs},
                                                        "altibase_provision"):
                raise ProvisionError("cannot provision; nothing was changed:\n  - " + "\n  - ".join(problems))
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            check_password_secret(spec, core=core)
            results = [str(result) for result in apply_manifests(manifests, core=core, apps=apps)]
        else:
            results = simulator_apply(spec)
        for line in results:
            self.log.info("%s", line)
        return results


class DeleteInstanceOperator(BaseOperator):
    """Teardown: delete the workloads and Services (kubernetes, found by the instance's labels) or the
    simulator servers; the claims (simulator: the files) only with ``delete_data``."""

    ui_color = "#f2dcdc"

    def execute(self, context: Context) -> list[str]:
        request = ProvisionRequest.from_params(context["params"])
        spec = request.spec
        if request.target == "kubernetes":
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            results = [str(r) for r in teardown(name=spec.name, namespace=spec.namespace, core=core, apps=apps,
                                                delete_data=request.delete_data)]
        else:
            results = simulator_teardown(spec, delete_data=request.delete_data)
        for line in results or ["nothing of this instance was left"]:
            self.log.info("%s", line)
        return results


class _ParamTimedSensor(TimeoutsFromParams, BaseSensorOperator):
    """A rescheduling sensor whose timeout and poke interval come from the run's params."""

    def __init__(self, **kwargs: Any) -> None:
        # Waits of minutes (pods starting, images pulling) hold no worker slot between pokes.
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)


def login_problem(conn_id: str) -> str | None:
    """None when the server of ``conn_id`` accepts a login; else why not (raises when it never will)."""
    try:
        AltibaseHook(altibase_conn_id=conn_id, client_info=CLIENT_INFO).ping()
    except AltibaseServerError as exc:
        if exc.code in _LOGIN_REFUSED:
            raise ProvisionError(f"{exc}: the Connection's login or password is not the server's") from None
        return str(exc)
    return None


class InstanceReadySensor(_ParamTimedSensor):
    """Wait until every node runs and accepts a login through its Connection (after P1–P5).

    Kubernetes: every node's pod Ready with its workload rolled out (``kube_apply.check_pods_ready``,
    which fails at once on a bad image, a missing Secret or a crash loop). Simulator: every server
    registered and up. Both: a login through each node's Connection, the path P6 and P7 take.
    """

    timeout_param = "ready_timeout_seconds"
    ui_color = "#d9ecf2"

    def poke(self, context: Context) -> bool:
        request = ProvisionRequest.from_params(context["params"])
        spec = request.spec
        if request.target == "kubernetes":
            core, apps = kubernetes_apis(request.kubernetes_conn_id)
            report = check_pods_ready(spec, core=core, apps=apps)
            self.log.info("pods: %s", report)
            if not report.all_ready:
                return False
        elif waiting := simulator_not_ready(spec):
            self.log.info("waiting: %s", "; ".join(waiting))
            return False
        for node, conn_id in request.conn_ids.items():
            if problem := login_problem(conn_id):
                self.log.info("%s: no login yet through %s: %s", node, conn_id, problem)
                return False
        self.log.info("every node is ready and accepts a login: %s", dict(request.conn_ids))
        return True


class InstanceDeletedSensor(_ParamTimedSensor):
    """Teardown: wait until nothing of the instance is left (pods included; claims with ``delete_data``)."""

    timeout_param = "deleted_timeout_seconds"
    ui_color = "#d9ecf2"

    def poke(self, context: Context) -> bool:
        request = ProvisionRequest.from_params(context["params"])
        spec = request.spec
        if left := instance_remaining(request):
            self.log.info("still present: %s", ", ".join(left))
            return False
        self.log.info("nothing of instance %s is left in %s", spec.name, spec.namespace)
        return True


class ProvisionIsqlOperator(IsqlOperator):
    """IsqlOperator for provisioning: the runner and the Secret come from params (templated), the
    login is SYS without SYSDBA (the seed's), and ``node`` labels the mapped instance in the UI."""

    template_fields: Sequence[str] = (*IsqlOperator.template_fields, "runner", "kubernetes_conn_id",
                                      "password_secret_name", "password_secret_key")

    def __init__(self, *, node: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("sysdba", False)
        kwargs.setdefault("runner", "{{ params.runner }}")
        kwargs.setdefault("namespace", "{{ params.namespace }}")
        kwargs.setdefault("image", "{{ params.image }}")
        kwargs.setdefault("kubernetes_conn_id", "{{ params.kubernetes_conn_id }}")
        kwargs.setdefault("password_secret_name", "{{ params.password_secret_name }}")
        kwargs.setdefault("password_secret_key", "{{ params.password_secret_key }}")
        super().__init__(**kwargs)
        self.node = node

    def execute(self, context: Context) -> Any:
        if not self.sql:
            # Mapped over every node; a single server has no replication and no proof.
            raise AirflowSkipException(f"no statement for {self.node} in this step (topology "
                                       f"{context['params'].get('topology')})")
        return super().execute(context)


class ProofRowOperator(BaseOperator):
    """P7: insert (or remove) a proof row on its origin, one statement through the node's Connection.

    The hook, not an iSQL process: the proof's reads are the sensors' anyway, so P7 needs the worker
    to reach the servers whatever the runner; one statement on a short session is all it takes.
    A duplicate key fails: a row already there under a proof key is never claimed (it may be the
    application's), and the removal only runs after this run's own insert.
    """

    template_fields: Sequence[str] = ("altibase_conn_id", "sql")
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#f0e4d4"

    def __init__(self, *, altibase_conn_id: str | None, sql: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.altibase_conn_id = altibase_conn_id
        self.sql = sql

    def execute(self, context: Context) -> int:
        if not self.sql or not self.altibase_conn_id:
            raise AirflowSkipException(f"no proof for topology {context['params'].get('topology')}")
        hook = AltibaseHook(altibase_conn_id=self.altibase_conn_id, client_info=CLIENT_INFO)
        try:
            with hook.session() as session:
                [result] = run_script(session, self.sql, step_kind=StepKind.PROOF_ROW)
        except StepError as exc:
            hint = ""
            if "11058" in exc.codes:
                hint = (" — a row with the proof key is already there (the application's, or left by a run "
                        "whose removal failed); the proof never overwrites it: remove it, or list first a "
                        "table without such a row")
            raise ProvisionError(f"{self.altibase_conn_id}: {exc}{hint}") from None
        self.log.info("%s on %s: %s", result.statement, self.altibase_conn_id, result.summary)
        return result.rowcount


class ProofGapSensor(TimeoutsFromParams, ReplicationGapSensor):
    """P7: the proof row's origin has sent everything (V$REPGAP gap 0; fails at once without a sender)."""

    timeout_param = "proof_timeout_seconds"


class ProofRowSensor(_ParamTimedSensor):
    """P7: wait until the peer shows the proof row (``sql`` selects it by its key)."""

    template_fields: Sequence[str] = ("altibase_conn_id", "sql")
    timeout_param = "proof_timeout_seconds"
    ui_color = "#d9ecf2"

    def __init__(self, *, altibase_conn_id: str, sql: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.altibase_conn_id = altibase_conn_id
        self.sql = sql

    def poke(self, context: Context) -> bool:
        row = AltibaseHook(altibase_conn_id=self.altibase_conn_id, client_info=CLIENT_INFO).get_first(self.sql)
        self.log.info("%s on %s: %s", self.sql, self.altibase_conn_id, row or "no row yet")
        return row is not None


