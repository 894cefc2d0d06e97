SELECT REP_NAME, REP_SN, REP_GAP FROM V$REPGAP WHERE REP_NAME = '{{ params.replication_name | ident }}';
