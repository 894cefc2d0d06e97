"""DDL on replicated tables (docs/procedures.md): the request (``request``), the statements
(``statements``), the procedure as data (``procedure``), the dry-run plan (``plan``), the read-only
gates (``preflight``), what each step does (``steps``) and its task (``operators``), the checks after
(``verify``), the way back after a failure (``restore``) and the run summary (``summary``)."""
