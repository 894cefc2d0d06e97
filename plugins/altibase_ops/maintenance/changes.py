"""Changes as reviewed files: ``include/changes/<id>.yaml``, applied in file-name order.

A change file says *what* (tables, DDL), *where* (pairs from the fleet, ``altibase_ops.pairs``) and
*how* (service mode), and who approved it::

    id: 0001_add_c3_to_t1            # = the file name without .yaml; recorded in the pairs' history
    approved_by: Kim DBA (CHG-1234)
    description: C3 for the billing report
    pairs: all                       # or a list of pair names
    service_mode: can_stop           # can_stop | rolling
    tables: [SYS.T1]
    ddl:
      - ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)

Each file is checked against every pair it targets with the DDL DAG's own rules
(``DdlRequest.from_params``), so a bad change fails CI (``tests/test_change_files.py``), not the
maintenance night.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from altibase_ops.ddl.request import CHANGE_ID_PATTERN, DdlRequest, InvalidRequestError
from altibase_ops.ddl.statements import InvalidDdlError
from altibase_ops.maintenance.history import change_checksum
from altibase_ops.pairs import Pair

CHANGES_DIR_ENV = "ALTIBASE_CHANGES_DIR"
DEFAULT_CHANGES_DIR = Path(__file__).resolve().parents[3] / "include" / "changes"
REQUIRED = {"id", "approved_by", "pairs", "service_mode", "tables", "ddl"}
OPTIONAL = {"description"}


class InvalidChangeError(ValueError):
    """A change file that must not run; the message names the file and the field."""


@dataclass(frozen=True)
class Change:
    id: str
    file: str
    approved_by: str
    description: str
    pairs: tuple[str, ...]
    service_mode: str
    tables: tuple[str, ...]
    ddl: tuple[str, ...]

    @property
    def checksum(self) -> str:
        return change_checksum(list(self.tables), list(self.ddl))

    def ddl_params(self, pair: Pair) -> dict[str, Any]:
        """The DDL DAG's params for this change on one pair (a real run: not a dry run)."""
        return {**pair.ddl_params(), "service_mode": self.service_mode, "tables": list(self.tables),
                "ddl": list(self.ddl), "dry_run": False, "change_id": self.id, "change_checksum": self.checksum}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        return cls(data["id"], data["file"], data["approved_by"], data["description"], tuple(data["pairs"]),
                   data["service_mode"], tuple(data["tables"]), tuple(data["ddl"]))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "approved_by": self.approved_by, "description": self.description,
                "pairs": list(self.pairs), "service_mode": self.service_mode, "tables": list(self.tables),
                "ddl": list(self.ddl), "checksum": self.checksum}


def changes_dir(environ: dict[str, str] | None = None) -> Path:
    value = (os.environ if environ is None else environ).get(CHANGES_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_CHANGES_DIR


def load_changes(folder: Path, pairs: list[Pair]) -> list[Change]:
    """Every ``*.yaml`` in ``folder``, in file-name order, each validated for every pair it targets.
    InvalidChangeError lists every problem of every file (one bad file is reported with the others)."""
    if not folder.is_dir():
        raise InvalidChangeError(f"{folder}: the changes folder does not exist")
    by_name = {p.name: p for p in pairs}
    changes, problems = [], []
    for path in sorted(folder.glob("*.yaml")):
        try:
            changes.append(load_change(path, by_name))
        except InvalidChangeError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidChangeError("\n".join(problems))
    return changes


def load_change(path: Path, pairs: dict[str, Pair]) -> Change:
    where = path.name
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidChangeError(f"{where}: not readable YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidChangeError(f"{where}: expected a mapping with {sorted(REQUIRED)}")
    if missing := REQUIRED - set(raw):
        raise InvalidChangeError(f"{where}: missing {sorted(missing)}")
    if unknown := set(raw) - REQUIRED - OPTIONAL:
        raise InvalidChangeError(f"{where}: unknown field(s) {sorted(unknown)}")
    change_id = raw["id"]
    if not isinstance(change_id, str) or not CHANGE_ID_PATTERN.fullmatch(change_id):
        raise InvalidChangeError(f"{where}: id {change_id!r} is not a change id (letters, digits, _ . -)")
    if change_id != path.stem:
        raise InvalidChangeError(f"{where}: id {change_id!r} must be the file name without .yaml ({path.stem!r})")
    approved_by = raw["approved_by"]
    if not isinstance(approved_by, str) or not approved_by.strip():
        raise InvalidChangeError(f"{where}: approved_by must say who reviewed and approved the change")
    targets = raw["pairs"]
    if targets == "all":
        targets = list(pairs)
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise InvalidChangeError(f"{where}: pairs must be 'all' or a list of pair names")
    if unknown_pairs := [t for t in targets if t not in pairs]:
        raise InvalidChangeError(f"{where}: pairs {unknown_pairs} are not configured (known: {sorted(pairs)}; "
                                 "see ALTIBASE_PAIRS)")
    if len(set(targets)) != len(targets):
        raise InvalidChangeError(f"{where}: a pair is listed twice")
    for field_name in ("tables", "ddl"):
        if not isinstance(raw[field_name], list) or not all(isinstance(v, str) for v in raw[field_name]):
            raise InvalidChangeError(f"{where}: {field_name} must be a list of strings")
    change = Change(change_id, where, approved_by.strip(), str(raw.get("description") or ""), tuple(targets),
                    raw["service_mode"], tuple(raw["tables"]), tuple(raw["ddl"]))
    for name in targets:  # the DDL DAG's own validation, per pair (its topology, service control)
        try:
            DdlRequest.from_params(change.ddl_params(pairs[name]))
        except (InvalidRequestError, InvalidDdlError) as exc:
            raise InvalidChangeError(f"{where}: on pair {name}: {exc}") from None
    return change
