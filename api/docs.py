"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served with no internet and through any path prefix.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and fetch ``/openapi.json`` by its absolute path.
Both fail here: a browser with no internet gets a blank page, and behind API Gateway REST (v1) the page is
``https://<host>/<stage>/docs`` while Mangum hands the app ``/docs`` with an empty ``root_path`` (the stage,
or LocalStack's ``/restapis/<id>/<stage>/_user_request_``, is nowhere in the ASGI scope), so
``/openapi.json`` misses the stage prefix and answers 404.

These pages instead:

* load the JavaScript and CSS from the API itself (``/docs/assets/...``): the files of the
  ``fastapi-offline`` package, which vendors Swagger UI's ``swagger-ui-dist`` and ReDoc's standalone bundle
  and ships them in its wheel (so they are in the Lambda zip too);
* reference everything by a URL relative to the page (``./openapi.json``, ``./docs/assets/...``; ``../``
  for ``/docs/``), which the browser resolves against the URL it actually shows, whatever prefix that
  has: the process, a container, a Function URL, a REST v1 stage or LocalStack's ``_user_request_`` form;
* tell Swagger UI and ReDoc that the API lives where the page was loaded from (an OpenAPI document without
  ``servers`` means the host's root, so "Try it out" would miss the prefix): the page fetches the document
  and, when it names no servers, adds the page's directory as its only server;
* name no other host: no CDN, no web fonts, no Swagger validator badge (``validatorUrl: null``), an inline
  favicon, and a Content-Security-Policy that keeps the bundles from fetching anything from elsewhere.

The assets are served as UTF-8 text (``text/javascript``, ``text/css``), never compressed: Mangum returns
text bodies as they are, and binary ones base64-encoded, which a REST v1 API without binary media types
hands to the browser as base64 text. Their URLs carry a digest of their content, so they are cached for a
year (``immutable``) and replaced when the package is upgraded.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response

from api.errors import json_response

#: The package whose wheel ships the Swagger UI and ReDoc files (``<package>/static/``).
ASSET_PACKAGE = "fastapi_offline"
#: Where the API serves them.
ASSET_PATH = "/docs/assets"
#: Served file name -> content type. Text only: see the module's docstring.
ASSET_TYPES: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
}
#: Versioned URLs (``?v=<digest>``) change with the content, so browsers may keep a file for good.
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
#: The pages themselves describe the model being served: always revalidated.
PAGE_CACHE_CONTROL = "no-cache"

Endpoint = Callable[..., Awaitable[Response]]

#: An empty inline favicon: without one, browsers ask for ``/favicon.ico`` (404 here).
_FAVICON = '<link rel="icon" href="data:,">'
#: The pages may load nothing from another origin: the browser blocks what the bundles would fetch on their
#: own (ReDoc's "API docs by Redocly" logo comes from cdn.redoc.ly; blocked, ReDoc drops the image).
_CSP = (
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
    "connect-src 'self'\">"
)

#: Fetches the document, points it at the API's root as the page sees it (when it names no servers).
_LOAD_SPEC = """\
    function loadSpec(holder) {
      const root = new URL(holder.dataset.apiRoot, document.baseURI);
      const specUrl = new URL(holder.dataset.openapiUrl, document.baseURI);
      return fetch(specUrl, {headers: {Accept: "application/json"}})
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (spec) {
          if (!Array.isArray(spec.servers) || spec.servers.length === 0) {
            spec.servers = [{url: root.href.replace(/\\/$/, ""), description: "This API (where this page came from)"}];
          }
          return spec;
        })
        .catch(function (error) {
          holder.textContent = "Cannot load the API description " + specUrl.href + ": " + error.message;
          throw error;
        });
    }"""

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  {{csp}}
  <title>{{title}} - {viewer}</title>
  {{favicon}}
  {head}
</head>
<body>
  <div id="{holder}" data-api-root="{{root}}" data-openapi-url="{{openapi}}"></div>
  <noscript>This page needs JavaScript; the API description itself is <a href="{{openapi}}">openapi.json</a>.</noscript>
  <script src="{{js}}"></script>
  <script>
{{load_spec}}
{start}
  </script>
