"""/docs and /redoc in headless Chromium, with no internet: the API process, and the Lambda behind LocalStack.

Each test renders Swagger UI and ReDoc, waits for every operation, finds every feature of the served model
in the rendered request schema, runs "Try it out", keeps screenshots under its tmp dir (printed), and checks
that the pages loaded nothing from another origin (see ``docs_browser.check_docs``). The built Lambda zip
behind a REST-v1-like stage prefix is tested in ``test_api_lambda_zip.py``.

Needs Debian's ``chromium`` (``/usr/bin/chromium``): skipped without it, failed without it under ``CI=true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import catalog
from infra.local import Stack
from tests.integration.api.browser import Chromium, chromium_page, require_chromium
from tests.integration.api.conftest import StartApi
from tests.integration.api.docs_browser import check_docs, served_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The browser (checked before any expensive fixture: list it first)."""
    return require_chromium()


def test_docs_render_offline_from_the_api_process(
    chromium: Path, start_api_process: StartApi, champion: dict[str, Any], tmp_path: Path
) -> None:
    api = start_api_process()
    served = served_api(api.url)
    assert served.features and served.operations >= 7
    with chromium_page() as page:
        check_docs(page, api.url, served, tmp_path, "process")


def test_docs_render_through_the_lambda_on_localstack(
    chromium: Path, trained_stack: tuple[Stack, Any], tmp_path: Path
) -> None:
    """REST v1 in both of LocalStack's path forms of the stage, and the Function URL (``*.localhost``)."""
    from tests.integration.localstack.lambda_stack import lambda_stack_of

    ls = lambda_stack_of(trained_stack)
    rest, function_url = ls.clients["rest_v1"], ls.clients["function_url"]
    served = served_api(function_url["base_url"], function_url["headers"])
    assert served == served_api(ls.stack.url(catalog.API, ""))  # the process serves the same champion
    fronts = {
        "rest-v1-user-request": rest["url"],  # .../restapis/<id>/prod/_user_request_
        "rest-v1-execute-api": rest["alt_url"],  # .../_aws/execute-api/<id>/prod
        "function-url": function_url["url"],  # http://<id>.lambda-url.<region>.localhost:<port>/
    }
    with Chromium() as browser:
        for label, base in fronts.items():
            check_docs(browser.new_page(), base, served, tmp_path, label)
