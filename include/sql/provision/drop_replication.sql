{#- Teardown, every node, after STOP on every node. -#}
DROP REPLICATION {{ params.replication_name | ident }};
