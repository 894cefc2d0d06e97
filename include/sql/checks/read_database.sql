{# The database's identity, made when it was created (smmFT.cpp DB_SIGNATURE); with STARTUP_TIME_SEC it tells one server behind two Connections from a pair. #}
SELECT DB_SIGNATURE FROM V$DATABASE
