{#- P7 clean-up on the row's origin node; replication removes it from the peer. -#}
DELETE FROM {{ params.table | ident }} WHERE {% for column, value in params.key %}{{ column | ident }} = {{ value }}{{ " AND " if not loop.last }}{% endfor %};
