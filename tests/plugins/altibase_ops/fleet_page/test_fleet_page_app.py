"""The page's app as Airflow serves it: the plugin mounted under /altibase by a real api-server (Airflow
3.3.2, SimpleAuthManager), refusing every request without an Airflow login and answering the admin's
with the fleet read from the simulator. The browser's view: tests/browser/test_altibase_page.py."""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from altibase_ops.ddl.records import take_lock
from altibase_sim.scenarios import connection_uri, seed_replicated_pair
from scripts.local_airflow import BIN, AirflowUI, airflow_env, free_port
from tests.plugins.altibase_ops.ddl.test_restore_matrix import request_for


@pytest.fixture
def api_server(sim, tmp_path):
    """Airflow's api-server alone (the page needs no scheduler), with the simulator's Connections."""
    seed_replicated_pair(sim)
    home = tmp_path / "airflow"
    home.mkdir()
    ui = AirflowUI(home=home, port=free_port())
    env = airflow_env(home, ui.port, sim)
    (home / "passwords.json").write_text(json.dumps({"admin": ui.password}))
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=home, check=True, capture_output=True,
                   timeout=300)
    with open(ui.log("api-server"), "wb") as log:
        ui.processes["api-server"] = subprocess.Popen(
            [str(BIN / "airflow"), "api-server"], env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:  # until it answers (it starts in seconds to tens of seconds on a busy machine)
            ui.check_running()
            try:
                with urllib.request.urlopen(f"{ui.url}/api/v2/monitor/health", timeout=10):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"the api-server did not answer; log in {home}"
                time.sleep(0.5)
        yield ui
    finally:
        assert not ui.stop(), "processes of the api-server still running after stop"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_altibase_page_refuses_requests_without_an_airflow_login_and_serves_the_admin(api_server, sim,
                                                                                          monkeypatch):
    ui = api_server
    for server in sim.servers():  # this test's own Connections, to hold the pair as a run would
        monkeypatch.setenv(f"AIRFLOW_CONN_ALTIBASE_{server['name'].upper()}", connection_uri(server))
    take_lock(request_for(sim, "active_standby", "can_stop"), "run_page", "altibase_replicated_ddl on w",
              logging.getLogger("page"))
    for path in ("/altibase/api/pairs", "/altibase/"):
        status, body = get(f"{ui.url}{path}")
        assert status == 401, (path, status, body)
        assert "pair1" not in body
        status, body = get(f"{ui.url}{path}", {"Authorization": "Bearer not-a-token"})
        assert status == 403, (path, status, body)
    token = {"Authorization": f"Bearer {ui.token()}"}
    status, body = get(f"{ui.url}/altibase/api/pairs", token)
    assert status == 200, body
    [pair] = json.loads(body)["pairs"]
    assert pair["name"] == "pair1"
    assert {s["name"]: (s["role"], s["reachable"]) for s in pair["servers"]} == {
        "node1": ("active", True), "node2": ("standby", True)}
    # the link to the holder's run is the UI's, not under the mount
    assert [h["run_url"] for h in pair["lock"]["holders"]] == ["/dags/altibase_replicated_ddl/runs/run_page"]
    status, body = get(f"{ui.url}/altibase/", token)
    assert status == 200 and '<section id="pair-pair1">' in body
    # the navigation's entry: the UI lists the plugin's view, shown in its frame at /plugin/altibase
    plugins = ui.api("plugins")["plugins"]
    views = [v for p in plugins if p["name"] == "altibase_page" for v in p["external_views"]]
    assert [(v["name"], v["href"], v["url_route"], v["destination"]) for v in views] == [
        ("Altibase", "altibase/", "altibase", "nav")]
