"""A local Airflow with a real scheduler, for `make ui` and for the tests that need one (the browser test,
the approval race, scheduled maintenance):
api-server, scheduler, dag-processor and triggerer as separate processes (SQLite, LocalExecutor), with
their own AIRFLOW_HOME, ports and Connections.

Each component leads its own session; ``stop`` ends them by their own process ids (SIGTERM to the
process group each one leads — its LocalExecutor workers and task processes included — then SIGKILL
for whatever lingers) and reports any process still carrying this AIRFLOW_HOME.
"""

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from altibase_sim.registry import STATE_DIR_ENV
from altibase_sim.scenarios import connection_uri

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "artifacts" / "browser"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: Path, port: int, sim: Any = None) -> dict[str, str]:
    """This Airflow's whole configuration; nothing inherited from the test process's own Airflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # isql-sim for the local iSQL runner
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # SQLite serialises writers; four components and a dozen task processes on two cores can hold
        # the lock past sqlite3's default 5 s, which the api-server answers with a 500
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        # one secret for every component: task processes authenticate to the api-server's execution API
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        # a busy machine answers slower than the default 5 s; a timeout there means retries and 400s
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # parse each file once at start; no re-parse (and new DAG version) in the middle of the test
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    })
    if sim is not None:
        env[STATE_DIR_ENV] = str(sim.state_dir)
        for server in sim.servers():
            env[f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}"] = connection_uri(server)
    return env


def end_process_groups(leaders: list[int], exited: Callable[[int, float], None], grace: float = 10) -> None:
    """SIGTERM to the process group each of ``leaders`` leads, up to ``grace`` seconds in all for the
    leaders to exit (``exited(pid, timeout)`` waits for one), then SIGKILL to each group for whatever
    lingers (LocalExecutor workers, task processes)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in leaders:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + grace
            for pid in leaders:
                exited(pid, max(0.1, deadline - time.monotonic()))


@dataclass
class AirflowUI:
    home: Path
    port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def start(self, env: dict[str, str], connections: dict[str, dict[str, Any]] | None = None) -> None:
        """Migrate the database, create ``connections`` ({conn_id: {conn_type, host, …}}) in it, then start
        the four components (the admin's password set beforehand)."""
        (self.home / "passwords.json").write_text(json.dumps({ADMIN: self.password}))
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=self.home, check=True,
                       capture_output=True, timeout=180)
        if connections:
            # in the metadata database (not AIRFLOW_CONN_*): the Connections page lists them, a person edits them
            path = self.home / "connections.json"
            path.write_text(json.dumps(connections))
            try:
                subprocess.run([str(BIN / "airflow"), "connections", "import", str(path)], env=env, cwd=self.home,
                               check=True, capture_output=True, timeout=180)
            finally:
                path.unlink()
        for name in COMPONENTS:
            with open(self.log(name), "wb") as log:
                self.processes[name] = subprocess.Popen(
                    [str(BIN / "airflow"), name], env=env, cwd=self.home, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> list[int]:
        """End every component and its children; returns the pids of processes still using this home."""
        procs = {proc.pid: proc for proc in self.processes.values()}

        def exited(pid: int, timeout: float) -> None:
            try:
                procs[pid].wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass

        end_process_groups(list(procs), exited)
        for proc in procs.values():
            proc.wait(timeout=10)  # reap our children
        return self.leftovers()

    def leftovers(self) -> list[int]:
        marker = f"AIRFLOW_HOME={self.home}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "environ").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    # ------------------------------------------------------------------------------- REST (v2)
    def token(self) -> str:
        body = json.dumps({"username": ADMIN, "password": self.password}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["access_token"]

    def api(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """A call of the REST API v2 as the admin (a JSON body makes it a POST unless ``method`` says)."""
        if not getattr(self, "_token", None):
            self._token = self.token()
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/api/v2/{path}", data=data, method=method,
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  "Content-Type": "application/json"})
        # generous: on two busy cores (a second Airflow in the suite beside this one) answers take seconds;
        # and SQLite under that load sometimes fails a statement, which the api-server answers with a 500
        # after rolling back: the same call again is what a person's browser would do
        for attempt in range(1, 6):
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == 5:
                    raise
                time.sleep(2 * attempt)

    def check_running(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def wait_ready(self, dag_id: str, timeout: float = 120) -> None:
        """Until the health endpoint reports every component healthy and ``dag_id`` is parsed."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=10) as response:
                    last = health = json.loads(response.read())
                if all(health.get(c, {}).get("status") == "healthy"
                       for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                    errors = [e for e in self.api("importErrors")["import_errors"] if dag_id in e["filename"]]
                    assert not errors, f"{dag_id} does not import: {errors}"
                    self.api(f"dags/{dag_id}")
                    # the execution API initialises itself on its first request, blocking the api-server
                    # for seconds (tens on a busy machine): pay that here, not under the first task
                    with urllib.request.urlopen(f"{self.url}/execution/health", timeout=timeout) as response:
                        response.read()
                    return
            except urllib.error.HTTPError as exc:
                last = f"{exc.url}: HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"Airflow was not ready within {timeout}s (last: {last}); logs in {self.home}")

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """The run's failed tasks with the end of each one's log: what a person would open next."""
        tis = self.api(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=500")
        lines = []
        for ti in tis["task_instances"]:
            if ti["state"] in ("failed", "upstream_failed"):
                lines.append(f"{ti['task_id']}: {ti['state']}")
                log = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
                for path in sorted(log.glob("attempt=*.log")):
                    events = [json.loads(line).get("event", "") for line in path.read_text().splitlines()
                              if line.startswith("{")]
                    lines += [f"    {e}" for e in events[-12:]]
        return "\n".join(lines) or "no failed task"
