ALTER REPLICATION {{ params.replication_name | ident }} FLUSH WAIT {{ params.flush_wait_seconds | int }};
