"""The one step runner (``sql.steps.run_script``) against the simulator: "already done" is decided per
step kind by ``ALREADY_DONE`` alone, and a real failure stops the step at once."""

from __future__ import annotations

import pytest

from altibase_ops.hooks.altibase import AltibaseHook
from altibase_ops.sql.steps import ALREADY_DONE, StepError, StepKind, run_script
from tests.sim.helpers import query, seed_pair


def session(conns, server="node1"):
    return AltibaseHook(altibase_conn_id=conns[server], sysdba=True).session()


def test_stop_of_a_stopped_replication_is_already_done_for_stop_only(sim, altibase_conns):
    seed_pair(sim, tables=("T1", "T2"), start=False)
    with session(altibase_conns) as s:
        [result] = run_script(s, "ALTER REPLICATION REP1 STOP;", step_kind=StepKind.REPLICATION_STOP)
    assert result.accepted and result.code == "61027" and "61027" in ALREADY_DONE[StepKind.REPLICATION_STOP]
    # the same code after FLUSH means the gap can no longer be drained: a real failure
    with session(altibase_conns) as s, pytest.raises(StepError, match="ERR-61027") as caught:
        run_script(s, "ALTER REPLICATION REP1 FLUSH WAIT 1;", step_kind=StepKind.REPLICATION_FLUSH)
    assert caught.value.codes == ["61027"]


def test_a_failure_stops_the_script_and_names_the_statement(sim, altibase_conns):
    seed_pair(sim, tables=("T1",), start=False)
    script = "INSERT INTO SYS.T1 VALUES (1, 1);\nINSERT INTO SYS.T1 VALUES (1, 2);\nINSERT INTO SYS.T1 VALUES (3, 3);"
    with session(altibase_conns) as s, pytest.raises(StepError, match=r"statement 'INSERT INTO SYS.T1 VALUES \(1, 2\)'"):
        run_script(s, script, step_kind=StepKind.PROOF_ROW)
    # unlike iSQL, which goes on after an error, nothing after the failed statement was sent
    assert query(sim, "node1", "SELECT C1 FROM SYS.T1 ORDER BY C1") == [(1,)]


def test_results_carry_the_rows_changed(sim, altibase_conns):
    seed_pair(sim, tables=("T1",), start=False)
    with session(altibase_conns) as s:
        results = run_script(s, "INSERT INTO SYS.T1 VALUES (5, 5);\nDELETE FROM SYS.T1 WHERE C1 > 0;",
                             step_kind=StepKind.PROOF_ROW)
    assert [r.rowcount for r in results] == [1, 1] and [r.status for r in results] == ["ok", "ok"]
