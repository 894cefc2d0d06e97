{# The sender's position (REP_SN) and what waits behind it: read twice to see whether it moves. #}
SELECT REP_NAME, REP_SN, REP_LAST_SN, REP_GAP FROM V$REPGAP WHERE REP_NAME = ?
