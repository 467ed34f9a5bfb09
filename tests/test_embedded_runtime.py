"""The newcomer's experience: `caregraph serve` on the embedded defaults starts, answers,
stops cleanly on Ctrl-C (no orphan database process) and keeps its data."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyotp
import pytest

CAREGRAPH = str(Path(sys.executable).with_name("caregraph"))
START_TIMEOUT_S = 90
LOGIN = """mutation($email: String!, $password: String!, $totp: String) {
  login(email: $email, password: $password, totpCode: $totp) {
    __typename ... on AuthPayload { accessToken } } }"""


def demo_admin(data_dir: Path) -> dict:
    logins = json.loads((data_dir / "demo-logins.json").read_text())
    return next(login for login in logins if login["role"] == "ADMIN")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.log = data_dir / f"serve-{self.port}.log"
        env = {
            **os.environ,
            "CAREGRAPH_DATA_DIR": str(data_dir),
            "CAREGRAPH_DEMO_SIZE": "small",
            "CAREGRAPH_PORT": str(self.port),
        }
        for name in ("MONGODB_URI", "DATABASE_URL", "REDIS_URL"):
            env.pop(name, None)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [CAREGRAPH, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.token: str | None = None

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"server did not become healthy:\n{self.log.read_text()}")

    def sign_in_as_demo_admin(self, data_dir: Path) -> None:
        """Log in the way the printed instructions say: password, then a second factor."""
        admin = demo_admin(data_dir)
        self.token = None
        first = self.query(LOGIN, {"email": admin["email"], "password": admin["password"]})
        assert first["login"]["__typename"] == "MfaRequired"
        code = pyotp.TOTP(admin["totpSecret"]).now()
        second = self.query(
            LOGIN, {"email": admin["email"], "password": admin["password"], "totp": code}
        )
        self.token = second["login"]["accessToken"]

    def query(self, query: str, variables: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def mongo_pid(self) -> int:
        match = re.search(r"embedded MongoDB \(pid (\d+)\)", self.log.read_text())
        assert match, self.log.read_text()
        return int(match.group(1))

    def stop(self) -> int:
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def test_serve_starts_answers_stops_cleanly_and_keeps_data(tmp_path):
    server = Server(tmp_path)
    try:
        server.wait_until_healthy()
        server.sign_in_as_demo_admin(tmp_path)
        page = server.query(
            "{ appointments(first: 3) { nodes { patient { name } doctor { name } } } }"
        )
        assert len(page["appointments"]["nodes"]) == 3
        created = server.query(
            'mutation { createPatient(input: {givenName: "Kept", '
            'familyName: "Across Restarts", birthDate: "1990-01-01", '
            "sex: UNKNOWN}) { id } }"
        )["createPatient"]
        patients_before = server.query("{ patients { totalCount } }")["patients"]["totalCount"]
        mongo_pid = server.mongo_pid()
    finally:
        # Whatever failed above, the server (and so its database) must not outlive us.
        exit_code = server.stop()
    assert exit_code == 0
    assert not _pid_alive(mongo_pid), "the embedded MongoDB outlived the server"
    log = server.log.read_text()
    assert "GraphiQL: http://127.0.0.1:" in log
    assert "Traceback" not in log

    again = Server(tmp_path)
    again.wait_until_healthy()
    try:
        assert "Demo logins" in again.log.read_text()
        # The first TOTP code may still be current: a recovery code signs in once instead.
        again.token = None
        admin = next(
            login
            for login in json.loads((tmp_path / "demo-logins.json").read_text())
            if login["role"] == "ADMIN"
        )
        signed_in = again.query(
            "mutation($e: String!, $p: String!, $r: String!) { login(email: $e, password: $p, "
            "recoveryCode: $r) { ... on AuthPayload { accessToken } } }",
            {"e": admin["email"], "p": admin["password"], "r": admin["recoveryCodes"][0]},
        )
        again.token = signed_in["login"]["accessToken"]
        kept = again.query("query($id: ID!) { patient(id: $id) { name } }", {"id": created["id"]})
        assert kept["patient"]["name"] == "Kept Across Restarts"
        # Demo data is loaded on the first start only.
        assert again.query("{ patients { totalCount } }")["patients"]["totalCount"] == (
            patients_before
        )
    finally:
        again.stop()
