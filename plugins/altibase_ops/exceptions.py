"""Exceptions a DAG author may catch: every failure reaching Altibase is an ``AltibaseServerError``."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class AltibaseServerError(AirflowException):
    """An Altibase error with the server it came from and its 5-digit hex code (None when the
    failure carried none, e.g. a network error below the driver)."""

    def __init__(self, server: str, code: str | None, message: str, *, action: str):
        self.server = server
        self.code = code
        self.altibase_message = message
        text = f"[ERR-{code} : {message}]" if code else message
        super().__init__(f"Altibase server {server}: {action} failed: {text}")


class BackendNotConfiguredError(AirflowException):
    """A Connection without a usable ``backend`` extra: refused, never guessed."""
