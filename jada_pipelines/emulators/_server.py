"""The HTTP server under the LOCAL EMULATORS (stand-ins on 127.0.0.1, not the real services)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LocalServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 served from a daemon thread; subclasses supply the handler.

    ``start()`` after ``stop()`` listens on the same port again, so a test can close the port to fake an
    outage and reopen it under the URL its client already holds.
    """

    thread_name = "local-server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> str:
        """Listen (raising ``OSError`` if the port is taken) and return the base URL."""
        self._server = ThreadingHTTPServer((self._host, self._port), self._handler_class())
        # A request still in flight (a delayed reply, say) must not hold up stop().
        self._server.daemon_threads = True
        self._host, self._port = self._server.server_address[:2]
        # A short poll interval: stop() waits up to one interval, and every test stops its own server.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop listening and free the port; clients then see "connection refused". Safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
