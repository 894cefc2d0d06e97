SELECT REP_NAME, REP_GAP, REP_GAP_SIZE FROM V$REPGAP WHERE REP_NAME = '{{ params.replication_name | ident }}';
