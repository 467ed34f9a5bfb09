"""GraphiQL served from vendored files, with an access-token box and a sign-in form.

The machines that run CareGraph have no internet, so the page loads GraphiQL and React
from static/graphiql/ (written by scripts/vendor-graphiql) instead of a CDN, and builds
its schema from the SDL at /graphiql/schema.graphql rather than by introspection, which
production mode turns off.
"""

from __future__ import annotations

import functools
import secrets
from html import escape
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope
from strawberry.printer import print_schema

from schema import schema
from settings import Settings

# The app runs from the checkout (`pip install -e .`): the assets sit beside web/.
ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = ROOT / "static" / "graphiql"
LOGIN_DOCUMENT = ROOT / "queries" / "Login.graphql"
ASSETS_URL = "/graphiql/assets"
SCHEMA_URL = "/graphiql/schema.graphql"


def content_security_policy(style_nonce: str) -> str:
    """Everything the page runs comes from this server: no inline script, no eval, no
    CDN. GraphiQL's dialogs insert one <style> element while open (react-remove-scroll);
    it carries the page's nonce. Fonts are data: URLs inside graphiql.min.css. Forms post
    nowhere: the sign-in form is sent by script, never as a page load with the password."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{style_nonce}'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def render_graphiql(login_document_id: str | None) -> Response:
    """The GraphiQL page. The sign-in form sends the trusted Login document by id when
    the server has one, and its text otherwise."""
    style_nonce = secrets.token_urlsafe(16)
    page = _page_template().substitute(
        assets=ASSETS_URL,
        style_nonce=style_nonce,
        schema_url=SCHEMA_URL,
        login_document_id=escape(login_document_id or ""),
        login_document=escape(_login_document() if login_document_id is None else ""),
    )
    return HTMLResponse(
        page, headers={"content-security-policy": content_security_policy(style_nonce)}
    )


def graphiql_routes(settings: Settings) -> list[BaseRoute]:
    """The page's assets and schema SDL; nothing at all when GraphiQL is turned off."""
    if not settings.graphiql:
        return []
    sdl = _schema_sdl()

    async def schema_sdl(request: Request) -> Response:
        return PlainTextResponse(sdl)

    return [
        Mount(
            ASSETS_URL, app=_RevalidatedStaticFiles(directory=ASSETS_DIR), name="graphiql-assets"
        ),
        Route(SCHEMA_URL, schema_sdl, methods=["GET"]),
    ]


class _RevalidatedStaticFiles(StaticFiles):
    """Let browsers keep the 1.5 MB of assets and revalidate them by ETag (a 304 after an
    upgrade is cheap); the app's default for other responses is no-store."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = "no-cache"
        return response


@functools.cache
def _page_template() -> Template:
    return Template((Path(__file__).parent / "graphiql.html").read_text())


@functools.cache
def _login_document() -> str:
    return LOGIN_DOCUMENT.read_text()


@functools.cache
def _schema_sdl() -> str:
    return print_schema(schema) + "\n"
