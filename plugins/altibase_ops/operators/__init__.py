"""Operators: ``IsqlOperator`` (an iSQL script on one server, locally or in a pod)."""
