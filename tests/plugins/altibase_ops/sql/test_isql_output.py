"""iSQL output parsing, statement splitting, and the "already done" table."""

from __future__ import annotations

import shlex

import pytest

from altibase_ops.sql.isql import UnusableLoginError, connect_line, isql_command, parse_output, query_results
from altibase_ops.sql.steps import ALREADY_DONE, StepError, StepKind, judge_results, split_statements

ECHOED = """\
iSQL> ALTER REPLICATION REP1 STOP;
[ERR-61027 : Replication did not start.]
iSQL> SELECT REP_NAME, REP_GAP FROM V$REPGAP;
REP_NAME                                  REP_GAP
-----------------------------------------------------------
REP1                                      12
REP2                                      0
2 rows selected.
iSQL> SELECT ID, CLIENT_APP_INFO FROM V$SESSION WHERE ID <> SESSION_ID();
ID          CLIENT_APP_INFO
-----------------------------
No rows selected.
iSQL> INSERT INTO T1 VALUES (1, 1);
1 row inserted.
iSQL> ALTER SYSTEM SET ADMIN_MODE = 1;
Alter success.
"""


def test_parse_output_reads_every_kind_of_result():
    results = parse_output(ECHOED)
    assert [r.status for r in results] == ["error", "ok", "ok", "ok", "ok"]
    assert (results[0].code, results[0].message) == ("61027", "Replication did not start.")
    assert results[1].columns == ["REP_NAME", "REP_GAP"]
    assert results[1].rows == [{"REP_NAME": "REP1", "REP_GAP": "12"}, {"REP_NAME": "REP2", "REP_GAP": "0"}]
    assert results[2].columns == ["ID", "CLIENT_APP_INFO"] and results[2].rows == []
    assert results[3].summary == "1 row inserted."
    assert results[4].summary == "Alter success."
    assert results[0].statement == "ALTER REPLICATION REP1 STOP"


@pytest.mark.parametrize("verb", ["inserted", "updated", "deleted", "moved", "merged"])
@pytest.mark.parametrize("count", ["No rows", "1 row", "3 rows"])
def test_the_real_clients_row_count_line_is_a_result_for_every_dml_verb_and_0_1_or_n_rows(verb, count):
    # iSQLExecuteCommand.cpp PrintCount: "No rows " for 0 (never "0 rows"), "1 row ", "N rows ", then the verb
    output = f"iSQL> DELETE FROM T1 WHERE C1 = 9;\n{count} {verb}.\niSQL> COMMIT;\nCommit success.\n"
    results = parse_output(output)
    assert [(r.status, r.summary, r.statement) for r in results] == [
        ("ok", f"{count} {verb}.", "DELETE FROM T1 WHERE C1 = 9"), ("ok", "Commit success.", "COMMIT")]
    judge_results(results, ["DELETE FROM T1 WHERE C1 = 9", "COMMIT"], step_kind=None, exit_status=0, output=output)


def test_parse_output_does_not_need_echo_lines():
    without_echo = "\n".join(line for line in ECHOED.splitlines() if not line.startswith("iSQL>"))
    assert [(r.status, r.code, r.summary, r.rows) for r in parse_output(without_echo)] == [
        (r.status, r.code, r.summary, r.rows) for r in parse_output(ECHOED)
    ]


def test_parse_output_values_with_spaces_and_nulls_follow_header_offsets():
    output = (
        "ID          DB_USERNAME  CLIENT_APP_INFO                  LOGIN_TIME\n"
        "--------------------------------------------------------------------\n"
        "7           SYS          airflow: dag o1 check            1700000000\n"
        "8           APP                                           1700000001\n"
        "2 rows selected.\n"
    )
    (result,) = parse_output(output)
    assert result.rows[0]["CLIENT_APP_INFO"] == "airflow: dag o1 check"
    assert result.rows[1] == {"ID": "8", "DB_USERNAME": "APP", "CLIENT_APP_INFO": "", "LOGIN_TIME": "1700000001"}


def test_parse_output_multi_line_error_message():
    output = "[ERR-31001 : SQL syntax error\n\nline 1: parse error\nALTER REPLICATON\n]\nCommit success.\n"
    error, commit = parse_output(output)
    assert error.code == "31001" and "line 1: parse error" in error.message and error.message.endswith("REPLICATON")
    assert commit.summary == "Commit success."


def test_parse_output_ignores_banners_and_blank_lines():
    output = "-----------------------------------------------------------------\n     Altibase Client Query utility.\n\n"
    assert parse_output(output) == []


def test_split_statements():
    script = """
    -- flush first
    ALTER REPLICATION rep1 FLUSH WAIT 30;
    INSERT INTO t VALUES ('a;b');
    SELECT 1
      FROM DUAL;
    EXIT;
    """
    assert split_statements(script) == [
        "ALTER REPLICATION rep1 FLUSH WAIT 30",
        "INSERT INTO t VALUES ('a;b')",
        "SELECT 1\n      FROM DUAL",
    ]


