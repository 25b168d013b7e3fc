"""/docs and /redoc: self-hosted Swagger UI and ReDoc whose every URL resolves through any front's path prefix.

A browser resolves the page's relative URLs against the URL it shows. These tests do the same: for each front
(the process, a Function URL, HTTP API, ALB, a REST v1 stage, LocalStack's ``_user_request_`` form) they take
the page's URL as the client sees it, resolve every reference of the HTML against it, check that each one
stays under the front's prefix, then ask the app for it the way that front would (the prefix stripped, in a
Lambda event of that kind) and check the answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import docs
from api.lambda_handler import build_handler
from api.model_store import ModelStore
from tests.unit.api.conftest import make_settings
from tests.unit.api.fakes import FakeRegistry
from tests.unit.api.lambda_events import LambdaContext, event, response_headers

pytestmark = pytest.mark.unit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
PAGES = ("/docs", "/redoc", "/docs/", "/redoc/")
ASSET_DIR = docs.DocsAssets.package_directory()
#: name -> (event kind, extra event keywords, the base URL a client uses for the API's root)
FRONTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "function_url": ("function_url", {}, "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"),
    "http_v2": ("http_v2", {}, "https://r3pmxmplak.execute-api.us-east-1.amazonaws.com"),
    "alb": ("alb", {}, "http://lambda-alb-123578498.us-east-1.elb.amazonaws.com"),
    "rest_v1": ("rest_v1", {}, "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod"),
    "rest_v1_stage_v2": ("rest_v1", {"stage": "v2"}, "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/v2"),
    "rest_v1_localstack": ("rest_v1", {}, "http://127.0.0.1:4566/restapis/a1b2c3d4e5/prod/_user_request_"),
}


class References(HTMLParser):
    """Every URL an HTML page makes the browser load or use: src, href and the pages' data-*-url/root."""

    ATTRIBUTES = frozenset({"src", "href", "data-openapi-url", "data-api-root"})

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, list[str]] = {}
        self.scripts: list[str] = []  # inline script bodies
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self.ATTRIBUTES and value is not None:
                self.urls.setdefault(name, []).append(value)
        self._in_script = tag == "script" and not dict(attrs).get("src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def references(page: str) -> References:
    parser = References()
    parser.feed(page)
    return parser


def loaded_urls(refs: References) -> list[str]:
    """What the browser fetches or navigates to (the favicon is inline data)."""
    return [u for name in ("src", "href", "data-openapi-url") for u in refs.urls.get(name, []) if u != "data:,"]


@pytest.fixture
def handler(registry: FakeRegistry) -> Handler:
    settings = make_settings()
    store = ModelStore(settings, registry)
    store.ensure_loaded()
    return build_handler(settings, store)


def asset_bytes(name: str) -> bytes:
    assert ASSET_DIR is not None, "fastapi-offline is not installed"
    return (ASSET_DIR / name).read_bytes()


# ------------------------------------------------------------------------------------------------- the process
@pytest.mark.parametrize("page", PAGES)
def test_pages_reference_only_relative_urls_that_resolve(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    refs = references(response.text)
    urls = loaded_urls(refs)
    assert any("openapi.json" in u for u in urls)
    for url in urls:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//|/)", url), f"{url} is not relative to the page"
        target = urljoin(f"http://testserver{page}", url)
        got = client.get(target)
        assert got.status_code == 200, (url, target, got.status_code)
    root = urljoin(f"http://testserver{page}", refs.urls["data-api-root"][0])
    assert root == "http://testserver/"


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_no_other_host(client: TestClient, page: str) -> None:
    text = client.get(page).text
    assert not re.search(r"https?:|//[a-z0-9]", text, re.IGNORECASE), "the page names a host"
    assert "cdn" not in text.lower() and "fonts.googleapis" not in text
    if page.startswith("/docs"):
        assert "validatorUrl: null" in text  # else Swagger UI shows a badge from validator.swagger.io


def test_swagger_ui_and_redoc_load_their_own_bundles(client: TestClient) -> None:
    swagger = loaded_urls(references(client.get("/docs").text))
    redoc = loaded_urls(references(client.get("/redoc").text))
    assert {urlsplit(u).path for u in swagger} >= {
        "./docs/assets/swagger-ui.css",
        "./docs/assets/swagger-ui-bundle.js",
        "./openapi.json",
    }
    assert {urlsplit(u).path for u in redoc} >= {"./docs/assets/redoc.standalone.js", "./openapi.json"}


def test_assets_have_text_content_types_digests_and_long_caching(client: TestClient) -> None:
    page = references(client.get("/docs").text).urls["src"] + references(client.get("/redoc").text).urls["src"]
    versions = {urlsplit(u).path.rsplit("/", 1)[1]: urlsplit(u).query for u in page}
    for name, media_type in {
        "swagger-ui.css": "text/css; charset=utf-8",
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "redoc.standalone.js": "text/javascript; charset=utf-8",
    }.items():
        response = client.get(f"/docs/assets/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == media_type
        assert response.content == asset_bytes(name)
        response.content.decode("utf-8")  # Mangum must be able to send it as text
        digest = hashlib.sha256(response.content).hexdigest()[:16]
        assert response.headers["etag"] == f'"{digest}"'
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        if name != "swagger-ui.css":
            assert versions[name] == f"v={digest}"
        again = client.get(f"/docs/assets/{name}", headers={"If-None-Match": f'"{digest}"'})
        assert again.status_code == 304 and again.content == b""
    assert client.get("/docs").headers["cache-control"] == "no-cache"
    assert client.get("/docs/assets/favicon.png").status_code == 404  # only the listed files are served


def test_fastapi_cdn_pages_are_gone_and_docs_stay_out_of_the_schema(client: TestClient) -> None:
    assert client.get("/docs/oauth2-redirect").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
    assert "servers" not in client.get("/openapi.json").json()  # the page adds the API's location itself


def test_docs_pages_are_counted_in_metrics_by_their_paths(client: TestClient) -> None:
    client.get("/docs")
    client.get("/docs/assets/swagger-ui.css")
    metrics = client.get("/metrics").text
    assert 'mlops_api_requests_total{method="GET",path="/docs",status="200"}' in metrics
    assert 'mlops_api_requests_total{method="GET",path="/docs/assets/swagger-ui.css",status="200"}' in metrics


# --------------------------------------------------------------------------------------- through each Lambda front
def invoke(handler: Handler, front: str, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    kind, extra, _ = FRONTS[front]
    return handler(event(kind, "GET", path, headers=headers, **extra), LambdaContext())


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("page", PAGES)
def test_every_reference_resolves_through_each_front(handler: Handler, front: str, page: str) -> None:
    _, _, base = FRONTS[front]
    response = invoke(handler, front, page)
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is False
    assert response_headers(response)["content-type"] == "text/html; charset=utf-8"
    refs = references(response["body"])
    page_url = base + page  # what the browser shows
    for url in loaded_urls(refs):
        absolute = urljoin(page_url, url)
        assert absolute.startswith(base + "/"), f"{url} leaves the API's prefix: {absolute}"
        app_path = urlsplit(absolute).path.removeprefix(urlsplit(base).path)
        got = invoke(handler, front, app_path)
        assert got["statusCode"] == 200, (front, url, app_path, got.get("body", "")[:200])
        assert got["isBase64Encoded"] is False, f"{app_path} would reach a REST v1 client as base64 text"
        content_type = response_headers(got)["content-type"]
        if app_path.endswith(".js"):
            assert content_type == "text/javascript; charset=utf-8"
            assert got["body"].encode() == asset_bytes(Path(app_path).name)
        elif app_path.endswith(".css"):
            assert content_type == "text/css; charset=utf-8"
            assert got["body"].encode() == asset_bytes(Path(app_path).name)
        else:
            assert app_path == "/openapi.json" and content_type == "application/json"
            schema = got["body"]
            assert '"Record"' in schema and "mean_radius" in schema
    assert urljoin(page_url, refs.urls["data-api-root"][0]) == base + "/"


def test_asset_revalidation_through_a_rest_v1_stage(handler: Handler) -> None:
    first = invoke(handler, "rest_v1", "/docs/assets/swagger-ui-bundle.js")
    etag = response_headers(first)["etag"]
    again = invoke(handler, "rest_v1", "/docs/assets/swagger-ui-bundle.js", headers={"If-None-Match": etag})
    assert again["statusCode"] == 304 and not again.get("body")


# ------------------------------------------------------------------------------------------------- the assets
def test_digests_follow_the_content(tmp_path: Path) -> None:
    for name in docs.ASSET_TYPES:
        (tmp_path / name).write_text(f"/* {name} v1 */")
    app = FastAPI(docs_url=None, redoc_url=None)
    docs.install_docs(app, docs.DocsAssets(tmp_path))
    with TestClient(app) as client:
        src = references(client.get("/redoc").text).urls["src"][0]
        body = client.get(urljoin("http://testserver/redoc", src)).content
    assert body == b"/* redoc.standalone.js v1 */"
    assert src.endswith("v=" + hashlib.sha256(body).hexdigest()[:16])


def test_missing_assets_answer_503_and_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs.DocsAssets, "package_directory", staticmethod(lambda: None))
    app = FastAPI(docs_url=None, redoc_url=None)
    docs.install_docs(app)
    with TestClient(app) as client:
        for path in ("/docs", "/redoc", "/docs/assets/swagger-ui.css"):
            response = client.get(path)
            assert response.status_code == 503
            assert "fastapi-offline" in response.json()["detail"]
    broken = FastAPI(docs_url=None, redoc_url=None)
    docs.install_docs(broken, docs.DocsAssets(tmp_path))  # a directory without the files
    with TestClient(broken) as client:
        assert client.get("/docs").status_code == 503


def test_assets_ship_in_the_package_the_lambda_zip_installs() -> None:
    assert ASSET_DIR is not None and ASSET_DIR.name == "static"
    assert ASSET_DIR.parent.name == docs.ASSET_PACKAGE
    for name in docs.ASSET_TYPES:
        assert (ASSET_DIR / name).stat().st_size > 100_000
