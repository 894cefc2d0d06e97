"""Scheduled maintenance: reviewed change files, the pairs' change history, fleet rollout."""
