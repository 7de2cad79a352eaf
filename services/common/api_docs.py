"""The API documentation pages of a service, served with no request to a CDN.

FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from cdn.jsdelivr.net, so
they are blank on a machine without the internet. Each service instead serves the pages from the
Swagger UI and ReDoc builds that the ``fastapi-offline`` package ships, mounted under
``/docs-assets``. Every URL in the pages is relative, so they work as well under ``/catalog/docs``
(``citybase up`` mounts each service under its name) as under ``/docs`` of a service alone.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
"""``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js`` and ``favicon.png``."""


def install_api_docs(app: FastAPI) -> None:
    """Serves ``/docs`` (Swagger UI) and ``/redoc`` from the assets under ``/docs-assets``.

    The app must be built with ``docs_url=None, redoc_url=None``. The page URLs are relative to
    the page (``/docs`` and ``/redoc`` sit beside ``/openapi.json`` and ``/docs-assets``).
    """
    assets = ASSETS_PATH.lstrip("/")
    openapi = (app.openapi_url or "/openapi.json").lstrip("/")
    favicon = f"{assets}/favicon.png"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
