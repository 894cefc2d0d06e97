"""docker-compose.yaml and Dockerfile, checked without a Docker engine: the file parses, the services,
health checks, mounts, profiles and environment the README promises are there, and the image pins
what pyproject.toml pins."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import Connection

from altibase_ops.backends.odbc import odbc_connection_string
from altibase_ops.health.config import DEFAULT_PAIRS
from altibase_ops.operators.isql import ALTIBASE_IMAGE
from altibase_ops.provision.manifests import DBS_MOUNT_PATH, LOGS_MOUNT_PATH
from altibase_ops.provision.spec import DEFAULT_IMAGE

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-init")
LONG_RUNNING = ("postgres", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                "altibase-svc-node1", "altibase-svc-node2")
ALTIBASE = ("altibase-svc-node1", "altibase-svc-node2")
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """What compose makes of a value with no variable set: ``${X:-default}`` -> default, ``$$`` -> ``$``."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return interpolate(compose["services"])


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def pinned(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d.split("==")[1] for d in deps if d.startswith(f"{package}=="))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source, for short-syntax volumes."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


# ------------------------------------------------------------------------------ compose file
def test_the_file_has_the_official_structure(compose, services):
    assert "airflow-common" in "".join(compose)  # the x-airflow-common anchor
    assert set(services) == {"postgres", *AIRFLOW, *ALTIBASE}
    assert not {"redis", "airflow-worker", "flower"} & set(services)  # LocalExecutor: no Celery
    for name in AIRFLOW:
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
    commands = {name: services[name].get("command") for name in AIRFLOW[:-1]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}


def test_every_long_running_service_has_a_health_check_and_airflow_waits_for_init_and_postgres(services):
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and check.get("interval") and check.get("retries"), name
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert "/api/v2/version" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    for name in AIRFLOW[:-1]:
        depends = services[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
    init = services["airflow-init"]["environment"]
    assert init["_AIRFLOW_DB_MIGRATE"] == "true" and init["_AIRFLOW_WWW_USER_CREATE"] == "true"


def test_airflow_runs_the_image_built_from_the_repository_never_pip_at_startup(services):
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "_PIP_ADDITIONAL_REQUIREMENTS:" not in text
    for name in AIRFLOW:
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name


def test_dags_plugins_and_include_are_mounted_in_every_airflow_service(services):
    for name in AIRFLOW:
        assert {k: v for k, v in mounts(services[name]).items() if k != "/opt/airflow/logs"} == {
            "/opt/airflow/dags": "./dags", "/opt/airflow/plugins": "./plugins", "/opt/airflow/include": "./include",
        }, name
        assert mounts(services[name])["/opt/airflow/logs"] == "airflow-logs", name  # shared: the UI reads task logs


def test_the_components_share_database_execution_api_and_token_secret(services):
    envs = [services[name]["environment"] for name in AIRFLOW]
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                "AIRFLOW__API_AUTH__JWT_SECRET"):
        values = {env.get(key) for env in envs}
        assert len(values) == 1 and None not in values and "" not in values, key
    assert envs[0]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert envs[0]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    assert envs[0]["ALTIBASE_HEALTH_SCHEDULE"] == "*/10 * * * *"


def test_the_altibase_profile_adds_a_replicated_pair(services):
    for name in services:
        assert (services[name].get("profiles") == ["altibase"]) == (name in ALTIBASE), name
    for name in ALTIBASE:
        server = services[name]
        assert server["image"] == ALTIBASE_IMAGE == DEFAULT_IMAGE  # the servers and the client: one release
        assert server["environment"] == {"MODE": "replication", "SLAVE_REP_PORT": "20301"}
        assert server["hostname"] == name
        node = name.rsplit("-", 1)[1]
        assert mounts(server) == {DBS_MOUNT_PATH: f"altibase-{node}-dbs", LOGS_MOUNT_PATH: f"altibase-{node}-logs"}


def test_the_connections_reach_the_profile_servers_through_the_odbc_driver_in_the_image(services, dockerfile):
    env = services["airflow-scheduler"]["environment"]
    driver_dir = re.search(r"COPY --from=altibase \S+/libaltibase_odbc-64bit-ul64\.so \$\{ALTIBASE_HOME\}/lib/",
                           dockerfile)
    home = re.search(r"^ENV ALTIBASE_HOME=(\S+)$", dockerfile, re.M).group(1)
    assert driver_dir, "the Dockerfile copies the driver into $ALTIBASE_HOME/lib"
    default_conn_ids = {s["conn_id"] for p in DEFAULT_PAIRS for s in p["servers"]}
    assert default_conn_ids == {"altibase_node1", "altibase_node2"}
    for conn_id in sorted(default_conn_ids):
        conn = Connection.from_json(env[f"AIRFLOW_CONN_{conn_id.upper()}"], conn_id=conn_id)
        assert conn.conn_type == "altibase" and conn.host in ALTIBASE and conn.port == 20300
        assert conn.extra_dejson["backend"] == "odbc"
        assert conn.extra_dejson["driver"] == f"{home}/lib/libaltibase_odbc-64bit-ul64.so"
        text = odbc_connection_string(conn, user=conn.login, sysdba=True, masked=True)
        assert f"Server={conn.host};PORT=20300;User=SYS;Password=***" in text and "PRIVILEGE=SYSDBA" in text


