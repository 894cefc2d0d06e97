"""IsqlOperator: run an iSQL script against one Altibase server and fail on any error it prints.

``sql`` is SQL text or a template file under ``include/sql/`` (``template_ext = (".sql",)``); it
renders with Airflow's Jinja plus the ``ident`` and ``table`` filters of ``sql/templates.py``, so
templates never interpolate a name unchecked::

    ALTER REPLICATION {{ params.replication_name | ident }} STOP;

Runners (same script, same iSQL command line, same output parsing; only the transport differs). The
client starts with ``/NOLOG`` and reads the script on standard input, whose first line logs in
(``CONNECT user/"password" [AS SYSDBA]``, see ``sql/isql.py``): the password is in no argv and no
environment of the client, and iSQL does not echo standard input into the output.

- ``runner="local"``: a subprocess on the worker. The client is ``isql_binary``, or the one the
  Connection's backend names: the real ``isql`` for ``odbc`` (extra ``isql_binary`` or
  ``$ALTIBASE_ISQL_BINARY``; an error when neither is set), ``isql-sim`` for ``simulator``. The script
  (login included) goes through a 0600 file in a private temporary directory.
- ``runner="kubernetes"``: a pod from the Altibase image (pinned tag) that sources the client
  environment and runs ``isql`` against the target's Service. The password comes from a Kubernetes
  Secret into ``$ALTIBASE_PASSWORD`` (the login line is written from it by shell builtins); it is never
  in the pod's command, args or env values.
  The pod is deferrable, streams its logs, and is deleted when done.

Success is read from the output, never from the exit status alone: any ``[ERR-XXXXX : ...]`` fails
the task with its code and message — unless ``step_kind`` lists that code as "already done"
(``sql.steps.ALREADY_DONE``), which makes steps re-runnable. SELECT results are returned (XCom) as
``[{"statement", "columns", "rows": [{column: value-as-text}]}]``.

Use ``pool=altibase_ops.pools.server_pool(server)``: iSQL steps log in as SYSDBA, and a server
allows one SYSDBA session at a time.
"""

from __future__ import annotations

import base64
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import jinja2
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from altibase_ops.backends import backend_module
from altibase_ops.hooks.altibase import DEFAULT_PORT, DEFAULT_USER, AltibaseHook
from altibase_ops.sql.isql import (
    CONNECT_LABEL,
    ENV_HOST,
    ENV_PASSWORD,
    ENV_PORT,
    ENV_USER,
    UnusableLoginError,
    connect_line,
    connect_line_sh,
    isql_command,
    parse_output,
    query_results,
)
from altibase_ops.sql.steps import StepKind, judge_results, split_statements
from altibase_ops.sql.templates import SQL_DIR, SQL_FILTERS
from altibase_ops.sys_password import DEFAULT_SECRET_KEY, DEFAULT_SECRET_NAME

# The seed pulls the untagged image; the iSQL banner in its session shows release 7.1.0.5.1, so this
# pins that release: the client must match the servers' version, and provisioning starts the servers
# from the same image (a re-run must start the same server, not whatever `latest` has become).
ALTIBASE_IMAGE = "altibase/altibase:7.1.0.5.1"
# The client environment (ALTIBASE_HOME, PATH to `is`) in the image's altibase home directory.
ALTIBASE_ENV_FILE = "/home/altibase/set_altibase.env"
POD_SCRIPT_ENV = "ALTIBASE_SCRIPT"
POD_XCOM_PATH = "/airflow/xcom/return.json"  # where KubernetesPodOperator's sidecar reads XCom
RUNNERS = ("local", "kubernetes")
# KubernetesPodOperator's default (120 s) is shorter than a node's first pull of the ~1 GB image.
DEFAULT_POD_STARTUP_TIMEOUT = 600


