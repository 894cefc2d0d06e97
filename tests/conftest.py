"""Shared fixtures. A test that needs a server starts it itself: ``sim`` runs the simulator daemon
(a separate process, like a real server) in the test's own state dir and stops it afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Airflow reads its configuration when first imported: give every test process (each xdist worker)
# its own AIRFLOW_HOME before any test module imports airflow. The DAG tests migrate its database.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ["AIRFLOW_HOME"] = str(Path(__file__).resolve().parents[1] / ".airflow-test" / _WORKER)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import pytest  # noqa: E402 - after the environment above, on purpose

from altibase_sim.control import SimulatorControl, start_daemon, stop_daemon  # noqa: E402
from altibase_sim.registry import STATE_DIR_ENV  # noqa: E402
from altibase_sim.simulation import Simulation  # noqa: E402


@pytest.fixture
def sim(tmp_path, monkeypatch) -> Iterator[SimulatorControl]:
    """A running simulator with servers node1 and node2 (replication port 20301 each)."""
    state_dir = tmp_path / "sim"
    monkeypatch.setenv(STATE_DIR_ENV, str(state_dir))
    control = start_daemon(state_dir, ["node1", "node2"])
    try:
        yield control
    finally:
        stop_daemon(state_dir)


@pytest.fixture
def engine(tmp_path) -> Iterator[Simulation]:
    """An in-process simulation (node1, node2): same servers and wire protocol, no daemon start-up cost."""
    simulation = Simulation(tmp_path / "engine")
    simulation.add_server("node1")
    simulation.add_server("node2")
    try:
        yield simulation
    finally:
        simulation.shutdown()
