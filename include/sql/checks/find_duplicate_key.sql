{# One key that two rows share under a new unique index, as Altibase judges it while building the index
   (smnbValuebaseBuild.cpp isRowUnique: NULL equals NULL in a key; a key of only NULLs is exempt), with
   how many rows share it; no row when the index can be built. One scan and a group of the key columns. #}
SELECT {% for column in params.columns %}{{ column | ident }}, {% endfor %}COUNT(*) AS ROWS_SHARING_THE_KEY FROM {{ params.table | table }} WHERE NOT ({% for column in params.columns %}{{ column | ident }} IS NULL{% if not loop.last %} AND {% endif %}{% endfor %}) GROUP BY {% for column in params.columns %}{{ column | ident }}{% if not loop.last %}, {% endif %}{% endfor %} HAVING COUNT(*) > 1 LIMIT 1
