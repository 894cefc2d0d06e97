"""IsqlOperator: the local runner against the simulator, and the pod the kubernetes runner builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from kubernetes.client import ApiClient

from altibase_ops.operators.isql import ALTIBASE_IMAGE, IsqlOperator, decode_pod_result, pod_script
from altibase_ops.sql.identifiers import InvalidIdentifierError
from altibase_ops.sql.isql import CONNECT_LABEL, parse_output
from altibase_ops.sql.steps import StepError, StepKind, judge_results, split_statements
from tests.sim.helpers import query, run, seed_pair

PASSWORD = "manager"  # the simulator's SYS password: it must appear in no log line and no pod spec


def logged(capfd) -> str:
    out, err = capfd.readouterr()
    return out + err


def isql(conn_id: str, sql: str, **kwargs) -> IsqlOperator:
    return IsqlOperator(task_id="step", altibase_conn_id=conn_id, sql=sql, **kwargs)


# local runner


def test_script_fails_when_its_first_statement_errors_even_though_the_last_succeeds(sim, altibase_conns, capfd):
    seed_pair(sim)
    step = isql(altibase_conns["node1"], "ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER);\nALTER SYSTEM SET ADMIN_MODE = 0;\n")
    with pytest.raises(StepError, match=r"first in statement 'ALTER TABLE SYS.T1 ADD COLUMN \(C3 INTEGER\)': "
                                        r"\[ERR-312C4 : Cannot execute this DDL") as info:
        step.execute(context={})
    assert info.value.codes == ["312C4"]
    assert "exit status 0" in logged(capfd)  # iSQL itself reported success: only the output tells


def test_login_refused_in_admin_mode_names_the_code(sim, altibase_conns):
    run(sim, "node1", "ALTER SYSTEM SET ADMIN_MODE = 1")
    with pytest.raises(StepError, match="ERR-4106E"):
        isql(altibase_conns["node1"], "SELECT 1 FROM DUAL;", sysdba=False).execute(context={})
    # the same step as SYSDBA gets in (and returns its rows)
    assert isql(altibase_conns["node1"], "SELECT DUMMY FROM DUAL;").execute(context={}) == [
        {"statement": "SELECT DUMMY FROM DUAL", "columns": ["DUMMY"], "rows": [{"DUMMY": "X"}]}
    ]


def test_selects_are_returned_for_xcom(sim, altibase_conns):
    seed_pair(sim)
    result = isql(altibase_conns["node1"], "ALTER REPLICATION REP1 FLUSH WAIT 5;\n"
                                           "SELECT REP_NAME, REP_GAP FROM V$REPGAP;").execute(context={})
    assert result == [{"statement": "SELECT REP_NAME, REP_GAP FROM V$REPGAP", "columns": ["REP_NAME", "REP_GAP"],
                       "rows": [{"REP_NAME": "REP1", "REP_GAP": "0"}]}]


@pytest.mark.parametrize(
    ("kind", "sql"),
    [
        (StepKind.REPLICATION_STOP, "ALTER REPLICATION REP1 STOP;"),
        (StepKind.REPLICATION_START, "ALTER REPLICATION REP1 START;"),
        (StepKind.REPLICATION_DROP_TABLE, "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1;"),
    ],
)
def test_a_step_re_run_after_it_succeeded_is_already_done_only_for_its_kind(sim, altibase_conns, kind, sql):
    seed_pair(sim, tables=("T1", "T2", "T3"), start=False)
    if kind == StepKind.REPLICATION_STOP:
        run(sim, "node1", "ALTER REPLICATION REP1 START")
    conn_id = altibase_conns["node1"]
    assert isql(conn_id, sql, step_kind=kind).execute(context={}) is None  # does the work
    assert isql(conn_id, sql, step_kind=kind).execute(context={}) is None  # re-run: already done
    wrong_kind = StepKind.ADMIN_MODE
    with pytest.raises(StepError):
        isql(conn_id, sql, step_kind=wrong_kind).execute(context={})
    with pytest.raises(StepError):
        isql(conn_id, sql).execute(context={})


def test_add_table_of_an_item_already_there_is_never_already_done_by_its_code(sim, altibase_conns):
    # the server's error for it is not documented (11058 by the source): the DDL steps read the items
    # first instead, so a code-level "already done" would only hide a real failure
    seed_pair(sim, tables=("T1", "T2"), start=False)
    with pytest.raises(StepError, match="ERR-11058"):
        isql(altibase_conns["node1"], "ALTER REPLICATION REP1 ADD TABLE FROM SYS.T2 TO SYS.T2;",
             step_kind=StepKind.REPLICATION_ADD_TABLE).execute(context={})


def test_already_done_does_not_cover_a_different_error_of_the_same_statement(sim, altibase_conns):
    seed_pair(sim)  # started on both sides: DROP TABLE is refused because replication runs
    with pytest.raises(StepError, match="ERR-610FE"):
        isql(altibase_conns["node1"], "ALTER REPLICATION REP1 DROP TABLE FROM SYS.T1 TO SYS.T1;",
             step_kind="replication_drop_table").execute(context={})


def test_dml_that_changes_no_row_is_a_result_not_a_missing_one(sim, altibase_conns, capfd):
    run(sim, "node1", "CREATE TABLE T9 (C1 INTEGER PRIMARY KEY, C2 INTEGER)", "INSERT INTO T9 VALUES (1, 0)")
    isql(altibase_conns["node1"], "DELETE FROM SYS.T9 WHERE C1 = 5;\nUPDATE SYS.T9 SET C2 = 1 WHERE C1 = 5;\n"
                                  "UPDATE SYS.T9 SET C2 = 2;\n", sysdba=False).execute(context={})
    log = logged(capfd)
    assert "No rows deleted." in log and "No rows updated." in log  # what the real client prints
    assert query(sim, "node1", "SELECT C2 FROM SYS.T9") == [(2,)]


def test_template_file_renders_identifiers_through_the_filters(sim, altibase_conns):
    seed_pair(sim)
    step = isql(altibase_conns["node1"], "checks/read_replication_gap.sql")
    step.render_template_fields(context={"params": {"replication_name": "rep1"}})
    assert step.sql.strip() == "SELECT REP_NAME, REP_SN, REP_GAP FROM V$REPGAP WHERE REP_NAME = 'REP1';"
    [row] = step.execute(context={})[0]["rows"]
    assert (row["REP_NAME"], row["REP_GAP"]) == ("REP1", "0") and int(row["REP_SN"]) >= 0
    hostile = isql(altibase_conns["node1"], "ALTER REPLICATION {{ params.rep | ident }} STOP;")
    with pytest.raises(InvalidIdentifierError):
        hostile.render_template_fields(context={"params": {"rep": "REP1; DROP TABLE T1"}})


def test_the_password_is_in_no_log_line(sim, altibase_conns, capfd):
    isql(altibase_conns["node1"], "SELECT DUMMY FROM DUAL;").execute(context={})
    log = logged(capfd)
    assert "/NOLOG -silent" in log and "<" not in log.split("/NOLOG", 1)[1].split("\n", 1)[0]  # stdin, no file
    assert PASSWORD not in log


def test_no_file_holds_the_password_while_the_client_runs(sim, altibase_conns):
    """The login reaches iSQL on an anonymous file: a worker killed mid-step leaves no copy on disk."""
    import os
    import threading

    sim.fail_once("node1", "^SELECT DUMMY", "SLOW:3")  # the step is still running while we look
    step = isql(altibase_conns["node1"], "SELECT DUMMY FROM DUAL;")
    worker = threading.Thread(target=step.execute, kwargs={"context": {}})
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while getattr(step, "_process", None) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stdin = os.readlink(f"/proc/{step._process.pid}/fd/0")
        assert stdin.endswith("(deleted)"), stdin  # an unlinked file: no name anyone could open
        leftovers = [p for p in Path(tempfile.gettempdir()).glob("altibase-isql-*")]
        assert not any(p.is_file() and PASSWORD in p.read_text(errors="ignore") for p in leftovers)
    finally:
        worker.join(timeout=30)


def test_bad_arguments_fail_before_anything_runs(sim, altibase_conns):
    with pytest.raises(ValueError):
        isql(altibase_conns["node1"], "SELECT 1 FROM DUAL;", step_kind="replication_stopp").execute(context={})
    with pytest.raises(AirflowException, match="runner 'ssh'"):
        isql(altibase_conns["node1"], "SELECT 1 FROM DUAL;", runner="ssh").execute(context={})
    with pytest.raises(AirflowException, match="no SQL statement"):
        isql(altibase_conns["node1"], "-- nothing\n").execute(context={})
    assert query(sim, "node1", "SELECT COUNT(*) FROM V$SESSION") == [(1,)]


# kubernetes runner


@pytest.fixture
def pod_step(altibase_conns) -> IsqlOperator:
    return isql(altibase_conns["node1"], "ALTER REPLICATION REP1 STOP;\n", runner="kubernetes",
                step_kind="replication_stop", namespace="altibase", target_host="altibase-svc-node1",
                password_secret_name="altibase-sys", password_secret_key="password")


def build_pod(step: IsqlOperator) -> dict:
    """The pod spec through KubernetesPodOperator.build_pod_request_obj, as the API would receive it."""
    ti = SimpleNamespace(dag_id="ddl_offline", task_id=step.task_id, map_index=-1, try_number=1)
    context = {"ti": ti, "run_id": "manual__2026-01-01", "dag": SimpleNamespace()}
    # dry_run: no cluster to ask whether we run in-cluster
    pod = step.build_pod_operator().build_pod_request_obj(context, dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)


def test_pod_runs_is_from_the_pinned_image_with_the_password_from_a_secret(pod_step):
    pod = build_pod(pod_step)
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    assert container["image"] == ALTIBASE_IMAGE and ":" in ALTIBASE_IMAGE and not ALTIBASE_IMAGE.endswith(":latest")
    assert container["command"] == ["sh", "-c"]
    (script,) = container["args"]
    assert script.startswith("if [ -r /home/altibase/set_altibase.env ]; then . /home/altibase/set_altibase.env;")
    assert '"$ALTIBASE_HOME/bin/isql" -s "$ALTIBASE_HOST" -port "$ALTIBASE_PORT" /NOLOG -silent < "$work/step.sql"' \
        in script
    assert "printf 'CONNECT %s/%s AS SYSDBA;\\n' \"$user\" \"$pw\"" in script  # builtins: in no argv
    assert script.index("unset ALTIBASE_PASSWORD") < script.index('"$ALTIBASE_HOME/bin/isql"')  # nor inherited
    env = {e["name"]: e for e in container["env"]}
    assert env["ALTIBASE_PASSWORD"] == {"name": "ALTIBASE_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": "altibase-sys", "key": "password"}}}
    assert env["ALTIBASE_HOST"]["value"] == "altibase-svc-node1"
    assert env["ALTIBASE_USER"]["value"] == "SYS"
    assert env["ALTIBASE_SCRIPT"]["value"] == "ALTER REPLICATION REP1 STOP;\n"
    assert PASSWORD not in json.dumps(pod)  # not in command, args, env values, labels, anywhere


def test_pod_resources_labels_and_lifecycle(pod_step):
    pod = build_pod(pod_step)
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "altibase-isql"
    assert labels["app.kubernetes.io/component"] == "replication_stop"
    assert labels["altibase-ops/target"] == "altibase_node1"
    assert labels["dag_id"] == "ddl_offline" and labels["task_id"] == "step"
    assert pod["metadata"]["namespace"] == "altibase"
    assert pod["spec"]["restartPolicy"] == "Never"
    pod_operator = pod_step.build_pod_operator()
    assert pod_operator.on_finish_action.value == "delete_pod"
    assert pod_operator.get_logs and pod_operator.deferrable and pod_operator.do_xcom_push


@pytest.mark.parametrize("version", ["1.30.0", "1.36.0"])
def test_pod_is_valid_against_the_kubernetes_schema(pod_step, version):
    kubernetes_validate.validate(build_pod(pod_step), version, strict=True)


def test_pod_deferral_resumes_on_the_isql_operator(pod_step):
    trigger = KubernetesPodTrigger(pod_name="p", pod_namespace="altibase", trigger_start_time=None,
                                   base_container_name="base")
    with pytest.raises(TaskDeferred) as info:
        pod_step._defer_to(TaskDeferred(trigger=trigger, method_name="trigger_reentry", timeout=None))
    assert info.value.method_name == "execute_pod_complete" and info.value.trigger is trigger


def test_pod_script_runs_is_and_hands_its_output_to_xcom(sim, altibase_conns, tmp_path):
    """Run the pod's script here, with ``isql-sim`` as the image's isql: the transport, not just the spec."""
    seed_pair(sim, start=False)
    home = tmp_path / "altibase_home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "isql").symlink_to(Path(sys.executable).parent / "isql-sim")
    env_file = tmp_path / "set_altibase.env"
    env_file.write_text(f"export ALTIBASE_HOME={home}\n")
    xcom = tmp_path / "xcom" / "return.json"
    sql = "ALTER REPLICATION REP1 STOP;\nSELECT REP_NAME FROM V$REPGAP;\n"
    server = sim.server("node1")
    completed = subprocess.run(
        ["sh", "-c", pod_script(sysdba=True, nls_use=None, env_file=str(env_file), xcom_path=str(xcom))],
        env={**os.environ, "ALTIBASE_HOST": server["host"], "ALTIBASE_PORT": str(server["port"]),
             "ALTIBASE_USER": "SYS", "ALTIBASE_PASSWORD": PASSWORD, "ALTIBASE_SCRIPT": sql},
        capture_output=True, text=True, timeout=30,
    )
    assert completed.returncode == 0
    assert "[ERR-61027 : Replication did not start.]" in completed.stdout  # streamed to the pod log
    output, exit_status = decode_pod_result(json.loads(xcom.read_text()))
    assert exit_status == 0
    results = judge_results(parse_output(output), [CONNECT_LABEL, *split_statements(sql)],
                            step_kind="replication_stop", exit_status=exit_status, output=output)
    assert [r.summary for r in results][0] == "Connect success."
    assert [r.accepted for r in results[1:]] == [True, False] and results[2].rows == []
    assert PASSWORD not in output


def test_in_a_dag_the_template_file_resolves_from_template_searchpath_with_the_filters():
    import datetime

    from airflow.sdk import DAG

    from altibase_ops.sql.templates import SQL_DIR

    with DAG("isql_templates", schedule=None, start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
             template_searchpath=[str(SQL_DIR)], params={"replication_name": "rep1"}) as dag:
        step = isql("altibase_node1", "checks/read_sql_apply_count.sql")
    step.render_template_fields(context={"params": dag.params.dump()})
    assert step.sql.strip() == "SELECT REP_NAME, SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER WHERE REP_NAME = 'REP1';"
