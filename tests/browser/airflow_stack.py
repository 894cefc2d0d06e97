"""A local Airflow for the browser tests: api-server, scheduler, dag-processor and triggerer as separate
processes, each leading its own session, with their own AIRFLOW_HOME (SQLite, LocalExecutor), ports
and Connections; stopped by their own process ids (SIGTERM to the process group each one leads, then
SIGKILL for whatever lingers)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from altibase_sim.registry import STATE_DIR_ENV
from altibase_sim.scenarios import connection_uri

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"
START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowUI:
    home: Path
    url: str
    password: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def api(self, path: str) -> dict:
        """GET on the REST API (v2) as the admin."""
        request = urllib.request.Request(f"{self.url}/api/v2/{path}", headers={"Authorization": f"Bearer {self.token()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def token(self) -> str:
        body = json.dumps({"username": ADMIN, "password": self.password}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["access_token"]

    def check_running(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def wait_ready(self, dag_id: str, timeout: float = START_TIMEOUT) -> None:
        """Until the health endpoint reports every component healthy and ``dag_id`` is parsed."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                    health = json.loads(response.read())
                last = health
                if all(health.get(c, {}).get("status") == "healthy"
                       for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                    errors = [e for e in self.api("importErrors")["import_errors"] if dag_id in e["filename"]]
                    assert not errors, f"{dag_id} does not import: {errors}"
                    try:
                        self.api(f"dags/{dag_id}")
                        return
                    except urllib.error.HTTPError as exc:
                        last = f"dags/{dag_id}: HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"Airflow was not ready within {timeout}s (last: {last}); logs in {self.home}")

    def stop(self) -> None:
        """SIGTERM to each component's process group (led by the process we started), then SIGKILL."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.processes.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the leader's stragglers too (workers, task processes)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def airflow_env(home: Path, port: int, sim) -> dict[str, str]:
    """This Airflow's whole configuration: nothing inherited from the test process's own Airflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # shared: tasks authenticate to the api-server
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        STATE_DIR_ENV: str(sim.state_dir),
    })
    for server in sim.servers():
        env[f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}"] = connection_uri(server)
    return env


