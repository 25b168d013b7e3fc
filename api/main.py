"""The FastAPI application: :func:`create_app` builds it, ``app`` is what the server serves.

Run it with ``gunicorn api.main:app --config python:api.server`` (a master and one warm uvicorn worker,
see :mod:`api.server`; ``uvicorn api.main:app`` works too). The service writes its own JSON request log.
Configuration comes from the environment (:class:`api.settings.ApiSettings`). On start the app serves every
model through the process-wide model fleet (:func:`api.model_fleet.get_shared_fleet`, one store per dataset),
so every app of a process shares the loaded models: from the champion cache when it has them (without waiting
on MLflow), else from the registry; then it checks for new champions and new models in the background.

``app`` is built on first access (a module ``__getattr__``), so importing :func:`create_app` (the Lambda
handler, the tests) does not build an app that nobody serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from api.docs import install_docs
from api.errors import install_error_handlers
from api.logs import configure_logging
from api.memory import configure_allocator
from api.metrics import ApiMetrics
from api.middleware import RequestObserver
from api.model_fleet import ModelFleet, get_shared_fleet
from api.model_store import ModelStore
from api.openapi import install_openapi
from api.routers import health, model, models, predict
from api.settings import ApiSettings

DESCRIPTION = (
    "Predictions from the registry's champion models, one per dataset, side by side (`GET /models`; "
    "`POST /models/{name}/predict`). Each model's request and response schemas below are generated from the "
    "dataset spec stored with it and change when a new champion with another schema is promoted, or when a new "
    "model appears. `POST /predict` and friends serve the default model."
)


def _lifespan(
    fleet: ModelFleet, settings: ApiSettings, metrics: ApiMetrics, background_poll: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the fleet (a process) or schedule its checks (Lambda, per invocation); stop polling at the end."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        default = fleet.default
        if background_poll:
            await run_in_threadpool(fleet.start)
            fleet.start_polling()
        else:
            fleet.schedule_check()  # Lambda: runs on every invocation; starts background checks when due
            if default.bundle is None:  # nothing to serve meanwhile: let this invocation wait for the load, bounded
                await run_in_threadpool(default.wait_for_check, settings.check_timeout_s + settings.registry_timeout_s)
        for name, model_store in fleet.stores():
            metrics.set_model(name, model_store.bundle, model_store.status)
        try:
            yield
        finally:
            if background_poll:
                fleet.stop_polling()

    return lifespan


def create_app(
    settings: ApiSettings | None = None,
    store: ModelStore | None = None,
    *,
    background_poll: bool = True,
    fleet: ModelFleet | None = None,
) -> FastAPI:
    """Build the service.

    ``fleet`` defaults to the process-wide fleet for ``settings`` (:func:`get_shared_fleet`); a ``store``
    alone becomes the default model's store of a new fleet. With ``background_poll`` (a long-running process)
    the lifespan starts the fleet (:meth:`ModelFleet.start`: the default model and every cached model) and
    threads check the registry for new champions and new models; without it (Lambda, where the handler's
    init starts the fleet) each invocation's lifespan start only schedules background checks when due, and
    waits only while the default model is not served (at most ``check_timeout_s + registry_timeout_s``).
    """
    settings = settings or ApiSettings()
    settings.apply_thread_limits()
    configure_allocator()
    if fleet is None:
        fleet = ModelFleet(settings, default_store=store) if store is not None else get_shared_fleet(settings)
    default = fleet.default
    configure_logging(settings.log_level)
    metrics = ApiMetrics()

    app = FastAPI(
        title="MLOps prediction API",
        summary="Serves the champion of every registered model, side by side.",
        description=DESCRIPTION,
        version="1.1.0",
        lifespan=_lifespan(fleet, settings, metrics, background_poll),
        docs_url=None,  # api.docs serves /docs and /redoc without a CDN, through any path prefix
        redoc_url=None,
        openapi_tags=[
            {"name": "prediction", "description": "Predictions from the default model (MLOPS_API_DEFAULT_MODEL)."},
            {"name": "model", "description": "The default model and its replacement."},
            {"name": "models", "description": "Every served model: list them, describe one."},
            {"name": "operations", "description": "Liveness, readiness and metrics."},
        ],
    )
    app.state.settings = settings
    app.state.fleet = fleet
    app.state.store = default
    app.state.metrics = metrics

    def watch(name: str, model_store: ModelStore) -> None:
        model_store.add_listener(lambda result: metrics.on_refresh(name, result, model_store.status))

    fleet.add_listener(watch)
    fleet.add_retire_listener(metrics.forget_model)
    for router in (predict.router, model.router, models.router, health.router):
        app.include_router(router)
    install_error_handlers(app)
    app.add_exception_handler(model.AdminKeyError, model.on_admin_key_error)
    install_openapi(app, fleet)
    install_docs(app)
    metrics.paths = frozenset(route.path for route in app.routes if hasattr(route, "path"))
    app.add_middleware(
        RequestObserver,
        metrics=metrics,
        served_version=lambda: default.bundle.ref.version if default.bundle is not None else None,
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
