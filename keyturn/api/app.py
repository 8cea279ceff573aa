"""The FastAPI application: `create_app()` assembles auth, errors and the routers.

    app = create_app()                                   # settings from the environment
    app = create_app(settings, client=c, store_for=f)    # tests: inject Temporal and stores

`keyturn serve` runs it with uvicorn; the OpenAPI document is at /openapi.json (the
interactive /docs and /redoc only with ApiSettings.interactive_docs). RequestGuard
(keyturn.api.guard) wraps everything: identity before any body is read, a body size cap;
RequestMetrics (keyturn.api.metrics) counts every request, refused ones too, for /metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from temporalio.client import Client

from keyturn.api import audit_routes, codec_routes, errors, runs_routes, ui, ui_login
from keyturn.api.auth import Principal, current_principal
from keyturn.api.context import ApiContext, ApiSettings
from keyturn.api.errors import responses
from keyturn.api.guard import RequestGuard
from keyturn.api.metrics import RequestMetrics, metrics_endpoint
from keyturn.api.models import Health, WhoAmI
from keyturn.runbook.plan_model import StorePlan
from keyturn.stores.base import Store

API_VERSION = "1"


def create_app(
    settings: ApiSettings | None = None,
    *,
    client: Client | None = None,
    store_for: Callable[[StorePlan], Store] | None = None,
) -> FastAPI:
    """The API app. `settings` default to ApiSettings.from_env(); without `client` the app
    connects to Temporal on first use (one client per app); `store_for` opens the store a
    supplied value is written to (default: the store the runbook names)."""
    context = ApiContext(settings or ApiSettings.from_env(), client=client, store_for=store_for)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield  # the client is connected on first use, so the API starts while Temporal is away

    docs = context.settings.interactive_docs
    app = FastAPI(
        title="keyturn",
        # Off by default: Swagger UI and ReDoc load scripts from a CDN, and on this origin
        # a compromised script could read the approvals page and approve.
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        version=API_VERSION,
        summary="Rotate every credential a supply-chain breach exposed: runs, gates, audit.",
        lifespan=lifespan,
    )
    app.state.keyturn = context
    app.add_middleware(RequestGuard, max_body=context.settings.max_body,
                       identified=context.identified)
    app.add_middleware(RequestMetrics)  # outermost: counts what the guard refuses too
    errors.install(app)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)

    @app.get("/healthz", response_model=Health, tags=["meta"], summary="Liveness")
    async def healthz() -> Health:
        return Health()

    @app.get("/v1/whoami", response_model=WhoAmI, tags=["meta"], responses=responses(401),
             summary="The authenticated principal")
    async def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> WhoAmI:
        return WhoAmI(principal=principal.name, roles=sorted(principal.roles))

    app.include_router(runs_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(codec_routes.router)
    app.include_router(ui_login.router)
    app.include_router(ui.router)
    return app
