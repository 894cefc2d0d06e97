{#- P6, every node, once both nodes have the replication object (START handshakes with the peer). -#}
ALTER REPLICATION {{ params.replication_name | ident }} START;
