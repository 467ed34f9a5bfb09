"""GraphiQL as a person uses it: the real app under uvicorn on a loopback port, driven in
headless Chromium (Debian's /usr/bin/chromium) through Playwright.

The page must load everything from this server (the machines that run CareGraph have no
internet), send the token box's token, sign in through its form, and run queries. When
Chromium or Playwright is missing the browser tests skip, or fail under
CAREGRAPH_REQUIRE_SERVICES=1 (scripts/test installs Chromium).
"""

from __future__ import annotations

import json
import os
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from strawberry.printer import print_schema

from auth.roles import Role
from settings import ALLOW_LIST_AUDIT, OPEN, PERSISTED_ONLY
from tests.support import (
    LiveServer,
    default_schema,
    issue_token,
    live_server,
    running_app,
    signed_in,
)
from web.graphiql import render_graphiql

schema = default_schema()

CHROMIUM = os.environ.get("CAREGRAPH_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()
# Flags that work on CI's and developers' machines: no sandbox (root in a container), no
# GPU, and none of the background traffic a first start would send to the internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_SERVICES = os.environ.get("CAREGRAPH_REQUIRE_SERVICES") == "1"
SCHEMA_URL = "/graphiql/schema.graphql"
# The README's "persisted-only for integrators, GraphiQL for analysts" deployment.
ANALYSTS_GRAPHIQL = {
    "production": True,
    "introspection": False,
    "document_mode": PERSISTED_ONLY,
    "graphiql": True,
    "freeform_roles": frozenset({"ANALYST"}),
}


def _unavailable(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


# --- without a browser: what the server sends --------------------------------------


async def test_page_schema_and_assets_are_served_with_a_strict_policy(settings):
    async with running_app(settings) as app, signed_in(app) as visitor:
        page = await visitor.http.get("/graphql", headers={"accept": "text/html"})
        sdl = await visitor.http.get("/graphiql/schema.graphql")
        bundle = await visitor.http.get("/graphiql/assets/graphiql.min.js")

    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "<script>" not in page.text and "https://" not in page.text
    assert sdl.status_code == 200 and sdl.text == print_schema(schema) + "\n"
    assert bundle.status_code == 200 and bundle.headers["cache-control"] == "no-cache"


async def test_graphiql_off_serves_no_page_schema_or_assets(settings):
    async with (
        running_app(settings.with_overrides(graphiql=False)) as app,
        signed_in(app) as visitor,
    ):
        page = await visitor.http.get("/graphql", headers={"accept": "text/html"})
        sdl = await visitor.http.get("/graphiql/schema.graphql")
        bundle = await visitor.http.get("/graphiql/assets/graphiql.min.js")

    assert (page.status_code, sdl.status_code, bundle.status_code) == (404, 404, 404)


# The SDL follows the rule of introspection (GraphQLEndpoint.schema_access): public
# while introspection is on; with it off, only for a signed-in caller who may send
# free-form queries, which in open (and allow-list-audit) mode is every signed-in caller.


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == code
    assert "type Query" not in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Authorization"


async def test_with_introspection_on_the_schema_is_public(settings):
    async with running_app(settings) as app, signed_in(app) as visitor:
        anonymous = await visitor.http.get(SCHEMA_URL)
        page = await visitor.http.get("/graphql", headers={"accept": "text/html"})

    assert anonymous.status_code == 200 and anonymous.text == print_schema(schema) + "\n"
    assert anonymous.headers["cache-control"] == "no-store"
    assert 'data-schema-access="public"' in page.text


async def test_with_introspection_off_only_free_form_roles_get_the_schema(settings):
    async with (
        running_app(settings.with_overrides(**ANALYSTS_GRAPHIQL)) as app,
        signed_in(app) as visitor,
    ):
        page = await visitor.http.get("/graphql", headers={"accept": "text/html"})
        anonymous = await visitor.http.get(SCHEMA_URL)
        invalid = await visitor.http.get(SCHEMA_URL, headers=bearer("not-a-token"))
        basic = await visitor.http.get(SCHEMA_URL, headers={"authorization": "Basic YTpi"})
        doctor = await visitor.http.get(
            SCHEMA_URL, headers=bearer(await issue_token(app.state.services, Role.DOCTOR))
        )
        analyst = await visitor.http.get(
            SCHEMA_URL, headers=bearer(await issue_token(app.state.services, Role.ANALYST))
        )

    # The page is still served: it reveals nothing but a sign-in form.
    assert page.status_code == 200 and 'data-schema-access="token"' in page.text
    for refused in (anonymous, invalid, basic):
        assert_refused(refused, 401, "UNAUTHENTICATED")
        assert refused.headers["www-authenticate"] == "Bearer"
    assert_refused(doctor, 403, "FORBIDDEN")
    assert analyst.status_code == 200, analyst.text
    assert analyst.text == print_schema(schema) + "\n"
    assert analyst.headers["cache-control"] == "no-store"
    assert analyst.headers["vary"] == "Authorization"


@pytest.mark.parametrize("mode", [OPEN, ALLOW_LIST_AUDIT])
async def test_with_introspection_off_in_open_modes_any_signed_in_caller_gets_the_schema(
    settings, mode
):
    # Any signed-in caller may already send any query here; anonymous callers, who can
    # only sign in, still get no schema.
    async with (
        running_app(
            settings.with_overrides(introspection=False, document_mode=mode, graphiql=True)
        ) as app,
        signed_in(app) as visitor,
    ):
        anonymous = await visitor.http.get(SCHEMA_URL)
        doctor = await visitor.http.get(
            SCHEMA_URL, headers=bearer(await issue_token(app.state.services, Role.DOCTOR))
        )

    assert_refused(anonymous, 401, "UNAUTHENTICATED")
    assert doctor.status_code == 200 and doctor.text == print_schema(schema) + "\n"
    assert doctor.headers["vary"] == "Authorization"


def test_sign_in_form_sends_the_trusted_login_document_by_id_when_there_is_one():
    by_id = bytes(render_graphiql("sha256:" + "a" * 64).body).decode()
    by_text = bytes(render_graphiql(None).body).decode()

    assert 'data-login-document-id="sha256:aaaa' in by_id
    assert 'data-login-document=""' in by_id
    assert 'data-login-document-id=""' in by_text
    assert "mutation Login(" in by_text


# --- in the browser -------------------------------------------------------------------


@dataclass
class PageWatch:
    """Every request the page made, and everything that went wrong while it ran."""

    origin: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda r: self.problems.append(f"failed {r.url}: {r.failure}"))
        page.on("response", self._response)
        # CSP violations and script errors are reported on the console.
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status} {response.url}")

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def assert_clean(self) -> None:
        elsewhere = [url for url in self.requests if not url.startswith(self.origin + "/")]
        assert not elsewhere, f"requests off this server (a CDN?): {elsewhere}"
        assert not self.problems, self.problems


