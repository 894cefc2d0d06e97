"""Altibase operations for Airflow: the public surface a DAG author imports.

    from altibase_ops import AltibaseHook, IsqlOperator, ReplicationGapSensor, SessionCountSensor, \
        SqlApplySensor, ServiceControlOperator

Layout (provider-shaped): building blocks in ``hooks/``, ``operators/``, ``sensors/``, ``triggers/``
(with ``get_provider_info.py`` registering the ``altibase`` connection type), shared pieces in
``sql/`` (identifiers, templates, the one step runner), ``state/`` (reading a server) and
``backends/`` (odbc; the simulator, the only module importing ``altibase_sim``); one subpackage per
job: ``ddl/``, ``provision/``, ``health/``; and ``service/`` for the application's traffic.

Names resolve on first use (PEP 562): Airflow imports this package while it loads its configuration
(for ``get_provider_info``), before the SDK is usable, so nothing here imports it eagerly.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "AltibaseHook": "altibase_ops.hooks.altibase",
    "AltibaseServerError": "altibase_ops.exceptions",
    "IsqlOperator": "altibase_ops.operators.isql",
    "ReplicationGapSensor": "altibase_ops.sensors.altibase",
    "SessionCountSensor": "altibase_ops.sensors.altibase",
    "SqlApplySensor": "altibase_ops.sensors.altibase",
    "AltibaseCheckTrigger": "altibase_ops.triggers.altibase",
    "ServiceControlOperator": "altibase_ops.service.operator",
    "StepKind": "altibase_ops.sql.steps",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
