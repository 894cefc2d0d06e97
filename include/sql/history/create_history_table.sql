{# The pair's change history, like Flyway's schema history: one row per DDL run that reached an outcome
   (REASON: a refused change's message, written by the maintenance DAG; empty for the DDL DAG's rows).
   On both servers, outside any replication, so it survives Airflow being rebuilt and a DBA can query it. #}
CREATE TABLE SYS.AIRFLOW_CHANGE_HISTORY (REPLICATION_NAME VARCHAR(40) NOT NULL, CHANGE_ID VARCHAR(100) NOT NULL, CHECKSUM VARCHAR(16) NOT NULL, OUTCOME VARCHAR(16) NOT NULL, RUN_ID VARCHAR(250) NOT NULL, DAG_ID VARCHAR(250) NOT NULL, STARTED_AT VARCHAR(20) NOT NULL, ENDED_AT VARCHAR(20) NOT NULL, DURATION_SECONDS INTEGER NOT NULL, REASON VARCHAR(2000), PRIMARY KEY (REPLICATION_NAME, CHANGE_ID, RUN_ID))
