{# every column: a table made by an earlier version of this tool has no lease columns (HEARTBEAT_AT, EXPIRES_AT) #}
SELECT * FROM SYS.AIRFLOW_DDL_LOCK WHERE REPLICATION_NAME = ?