@pytest.fixture(scope="module")
async def browser():
    if not CHROMIUM_INSTALLED:
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as error:
        _unavailable(f"Playwright is not installed ({error}): pip install -e '.[dev]'")
    async with async_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (--user-data-dir).
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@asynccontextmanager
async def graphiql_page(browser, server: LiveServer):
    """A fresh browser context on the GraphiQL page, loaded and ready."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(origin=server.url)
    watch.attach(page)
    try:
        await page.goto(f"{server.url}/graphql")
        await page.locator(".graphiql-query-editor .CodeMirror").wait_for()
        yield page, watch
    finally:
        await context.close()


async def run_query(page, query: str) -> str:
    """Type the query into GraphiQL's editor, press the run button, return the result."""
    from playwright.async_api import expect

    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await editor.click()
    await page.keyboard.press("Control+A")
    # insert_text, not type: typing a "{" would trigger the editor's bracket closing.
    await page.keyboard.insert_text(query)
    result = page.locator(".result-window")
    await page.locator(".graphiql-execute-button").click()
    await expect(result).to_contain_text('"data"')
    return await result.inner_text()


async def test_a_pasted_token_is_sent_with_queries(browser, settings):
    from playwright.async_api import expect

    async with live_server(settings) as server:
        token = await issue_token(server.services, Role.DOCTOR)
        async with graphiql_page(browser, server) as (page, watch):
            # GraphiQL has the schema from SDL: its docs list the root types.
            await page.get_by_role("button", name="Show Documentation Explorer").click()
            await expect(page.locator(".graphiql-doc-explorer")).to_contain_text("Query")

            await page.locator("#access-token").fill(token)
            result = await run_query(page, "{ me { email role } }")

            watch.assert_clean()
    assert '"role": "DOCTOR"' in result
    assert '"errors"' not in result


