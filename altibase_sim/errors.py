"""Altibase error codes and texts the simulator raises.

Codes and texts are the Altibase 7.1 server's message files (``src/*/msg/E_*_US7ASCII.msg`` of the
open-source tree; the code is section, action and entry number, as ``genErrMsg.cpp`` builds it), each
raised where the server raises it (docs/simulator-fidelity.md). One difference on purpose: where the
server quotes the statement with ``^`` markers (31001, 31031, 31058), the simulator names the object.
"""

from __future__ import annotations


class AltibaseError(Exception):
    """An error as Altibase reports it: a 5-digit hex code and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(f"[ERR-{code} : {message}]")
        self.code = code
        self.message = message

    def __reduce__(self):  # keep code/message when pickled across processes
        return (type(self), (self.code, self.message))


# code -> message template (str.format with keyword arguments)
MESSAGES: dict[str, str] = {
    # replication (facts)
    "610FE": "Replication has already started.",
    "6100A": "The sender has already been started.",
    "6109F": "The receiver has already been started.",
    "61027": "Replication did not start.",
    "6111A": "No replication items found.",
    "6106F": "You cannot drop only one replicated table.",
    "61075": "Timeout exceed.",
    "6111B": "Undefined replication name. The replication name was not found in the database.",
    "61100": "Duplicate replication names. The replication name already exists in the database.",
    "61111": "Table not found : {name}",  # rpcValidate.cpp: the table name only
    "610CD": "The replication's item count does not match [{sender}:{receiver}].",  # in the receiver's log
    "6100D": "[Sender] Failed to handshake with the peer server ({reason})",
    "61023": "Replication is disabled",
    "31084": "The user has no permission to execute the SQL statement.",
    # DDL on replicated tables (facts)
    "312C4": "Cannot execute this DDL on a replicated table when the system property "
             "REPLICATION_DDL_ENABLE is 0.",
    "3103F": "No DDL statement may be executed on a replicated table.",
    # admin mode and sessions (facts)
    "4107F": "Failure changing to ADMIN_MODE. Only SYS and SYSTEM_ users can change the current mode to ADMIN_MODE.",
    "4106E": "If ADMIN_MODE is activated, only the users SYS and SYSTEM_ can connect to the database "
             "with SYSDBA privileges. Verify that you have SYSDBA privileges.",
    "41043": "Invalid access privileges",  # mmcTask.cpp: SYSDBA login by a user other than SYS
    "41041": "Another SYSDBA session is already running.",
    "61113": "A replicated table must have a primary key. ({user}.{table})",
    # only for a table named twice in ALTER REPLICATION ... SYNC TABLE (qcply.y); ADD TABLE of an item
    # already there hits SYS_REPL_ITEMS_'s unique index instead (11058)
    "3129B": "Duplicate table names.",
    # general SQL (Error Message Reference, not on the facts page)
    "31001": "SQL syntax error {detail}",
    "31031": "Table or view was not found : {name}",
    "31058": "Column not found {name}",
    "31022": "The name is already used by an existing object.",
    "3104C": "Duplicate index name",
    "31014": "Index not found",
    # ALTER TABLE / DROP INDEX on a table out of the replication (qdbAlter.cpp, qdn.cpp, qdd.cpp)
    "3104A": "Unable to add NOT NULL constraint to a column without a DEFAULT value",
    "31026": "Too many or too few columns in a table",
    "31321": "It is forbidden to drop a column that has multi-column constraints.",
    "3119E": "The primary key or unique key constraint cannot be dropped using the DROP INDEX statement. "
             "Use the ALTER TABLE statement.",
    "11058": "The row already exists in a unique index.",
    "31074": "Unable to insert (or update) NULL into NOT NULL column.{column}",  # qmx.cpp; 31056 is never raised
    "31053": "Not enough insert values",
    "31054": "Too many insert values",
    "3103D": "Duplicate user or role names. The user name already exists in the database.",
    "3103C": "Undefined user name. The user specified as the owner of a table or an object was not found in "
             "the database.",
    "21011": "Invalid literal",
    "0104B": "Unable to find the property name [{name}].",  # ALTER SYSTEM SET (idp.cpp)
    "0104C": "Property value overflow [{name}]",
    "311B1": "The user must have ALTER_SYSTEM privilege(s) to execute this statement.",
    "31010": "User not found",  # a login with an unknown user (qcmUser.cpp)
    "4102E": "Invalid password",
    "01044": "Client's query exceeded the execution time limit.",  # QUERY_TIMEOUT (iduSessionEvent.cpp)
    "50032": "Client unable to establish connection. ({detail})",
    "51043": "Communication link failure. {detail}",
    "11075": "The transaction has exceeded the lock timeout specified by the user.",
    # simulator-only: situations Altibase would not reach (a broken wire message, a fault injected by a test)
    "FFFFF": "{detail}",
}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def error(code: str, **kwargs: object) -> AltibaseError:
    """The AltibaseError for a code, its message filled with kwargs (missing ones left blank).

    A code the table does not know (a test may inject any code) gets ``detail`` as its message."""
    return AltibaseError(code, MESSAGES.get(code, "{detail}").format_map(_Blank(kwargs)).strip())
