"""The FastAPI app behind the page: ``/`` (HTML) and ``/api/pairs`` (JSON), mounted by the plugin under
``/altibase``.

Airflow authenticates its own API with dependencies on its routers; an app a plugin mounts inherits none
of them, and no middleware authenticates it (apache/airflow#72655, documented for 3.x). So the app
requires the login itself, with Airflow's own dependency: ``requires_access_dag`` resolves the user from
the UI's session cookie or a Bearer token (401 without one, 403 for an invalid one) and asks the auth
manager whether that user may read the runs of ``altibase_replicated_ddl`` — the runs the page names
as lock holders and in the history (403 otherwise).

``app`` builds the FastAPI app on its first request: every Airflow process loads the plugins, task
processes included, and none of them but the api-server needs FastAPI or Airflow's API security.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, and Request is
# imported inside create_app (see below), where only an evaluated annotation can see it.
from typing import Any

DDL_DAG_ID = "altibase_replicated_ddl"
MOUNT = "/altibase"


def create_app() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import HTMLResponse
    from starlette.concurrency import run_in_threadpool

    from altibase_ops.fleet_page.read import read_fleet
    from altibase_ops.fleet_page.render import render_page

    app = FastAPI(title="Altibase pairs", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DDL_DAG_ID))])

    def airflow_root(request: Request) -> str:
        # the mount point's path, as Starlette gives it to the mounted app, less the mount itself
        return str(request.scope.get("root_path", "")).removesuffix(MOUNT)

    @app.get("/api/pairs")
    async def pairs(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(read_fleet, airflow_root=airflow_root(request))

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        view = await run_in_threadpool(read_fleet, airflow_root=airflow_root(request))
        return HTMLResponse(render_page(view))

    return app


class LazyApp:
    """An ASGI app that builds ``create_app()`` on its first call."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


app = LazyApp()
