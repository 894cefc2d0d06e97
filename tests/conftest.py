"""Shared fixtures. A test that needs a server starts it itself: ``sim`` runs the simulator daemon
(a separate process, like a real server) in the test's own state dir and stops it afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from altibase_sim.control import SimulatorControl, start_daemon, stop_daemon
from altibase_sim.registry import STATE_DIR_ENV


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
