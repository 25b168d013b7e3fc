"""AWS Lambda entry point: ``api.lambda_handler.handler`` (API Gateway REST v1, HTTP API v2, Function URL, ALB).

Mangum translates each event into an ASGI request for the same FastAPI app that runs in a container.
The champion is loaded once per execution environment, at import time (Lambda's init phase, which is
not billed against the invocation timeout): the process-wide store (:func:`api.model_store.get_shared_store`)
holds it, and the app's lifespan, which Mangum runs on every invocation, finds it already loaded. Instead
of a background thread (nothing runs between invocations) the lifespan checks the alias when the last
check is older than ``MLOPS_API_POLL_INTERVAL_S``.

If MLflow cannot be reached at init, the function still starts: requests answer 503 and each
invocation retries (at most every ``MLOPS_API_RETRY_INTERVAL_S``).
"""

from __future__ import annotations

from mangum import Mangum

from api.logs import configure_logging
from api.main import create_app
from api.model_store import ModelStore, get_shared_store
from api.settings import ApiSettings


def build_handler(settings: ApiSettings | None = None, store: ModelStore | None = None) -> Mangum:
    """A Mangum handler around a new app sharing ``store`` (default: the process-wide one for ``settings``)."""
    settings = settings or ApiSettings()
    store = store or get_shared_store(settings)
    app = create_app(settings, store, background_poll=False)
    return Mangum(app, lifespan="auto")


settings = ApiSettings()
settings.apply_thread_limits()
configure_logging(settings.log_level)
get_shared_store(settings).ensure_loaded()  # the cold start's model load, in the init phase
handler = build_handler(settings)
