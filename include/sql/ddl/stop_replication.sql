ALTER REPLICATION {{ params.replication_name | ident }} STOP;
