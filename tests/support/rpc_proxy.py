"""A real HTTP JSON-RPC proxy in front of a node that lets a test play a faulty or limited provider:
`rewrite(payload, answer)` may change (or replace) the node's answer to each single request before the client
sees it; a subclass may override `handle` to answer without asking the node."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import requests

Rewrite = Callable[[Any, Any], Any]


class RpcProxy:
    """Forwards every JSON-RPC request to `upstream`; single (non-batch) answers go through `rewrite`."""

    def __init__(self, upstream: str, rewrite: Rewrite | None = None) -> None:
        self.upstream, self.rewrite = upstream, rewrite
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the access log would only clutter test output
                return None

            def do_POST(self) -> None:
                payload = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                out = orjson.dumps(proxy.handle(payload))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, payload: Any) -> Any:
        """The node's answer to `payload`."""
        return requests.post(self.upstream, json=payload, timeout=30).json()

    def handle(self, payload: Any) -> Any:
        """The answer the client gets."""
        answer = self.forward(payload)
        if self.rewrite is not None and isinstance(payload, dict):
            answer = self.rewrite(payload, answer)
        return answer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RpcProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
