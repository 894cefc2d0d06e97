"""The Airflow plugin of the "Altibase" page: the app under ``/altibase`` (``altibase_ops.fleet_page``) and
its entry in the UI's navigation (shown in the UI's frame at ``/plugin/altibase``)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from altibase_ops.fleet_page.app import MOUNT, app


class AltibasePagePlugin(AirflowPlugin):
    name = "altibase_page"
    fastapi_apps = [{"app": app, "url_prefix": MOUNT, "name": "Altibase pairs"}]
    # href relative to the UI's base: the page works behind a path prefix too
    external_views = [{"name": "Altibase", "href": "altibase/", "url_route": "altibase", "destination": "nav",
                       "nav_top_level": True}]
