"""Every DAG file parses, follows the house rules, and touches nothing at import time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))

# Parse in a fresh interpreter whose metadata database cannot be opened and which has no
# Connections or Variables: a DAG file that reaches for any of them at import time fails here.
_PARSE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
out = {"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "fileloc": dag.fileloc, "tags": sorted(dag.tags), "schedule": repr(dag.schedule),
        "start_date": None if dag.start_date is None else str(dag.start_date.tzinfo),
        "catchup": dag.catchup, "doc_md": bool(dag.doc_md), "max_active_runs": dag.max_active_runs,
        "owners": sorted({t.owner for t in dag.tasks}),
        "retries": sorted({t.retries for t in dag.tasks if not hasattr(t, "approval_timeout")}),
        "retrying": sorted({type(t).__name__ for t in dag.tasks if t.retries}),
        "default_retries": "retries" in (dag.default_args or {}),
    }
print(json.dumps(out))
"""


def parse(folder: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/missing/dir/airflow.db",
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(DAGS.parent / "plugins")})
    out = subprocess.run([sys.executable, "-c", _PARSE, str(folder)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    return parse(DAGS, tmp_path_factory.mktemp("parse-home"))


def test_the_parse_check_catches_a_dag_that_reads_a_variable_at_import(tmp_path):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "bad.py").write_text(
        "from airflow.sdk import DAG, Variable\nVariable.get('x')\nwith DAG('bad', schedule=None):\n    pass\n")
    assert "bad.py" in " ".join(parse(tmp_path / "dags", tmp_path / "home")["errors"])


def test_every_dag_file_imports_without_touching_a_database_or_connection(parsed):
    assert parsed["errors"] == {}
    assert {Path(d["fileloc"]).name for d in parsed["dags"].values()} == {p.name for p in DAG_FILES}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_house_rules(parsed, dag_file):
    dags = {dag_id: d for dag_id, d in parsed["dags"].items() if Path(d["fileloc"]) == dag_file}
    assert list(dags) == [dag_file.stem], f"{dag_file.name}: one DAG per file, named after the file"
    for dag_id, dag in dags.items():
        assert dag["doc_md"], f"{dag_id}: the module docstring is the DAG's doc_md"
        # Two runs at once would race each other's SYSDBA sessions, creates and proof rows (or double the
        # monitoring load, or roll the same changes out twice). The DDL DAG is the exception: its runs on
        # different pairs go side by side, and the pair's lock on the servers refuses a second run on the
        # same pair (tests/dags/test_ddl_runs_side_by_side.py).
        if dag_id == "altibase_replicated_ddl":
            assert dag["max_active_runs"] >= 10, f"{dag_id}: runs on different pairs go side by side"
        else:
            assert dag["max_active_runs"] == 1, f"{dag_id}: one run at a time"
        # No blind retries: every step is re-runnable, so a person clears a failed one after reading why
        # (the health DAG's next scheduled run is its retry).
        # The one exception, a service step: a failure it raises is final, but an attempt Airflow ended
        # from outside (3.3.2's state-mismatch race after an approval) asks the person again.
        assert dag["retries"] in ([0], []), f"{dag_id}: tasks retry {dag['retries']}, the policy is 0"
        assert set(dag["retrying"]) <= {"ServiceControlOperator", "DdlServiceStepOperator"}, dag["retrying"]
        assert dag["tags"], f"{dag_id}: tags"
        assert dag["schedule"] != "NOTSET", f"{dag_id}: explicit schedule"
        assert dag["start_date"] in ("UTC", "Timezone('UTC')"), f"{dag_id}: timezone-aware start_date"
        assert dag["catchup"] is False, f"{dag_id}: catchup=False"
        assert dag["default_retries"], f"{dag_id}: a deliberate retry policy in default_args"
        assert "airflow" not in dag["owners"], f"{dag_id}: an owner in default_args"


def test_only_airflow_sdk_authoring_imports():
    for path in DAG_FILES:
        text = path.read_text()
        for old in ("airflow.decorators", "airflow.operators.", "airflow.models import DAG", "schedule_interval",
                    "apply_defaults", "sys.path.insert"):
            assert old not in text, f"{path.name} uses {old}"
