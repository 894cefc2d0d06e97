SELECT COUNT(*) AS ROW_COUNT FROM {{ params.table | table }}