async def test_headers_editor_still_sends_its_headers(browser, settings):
    async with live_server(settings) as server:
        token = await issue_token(server.services, Role.PHARMACIST)
        async with graphiql_page(browser, server) as (page, watch):
            await page.get_by_role("button", name="Headers").click()
            headers = page.locator(".graphiql-editor-tool .graphiql-editor:visible .CodeMirror")
            await headers.click()
            await page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {token}"}))
            result = await run_query(page, "{ me { role } }")

            watch.assert_clean()
    assert '"role": "PHARMACIST"' in result


async def test_sign_in_form_fills_the_token_box_and_queries_run_as_that_user(
    browser, settings, tmp_path
):
    from playwright.async_api import expect

    # The lifespan loads the small demo data set and creates one demo account per role.
    settings = settings.with_overrides(demo_data=True, demo_size="small")
    async with live_server(settings) as server:
        logins = json.loads((settings.data_dir / "demo-logins.json").read_text())
        doctor = next(login for login in logins if login["role"] == "DOCTOR")
        async with graphiql_page(browser, server) as (page, watch):
            await page.locator("#sign-in [name=email]").fill(doctor["email"])
            await page.locator("#sign-in [name=password]").fill(doctor["password"])
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#sign-in-status")).to_contain_text("Signed in as")
            await expect(page.locator("#access-token")).not_to_have_value("")

            result = await run_query(page, "{ me { email } appointments(first: 1) { totalCount } }")

            watch.assert_clean()
    assert doctor["email"] in result
    assert '"errors"' not in result
    # The doctor's own schedule from the demo data.
    total = re.search(r'"totalCount": (\d+)', result)
    assert total and int(total.group(1)) > 0, result


async def test_analysts_get_the_schema_once_signed_in_on_a_persisted_only_deployment(
    browser, settings
):
    from playwright.async_api import expect

    settings = settings.with_overrides(**ANALYSTS_GRAPHIQL, demo_data=True, demo_size="small")
    async with live_server(settings) as server:
        logins = json.loads((settings.data_dir / "demo-logins.json").read_text())
        analyst = next(login for login in logins if login["role"] == "ANALYST")
        async with graphiql_page(browser, server) as (page, watch):
            # No token, no schema: the page does not even ask (so no 401 in the console).
            await expect(page.locator("#schema-status")).to_have_text("Sign in to load the schema")
            await page.get_by_role("button", name="Show Documentation Explorer").click()
            docs = page.locator(".graphiql-doc-explorer")
            await expect(docs).to_contain_text("No GraphQL schema available")
            assert not any(SCHEMA_URL in url for url in watch.requests)

            await page.locator("#sign-in [name=email]").fill(analyst["email"])
            await page.locator("#sign-in [name=password]").fill(analyst["password"])
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#sign-in-status")).to_contain_text("Signed in as")

            # The schema arrives with the token: the docs list the root types.
            await expect(docs).to_contain_text("Mutation")
            await expect(docs).to_contain_text("Query")
            await expect(page.locator("#schema-status")).to_have_text("")

            # Emptying the token box takes the schema away; pasting the token back
            # brings it again (once typing stops).
            token_box = page.locator("#access-token")
            token = await token_box.input_value()
            await token_box.fill("")
            await expect(docs).to_contain_text("No GraphQL schema available")
            await expect(page.locator("#schema-status")).to_have_text("Sign in to load the schema")
            await token_box.fill(token)
            await expect(docs).to_contain_text("Mutation")
            await expect(page.locator("#schema-status")).to_have_text("")

            result = await run_query(page, "{ me { email role } }")

            watch.assert_clean()
    assert [url for url in watch.requests if SCHEMA_URL in url] == [server.url + SCHEMA_URL] * 2
    assert '"role": "ANALYST"' in result
    assert '"errors"' not in result
