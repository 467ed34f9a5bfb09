"""The embedded MongoDB-wire-compatible server (SecantusDB), run as a child process.

It runs as a separate program, never imported: in-process it would compete for the
interpreter lock, and its licence (GPL-2.0-only) keeps it an optional extra.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

_LISTENING = re.compile(r"listening on (?P<host>[\d.]+):(?P<port>\d+)")


class EmbeddedMongoError(RuntimeError):
    pass


def _executable() -> str:
    beside_python = Path(sys.executable).with_name("secantusd-py")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("secantusd-py")
    if not found:
        raise EmbeddedMongoError(
            "secantusd-py was not found: install the embedded extra "
            "(pip install -e '.[embedded]') or set MONGODB_URI"
        )
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux: deliver SIGTERM to the child if this process dies without cleaning up,
    # so a kill -9 of the app never leaves an orphan database server behind.
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class EmbeddedMongo:
    """Starts `secantusd-py` on a free loopback port with its data under `storage_path`."""

    def __init__(self, storage_path: Path, *, start_timeout_s: float = 60.0) -> None:
        self.storage_path = storage_path
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None
        self.port: int | None = None
        self.log_path = storage_path.parent / f"{storage_path.name}.log"

    def start(self, port: int = 0) -> str:
        """Start the server; `port` 0 picks a free one (a restart passes the old one, so
        connected clients find it again at the same address)."""
        self.storage_path.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        offset = log_file.tell()
        command = [
            _executable(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(self.storage_path),
            # Acknowledged writes must survive a crash of the child.
            "--sync-on-commit",
        ]
        self.process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C reaches only the app, which then stops the
            # database in order (after the last write) instead of both racing to exit.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        log_file.close()
        host, bound = self._wait_for_port(offset)
        self.uri = f"mongodb://{host}:{bound}/"
        self.port = int(bound)
        log.info("embedded MongoDB (pid %s) listening on %s:%s", self.process.pid, host, bound)
        return self.uri

    def _wait_for_port(self, offset: int) -> tuple[str, str]:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
            match = _LISTENING.search(text)
            if match:
                return match["host"], match["port"]
            if self.process.poll() is not None:
                raise EmbeddedMongoError(
                    f"secantusd-py exited with {self.process.returncode}: {text[-2000:]}"
                )
            time.sleep(0.05)
        self.stop()
        raise EmbeddedMongoError(f"secantusd-py did not report its port in {self.start_timeout_s}s")

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("embedded MongoDB (pid %s) ignored SIGTERM; killing it", process.pid)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
