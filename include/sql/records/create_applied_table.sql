{# What a DDL step ran on this server, per request and statement: BEGAN before, DONE after. The proof
   for a statement whose effect the catalog cannot show (TRUNCATE). #}
CREATE TABLE SYS.AIRFLOW_DDL_APPLIED (REQUEST_KEY VARCHAR(16) NOT NULL, STATEMENT_NO INTEGER NOT NULL, STATE VARCHAR(8) NOT NULL, RUN_ID VARCHAR(250) NOT NULL, AT_TIME BIGINT NOT NULL, PRIMARY KEY (REQUEST_KEY, STATEMENT_NO))
