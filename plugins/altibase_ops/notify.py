"""Notifications of a DDL run, through Airflow's notifier framework, configured once in the environment.

Four moments: **started** (the pair is held; the procedure begins), **approval** (a service step waits for
a person; with the link to its Required Action), **succeeded** (the summary: time in admin mode per
server, the statements), **failed** (what the restore did and what an operator must do).

Channels (environment of every Airflow component; none set = no notification, nothing fails):
- ``ALTIBASE_NOTIFY_EMAIL``: comma-separated addresses, sent with the SMTP provider's ``SmtpNotifier``
  over the Connection ``ALTIBASE_NOTIFY_SMTP_CONN_ID`` (default ``smtp_default``).
- ``ALTIBASE_NOTIFY_APPRISE_CONN_ID``: an Apprise Connection (Slack, Teams, Telegram, … — Apprise's
  URLs), sent with the Apprise provider's ``AppriseNotifier``.

A channel that fails is logged and skipped: a notification never fails a step of the procedure.
"""

from __future__ import annotations

import html
import os
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier

EMAIL_ENV = "ALTIBASE_NOTIFY_EMAIL"
SMTP_CONN_ENV = "ALTIBASE_NOTIFY_SMTP_CONN_ID"
APPRISE_CONN_ENV = "ALTIBASE_NOTIFY_APPRISE_CONN_ID"
KINDS = ("started", "approval", "succeeded", "failed")


def run_link(context: Any) -> str:
    from airflow.sdk.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    ti = context["ti"]
    return f"{base}/dags/{ti.dag_id}/runs/{quote(ti.run_id, safe='')}"


class AltibaseRunNotifier(BaseNotifier):
    """One notification of a run (``kind`` in KINDS) to every configured channel."""

    def __init__(self, kind: str, message: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.message = message

    def compose(self, context: Any) -> tuple[str, str]:
        from altibase_ops.ddl.request import from_pair

        ti = context["ti"]
        params = from_pair(dict(context.get("params") or {}))  # a run given a pair by name: its servers
        servers = ", ".join(f"{s.get('name')} ({s.get('role')})" for s in params.get("servers") or [])
        where = f"replication {params.get('replication_name')} on {servers}"
        change = f" — change {params['change_id']}" if params.get("change_id") else ""
        subject = f"[Altibase DDL] {self.kind.upper()}: {where}{change}"
        lines = [f"Run {ti.run_id} of {ti.dag_id}: {self.kind}.", f"Pair: {where}.",
                 f"Variant: {params.get('service_mode')} / {params.get('topology')}.",
                 "DDL: " + "; ".join(params.get("ddl") or [])]
        if self.kind == "approval":
            task = context.get("task")
            from airflow.providers.standard.operators.hitl import HITLOperator

            lines += ["", f"Waiting for a person: {getattr(task, 'subject', ti.task_id)}",
                      str(getattr(task, "body", "") or ""),
                      f"Answer here: {HITLOperator.generate_link_to_ui_from_context(context=context)}"]
        if self.message:
            lines += ["", self.message]
        lines += ["", f"The run: {run_link(context)}"]
        return subject, "\n".join(lines)

    def notify(self, context: Any) -> None:
        configured = channels()
        if not configured:
            return
        try:
            subject, body = self.compose(context)
        except Exception as exc:  # noqa: BLE001 - e.g. no [api] base_url for the link: never fail the step
            self.log.warning("could not compose the %s notification: %s", self.kind, exc)
            return
        for name, send in configured.items():
            try:
                send(subject, body, context)
                self.log.info("notified %s (%s): %s", name, self.kind, subject)
            except Exception as exc:  # noqa: BLE001 - a notification never fails the procedure
                self.log.warning("could not notify %s (%s): %s", name, self.kind, exc)


def channels(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The configured channels: name -> send(subject, body, context)."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    if to := [a.strip() for a in environ.get(EMAIL_ENV, "").split(",") if a.strip()]:
        smtp_conn_id = environ.get(SMTP_CONN_ENV, "").strip() or "smtp_default"

        def email(subject: str, body: str, context: Any) -> None:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            SmtpNotifier(to=to, subject=subject, html_content=f"<pre>{html.escape(body)}</pre>",
                         smtp_conn_id=smtp_conn_id).notify(context)

        out[f"email {', '.join(to)}"] = email
    if apprise_conn_id := environ.get(APPRISE_CONN_ENV, "").strip():

        def apprise(subject: str, body: str, context: Any) -> None:
            from airflow.providers.apprise.notifications.apprise import AppriseNotifier

            AppriseNotifier(title=subject, body=body, apprise_conn_id=apprise_conn_id).notify(context)

        out[f"apprise {apprise_conn_id}"] = apprise
    return out


def notify(kind: str, context: Any, message: str = "") -> None:
    """Send one notification now (from inside a task)."""
    AltibaseRunNotifier(kind, message).notify(context)
