"""Fixtures of the DDL job's tests."""

from __future__ import annotations

import pytest

from tests.plugins.altibase_ops.ddl.test_restore_matrix import seed_pair_with_connections


@pytest.fixture
def pair(sim, monkeypatch):
    """The seed's Active-Standby pair, running, with an Airflow Connection to each server."""
    seed_pair_with_connections(sim, monkeypatch, "active_standby")
    return sim
