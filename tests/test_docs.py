"""The project's docs match the code: the procedure tables are the model's, and every document a DAG or
module cites is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from altibase_ops.ddl.procedure import VARIANTS, procedure_table_md

ROOT = Path(__file__).resolve().parents[1]
PROCEDURES = ROOT / "docs" / "procedures.md"


@pytest.mark.parametrize("topology, service_mode", VARIANTS)
def test_the_procedure_tables_are_the_models(topology, service_mode):
    text = PROCEDURES.read_text()
    match = re.search(rf"<!-- generated: {topology} {service_mode} -->\n(.*?)\n<!-- end generated -->", text, re.S)
    assert match, f"docs/procedures.md has no generated table for {topology} {service_mode}"
    assert match.group(1) == procedure_table_md(topology, service_mode), (
        "docs/procedures.md is out of date: paste procedure_table_md(...)'s output between the markers")


def test_every_document_the_code_cites_is_in_the_repository():
    sources = [*ROOT.glob("dags/*.py"), *ROOT.glob("plugins/**/*.py"), *ROOT.glob("altibase_sim/*.py"),
               ROOT / "README.md", *ROOT.glob("docs/*.md")]
    cited = {(path.name, ref) for path in sources
             for ref in re.findall(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b", path.read_text())}
    assert any(ref == "docs/procedures.md" for _, ref in cited)
    missing = sorted((name, ref) for name, ref in cited
                     if not (ROOT / ref).exists() and not (ROOT / "docs" / ref).exists())
    assert not missing, f"cited but not in the repository: {missing}"


def test_the_readmes_asset_consumer_example_is_a_dag_scheduled_on_the_uri_a_ddl_run_emits():
    from altibase_ops.ddl.assets import asset_uri

    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example: asset consumer -->\n```python\n(.*?)```", text, re.S)
    assert match, "README.md has no asset consumer example"
    namespace: dict = {}
    exec(compile(match.group(1), "README.md (asset consumer)", "exec"), namespace)
    dag = namespace["dag"]
    assert [a.uri for a in dag.schedule] == [asset_uri("pair1", "SYS.T1")]
    assert list(dag.task_dict) == ["rebuild"]