def client_environment() -> dict[str, str]:
    """The worker's environment for the client, without Airflow's own secrets: Connections and
    Variables given as AIRFLOW_CONN_*/AIRFLOW_VAR_* hold passwords the client must not inherit."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}


def pod_script(*, sysdba: bool, nls_use: str | None, env_file: str, xcom_path: str = POD_XCOM_PATH) -> str:
    """The pod's ``sh -c`` script: log in and run the step with ``isql``, print its output, hand it to
    Airflow as XCom.

    The login is the script's first line, written by shell builtins from the Secret's environment
    variable (``sql.isql.connect_line_sh``), so the password is in no argv. The output goes to the XCom
    file (base64: the image has no JSON tool) so the task parses exactly what iSQL printed. The script
    always exits 0 once it ran: success is judged from the output. (POSIX ``.`` of a missing file would
    exit the shell silently, hence the ``-r`` test.)
    """
    env = shlex.quote(env_file)
    command = isql_command('"$ALTIBASE_HOME/bin/isql"', '"$work/step.sql"', nls_use=nls_use)
    return "\n".join([
        f"if [ -r {env} ]; then . {env}; else echo 'cannot read {env_file}' >&2; fi",
        "work=$(mktemp -d)",
        f'if ( {connect_line_sh(sysdba=sysdba)}\n) > "$work/step.sql" 2> "$work/step.out"; then',
        f'  printf \'%s\\n\' "${POD_SCRIPT_ENV}" >> "$work/step.sql"',
        f"  unset {ENV_PASSWORD}  # in the script now; the client does not inherit it",
        f'  {command} > "$work/step.out" 2>&1',
        "  status=$?",
        "else",
        "  status=$?",
        "fi",
        'cat "$work/step.out"',
        f"mkdir -p {shlex.quote(os.path.dirname(xcom_path))}",
        "printf '{\"exit_status\": %d, \"output_base64\": \"%s\"}\\n' "
        f"\"$status\" \"$(base64 < \"$work/step.out\" | tr -d '\\n')\" > {shlex.quote(xcom_path)}",
        'rm -rf "$work"',
    ])


def decode_pod_result(xcom: dict[str, Any] | None) -> tuple[str, int]:
    """(iSQL output, exit status) from the pod's XCom written by ``pod_script``."""
    if not xcom or "output_base64" not in xcom:
        raise AirflowException(f"the iSQL pod returned no output ({xcom!r})")
    return base64.b64decode(xcom["output_base64"]).decode("utf-8", errors="replace"), int(xcom["exit_status"])


