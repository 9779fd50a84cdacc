"""Exports of what the console shows: the filtered payments list, the filtered flag queue, every disposition, as
CSV or JSON Lines. A download is a zip of the file and the ``manifest.json`` that ``audit export`` writes (rows,
columns, SHA-256 of the file, the indexer's checkpoint, the filter), all written by the audit library
(``audit.query.export.export_views``) from one snapshot. Each download is in the access log with its filter,
row count and hash."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from deposit_token.audit.query import export
from deposit_token.audit.query.common import checkpoint_info
from deposit_token.web.console._filters import flag_filter, payment_filter
from deposit_token.web.core import accesslog
from deposit_token.web.core.auth import CurrentUser, client_ip, console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router()
VIEWS = ("payments", "flags", "dispositions")


def _view(request: Request, conn: Any, name: str) -> export.View:
    if name == "payments":
        return export.payments_view(conn, payment_filter(request))
    if name == "flags":
        return export.flags_view(conn, flag_filter(request))
    return export.dispositions_view(conn)


@router.get("/console/export/{view}.{fmt}")
def download(request: Request, view: str, fmt: str, principal: CurrentUser) -> Response:
    if view not in VIEWS or fmt not in export.FORMATS:
        message = f"no export {view}.{fmt} (views: {', '.join(VIEWS)}; formats: {', '.join(export.FORMATS)})"
        return render(request, "console/problem.html", {"message": message}, 404)
    state = state_of(request)
    folder = Path(tempfile.mkdtemp(prefix="console-export-"))
    try:
        with state.reader.snapshot() as conn:
            chosen = _view(request, conn, view)
            (written,) = export.export_views(conn, folder / "files", [chosen], fmt)
            point = checkpoint_info(conn)
        block = point["block_number"] if point else 0
        archive = folder / f"{view}-{fmt}-block-{block}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.write(folder / "files" / written.file, written.file)
            bundle.write(folder / "files" / "manifest.json", "manifest.json")
        with state.engine.begin() as conn:
            accesslog.record(
                conn,
                accesslog.EXPORT,
                state.now(),
                principal.name,
                client_ip(request),
                view=view,
                format=fmt,
                filter=chosen.filter,
                rows=written.rows,
                sha256=written.sha256,
                block=block,
            )
    except ValueError as err:
        shutil.rmtree(folder, ignore_errors=True)
        return render(request, "console/problem.html", {"message": str(err)}, 400)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=archive.name,
        headers={"Cache-Control": "no-store", "X-Export-SHA256": written.sha256, "X-Export-Rows": str(written.rows)},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
