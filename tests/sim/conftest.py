from __future__ import annotations

from collections.abc import Iterator

import pytest

from altibase_sim.simulation import Simulation


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
