{#- P7 on every node: the proof row, by its primary key. -#}
SELECT * FROM {{ params.table | ident }} WHERE {% for column, value in params.key %}{{ column | ident }} = {{ value }}{{ " AND " if not loop.last }}{% endfor %};
