"""Serving the app with uvicorn: :func:`serve` in the foreground (the commands), :class:`BackgroundServer` in a
thread of the calling process (tests, benchmarks).

The listening socket is bound here, before uvicorn starts, so that a busy port or a foreign address is one
sentence (``ListenError``), not a log line and an exit from inside uvicorn.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from deposit_token.errors import DepositTokenError
from deposit_token.web.app import create_app
from deposit_token.web.core.config import WebConfig


class ListenError(DepositTokenError):
    """The server cannot listen on its address."""


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP, and the
    # accepted connections inherit it; with Nagle on, a response written in two parts (headers, then body) waited
    # for the client's delayed ACK: 40 ms on every keep-alive request (bench/web.py)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn(app: FastAPI, log_level: str) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level,
            server_header=False,
            # open event streams end within this after a stop (they also watch the app's stopping flag)
            timeout_graceful_shutdown=3,
            # behind a TLS proxy on this machine, the client's address comes from X-Forwarded-For
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
        )
    )


def serve(config: WebConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serves until interrupted (Ctrl-C or SIGTERM). Raises ListenError or app.WebError in one sentence."""
    app = create_app(config)  # the database first: a wrong --db is said before anything listens
    try:
        sock = listen(host, port)
    except ListenError:
        app.state.web.engine.dispose()
        raise
    try:
        _uvicorn(app, log_level).run(sockets=[sock])
    finally:
        sock.close()
        app.state.web.engine.dispose()


class BackgroundServer:
    """``with BackgroundServer(config) as server: requests.get(server.url + "/")``: the app on a free port of
    127.0.0.1, in a thread; stopped on exit."""

    def __init__(self, config: WebConfig, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.app = create_app(config)
        self.sock = listen(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.server = _uvicorn(self.app, log_level)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ListenError(f"the web server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.app.state.web.stopping.set()
        self.thread.join(15)
        self.sock.close()
        self.app.state.web.engine.dispose()
