{# the history table's columns: none before it exists; a table made by an earlier version has no REASON #}
SELECT c.COLUMN_NAME FROM SYSTEM_.SYS_COLUMNS_ c, SYSTEM_.SYS_TABLES_ t, SYSTEM_.SYS_USERS_ u WHERE c.TABLE_ID = t.TABLE_ID AND t.USER_ID = u.USER_ID AND u.USER_NAME = 'SYS' AND t.TABLE_NAME = 'AIRFLOW_CHANGE_HISTORY'
