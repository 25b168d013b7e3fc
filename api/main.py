"""The FastAPI application: :func:`create_app` builds it, ``app`` is what the server serves.

Run it with ``gunicorn api.main:app --config python:api.server`` (a master and one warm uvicorn worker,
see :mod:`api.server`; ``uvicorn api.main:app`` works too). The service writes its own JSON request log.
Configuration comes from the environment (:class:`api.settings.ApiSettings`). On start the app serves the
champion through the process-wide model store (:func:`api.model_store.get_shared_store`), so every app of
a process shares one loaded model: from the local champion cache when it has one (without waiting on
MLflow), else from the registry; then it checks for a new one in the background.

``app`` is built on first access (a module ``__getattr__``), so importing :func:`create_app` (the Lambda
handler, the tests) does not build an app that nobody serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from api.docs import install_docs
from api.errors import install_error_handlers
from api.logs import configure_logging
from api.memory import configure_allocator
from api.metrics import ApiMetrics
from api.middleware import RequestObserver
from api.model_store import ModelStore, get_shared_store
from api.openapi import install_openapi
from api.routers import health, model, predict
from api.settings import ApiSettings

DESCRIPTION = (
    "Predictions from the registry's champion model. The request schema below is generated from the "
    "dataset spec stored with the served model and changes when a new champion with another schema is "
    "promoted."
)


def create_app(
    settings: ApiSettings | None = None, store: ModelStore | None = None, *, background_poll: bool = True
) -> FastAPI:
    """Build the service.

    ``store`` defaults to the process-wide store for ``settings``. With ``background_poll`` (a long-running
    process) the lifespan starts the store (:meth:`ModelStore.start`) and a thread checks the registry for a
    new champion; without it (Lambda, where the handler's init starts the store) each invocation's lifespan
    start only schedules a background check when one is due, and waits for it only while no model is served
    (at most ``check_timeout_s + registry_timeout_s``; the alternative would be a 503).
    """
    settings = settings or ApiSettings()
    settings.apply_thread_limits()
    configure_allocator()
    store = store or get_shared_store(settings)
    configure_logging(settings.log_level)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background_poll:
            await run_in_threadpool(store.start)
            store.start_polling()
        else:
            store.schedule_check()  # Lambda: runs on every invocation; starts a background check when due
            if store.bundle is None:  # nothing to serve meanwhile: let this invocation wait for the load, bounded
                await run_in_threadpool(store.wait_for_check, settings.check_timeout_s + settings.registry_timeout_s)
        metrics.set_model(store.bundle, store.status)
        try:
            yield
        finally:
            if background_poll:
                store.stop_polling()

    app = FastAPI(
        title="MLOps prediction API",
        summary="Serves the champion model of the MLflow registry.",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs and /redoc without a CDN, through any path prefix
        redoc_url=None,
        openapi_tags=[
            {"name": "prediction", "description": "Predictions from the served model."},
            {"name": "model", "description": "The served model and its replacement."},
            {"name": "operations", "description": "Liveness, readiness and metrics."},
        ],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = metrics
    store.add_listener(lambda result: metrics.on_refresh(result, store.status))

    for router in (predict.router, model.router, health.router):
        app.include_router(router)
    install_error_handlers(app)
    app.add_exception_handler(model.AdminKeyError, model.on_admin_key_error)
    install_openapi(app, store)
    install_docs(app)
    metrics.paths = frozenset(route.path for route in app.routes if hasattr(route, "path"))
    app.add_middleware(
        RequestObserver,
        metrics=metrics,
        served_version=lambda: store.bundle.ref.version if store.bundle is not None else None,
        log_requests=settings.request_log,
    )
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """Build ``app`` (configured from the environment) the first time someone asks for it."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app
