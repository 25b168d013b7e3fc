"""AWS Lambda entry point: ``api.lambda_handler.handler`` (API Gateway REST v1, HTTP API v2, Function URL, ALB).

Mangum translates each event into an ASGI request for the same FastAPI app that runs in a container.
The champions are loaded once per execution environment, at import time (Lambda's init phase): the
process-wide fleet (:func:`api.model_fleet.get_shared_fleet`, one store per model) holds them, and the app's
lifespan, which Mangum runs on every invocation, finds them already loaded. Models the registry adds later are
found by a background discovery that the lifespan schedules like the stores' checks.

* Init (:meth:`ModelFleet.start`, each model as :meth:`ModelStore.start`):
  the environment's local champion cache (its /tmp) if it has one, else the
  registry if it answers within ``MLOPS_API_CHECK_TIMEOUT_S``, else the S3 champion cache
  (``MLOPS_API_CACHE_S3_URI``, which the API process publishes). The function never writes to S3 (its role
  only reads): ``cache_publish`` is off here.
* Invocations never wait on MLflow: the lifespan calls :meth:`ModelFleet.schedule_check` (a discovery of new
  models, and each store's :meth:`ModelStore.schedule_check`), which starts a
  background check at most once per ``MLOPS_API_POLL_INTERVAL_S`` (``MLOPS_API_RETRY_INTERVAL_S`` while no
  model is loaded) and returns at once. The thread runs while invocations run (Lambda freezes it in
  between); the first invocation after it swapped in a new champion serves it.

If neither MLflow nor a cached champion can be had at init, the function still starts: requests answer
503 until a background check loads a model.

The settings are :meth:`ApiSettings.for_lambda`: request bodies above Lambda's 6 MB payload limit are refused
(``MLOPS_API_MAX_BODY_BYTES`` defaults to 6 MiB here, 10 MiB in a process). Every other check of a request
(media type, size, shape, validation) is the app's own, so the function answers exactly as the process does.
"""

from __future__ import annotations

from mangum import Mangum

from api.logs import configure_logging
from api.main import create_app
from api.model_fleet import ModelFleet, get_shared_fleet
from api.model_store import ModelStore
from api.settings import ApiSettings


def build_handler(
    settings: ApiSettings | None = None, store: ModelStore | None = None, fleet: ModelFleet | None = None
) -> Mangum:
    """A Mangum handler around a new app sharing ``fleet`` (default: the process-wide one for ``settings``).

    A ``store`` alone becomes the default model's store of a new fleet (tests).
    """
    settings = settings or ApiSettings.for_lambda()
    if fleet is None and store is None:
        fleet = get_shared_fleet(settings)
    app = create_app(settings, store, background_poll=False, fleet=fleet)
    return Mangum(app, lifespan="auto")


settings = ApiSettings.for_lambda()  # 6 MB bodies; the function's role reads the S3 champion cache, never writes it
settings.apply_thread_limits()
configure_logging(settings.log_level)
fleet = get_shared_fleet(settings)
fleet.start()  # the cold start's model loads (the default and every cached model), in the init phase
for _, _store in fleet.stores():
    _store.cache.prepare()  # boto3 now, in the init phase, not in a check while invocations run
store = fleet.default
handler = build_handler(settings, fleet=fleet)
