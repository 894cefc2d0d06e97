{# A table's data in one row, computed on the server (one scan, one row back): the row count and the
   sum of every exact-numeric column. Two servers whose rows differ (other keys, other values) almost
   always differ here, where equal row counts would not show it. #}
SELECT COUNT(*) AS ROW_COUNT{% for column in params.columns %}, SUM({{ column | ident }}) AS {{ column | ident }}{% endfor %} FROM {{ params.table | table }}
