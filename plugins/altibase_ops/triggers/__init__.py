"""Triggers: ``AltibaseCheckTrigger`` (a state check polled in the triggerer for deferred sensors)."""
