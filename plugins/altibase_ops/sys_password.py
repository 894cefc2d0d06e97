"""The SYS password's one convention: it lives in Airflow Connections (for the worker's sessions) and in
one Kubernetes Secret per namespace (for the pods), never in params, manifests, logs or a command line.

The Secret is ``altibase-sys-password`` with key ``password`` unless a run's params name another
(``password_secret_name`` / ``password_secret_key`` in every DAG that starts pods): the iSQL pods of the
DDL and provisioning runs read it, and so does the README's ``kubectl create secret`` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The server takes at most 40 bytes of password, quotes included (mmtCmsConnection.cpp): what both the
# ODBC connection string and iSQL's CONNECT line can quote.
MAX_PASSWORD_BYTES = 40
DEFAULT_SECRET_NAME = "altibase-sys-password"
DEFAULT_SECRET_KEY = "password"
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SECRET_KEY_PATTERN = re.compile(r"[-._a-zA-Z0-9]+")


def is_dns_label(value: object) -> bool:
    """A namespace or Service name: a DNS-1123 label."""
    return isinstance(value, str) and len(value) <= 63 and bool(DNS_1123_LABEL.fullmatch(value))


def is_dns_subdomain(value: object) -> bool:
    """A Secret's (or most objects') name: a DNS-1123 subdomain."""
    return isinstance(value, str) and len(value) <= 253 and bool(DNS_1123_SUBDOMAIN.fullmatch(value))


@dataclass(frozen=True)
class SecretRef:
    """The Kubernetes Secret key holding the SYS password (never the password itself)."""

    name: str = DEFAULT_SECRET_NAME
    key: str = DEFAULT_SECRET_KEY

    def problems(self) -> list[str]:
        found = []
        if not is_dns_subdomain(self.name):
            found.append(f"password secret name {self.name!r}: must be a DNS-1123 subdomain")
        if not isinstance(self.key, str) or not SECRET_KEY_PATTERN.fullmatch(self.key) or len(self.key) > 253:
            found.append(
                f"password secret key {self.key!r}: may contain only letters, digits, '-', '_' and '.'"
            )
        return found
