"""A refusal ends its task with its message, not with a Python traceback.

Airflow 3.3.2's task runner logs every exception a task raises as "Task failed with exception" with its
traceback (``airflow.sdk.execution_time.task_runner._run_task_and_map_outcome``), the one exception being
``SystemExit``: logged as one line ("Task exited") and failed like any other failure (retries apply).
A refusal — bad params, a pair not in a state to start from, a run that did not complete — is a message
for a person, not a bug, so the task logs the message and ends with ``Refused``, a ``SystemExit``.
Only at a task's edge: library code raises and catches ordinary exceptions (a ``SystemExit`` would slip
past ``except Exception``). Should a later Airflow fail a task quietly by other means, this module goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn


class Refused(SystemExit):
    """A task refused to go on; the message says why and what to do. Its code is the message's first line."""


def fail_in_one_line(log: Any, message: str) -> NoReturn:
    """Log ``message`` (every line of it, as one record) and fail the task without a traceback."""
    log.error("%s", message)
    raise Refused(message.splitlines()[0] if message else "refused") from None


@contextmanager
def refusals_in_one_line(log: Any, *refusals: type[BaseException]) -> Iterator[None]:
    """Inside a task: an exception of ``refusals`` fails the task with its message alone."""
    try:
        yield
    except refusals as exc:
        fail_in_one_line(log, str(exc))