</body>
</html>
"""
"""The page of either viewer; its own parts (``viewer``, ``head``, ``holder``, ``start``) are filled in first."""

_SWAGGER_PAGE = _PAGE.format(
    viewer="Swagger UI",
    head='<link rel="stylesheet" href="{css}">',
    holder="swagger-ui",
    start="""\
    loadSpec(document.getElementById("swagger-ui")).then(function (spec) {{
      window.ui = SwaggerUIBundle({{
        spec: spec,
        dom_id: "#swagger-ui",
        layout: "BaseLayout",
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
        deepLinking: true,
        showExtensions: true,
        showCommonExtensions: true,
        displayRequestDuration: true,
        validatorUrl: null
      }});
    }});""",
)

_REDOC_PAGE = _PAGE.format(
    viewer="ReDoc",
    head="<style>body {{ margin: 0; padding: 0; }}</style>",
    holder="redoc",
    start="""\
    const holder = document.getElementById("redoc");
    loadSpec(holder).then(function (spec) {{
      Redoc.init(spec, {{}}, holder);
    }});""",
)


@dataclass(frozen=True)
class Asset:
    """One served file: its bytes, content type and digest (the ETag and the ``?v=`` of its URL)."""

    name: str
    body: bytes
    media_type: str
    digest: str


class DocsAssets:
    """The Swagger UI and ReDoc files of :data:`ASSET_PACKAGE`, read once on first use (not at import)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._assets: dict[str, Asset] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def package_directory() -> Path | None:
        """``<site-packages>/fastapi_offline/static``, found without importing the package; None if missing."""
        spec = importlib.util.find_spec(ASSET_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / "static"

    def load(self) -> dict[str, Asset]:
        """All assets by name; raises :class:`FileNotFoundError` (saying what to install) if one is missing."""
        if self._assets is None:
            with self._lock:
                if self._assets is None:
                    directory = self._directory or self.package_directory()
                    if directory is None:
                        raise FileNotFoundError(
                            f"the documentation assets are not installed: the {ASSET_PACKAGE.replace('_', '-')} "
                            "package is missing (it is part of the api extra)"
                        )
                    assets = {}
                    for name, media_type in ASSET_TYPES.items():
                        body = (directory / name).read_bytes()
                        digest = hashlib.sha256(body).hexdigest()[:16]
                        assets[name] = Asset(name, body, media_type, digest)
                    self._assets = assets
        return self._assets


def _unavailable(error: Exception) -> Response:
    return json_response({"detail": str(error)}, 503)


def install_docs(app: FastAPI, assets: DocsAssets | None = None) -> None:
    """Serve ``/docs`` and ``/redoc`` (and ``/docs/``, ``/redoc/``) and their assets under :data:`ASSET_PATH`.

    Build the app with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages do not shadow these.
    """
    files = assets or DocsAssets()
    title = html.escape(app.title)
    openapi_path = (app.openapi_url or "/openapi.json").lstrip("/")

    def page(template: str, script: str, css: str | None, root: str) -> Response:
        try:
            loaded = files.load()
        except OSError as error:
            return _unavailable(error)

        def url(name: str) -> str:
            return html.escape(f"{root}{ASSET_PATH.lstrip('/')}/{name}?v={loaded[name].digest}")

        body = template.format(
            title=title,
            favicon=_FAVICON,
            csp=_CSP,
            root=html.escape(root),
            openapi=html.escape(root + openapi_path),
            js=url(script),
            css=url(css) if css else "",
            load_spec=_LOAD_SPEC,
        )
        return HTMLResponse(body, headers={"Cache-Control": PAGE_CACHE_CONTROL})

    def page_endpoint(template: str, script: str, css: str | None, root: str) -> Endpoint:
        async def serve() -> Response:
            return page(template, script, css, root)

        return serve

    def asset_endpoint(name: str) -> Endpoint:
        async def serve(request: Request) -> Response:
            try:
                asset = files.load()[name]
            except OSError as error:
                return _unavailable(error)
            etag = f'"{asset.digest}"'
            headers = {"Cache-Control": ASSET_CACHE_CONTROL, "ETag": etag}
            if etag in request.headers.get("if-none-match", ""):
                return Response(status_code=304, headers=headers)
            return Response(asset.body, media_type=asset.media_type, headers=headers)

        return serve

    # The API's root relative to each page: "./" from /docs, "../" from /docs/ (served, not redirected: a
    # redirect built from the scope would drop a REST v1 stage prefix, which the scope does not have).
    pages = (
        ("/docs", "swagger_ui", _SWAGGER_PAGE, "swagger-ui-bundle.js", "swagger-ui.css"),
        ("/redoc", "redoc", _REDOC_PAGE, "redoc.standalone.js", None),
    )
    for path, name, template, script, css in pages:
        for suffix, root in (("", "./"), ("/", "../")):
            endpoint = page_endpoint(template, script, css, root)
            route_name = name + ("_slash" if suffix else "")
            app.add_api_route(path + suffix, endpoint, methods=["GET"], include_in_schema=False, name=route_name)
    for asset in ASSET_TYPES:
        endpoint = asset_endpoint(asset)
        app.add_api_route(f"{ASSET_PATH}/{asset}", endpoint, methods=["GET"], include_in_schema=False, name=asset)
