# syntax=docker/dockerfile:1
# The Airflow image of docker-compose.yaml: the official image at the Airflow version pyproject.toml
# pins, plus everything the DAGs need, installed at build time (never through
# _PIP_ADDITIONAL_REQUIREMENTS, which reinstalls on every container start):
#   - the project (altibase_ops with its provider entry point, altibase_sim) and its pinned
#     requirements from pyproject.toml;
#   - unixODBC, for pyodbc (the hook's production "odbc" backend);
#   - the Altibase ODBC driver and the iSQL client (`is`, a wrapper script around `isql`), copied
#     from the Altibase server image at the tag the iSQL pods use (altibase_ops.operators.isql.ALTIBASE_IMAGE):
#     the client must match the servers' release.
#
#   docker build -t altibase-airflow-ops .      (docker compose build does the same)

# Only files are taken from this stage; nothing of it runs.
FROM altibase/altibase:7.1.0.5.1 AS altibase

FROM apache/airflow:3.3.2

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends unixodbc \
 && apt-get autoremove -yqq --purge \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

# Same layout as $ALTIBASE_HOME in the server image, so the facts page's driver path
# ($ALTIBASE_HOME/lib/libaltibase_odbc-64bit-ul64.so) holds here too. The DDL DAG's local runner
# starts isql itself (ALTIBASE_ISQL_BINARY), never the `is` wrapper: that one adds
# `-u sys -p MANAGER $*`, which the runner's /NOLOG refuses (ut/isql/src/is).
ENV ALTIBASE_HOME=/opt/altibase
COPY --from=altibase /home/altibase/altibase_home/lib/libaltibase_odbc-64bit-ul64.so ${ALTIBASE_HOME}/lib/
COPY --from=altibase /home/altibase/altibase_home/bin/isql ${ALTIBASE_HOME}/bin/
COPY --from=altibase /home/altibase/altibase_home/msg ${ALTIBASE_HOME}/msg
ENV PATH=${ALTIBASE_HOME}/bin:${PATH} \
    ALTIBASE_ISQL_BINARY=/opt/altibase/bin/isql
# iSQL logs in AS SYSDBA only when the process's uid owns the $ALTIBASE_HOME directory itself
# (checkUser in ut/isql/src/iSQLMain.cpp, else ERR-9100B): the Airflow user (uid 50000) owns it. Run
# the stack with AIRFLOW_UID=50000, or rebuild with this chown for your uid.
# Fail the build, not the first DAG run, when the driver or the client needs a library this image
# lacks (isql links ncurses). ALTIBASE_HOME is the client's only hard requirement to start.
RUN chown 50000:0 ${ALTIBASE_HOME} \
 && if ldd ${ALTIBASE_HOME}/lib/libaltibase_odbc-64bit-ul64.so ${ALTIBASE_HOME}/bin/isql | grep 'not found'; then exit 1; fi \
 && test -x ${ALTIBASE_HOME}/bin/isql

USER airflow
# The project itself is installed (not only its requirements): its entry point registers the
# `altibase` connection type in the UI. The pin on apache-airflow keeps pip from moving Airflow
# while it resolves the providers' pins (the official image's advice).
COPY --chown=airflow:0 pyproject.toml /opt/airflow/project/
COPY --chown=airflow:0 altibase_sim /opt/airflow/project/altibase_sim
COPY --chown=airflow:0 plugins /opt/airflow/project/plugins
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow/project

# Baked in so the image runs on its own; docker-compose.yaml mounts the working copies over them.
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 include /opt/airflow/include
# The mounted plugins/ must win over the installed copy of altibase_ops (edits take effect without
# a rebuild), and the SQL templates are found whichever copy is imported.
ENV PYTHONPATH=/opt/airflow/plugins \
    ALTIBASE_OPS_SQL_DIR=/opt/airflow/include/sql
