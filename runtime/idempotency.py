"""Idempotent requests: an `Idempotency-Key` header makes a retry return the first answer.

A client that lost the answer to a mutation (a timeout, a dropped connection) cannot
tell whether it was saved; retrying it blindly creates a duplicate. With a key:

- the first request claims the key (a unique `_id` in MongoDB, so two concurrent
  retries cannot both run), runs, and stores its answer (status, body) with the claim
  (the claims: datasources/idempotency_store.py);
- a retry with the same key and the same body gets the stored answer back, marked
  `Idempotent-Replayed: true`, and nothing runs again;
- the same key with a different body is refused (422): keys name one request;
- a retry while the first is still running gets 409 `CONFLICT` and a `Retry-After`;
- an answer the server could not give (5xx: a dependency was down) frees the key, so
  the retry runs for real. If even that was impossible (MongoDB died mid-request), the
  claim stays pending and a retry is told the outcome is unknown (409), never re-run:
  a duplicate is worse than a question.

Keys are scoped to the caller (the access token's subject), kept 24 hours.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.tokens import InvalidToken, TokenService
from datasources.idempotency_store import ClaimUnsettled, IdempotencyStore

log = logging.getLogger("caregraph.idempotency")
HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 200


def _refusal(status: int, message: str, code: str, **headers: str) -> JSONResponse:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=headers)


class IdempotentRequests:
    def __init__(self, claims: IdempotencyStore, tokens: TokenService, *, running_s: float) -> None:
        self.claims = claims
        self.tokens = tokens
        # A pending claim older than this cannot still be running (the request budget).
        self.running_s = running_s

    @staticmethod
    def applies(scope: Scope) -> bool:
        return scope["method"] == "POST" and any(name == HEADER for name, _ in scope["headers"])

    def _subject(self, scope: Scope) -> str:
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization.lower().startswith("bearer "):
            try:
                claims = self.tokens.decode(authorization[7:].strip(), expected_type="access")
                return f"user:{claims['sub']}"
            except InvalidToken:
                pass
        return "anonymous"

    async def serve(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        key = dict(scope["headers"])[HEADER].decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            refusal = _refusal(
                400, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters", "BAD_USER_INPUT"
            )
            return await refusal(scope, receive, send)
        body = await _read_body(receive)
        claim_id = hashlib.sha256(f"{self._subject(scope)}\0{key}".encode()).hexdigest()
        request_hash = hashlib.sha256(body).hexdigest()
        claimed = await self.claims.claim(
            claim_id=claim_id, request_hash=request_hash, now=datetime.now(UTC)
        )
        if not claimed:
            response = await self._answer_for_existing(claim_id, request_hash)
            return await response(scope, receive, send)

        status, headers, chunks = 500, [], []

        async def recording_send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await app(scope, _replay(body), recording_send)
        finally:
            await self._settle(claim_id, status, headers, b"".join(chunks))

    async def _settle(
        self, claim_id: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        try:
            if status >= 500:
                await self.claims.release(claim_id)
                return
            kept = [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in headers
                if name.lower() in (b"content-type", b"cache-control")
            ]
            await self.claims.complete(claim_id, status=status, headers=kept, body=body)
        except ClaimUnsettled:
            log.warning("could not settle an idempotency key; a retry will be told so")

    async def _answer_for_existing(self, claim_id: str, request_hash: str) -> Response:
        existing = await self.claims.find(claim_id)
        if existing is None:  # expired between the insert and now: a rare race
            return _refusal(409, "Retry this request", "CONFLICT", **{"Retry-After": "1"})
        if existing["request"] != request_hash:
            return _refusal(
                422,
                "This Idempotency-Key was used for a different request: use a new key",
                "BAD_USER_INPUT",
            )
        if existing["state"] == "done":
            headers = {name: value for name, value in existing.get("headers", [])}
            headers["idempotent-replayed"] = "true"
            return Response(bytes(existing["body"]), existing["status"], headers=headers)
        age = datetime.now(UTC) - existing["createdAt"].replace(tzinfo=UTC)
        if age.total_seconds() <= self.running_s + 1:
            return _refusal(
                409,
                "The first request with this Idempotency-Key is still running",
                "CONFLICT",
                **{"Retry-After": "1"},
            )
        return _refusal(
            409,
            "The first request with this Idempotency-Key was interrupted and may have been "
            "saved: check before sending it again with a new key",
            "CONFLICT",
        )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
