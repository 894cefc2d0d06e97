"""The simulator behind one door: one module of the plugin package imports ``altibase_sim``, and a
production code path (the odbc backend, the package's public surface) never loads it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[4] / "plugins" / "altibase_ops"


def _imports_simulator(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(name == "altibase_sim" or name.startswith("altibase_sim.") for name in names):
            return True
    return False


def test_exactly_one_plugin_module_imports_the_simulator():
    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if _imports_simulator(p))
    assert importers == ["backends/simulator.py"]


def test_an_odbc_connection_and_the_public_surface_never_load_the_simulator():
    code = (
        "import sys, json\n"
        "from airflow.sdk import Connection\n"
        "from altibase_ops import AltibaseHook, IsqlOperator, ReplicationGapSensor, SessionCountSensor, SqlApplySensor\n"
        "from altibase_ops.backends import backend_module\n"
        "conn = Connection(conn_id='c', conn_type='altibase', extra=json.dumps({'backend': 'odbc', 'driver': 'x'}))\n"
        "assert backend_module(conn).__name__ == 'altibase_ops.backends.odbc'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'altibase_sim'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE.parents[1], env={**__import__("os").environ,
                                                         "PYTHONPATH": f"{PACKAGE.parent}:{PACKAGE.parents[1]}"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
