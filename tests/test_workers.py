"""`caregraph serve --workers 2` on embedded defaults: one MongoDB, one Redis child,
state shared by both workers; and a clear refusal when redis-server is missing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CAREGRAPH = str(Path(sys.executable).with_name("caregraph"))
LOGIN = """mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CAREGRAPH_DATA_DIR": str(data_dir),
        "CAREGRAPH_PORT": str(port),
        "CAREGRAPH_BCRYPT_ROUNDS": "4",
        **extra,
    }
    for name in ("MONGODB_URI", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    return env


def fresh(base: str) -> httpx.Client:
    """A new connection per request, so the kernel may hand it to either worker."""
    return httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def test_two_workers_share_apq_and_throttle_state(tmp_path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [CAREGRAPH, "serve", "--workers", "2", "--no-demo-data"],
            env=environment(tmp_path, port),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 90
        while len(pids) < 2:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"only workers {pids} answered\n{log.read_text()}"
            try:
                with fresh(base) as http:
                    pids.add(http.get("/livez").json()["pid"])
            except httpx.TransportError:
                time.sleep(0.2)
        # APQ: registered through one connection, found through every other.
        import hashlib

        query = "query Ping { __typename }"
        digest = hashlib.sha256(query.encode()).hexdigest()
        apq = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        with fresh(base) as http:
            http.post("/graphql", json={"query": query, "extensions": apq})
        for _ in range(16):
            with fresh(base) as http:
                body = http.post("/graphql", json={"extensions": apq}).json()
            codes = [e["extensions"]["code"] for e in body.get("errors", [])]
            assert "PERSISTED_QUERY_NOT_FOUND" not in codes, body
        # The login throttle counts across workers: the 6th attempt is refused.
        codes = []
        for _ in range(6):
            with fresh(base) as http:
                body = http.post(
                    "/graphql",
                    json={
                        "query": LOGIN,
                        "variables": {"email": "nobody@test.invalid", "password": "x" * 12},
                    },
                ).json()
            codes.append(body["errors"][0]["extensions"]["code"])
        assert codes == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    # The parent stopped its children: the Redis child no longer answers.
    assert not (tmp_path / "mongodb.uri").exists()


def test_workers_without_redis_server_are_refused_clearly(tmp_path) -> None:
    env = environment(tmp_path, free_port(), PATH=str(Path(sys.executable).parent))
    result = subprocess.run(
        [CAREGRAPH, "serve", "--workers", "2", "--no-demo-data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "needs a Redis shared by the workers" in result.stderr
    assert "REDIS_URL" in result.stderr
