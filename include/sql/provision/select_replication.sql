{#- State read before P6 and teardown: does the replication object exist on this node, is it started? -#}
SELECT REPLICATION_NAME, IS_STARTED FROM SYSTEM_.SYS_REPLICATIONS_ WHERE REPLICATION_NAME = '{{ params.replication_name | ident }}';