def test_judge_fails_when_the_first_statement_errors_even_if_the_last_succeeds_and_exit_is_0():
    output = "[ERR-312C4 : Cannot execute this DDL on a replicated table ...]\nAlter success.\n"
    with pytest.raises(StepError, match=r"ERR-312C4") as info:
        judge_results(parse_output(output), ["ALTER TABLE SYS.T1 ADD COLUMN (C3 INTEGER)", "ALTER SYSTEM SET ADMIN_MODE = 0"],
              step_kind=None, exit_status=0, output=output)
    assert info.value.codes == ["312C4"]
    assert "ALTER TABLE SYS.T1" in str(info.value)


def test_judge_fails_when_results_are_missing():
    with pytest.raises(StepError, match="1 result"):
        judge_results(parse_output("Alter success.\n"), ["A", "B"], step_kind=None, exit_status=0, output="")


def test_judge_fails_on_nonzero_exit_without_error_text():
    with pytest.raises(StepError, match="status 1"):
        judge_results(parse_output("Alter success.\n"), ["A"], step_kind=None, exit_status=1, output="")


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (StepKind.REPLICATION_STOP, "61027"),
        (StepKind.REPLICATION_START, "6100A"),
        (StepKind.REPLICATION_DROP_TABLE, "6111A"),
        (StepKind.PROVISION_CREATE, "31022"),
        (StepKind.PROVISION_CREATE, "61100"),
        (StepKind.REPLICATION_DROP, "6111B"),
    ],
)
def test_already_done_code_is_accepted_for_its_step_kind_only(kind, code):
    output = f"[ERR-{code} : already]\n"
    # iSQL exits 255 after an error in the last statement; an accepted error explains that
    (result,) = judge_results(parse_output(output), ["X"], step_kind=kind.value, exit_status=255, output=output)
    assert result.accepted
    for other in StepKind:
        if code in ALREADY_DONE[other]:
            continue
        with pytest.raises(StepError):
            judge_results(parse_output(output), ["X"], step_kind=other, exit_status=0, output=output)
    with pytest.raises(StepError):
        judge_results(parse_output(output), ["X"], step_kind=None, exit_status=0, output=output)


def test_each_already_done_code_belongs_to_exactly_one_step_kind():
    codes = [code for kind_codes in ALREADY_DONE.values() for code in kind_codes]
    assert len(codes) == len(set(codes))
    assert set(ALREADY_DONE) == set(StepKind)
    assert ALREADY_DONE[StepKind.ADMIN_MODE] == frozenset()


def test_an_accepted_code_does_not_hide_another_error():
    output = "[ERR-61027 : Replication did not start.]\n[ERR-6111B : Undefined replication name.]\n"
    with pytest.raises(StepError, match="6111B"):
        judge_results(parse_output(output), ["STOP REP1", "STOP REP2"], step_kind="replication_stop", exit_status=1,
              output=output)


def test_unknown_step_kind_is_refused():
    with pytest.raises(ValueError):
        judge_results([], [], step_kind="replication_stopp", exit_status=0, output="")


def test_query_results_only_for_selects():
    results = judge_results(parse_output(ECHOED)[1:], ["SELECT a", "SELECT b", "INSERT", "ALTER"], step_kind=None,
                    exit_status=0, output=ECHOED)
    assert query_results(results) == [
        {"statement": "SELECT a", "columns": ["REP_NAME", "REP_GAP"],
         "rows": [{"REP_NAME": "REP1", "REP_GAP": "12"}, {"REP_NAME": "REP2", "REP_GAP": "0"}]},
        {"statement": "SELECT b", "columns": ["ID", "CLIENT_APP_INFO"], "rows": []},
    ]
    assert query_results(parse_output("Alter success.\n")) is None


def test_isql_command_never_contains_a_login():
    command = isql_command("/opt/altibase/bin/isql", shlex.quote("/tmp/x y/step.sql"), nls_use="UTF8")
    assert command == ("/opt/altibase/bin/isql -s \"$ALTIBASE_HOST\" -port \"$ALTIBASE_PORT\" /NOLOG -silent "
                       "-NLS_USE UTF8 < '/tmp/x y/step.sql'")


@pytest.mark.parametrize("password, word", [
    ("manager", '"manager"'), ("Pa;ss}w0rd", '"Pa;ss}w0rd"'), (" sp ", '" sp "'), ("x" * 38, '"' + "x" * 38 + '"'),
    ("Plain_39_chars_" + "x" * 24, "Plain_39_chars_" + "x" * 24),  # too long to quote: bare (a plain name)
])
def test_the_connect_line_quotes_the_password_as_isqls_lexer_reads_it(password, word):
    assert connect_line("SYS", password, sysdba=True) == f"CONNECT SYS/{word} AS SYSDBA;"
    assert connect_line("my user", password, sysdba=False) == f'CONNECT "my user"/{word};'


@pytest.mark.parametrize("password", ['a"b', "two\nlines", "", "y" * 38 + "-!"])
def test_a_password_the_connect_line_cannot_carry_is_refused(password):
    with pytest.raises(UnusableLoginError):
        connect_line("SYS", password, sysdba=True)
