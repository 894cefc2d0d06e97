{# One row per replication (per pair) while a DDL run holds it: who, which request, since when, and its
   lease (HEARTBEAT_AT: the holder's last sign of life; EXPIRES_AT: after it, the holder counts as dead).
   Lives on every server of the pair, outside any replication, so every Airflow that can reach the pair sees it. #}
CREATE TABLE SYS.AIRFLOW_DDL_LOCK (REPLICATION_NAME VARCHAR(40) PRIMARY KEY, REQUEST_KEY VARCHAR(16) NOT NULL, RUN_ID VARCHAR(250) NOT NULL, HOLDER VARCHAR(250) NOT NULL, TAKEN_AT BIGINT NOT NULL, HEARTBEAT_AT BIGINT, EXPIRES_AT BIGINT)
