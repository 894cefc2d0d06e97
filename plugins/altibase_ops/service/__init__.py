"""Stopping, moving and resuming the application's traffic around a procedure: what to do
(``control``), how in each mode (``simulator``, ``kubernetes``; ``manual`` asks a person), and the task
(``operator``)."""
