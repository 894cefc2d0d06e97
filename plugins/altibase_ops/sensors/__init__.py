"""Sensors: replication gap, session count and SQL apply count (deferrable)."""
