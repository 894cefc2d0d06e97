"""Hooks: ``AltibaseHook`` (sessions on one server from an Airflow Connection)."""
