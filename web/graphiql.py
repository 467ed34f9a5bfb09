"""GraphiQL served from vendored files, with an access-token box and a sign-in form.

The machines that run CareGraph have no internet, so the page loads GraphiQL and React
from static/graphiql/ (written by scripts/vendor-graphiql) instead of a CDN, and builds
its schema from the SDL at /graphiql/schema.graphql rather than by introspection, which
production mode turns off. The SDL follows the same rule as introspection: with it off,
only callers the app's `schema_access` lets through (signed in, allowed free-form
queries) get it; the page itself reveals nothing but a sign-in form.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope
from strawberry.printer import print_schema

from errors import HttpError
from schema import CareGraphSchema
from settings import Settings

# The app runs from the checkout (`pip install -e .`): the assets sit beside web/.
ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = ROOT / "static" / "graphiql"
LOGIN_DOCUMENT = ROOT / "queries" / "Login.graphql"
ASSETS_URL = "/graphiql/assets"
SCHEMA_URL = "/graphiql/schema.graphql"

# Says whether this request may have the schema SDL: None, or the refusal (401, 403).
SchemaAccess = Callable[[Request], Awaitable[HttpError | None]]


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


def render_graphiql(login_document_id: str | None, *, schema_needs_token: bool = False) -> Response:
    """The GraphiQL page. The sign-in form sends the trusted Login document by id when
    the server has one, and its text otherwise. schema_needs_token (introspection off):
    the script asks for the SDL only with a token, and says to sign in until it has it."""
    style_nonce = secrets.token_urlsafe(16)
    page = _page_template().substitute(
        assets=ASSETS_URL,
        style_nonce=style_nonce,
        schema_url=SCHEMA_URL,
        schema_access="token" if schema_needs_token else "public",
        login_document_id=escape(login_document_id or ""),
        login_document=escape(_login_document() if login_document_id is None else ""),
    )
    return HTMLResponse(
        page, headers={"content-security-policy": content_security_policy(style_nonce)}
    )


def graphiql_routes(
    settings: Settings, schema: CareGraphSchema, *, schema_access: SchemaAccess
) -> list[BaseRoute]:
    """The page's assets and schema SDL; nothing at all when GraphiQL is turned off.
    The SDL goes only to requests schema_access lets through; every answer is no-store
    (the app's default), and one that depends on the token says so with Vary."""
    if not settings.graphiql:
        return []
    sdl = print_schema(schema) + "\n"
    vary = {} if settings.introspection else {"vary": "Authorization"}

    async def schema_sdl(request: Request) -> Response:
        refusal = await schema_access(request)
        if refusal is not None:
            return JSONResponse(
                refusal.body(), status_code=refusal.status, headers={**refusal.headers, **vary}
            )
        return PlainTextResponse(sdl, headers=vary)

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