# ---------------------------------------------------------------------------------- Dockerfile
def test_the_dockerfile_pins_what_pyproject_pins(dockerfile):
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", dockerfile, re.M)
    assert stages == [(ALTIBASE_IMAGE, "altibase"), (f"apache/airflow:{pinned('apache-airflow')}", "")]
    assert re.search(r'pip install --no-cache-dir "apache-airflow==\$\{AIRFLOW_VERSION\}" /opt/airflow/project$',
                     dockerfile, re.M)
    assert "COPY --chown=airflow:0 pyproject.toml /opt/airflow/project/" in dockerfile  # every pin comes along
    instructions = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in instructions


def test_the_image_has_unixodbc_the_driver_and_the_isql_client(dockerfile):
    assert re.search(r"apt-get install -y --no-install-recommends unixodbc\b", dockerfile)
    copied = " ".join(re.findall(r"^COPY --from=altibase (.+)$", dockerfile, re.M))
    for path in ("lib/libaltibase_odbc-64bit-ul64.so", "bin/isql", "/msg"):
        assert f"/home/altibase/altibase_home/{path.lstrip('/')}" in copied, path
    assert "bin/is " not in copied  # the wrapper forces -u sys -p MANAGER, which /NOLOG refuses
    assert "ENV PATH=${ALTIBASE_HOME}/bin:${PATH}" in dockerfile
    # both libraries checked at build time, and AS SYSDBA needs the Airflow uid to own $ALTIBASE_HOME
    assert "ldd ${ALTIBASE_HOME}/lib/libaltibase_odbc-64bit-ul64.so ${ALTIBASE_HOME}/bin/isql" in dockerfile
    assert re.search(r"chown 50000:0 \$\{ALTIBASE_HOME\}", dockerfile)


def test_one_sys_password_secret_and_one_client_path_everywhere(dockerfile, services):
    from airflow.sdk import BaseOperator

    from altibase_ops.backends.odbc import ISQL_BINARY_ENV
    from altibase_ops.operators.isql import IsqlOperator
    from altibase_ops.provision.request import provision_params, teardown_params
    from altibase_ops.provision.spec import ProvisionSpec
    from altibase_ops.sys_password import DEFAULT_SECRET_KEY, DEFAULT_SECRET_NAME
    from tests.dags.conftest import load_dag

    home = re.search(r"^ENV ALTIBASE_HOME=(\S+)$", dockerfile, re.M).group(1)
    assert re.search(rf"^\s*{ISQL_BINARY_ENV}={re.escape(home)}/bin/isql$", dockerfile, re.M)
    # compose inherits the image's value; a compose override would have to name the same client
    assert services["airflow-scheduler"]["environment"].get(ISQL_BINARY_ENV, f"{home}/bin/isql") == f"{home}/bin/isql"
    ddl = load_dag("altibase_replicated_ddl")
    step = IsqlOperator(task_id="s", altibase_conn_id="c", sql="SELECT 1 FROM DUAL;")
    assert isinstance(step, BaseOperator)
    for params in (provision_params(), teardown_params(), ddl.params):
        value = params["password_secret_name"]
        assert getattr(value, "value", value) == DEFAULT_SECRET_NAME
        value = params["password_secret_key"]
        assert getattr(value, "value", value) == DEFAULT_SECRET_KEY
    assert (step.password_secret_name, step.password_secret_key) == (DEFAULT_SECRET_NAME, DEFAULT_SECRET_KEY)
    assert (ProvisionSpec().password_secret.name, ProvisionSpec().password_secret.key) == \
        (DEFAULT_SECRET_NAME, DEFAULT_SECRET_KEY)
    readme = (ROOT / "README.md").read_text()
    assert f"create secret generic {DEFAULT_SECRET_NAME} --from-literal={DEFAULT_SECRET_KEY}=" in readme


def test_the_build_context_is_only_what_the_dockerfile_copies(dockerfile):
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignore[0] == "*"  # an allow-list: .venv, test state and artifacts never reach the daemon
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = {src for line in re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile, re.M)
               for src in line.split()}
    assert sources == allowed
    assert all((ROOT / source).exists() for source in sources)


# ------------------------------------------------------------------------------------ README
def test_what_the_readme_promises_is_in_the_compose_file(compose, services):
    readme = (ROOT / "README.md").read_text()
    assert "docker compose" in readme
    promised_services = set(re.findall(r"`(airflow-[a-z-]+|altibase-svc-[a-z0-9-]+|postgres)`", readme))
    assert promised_services and promised_services <= set(services), promised_services - set(services)
    profiles = set(re.findall(r"--profile (\w+)", readme))
    assert profiles and profiles <= {p for s in services.values() for p in s.get("profiles", [])}
    env = services["airflow-scheduler"]["environment"]
    for variable in set(re.findall(r"`((?:AIRFLOW_CONN|ALTIBASE_HEALTH|ALTIBASE_PAIRS|ALTIBASE_MAINTENANCE|ALTIBASE_NOTIFY)[A-Z0-9_]*)`", readme)):
        assert variable in env or variable.endswith("_<ID>"), variable
    assert json.loads(env["AIRFLOW_CONN_ALTIBASE_NODE1"])  # well-formed JSON
