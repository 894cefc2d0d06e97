{# only the row of the holder this run judged dead: a row changed meanwhile is not taken #}
UPDATE SYS.AIRFLOW_DDL_LOCK SET RUN_ID = ?, HOLDER = ?, TAKEN_AT = ?, HEARTBEAT_AT = ?, EXPIRES_AT = ? WHERE REPLICATION_NAME = ? AND REQUEST_KEY = ? AND RUN_ID = ?
