"""Fixtures for running DAGs in-process (``dag.test``) against the simulator.

``airflow_db``: this test process's Airflow metadata database (SQLite under .airflow-test/<worker>),
migrated once. ``load_dag(name)``: a DAG object from dags/, imported once per process.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
_loaded: dict[str, object] = {}
_defaults: dict[str, dict] = {}


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".migrated"
    if not marker.exists():
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True, env=os.environ.copy(), timeout=300)
        marker.touch()
    return home


def load_dag(name: str):
    """The ``dag`` object of dags/<name>.py (the module is imported once per process)."""
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(f"dagfile_{name}", DAGS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module.dag
        _defaults[name] = {key: copy.deepcopy(param.value) for key, param in module.dag.params.items()}
    return _loaded[name]


def dag_test_with_defaults(name: str, run_conf: dict, dag=None):
    """``dag.test`` with the DAG's declared defaults under ``run_conf``: dag.test leaves a call's conf in
    the DAG object's params, and the next call in the process would inherit what it did not give."""
    if dag is None:
        dag, defaults = load_dag(name), _defaults[name]  # taken when the file was first imported
    else:  # a DAG object the caller imported afresh: its params are still the file's defaults
        defaults = {key: param.value for key, param in dag.params.items()}
    return dag.test(run_conf={**copy.deepcopy(defaults), **run_conf})




@contextlib.contextmanager
def only_dag(name: str) -> Iterator[None]:
    """``dag.test`` parses and serialises every DAG of the DAGs folder on each call: point the folder at
    a copy holding only the DAG under test while it runs."""
    from airflow import settings

    folder = Path(tempfile.gettempdir()) / f"altibase-dag-{os.getpid()}" / name
    if not (folder / f"{name}.py").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(DAGS / f"{name}.py", folder)
    previous = settings.DAGS_FOLDER
    settings.DAGS_FOLDER = str(folder)
    try:
        yield
    finally:
        settings.DAGS_FOLDER = previous
