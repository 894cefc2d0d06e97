"""Replication health of configured pairs: which pairs and when (``config``), and reading and judging
each server (``judgement``)."""
