{# When this server process started (epoch seconds): it changes on every restart (mmm.cpp, gInstanceColDesc). #}
SELECT STARTUP_TIME_SEC FROM V$INSTANCE
