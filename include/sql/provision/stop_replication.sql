{#- Teardown, every node: stop before DROP (DROP of a started replication fails with ERR-610FE). -#}
ALTER REPLICATION {{ params.replication_name | ident }} STOP;
