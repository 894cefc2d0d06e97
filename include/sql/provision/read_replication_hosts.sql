{#- State read before P6: where an existing replication object sends (its WITH 'host', port).
    The replication name is bound as a parameter (?), upper case. -#}
SELECT HOST_IP, PORT_NO FROM SYSTEM_.SYS_REPL_HOSTS_ WHERE REPLICATION_NAME = ?
