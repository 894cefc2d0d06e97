"""Provider metadata: registers the ``altibase`` connection type with Airflow.

Airflow discovers it through the ``apache_airflow_provider`` entry point declared in pyproject.toml;
the connection form then offers "Altibase" with the fields and widgets of ``AltibaseHook``.
This module must stay import-light: Airflow loads it while it initialises its configuration.
"""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        # must equal the distribution name, or Airflow refuses the provider
        "package-name": "altibase-airflow-ops",
        "name": "Altibase operations",
        "description": "Altibase hook, replication sensors and iSQL operators for DDL on replicated tables.",
        "versions": ["0.1.0"],
        "hooks": [{"integration-name": "Altibase", "python-modules": ["altibase_ops.hooks.altibase"]}],
        "connection-types": [
            {
                "hook-class-name": "altibase_ops.hooks.altibase.AltibaseHook",
                "hook-name": "Altibase",
                "connection-type": "altibase",
                # Airflow 3.2+ reads the connection form from here (the hook-side
                # get_ui_field_behaviour / get_connection_form_widgets are deprecated).
                "conn-fields": {
                    "backend": {
                        "label": "Backend",
                        "description": "Required. odbc: pyodbc and the Altibase ODBC driver (a real server); "
                                       "simulator: the embedded simulator",
                        "schema": {"type": "string", "enum": ["odbc", "simulator"]},
                    },
                    "driver": {
                        "label": "ODBC driver",
                        "description": "Driver library or unixODBC driver name (odbc backend)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "nls_use": {
                        "label": "NLS_USE",
                        "description": "Client character set, e.g. UTF8 (odbc backend and iSQL)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {"host": "Server", "login": "User"},
                    "placeholders": {"host": "altibase-svc-node1", "port": "20300", "login": "SYS"},
                },
            }
        ],
    }
