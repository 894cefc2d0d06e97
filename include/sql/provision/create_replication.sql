{#- P6, every node: the replication object pointing at the other node's Service name and replication
    port. Both nodes create an object of the same name. params.peer_host is a Kubernetes Service
    name (a DNS label, validated with the spec); params.tables are USER.TABLE names. -#}
CREATE REPLICATION {{ params.replication_name | ident }} WITH '{{ params.peer_host }}', {{ params.peer_port | int }}
{%- for table in params.tables %} FROM {{ table | table }} TO {{ table | table }}{{ "," if not loop.last }}{% endfor %};
