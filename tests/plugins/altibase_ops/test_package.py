"""The package as Airflow and a DAG author meet it: the public surface, and a plugins folder whose
loader leaves the package alone (it is imported by name, not loaded file by file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_public_surface_imports_from_the_package_itself():
    from altibase_ops import (
        AltibaseHook,
        IsqlOperator,
        ReplicationGapSensor,
        ServiceControlOperator,
        SessionCountSensor,
        SqlApplySensor,
    )

    assert AltibaseHook.conn_type == "altibase"
    assert {cls.__module__ for cls in (ReplicationGapSensor, SessionCountSensor, SqlApplySensor)} == \
        {"altibase_ops.sensors.altibase"}
    assert IsqlOperator.template_ext == (".sql",) and ServiceControlOperator.__name__ == "ServiceControlOperator"


def test_the_plugins_manager_imports_nothing_of_the_package_as_top_level_modules(tmp_path):
    # Airflow imports every .py under plugins/ as a module named after the file: service/operator.py
    # would replace the standard library's "operator" and break every task (plugins/.airflowignore).
    code = (
        "import json, sys\n"
        "from airflow import plugins_manager\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "import operator, inspect\n"
        "print(json.dumps({'errors': plugins_manager.get_import_errors(),\n"
        "                  'operator': operator.__file__, 'inspect': inspect.__file__,\n"
        "                  'shadowed': sorted(m for m in sys.modules if m in ('kubernetes', 'altibase', 'plan',\n"
        "                                     'steps', 'restore') and 'site-packages' not in\n"
        "                                     str(getattr(sys.modules[m], '__file__', '')))}))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert "altibase_ops" not in found["operator"] and "altibase_ops" not in found["inspect"]
    assert found["shadowed"] == []
