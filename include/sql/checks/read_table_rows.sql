{# Every row of a small table, the named columns only (preflight's search for the first keys whose rows
   differ between the servers; read only from tables of a bounded size). #}
SELECT {% for column in params.columns %}{% if not loop.first %}, {% endif %}{{ column | ident }}{% endfor %} FROM {{ params.table | table }}
