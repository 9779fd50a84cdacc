"""Serving the app with uvicorn: :func:`serve` in the foreground (the commands), :class:`BackgroundServer` in a
thread of the calling process (tests, benchmarks).

The listening socket is bound here, before uvicorn starts, so that a busy port or a foreign address is one
sentence (``ListenError``), not a log line and an exit from inside uvicorn.

``serve(..., workers=N)``, N > 1: N processes answer requests. One Python process runs on one core at a time,
and a page costs milliseconds of Python, so one process on N cores leaves N - 1 idle while requests queue. The
parent process does what must happen once: it migrates the database, builds what the derived tables miss, then
keeps them current and runs the follower (``core.background``) while its workers serve; it answers no request.
Each worker listens on a socket of its own bound to the same port with ``SO_REUSEPORT``: the kernel spreads new
connections over them evenly. (One socket shared by all the workers, uvicorn's ``workers=``, is accepted from by
whichever loop wakes first: on this machine every connection of a burst went to one worker, and keep-alive
clients then stay there.) The parent holds the port bound, not listening, so that it is said busy before any
worker starts, and restarts a worker that dies. What the workers share beyond the database (the follower's
status, the verify job) goes through a folder of their own (``core.shared``). With one worker the one process
does it all.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from types import TracebackType

import click
import uvicorn
from fastapi import FastAPI

from deposit_token.errors import DepositTokenError
from deposit_token.web.app import WebError, create_app, open_database, open_totp_keys
from deposit_token.web.core.background import Background
from deposit_token.web.core.config import WebConfig
from deposit_token.web.core.shared import SharedFolder

log = logging.getLogger("deposit_token.web")


# One definition for `ape run audit serve` and `python -m deposit_token.web`.
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    metavar="N",
    help="Processes answering requests (default: one per CPU). With more than one, a parent process keeps the "
    "derived tables current and runs the follower while the workers serve.",
)


def default_workers() -> int:
    """One worker process per CPU."""
    return max(1, os.cpu_count() or 1)


class ListenError(DepositTokenError):
    """The server cannot listen on its address."""


def listen(host: str, port: int, reuse_port: bool = False, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to host:port, listening unless `backlog` is 0 (then only holding the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP, and the
    # accepted connections inherit it; with Nagle on, a response written in two parts (headers, then body) waited
    # for the client's delayed ACK: 40 ms on every keep-alive request (bench/web.py)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    if backlog:
        sock.listen(backlog)
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


def settle_gc() -> None:
    """Moves what the process holds once started (modules, the app, its routes and models, the templates) out of
    the cyclic collector's sight: a full collection then scans what requests and caches made, not all of it again
    (the full collections that the caches' growth sets off are pauses of every request of the process)."""
    gc.collect()
    gc.freeze()


def _worker(config: WebConfig, host: str, port: int, log_level: str) -> None:
    """A worker process: the app without the background work (the parent does it) on a socket of its own."""
    sock = listen(host, port, reuse_port=True)
    app = create_app(config, background=False)
    settle_gc()
    try:
        _uvicorn(app, log_level).run(sockets=[sock])
    finally:
        sock.close()
        app.state.web.engine.dispose()


RESTART_PAUSE = 1.0  # seconds before a dead worker is replaced
STARTUP_FAILURE = 3  # uvicorn's exit code when the app cannot start: a replacement would fail alike


def serve(
    config: WebConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", workers: int = 1
) -> None:
    """Serves until interrupted (Ctrl-C or SIGTERM) with `workers` processes. Raises ListenError or
    app.WebError in one sentence."""
    if workers <= 1:
        _serve_alone(config, host, port, log_level)
        return
    engine = open_database(config.db_url)  # the database first: a wrong --db is said before anything listens
    try:
        open_totp_keys(engine, config)  # and a wrong key file, once, before any worker starts
    except WebError:
        engine.dispose()
        raise
    shared = SharedFolder.create()
    config = replace(config, shared_dir=str(shared.path))
    work = Background(engine, config, shared, log=log.info)
    hold: socket.socket | None = None
    try:
        # first without SO_REUSEPORT: a port another server listens on, even one sharing it that way, is refused
        probe = listen(host, port, backlog=0)
        port = probe.getsockname()[1]  # port 0: the one chosen
        probe.close()
        hold = listen(host, port, reuse_port=True, backlog=0)
        work.start()
        _supervise(config, host, port, log_level, workers)
    finally:
        work.stop()
        if hold is not None:
            hold.close()
        engine.dispose()
        shared.remove()


def _supervise(config: WebConfig, host: str, port: int, log_level: str, workers: int) -> None:
    """Runs `workers` worker processes until SIGINT or SIGTERM, replacing any that dies; then stops them (each
    gets SIGTERM: uvicorn's graceful stop, open event streams closed within 3 s)."""
    spawn = multiprocessing.get_context("spawn")  # not fork: this process has threads (the background work)
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda _sig, _frame: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> BaseProcess:
        process = spawn.Process(target=_worker, args=(config, host, port, log_level), name="deposit-token-web")
        process.start()
        return process

    running = [start() for _ in range(workers)]
    log.info("serving on http://%s:%d with %d worker processes", host, port, workers)
    try:
        while not stopping.wait(0.5):
            for i, process in enumerate(running):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a worker process could not start; stopping")
                    stopping.set()
                    break
                log.warning("worker process %s ended (exit %s); starting another", process.pid, process.exitcode)
                if not stopping.wait(RESTART_PAUSE):
                    running[i] = start()
    finally:
        for process in running:
            if process.is_alive():
                process.terminate()
        for process in running:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_alone(config: WebConfig, host: str, port: int, log_level: str) -> None:
    app = create_app(config)  # the database first: a wrong --db is said before anything listens
    try:
        sock = listen(host, port)
    except ListenError:
        app.state.web.engine.dispose()
        raise
    settle_gc()
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
