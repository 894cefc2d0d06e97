SELECT REP_NAME, SQL_APPLY_TABLE_COUNT FROM V$REPRECEIVER
{%- if params.replication_name %} WHERE REP_NAME = '{{ params.replication_name | ident }}'{% endif %};
