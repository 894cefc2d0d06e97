"""The "Altibase" page of the Airflow UI: every pair of the fleet as its servers show it now.

``read`` reads the fleet (the health DAG's bounded, read-only check per server, the pair's lock and its
change history; never SYSDBA), ``render`` makes the HTML, ``app`` is the FastAPI app the plugin
(``plugins/altibase_page.py``) mounts under ``/altibase``, behind Airflow's own login.
"""
