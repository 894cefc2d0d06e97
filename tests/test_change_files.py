"""Every change file in the repository is valid for the pairs it names, by the DDL DAG's own rules: a bad
change fails CI, not the maintenance night. The examples are held to the same rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from altibase_ops.maintenance.changes import DEFAULT_CHANGES_DIR, load_changes
from altibase_ops.pairs import pairs_from_env, validate_pairs

FOLDERS = [DEFAULT_CHANGES_DIR, DEFAULT_CHANGES_DIR / "examples"]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_change_file_is_valid_for_the_configured_fleet(folder: Path):
    files = sorted(folder.glob("*.yaml"))
    changes = load_changes(folder, validate_pairs(pairs_from_env()))  # raises with every problem listed
    assert [c.file for c in changes] == [f.name for f in files]
    assert len({c.id for c in changes}) == len(changes)


def test_the_examples_folder_has_examples():
    assert sorted(p.name for p in (DEFAULT_CHANGES_DIR / "examples").glob("*.yaml")), "examples are the docs"
