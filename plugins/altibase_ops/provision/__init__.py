"""Provisioning (docs/procedures.md, P1–P7) and its undo: ``altibase_provision`` and ``altibase_teardown``.

Modules: ``tables``/``spec`` (the validated parameters), ``manifests`` (the Kubernetes objects),
``kube_apply`` (create-or-update, readiness, teardown in a cluster), ``simulator_target`` (the same in
the simulator), ``sql`` (P6/P7 statements), ``request`` (params and Connections), ``plan`` (the dry
run), ``inspect`` (reading the servers first, the final check), ``operators`` (the tasks).

The DAG files only wire these. Every task derives what it needs from the run's params again
(``ProvisionRequest.from_params``): the parameters are the whole input, so a cleared task re-runs
the same way, and no XCom carries anything a task could not recompute.

**Reaching the servers.** One Airflow Connection (type ``altibase``) per node, host = the node's
Service name (``altibase-svc-node1``, or its ``.<namespace>.svc`` form), port = the service port,
login SYS, password = the SYS password that the Kubernetes Secret also holds. ``plan`` refuses a
Connection whose host or port is not the node's Service, so a run can never provision one pair and
send its SQL to another. With ``target="simulator"`` the apply step registers each server under
those Service names, and the simulator's registry resolves them (the worker needs
``ALTIBASE_SIM_STATE_DIR``): the Connections, the SQL and the sensors are the same in both targets.
No Connection is created at run time, so no password is written anywhere by these DAGs.

**Idempotency.** Kubernetes objects: ``kube_apply`` reads each one first (create, leave alone, or
patch). Simulator servers: added only when absent. SQL: ``inspect_servers`` reads every node first
and refuses objects that exist with another definition (a table with other columns, a replication
to another peer or with other tables); the P6 statements then run with their "already done" codes
(``isql.ALREADY_DONE``: existing table, existing replication, sender already started) accepted, so a
re-run with the same params sends the same statements and changes nothing.

**Sessions.** Provisioning never needs admin mode, so every iSQL step and read here logs in as SYS
without SYSDBA (as the seed does). Only the P7 gap sensor uses SYSDBA (the shared check does), once
per direction on the row's origin, and nothing else holds a SYSDBA session on that server then.
"""

