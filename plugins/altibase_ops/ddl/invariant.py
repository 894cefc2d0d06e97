"""The pair's invariant: what must hold before this tool lets go of a pair, read from the servers and
from the service control — never inferred from which steps ran.

1. Every server the application writes on has a running sender to its peer (its writes reach the
   other server), and every server that sends by its role (both in Active-Active, the active in
   Active-Standby) sends; an Active-Standby standby sends only while the application writes on it.
2. No server is in admin mode (preflight found it at 0; only this tool set it).
3. Every listed table is in the replication on both servers, with the same items on both.
4. SQL apply mode is off and no table is applied in it — except in the one documented intermediate
   state of a rolling run: the DDL applied on one server only, SQL apply on on both (the receivers
   apply by column name), every writer sending. It is safe to serve in, and the lock stays so that a
   ``recover`` run finishes the procedure.
5. The application runs where it ran before the run (the service control keeps the originals).

``check`` returns the problems, each with the server and the one action that finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from altibase_ops.ddl.request import DdlRequest
from altibase_ops.ddl.state import ddl_progress, tables_apart
from altibase_ops.service.control import Placement
from altibase_ops.state.server import ServerState

INTERMEDIATE = ("rolling, between turns: the DDL is applied on {after} only, SQL apply mode is on on both servers "
                "(each applies the other's rows by column name) and every server the application writes on "
                "sends. Safe to serve in; the pair stays held so that a run with recover=true finishes the DDL")


# Problems the procedure itself finishes when a recover run resumes it (a table out of the replication,
# admin mode on, definitions that differ): every step reads its server first and does what is left.
FINISHABLE = {"table_out", "admin_mode", "definitions"}


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    intermediate: str = ""  # the named intermediate state the pair is in, when it is
    writers: list[str] | None = None
    placement: str = ""

    def add(self, kind: str, text: str) -> None:
        self.problems.append(text)
        self.kinds.add(kind)

    def finishable(self, service_mode: str) -> bool:
        """Only what the procedure itself finishes is wrong (a recover run may resume it); in can_stop mode
        that includes the application stopped where it ran (O9 resumes it)."""
        return self.kinds <= FINISHABLE | ({"placement_stopped"} if service_mode == "can_stop" else set())

    @property
    def whole(self) -> bool:
        """The pair is as it should be after a run: the lock may go."""
        return not self.problems and not self.intermediate

    def as_dict(self) -> dict[str, Any]:
        return {"problems": self.problems, "intermediate": self.intermediate, "writers": self.writers,
                "placement": self.placement, "whole": self.whole}


def check(request: DdlRequest, states: dict[str, ServerState], placement: Placement,
          assumed_writers: set[str] | None = None) -> Verdict:
    """The invariant on ``states`` (every server's, read now) and ``placement`` (read now). For manual
    service control, ``assumed_writers``: where the approved steps put the application."""
    rep = request.replication_name
    verdict = Verdict(placement=placement.describe())
    writers = set(placement.writers) if placement.writers is not None else set(assumed_writers or ())
    verdict.writers = sorted(writers)
    roles = {s.name: s.role for s in request.servers}
    for name, state in states.items():
        if name in writers and not state.sender_running:
            verdict.add("writer_not_sending", f"{name}: the application writes here but its sender of {rep} is not running: "
                                    f"its writes do not reach the peer. Start it: ALTER REPLICATION {rep} START")
        elif name in request.senders and not state.sender_running:
            verdict.add("sender", f"{name} ({roles[name]}): its sender of {rep} is not running. Start it: "
                                    f"ALTER REPLICATION {rep} START")
        elif name not in request.senders and name not in writers and state.sender_running:
            verdict.add("standby_sending", f"{name} ({roles[name]}): sends although the application does not write here "
                                    f"(Active-Standby: the standby does not send). Once its gap is 0: "
                                    f"ALTER REPLICATION {rep} STOP")
        if state.properties.get("ADMIN_MODE"):
            verdict.add("admin_mode", f"{name}: ADMIN_MODE is 1 (only SYSDBA can log in)")
        out = [t for t in request.tables if t not in state.items]
        if out:
            verdict.add("table_out", f"{name}: {out} not in replication {rep}: writes to them do not reach the peer")
    items = {name: sorted(state.items) for name, state in states.items()}
    if len({repr(v) for v in items.values()}) > 1:
        verdict.add("items", f"the servers hold different items of {rep} ({items}): no handshake succeeds")
    progress = ddl_progress(request, states)
    differs = any(tables_apart(request, states).values())
    sql_apply = {name: bool(state.properties.get("REPLICATION_SQL_APPLY_ENABLE")) for name, state in states.items()}
    if differs and request.service_mode == "rolling" and "partial" not in progress.values():
        off = [name for name, on in sql_apply.items() if not on]
        if off:
            verdict.add("sql_apply", f"{off}: the definitions differ between the servers and SQL apply mode is off "
                                    "there: the receiver refuses the other's rows (ERR-6100D at the handshake)")
        verdict.intermediate = INTERMEDIATE.format(after=[n for n, p in progress.items() if p == "after"])
    elif differs:
        verdict.add("definitions", "the DDL is applied on some servers only: the tables' definitions or rows differ "
                                "between the servers (" + ", ".join(f"{n}: DDL {p}" for n, p in progress.items()) + ")")
    else:
        for name, state in states.items():
            if sql_apply[name] or state.sql_apply_table_count:
                verdict.add("sql_apply", f"{name}: SQL apply mode is still on (REPLICATION_SQL_APPLY_ENABLE "
                                        f"{int(sql_apply[name])}, {state.sql_apply_table_count} table(s) applied in it)")
    if placement.writers is None and writers != set(request.senders):
        where = ", ".join(sorted(writers)) or "no server"
        kind = "placement_stopped" if writers <= request.senders else "placement"
        verdict.add(kind, f"the approved service steps left the application on {where}, not where it ran before "
                          f"the run ({', '.join(sorted(request.senders))}): put it back by hand")
    if placement.changed:
        # stopped only (nowhere it did not run before): what can_stop's own O9 puts back
        kind = "placement_stopped" if writers <= request.senders else "placement"
        verdict.add(kind, f"the application is not where it was before the run: {placement.describe()}")
    return verdict