class IsqlOperator(BaseOperator):
    """Run ``sql`` with iSQL on the server of ``altibase_conn_id``; fail on any unaccepted error.

    :param altibase_conn_id: the server (an ``altibase`` Connection: host, port, login, password).
    :param sql: SQL text, or a ``.sql`` template under include/sql (templated).
    :param runner: ``"local"`` (subprocess) or ``"kubernetes"`` (pod).
    :param step_kind: a ``sql.steps.StepKind``; its "already done" codes are accepted, no others.
    :param sysdba: log in with ``-sysdba`` (required once ADMIN_MODE = 1).
    :param isql_binary: local runner: the ``is`` executable (default: the Connection backend's).
    :param isql_timeout: local runner: seconds before the client is killed.
    :param image: kubernetes runner: the Altibase image with the ``is`` client (templated).
    :param namespace: kubernetes runner: the pod's namespace (templated).
    :param target_host: kubernetes runner: the server as the pod sees it (default: the connection's
        host, i.e. the Service name) (templated).
    :param password_secret_name: kubernetes runner: the Secret holding the user's password
        (``sys_password.py``: ``altibase-sys-password`` by default).
    :param password_secret_key: kubernetes runner: its key (``password``).
    :param env_file: kubernetes runner: the client environment file to source.
    :param pod_labels: kubernetes runner: extra pod labels.
    :param container_resources: kubernetes runner: requests/limits (k8s.V1ResourceRequirements).
    :param deferrable: kubernetes runner: wait for the pod in the triggerer.
    :param startup_timeout_seconds: kubernetes runner: how long the pod may take to start (image pull).
    :param pod_kwargs: kubernetes runner: further KubernetesPodOperator arguments.
    """

    template_fields: Sequence[str] = ("sql", "altibase_conn_id", "image", "namespace", "target_host")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#f0e4d4"

    def __init__(
        self,
        *,
        altibase_conn_id: str,
        sql: str,
        runner: str = "local",
        step_kind: StepKind | str | None = None,
        sysdba: bool = True,
        isql_binary: str | None = None,
        isql_timeout: float = 600.0,
        image: str = ALTIBASE_IMAGE,
        namespace: str | None = None,
        kubernetes_conn_id: str | None = "kubernetes_default",
        target_host: str | None = None,
        password_secret_name: str = DEFAULT_SECRET_NAME,
        password_secret_key: str = DEFAULT_SECRET_KEY,
        env_file: str = ALTIBASE_ENV_FILE,
        pod_labels: dict[str, str] | None = None,
        container_resources: Any = None,
        deferrable: bool = True,
        startup_timeout_seconds: int = DEFAULT_POD_STARTUP_TIMEOUT,
        pod_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.altibase_conn_id = altibase_conn_id
        self.sql = sql
        self.runner = runner
        self.step_kind = step_kind
        self.sysdba = sysdba
        self.isql_binary = isql_binary
        self.isql_timeout = isql_timeout
        self.image = image
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.target_host = target_host
        self.password_secret_name = password_secret_name
        self.password_secret_key = password_secret_key
        self.env_file = env_file
        self.pod_labels = pod_labels
        self.container_resources = container_resources
        self.deferrable = deferrable
        self.startup_timeout_seconds = startup_timeout_seconds
        self.pod_kwargs = pod_kwargs
        self._process: subprocess.Popen | None = None
        self._pod_operator: BaseOperator | None = None
        self.results: list[Any] = []

    def get_template_env(self, dag: Any = None) -> jinja2.Environment:
        # The identifier filters, and include/sql as a last-resort search path, so a template file
        # renders the same whether or not the DAG set template_searchpath.
        env = super().get_template_env(dag=dag)
        env.filters.update(SQL_FILTERS)
        fallback = jinja2.FileSystemLoader(str(SQL_DIR))
        env.loader = jinja2.ChoiceLoader([env.loader, fallback]) if env.loader else fallback
        return env

    def execute(self, context: Context) -> Any:
        if self.step_kind is not None:
            StepKind(self.step_kind)  # an unknown kind fails before anything runs
        if not split_statements(self.sql):
            raise AirflowException(f"{self.task_id}: no SQL statement to run")
        self.log.info("iSQL script for %s (%s runner, step kind %s):\n%s",
                      self.altibase_conn_id, self.runner, self.step_kind, self.sql)
        if self.runner == "local":
            output, exit_status = self._run_local()
            return self._judge(output, exit_status)
        if self.runner == "kubernetes":
            self._pod_operator = self.build_pod_operator()
            try:
                xcom = self._pod_operator.execute(context)
            except TaskDeferred as deferral:
                self._defer_to(deferral)
            return self._judge_pod_result(xcom)
        raise AirflowException(f"{self.task_id}: runner {self.runner!r} is not one of {RUNNERS}")

    def execute_pod_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the pod's trigger fired: let the pod operator collect it, then judge."""
        self._pod_operator = self.build_pod_operator()
        try:
            xcom = self._pod_operator.trigger_reentry(context, event)
        except TaskDeferred as deferral:
            self._defer_to(deferral)
        return self._judge_pod_result(xcom)

    def _defer_to(self, deferral: TaskDeferred) -> None:
        # The pod operator deferred to its own method; resume on ours, which delegates back to it.
        self.defer(trigger=deferral.trigger, method_name="execute_pod_complete",
                   kwargs=deferral.kwargs, timeout=deferral.timeout)

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
        if self._pod_operator is not None:
            self._pod_operator.on_kill()

    def _judge(self, output: str, exit_status: int) -> list[dict[str, Any]] | None:
        parsed = parse_output(output)
        statements = [CONNECT_LABEL, *split_statements(self.sql)]  # the login is the script's first line
        try:
            judge_results(parsed, statements, step_kind=self.step_kind, exit_status=exit_status, output=output)
        finally:
            # the statements' own results, for subclasses (audit) whether the step succeeded or not
            self.results = parsed[1:] if len(parsed) == len(statements) else parsed
        results = self.results
        for result in results:
            if result.accepted:
                self.log.info("%s -> %s: already done for step kind %s", result.statement, result.summary,
                              self.step_kind)
            else:
                self.log.info("%s -> %s", result.statement, result.summary)
        return query_results(results)

    # local runner

    def _run_local(self) -> tuple[str, int]:
        conn = AltibaseHook.get_connection(self.altibase_conn_id)
        # the client follows the Connection's backend: isql-sim for the simulator, the real client for
        # a real server (never isql-sim against a real server)
        binary = self.isql_binary or backend_module(conn).isql_binary(conn)
        try:
            login = connect_line(conn.login or DEFAULT_USER, conn.password or "", sysdba=self.sysdba)
        except UnusableLoginError as exc:
            raise AirflowException(f"{self.altibase_conn_id}: {exc}") from None
        # the login (with the password) and the statements, read by iSQL from standard input: an anonymous
        # file (unlinked at once, mode 0600), so no copy of the password outlives the client — not even
        # when the worker is killed mid-step
        with tempfile.TemporaryFile(mode="w+", prefix="altibase-isql-") as script:
            script.write(login + "\n" + (self.sql if self.sql.endswith("\n") else self.sql + "\n"))
            script.flush()
            script.seek(0)
            command = isql_command(shlex.quote(binary), None, nls_use=conn.extra_dejson.get("nls_use"))
            self.log.info("Running: %s", command)
            # server and port only: the user and password are on standard input, in no argv or environment
            env = {**client_environment(), ENV_HOST: conn.host or "127.0.0.1", ENV_PORT: str(conn.port or DEFAULT_PORT)}
            # start_new_session: on_kill and the timeout can stop the client and anything it started
            self._process = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {command}"], env=env, stdin=script, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )
            try:
                output, _ = self._process.communicate(timeout=self.isql_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                output, _ = self._process.communicate()
                self.log.info("iSQL output:\n%s", output)
                raise AirflowException(
                    f"iSQL on {self.altibase_conn_id} did not finish within {self.isql_timeout}s; killed"
                ) from None
            exit_status = self._process.returncode
            self._process = None
        self.log.info("iSQL output (exit status %s):\n%s", exit_status, output)
        return output, exit_status

    # kubernetes runner

    def build_pod_operator(self) -> BaseOperator:
        """The KubernetesPodOperator that runs this step (no cluster contact until it executes)."""
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value
        from airflow.providers.cncf.kubernetes.secret import Secret
        from kubernetes.client import models as k8s

        conn = AltibaseHook.get_connection(self.altibase_conn_id)
        labels = {
            "app.kubernetes.io/name": "altibase-isql",
            "app.kubernetes.io/part-of": "altibase-airflow-ops",
            "app.kubernetes.io/component": make_safe_label_value(str(self.step_kind or "isql")),
            "altibase-ops/target": make_safe_label_value(self.altibase_conn_id),
            **(self.pod_labels or {}),
        }
        resources = self.container_resources or k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "256Mi"},
        )
        return KubernetesPodOperator(
            task_id=self.task_id,
            kubernetes_conn_id=self.kubernetes_conn_id,
            namespace=self.namespace,
            image=self.image,
            image_pull_policy="IfNotPresent",
            cmds=["sh", "-c"],
            arguments=[pod_script(sysdba=self.sysdba, nls_use=conn.extra_dejson.get("nls_use"),
                                  env_file=self.env_file)],
            env_vars=[
                k8s.V1EnvVar(name=ENV_HOST, value=self.target_host or conn.host),
                k8s.V1EnvVar(name=ENV_PORT, value=str(conn.port or DEFAULT_PORT)),
                k8s.V1EnvVar(name=ENV_USER, value=conn.login or DEFAULT_USER),
                k8s.V1EnvVar(name=POD_SCRIPT_ENV, value=self.sql),
            ],
            secrets=[Secret("env", ENV_PASSWORD, self.password_secret_name, self.password_secret_key)],
            labels=labels,
            container_resources=resources,
            container_security_context={"allowPrivilegeEscalation": False},
            on_finish_action="delete_pod",
            get_logs=True,
            do_xcom_push=True,
            deferrable=self.deferrable,
            startup_timeout_seconds=int(self.startup_timeout_seconds),
            **(self.pod_kwargs or {}),
        )

    def _judge_pod_result(self, xcom: dict[str, Any] | None) -> list[dict[str, Any]] | None:
        output, exit_status = decode_pod_result(xcom)
        self.log.info("iSQL output from the pod (exit status %s):\n%s", exit_status, output)
        return self._judge(output, exit_status)

