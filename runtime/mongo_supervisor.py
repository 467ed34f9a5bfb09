"""Keeps the embedded MongoDB child alive: if it dies, start it again on its data folder.

The restart reuses the old port, so the one AsyncMongoClient the process shares finds
the server again by itself (its monitor reconnects); nothing in the app is rebuilt.
The storage engine locks its data folder, so a second server on the same folder is
impossible: a restart can only succeed once the dead one is gone.

It runs in its own long-lived thread on purpose: the child's parent-death signal
follows the thread that spawned it, and a worker-pool thread may exit at any time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from runtime.embedded_mongo import EmbeddedMongo, EmbeddedMongoError

log = logging.getLogger("caregraph.mongo_supervisor")


class MongoSupervisor:
    def __init__(
        self,
        server: EmbeddedMongo,
        *,
        on_down: Callable[[str], None] = lambda reason: None,
        on_restart: Callable[[], None] = lambda: None,
        poll_s: float = 0.1,
        backoff_first_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.server = server
        self.on_down, self.on_restart = on_down, on_restart
        self.poll_s = poll_s
        self.backoff_first_s, self.backoff_max_s = backoff_first_s, backoff_max_s
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the server in the supervisor thread and watch it; returns its URI."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.server.start()
            except BaseException as error:  # noqa: BLE001 - reported to the caller
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._watch()

        self._thread = threading.Thread(target=run, name="mongo-supervisor", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            process = self.server.process
            if process is None or process.poll() is None:
                continue
            if self._stopping.is_set():
                return
            reason = f"embedded MongoDB (pid {process.pid}) exited with {process.returncode}"
            log.error("%s; restarting it", reason)
            self.on_down(reason)
            self._restart()

    def _restart(self) -> None:
        delay = self.backoff_first_s
        port = self.server.port or 0
        while not self._stopping.is_set():
            try:
                self.server.start(port=port)
            except EmbeddedMongoError as error:
                log.error("embedded MongoDB restart failed (%s); retrying in %.1f s", error, delay)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, self.backoff_max_s)
                continue
            self.restarts += 1
            log.warning("embedded MongoDB restarted (restart #%d)", self.restarts)
            self.on_restart()
            return

    def stop(self) -> None:
        """Stop watching, then stop the server (from this thread; the watcher is idle)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.backoff_max_s + 1)
        self.server.stop()
