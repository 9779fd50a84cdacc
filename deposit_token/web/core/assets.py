"""The static files (``web/static``: styles, scripts, the vendored chart and htmx libraries), read once at start
and served from memory by a plain ASGI app.

Starlette's ``StaticFiles`` looks each request's path up on disk in a worker thread (a ``stat``), then opens and
reads the file in another: 0.7 ms of server CPU per request on this machine, more than a public API answer. The
files are part of the package and change only with it, so their bytes, type and ETag are computed once.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class Asset:
    body: bytes
    headers: list[tuple[bytes, bytes]]  # content-type, content-length, etag, last-modified
    etag: bytes


def _load(path: Path) -> Asset:
    body = path.read_bytes()
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "image/svg+xml"):
        kind += "; charset=utf-8"
    etag = ('"' + hashlib.sha256(body).hexdigest()[:32] + '"').encode()
    return Asset(
        body,
        [
            (b"content-type", kind.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"etag", etag),
            (b"last-modified", formatdate(path.stat().st_mtime, usegmt=True).encode()),
        ],
        etag,
    )


class StaticAssets:
    """An ASGI app serving every file under `directory` (mounted at /static: the path it sees is the rest) for
    GET and HEAD; 304 for a matching If-None-Match, 404 for any other path, 405 for other methods."""

    def __init__(self, directory: Path):
        self.files = {
            "/" + path.relative_to(directory).as_posix(): _load(path)
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        # mounted: the path goes on with the mount's, which the root path is
        asset = self.files.get(scope["path"][len(scope.get("root_path", "")) :])
        if asset is None:
            raise HTTPException(status_code=404)
        sent = b""
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                sent = value
        if sent and asset.etag in [tag.strip() for tag in sent.split(b",")]:
            headers = [h for h in asset.headers if h[0] in (b"etag", b"last-modified")]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": asset.headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else asset.body})
