"""When the maintenance DAG runs (from the environment, read when the file is parsed, like the health
DAG), and whether a run applies or only previews."""

from __future__ import annotations

import os

SCHEDULE_ENV = "ALTIBASE_MAINTENANCE_SCHEDULE"
WINDOW_ENV = "ALTIBASE_MAINTENANCE_WINDOW_MINUTES"
DEFAULT_SCHEDULE = "0 2 * * 6"  # Saturdays 02:00 UTC
DEFAULT_WINDOW_MINUTES = 120


class InvalidMaintenanceConfigError(ValueError):
    """The maintenance window's configuration is unusable."""


def schedule_from_env(environ: dict[str, str] | None = None) -> str | None:
    """The window opens: ``$ALTIBASE_MAINTENANCE_SCHEDULE`` (cron or preset), else Saturdays 02:00 UTC;
    ``none``: no schedule (windows opened by a manual or external trigger only)."""
    value = (os.environ if environ is None else environ).get(SCHEDULE_ENV, "").strip() or DEFAULT_SCHEDULE
    return None if value.lower() == "none" else value


def window_minutes_from_env(environ: dict[str, str] | None = None) -> int:
    """How long the window stays open: ``$ALTIBASE_MAINTENANCE_WINDOW_MINUTES``, else 120."""
    raw = (os.environ if environ is None else environ).get(WINDOW_ENV, "").strip()
    if not raw:
        return DEFAULT_WINDOW_MINUTES
    if not raw.isdigit() or not 1 <= int(raw) <= 24 * 60:
        raise InvalidMaintenanceConfigError(f"{WINDOW_ENV}: whole minutes from 1 to 1440, got {raw!r}")
    return int(raw)


def previews(dry_run: bool, run_type: str) -> bool:
    """Whether a run only plans. ``dry_run`` defaults to true, so a person who presses Trigger to see the
    plan changes nothing; the scheduler's runs (the window opening) take the defaults too, and apply."""
    return bool(dry_run) and getattr(run_type, "value", run_type) == "manual"  # the SDK gives an enum
