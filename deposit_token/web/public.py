"""The public transparency portal (no login): payments per department x merchant category x month, as
``ape run audit public`` publishes them (``deposit_token.audit.query.public``: cells under 5 payments
suppressed, no totals), as a page with a chart, CSV and JSON downloads, and a JSON API with OpenAPI docs.

Nothing here reads an address, a hash, a vendor or a receipt: the cells carry a department's name, a category,
a month and two numbers, and the "as of" is a block number and time (not its hash). ``tests/web`` scans every
public response for the addresses, hashes, vendor names and receipt ids of the database it serves.

Responses carry ``Cache-Control: public, max-age=<public_max_age>`` and an ETag (a repeated request with
``If-None-Match`` gets 304): the figures change only when the indexer commits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from deposit_token.audit.query.common import Filters, format_period, parse_period
from deposit_token.audit.query.overview import public_cells
from deposit_token.audit.query.public import MIN_CELL_COUNT, PublicCell
from deposit_token.domain import display
from deposit_token.errors import DepositTokenError
from deposit_token.web.core.pages import render, translator
from deposit_token.web.core.reader import AuditReader, Checkpoint
from deposit_token.web.core.state import state_of

MONTH_PATTERN = r"^[0-9]{4}-[0-9]{2}$"
MAX_MIN_COUNT = 10_000

router = APIRouter()

Month = Annotated[
    str | None,
    Query(pattern=MONTH_PATTERN, description="First (since) or last (until) month included, YYYY-MM.", max_length=7),
]
MinCount = Annotated[
    int,
    Query(
        ge=MIN_CELL_COUNT,
        le=MAX_MIN_COUNT,
        description=f"Suppress cells with fewer payments than this (never below {MIN_CELL_COUNT}).",
    ),
]


class BadRequest(DepositTokenError):
    """A query the portal cannot answer (the message says why, in English; pages translate the kind)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


# --- API models ------------------------------------------------------------------------------------------------


class CellOut(BaseModel):
    month: str = Field(description="YYYY-MM, in the program's time zone (KST).")
    department: str = Field(description="The department the payer was enrolled with when paying.")
    category: str = Field(description="Merchant category (e.g. RESTAURANT).")
    payments: int | None = Field(description="Number of payments; null when suppressed.")
    amount: int | None = Field(description="Total in KRW (1 token = 1 KRW); null when suppressed.")
    suppressed: bool = Field(description="True when the cell holds fewer than min_count payments.")


class AsOf(BaseModel):
    block_number: int | None = Field(description="The last block the figures include.")
    block_time: str | None = Field(description="That block's time, KST (ISO 8601).")


class CellsOut(BaseModel):
    min_count: int
    since: str | None
    until: str | None
    as_of: AsOf
    cells: list[CellOut]


class MetaOut(BaseModel):
    min_count: int = Field(description="The smallest cell published.")
    months: list[str]
    departments: list[str]
    categories: list[str]
    as_of: AsOf


class HealthOut(BaseModel):
    status: str
    as_of: AsOf


# --- reading ---------------------------------------------------------------------------------------------------


def filters_from(since: str | None, until: str | None) -> Filters:
    try:
        first = None if since is None else parse_period(since)
        last = None if until is None else parse_period(until)
    except ValueError as err:
        raise BadRequest("public.error.month", str(err)) from None
    if first is not None and last is not None and first > last:
        raise BadRequest("public.error.order", f"since {since} is after until {until}")
    return Filters((), first, last)


def as_of(point: Checkpoint | None) -> AsOf:
    if point is None:
        return AsOf(block_number=None, block_time=None)
    when = None
    if point.block_time is not None:
        from datetime import datetime

        when = datetime.fromtimestamp(point.block_time, display.zone()).isoformat()
    return AsOf(block_number=point.block_number, block_time=when)


@dataclass(frozen=True)
class Published:
    """Every public cell at one checkpoint (all months, the smallest min_count), each encoded once: an answer for
    any month range and min_count is a selection of them, joined (bench/web.py: building and encoding two
    thousand cells for each month range the visitors asked, in each worker, was the public API's p95)."""

    cells: tuple[PublicCell, ...]
    encoded: tuple[bytes, ...]  # cells[i] as the API writes it
    point: Checkpoint | None
    as_of: AsOf


def _publish(conn: Connection) -> Published:
    cells = public_cells(conn, Filters(), MIN_CELL_COUNT)
    point = AuditReader.point(conn)
    return Published(tuple(cells), tuple(_cell_out(c).model_dump_json().encode() for c in cells), point, as_of(point))


def _hidden(cell: PublicCell) -> PublicCell:
    return replace(cell, payments=None, amount=None, suppressed=True)


def select(published: Published, since: str | None, until: str | None, min_count: int) -> list[PublicCell]:
    """The cells the query (month range, min_count) gives, from the published ones (see ``answer``)."""
    return [
        _hidden(c) if c.payments is not None and c.payments < min_count else c
        for c in published.cells
        if (since is None or c.month >= since) and (until is None or c.month <= until)
    ]


@dataclass(frozen=True)
class Answer:
    body: bytes
    etag: str


def answer(published: Published, since: str | None, until: str | None, min_count: int) -> Answer:
    """The API's answer for a month range and min_count, byte for byte what ``CellsOut`` encodes. A cell is a
    month's, so a range's cells are those of its months; a larger min_count suppresses what the smallest left
    published with fewer payments (the cell as the query with that min_count gives it)."""
    parts = []
    for cell, encoded in zip(published.cells, published.encoded, strict=True):
        if (since is not None and cell.month < since) or (until is not None and cell.month > until):
            continue
        if cell.payments is not None and cell.payments < min_count:
            encoded = _cell_out(_hidden(cell)).model_dump_json().encode()
        parts.append(encoded)
    head = CellsOut(min_count=min_count, since=since, until=until, as_of=published.as_of, cells=[])
    empty = head.model_dump_json().encode()
    body = empty[: -len(b"]}")] + b",".join(parts) + b"]}"
    return Answer(body, _etag(body))


def _cell_out(cell: PublicCell) -> CellOut:
    return CellOut(
        month=cell.month,
        department=cell.department,
        category=cell.category,
        payments=cell.payments,
        amount=cell.amount,
        suppressed=cell.suppressed,
    )


@lru_cache(maxsize=64)
def _etag(body: bytes) -> str:
    """The ETag of `body`: hashed once per body, since the reader's cache hands out the same bytes object until
    the checkpoint moves (and a bytes object keeps its own hash for the lookup)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def cached(
    request: Request, body: bytes, media_type: str, extra: dict[str, str] | None = None, etag: str | None = None
) -> Response:
    """`body` with Cache-Control and an ETag (`etag` if already known); 304 when the client already has it."""
    tag = etag or _etag(body)
    headers = {"Cache-Control": _cache_control(state_of(request).config.public_max_age), "ETag": tag, **(extra or {})}
    if _client_has(tag, request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _cache_control(max_age: int) -> str:
    return f"public, max-age={max_age}"


def _client_has(tag: str, if_none_match: str) -> bool:
    """Whether an If-None-Match header names `tag` (a list of tags separated by commas)."""
    return tag in [t.strip() for t in if_none_match.split(",")]


def _bad_body(error: BadRequest) -> bytes:
    return json.dumps({"detail": error.message}, ensure_ascii=False, separators=(",", ":")).encode()


def _bad(error: BadRequest) -> Response:
    return Response(_bad_body(error), status_code=400, media_type="application/json")


# --- API -------------------------------------------------------------------------------------------------------

_BAD_REQUEST: dict[int | str, dict[str, Any]] = {400: {"description": "A month that does not exist, or since > until."}}


@router.get(
    "/api/public/cells",
    response_model=CellsOut,
    responses=_BAD_REQUEST,
    tags=["public"],
    summary="Payments per department x category x month",
)
async def api_cells(
    request: Request, since: Month = None, until: Month = None, min_count: MinCount = MIN_CELL_COUNT
) -> Response:
    """Count and total of the payments of each department in each merchant category and month. Cells with
    fewer than `min_count` payments are suppressed (no count, no amount); no totals are published, so that a
    suppressed cell cannot be recovered by subtraction."""
    try:
        filters_from(since, until)  # months that exist, in order
    except BadRequest as err:
        return _bad(err)
    found = await cells_answer(state_of(request).reader, since, until, min_count)
    return cached(request, found.body, "application/json", etag=found.etag)


async def cells_answer(reader: AuditReader, since: str | None, until: str | None, min_count: int) -> Answer:
    """The API's answer at the recent checkpoint, from the event loop (no worker thread, no connection) but for
    the first request after the checkpoint moves."""
    published = await reader.shared("public:published", None, _publish)
    point = await reader.recent_checkpoint()
    key = (since, until, min_count)
    found = reader.peek("public:answer", point, key)
    if not isinstance(found, Answer):
        found = answer(published, since, until, min_count)
        reader.keep("public:answer", point, key, found)
    return found


@router.get(
    "/api/public/cells.csv",
    responses={200: {"content": {"text/csv": {}}, "description": "The cells as CSV."}, **_BAD_REQUEST},
    response_class=Response,
    tags=["public"],
    summary="The same cells as CSV",
)
async def api_cells_csv(
    request: Request, since: Month = None, until: Month = None, min_count: MinCount = MIN_CELL_COUNT
) -> Response:
    """The cells of `/api/public/cells` as CSV (UTF-8, a header row; suppressed cells with empty count and
    amount)."""
    try:
        filters_from(since, until)
    except BadRequest as err:
        return _bad(err)
    published = await state_of(request).reader.shared("public:published", None, _publish)
    cells = select(published, since, until, min_count)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["month", "department", "category", "payments", "amount_krw", "suppressed"])
    for c in cells:
        writer.writerow(
            [
                c.month,
                c.department,
                c.category,
                "" if c.payments is None else c.payments,
                "" if c.amount is None else c.amount,
                "true" if c.suppressed else "false",
            ]
        )
    return cached(
        request,
        text.getvalue().encode(),
        "text/csv; charset=utf-8",
        {"Content-Disposition": 'attachment; filename="public-spending.csv"'},
    )


@router.get("/api/public/meta", response_model=MetaOut, tags=["public"], summary="What the cells cover")
async def api_meta(request: Request) -> Response:
    """The months, departments and categories that have payments, and the suppression threshold."""
    published = await state_of(request).reader.shared("public:published", None, _publish)
    cells = published.cells
    out = MetaOut(
        min_count=MIN_CELL_COUNT,
        months=sorted({c.month for c in cells}),
        departments=sorted({c.department for c in cells}),
        categories=sorted({c.category for c in cells}),
        as_of=published.as_of,
    )
    return cached(request, out.model_dump_json().encode(), "application/json")


@router.get("/api/health", response_model=HealthOut, tags=["service"], summary="Is the server up, how current")
async def api_health(request: Request) -> Response:
    """For service managers and load balancers: 200 and the indexer's position."""
    body = await health_body(state_of(request).reader)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


async def health_body(reader: AuditReader) -> bytes:
    """The position read at most RECENT seconds ago, shared by every request (no worker thread, no connection):
    a load balancer polling many times a second costs one primary-key read per RECENT."""
    point = await reader.recent_checkpoint()
    found = reader.peek("health", point, None)
    if not isinstance(found, bytes):
        found = HealthOut(status="ok", as_of=as_of(point)).model_dump_json().encode()
        reader.keep("health", point, None, found)
    return found


# --- the fast path ---------------------------------------------------------------------------------------------

_MONTH = re.compile(rb"^[0-9]{4}-[0-9]{2}$")
_COUNT = re.compile(rb"^[1-9][0-9]{0,4}$")
_JSON = (b"content-type", b"application/json")


class FastPublic:
    """A plain ASGI middleware answering ``GET /api/health`` and ``GET /api/public/cells`` (with plain since,
    until and min_count values) before FastAPI's routing, parameter validation and Response objects, which cost
    more than the answer itself (bench/web.py). The answers are those of the routes, byte for byte and header
    for header; any other request, and any query it would have to decode or refuse, goes on to the app (its
    routes answer it, and document both in the OpenAPI document)."""

    def __init__(self, app: ASGIApp, reader: Callable[[], AuditReader], max_age: Callable[[], int]):
        self.app = app
        self.reader = reader
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path == "/api/health":
                body = await health_body(self.reader())
                await _send(send, 200, [_JSON, (b"cache-control", b"no-store")], body)
                return
            if path == "/api/public/cells":
                query = _plain_query(scope["query_string"])
                if query is not None:
                    await self._cells(scope, send, *query)
                    return
        await self.app(scope, receive, send)

    async def _cells(self, scope: Scope, send: Send, since: str | None, until: str | None, min_count: int) -> None:
        try:
            filters_from(since, until)
        except BadRequest as err:
            await _send(send, 400, [_JSON], _bad_body(err))
            return
        found = await cells_answer(self.reader(), since, until, min_count)
        headers = [(b"cache-control", _cache_control(self.max_age()).encode()), (b"etag", found.etag.encode())]
        for name, value in scope["headers"]:
            if name == b"if-none-match" and _client_has(found.etag, value.decode("latin-1")):
                await _send(send, 304, headers, b"")
                return
        await _send(send, 200, [_JSON, *headers], found.body)


def _plain_query(query: bytes) -> tuple[str | None, str | None, int] | None:
    """since, until and min_count from a query without escapes or repeats and with valid values, else None (the
    app's route decodes and validates it)."""
    values: dict[bytes, bytes] = {}
    if query:
        if b"%" in query or b"+" in query:
            return None
        for part in query.split(b"&"):
            name, equals, value = part.partition(b"=")
            if not equals or name in values or name not in (b"since", b"until", b"min_count"):
                return None
            values[name] = value
    since, until, count = values.get(b"since"), values.get(b"until"), values.get(b"min_count")
    if (since is not None and not _MONTH.match(since)) or (until is not None and not _MONTH.match(until)):
        return None
    if count is not None and not (_COUNT.match(count) and MIN_CELL_COUNT <= int(count) <= MAX_MIN_COUNT):
        return None
    return (
        None if since is None else since.decode(),
        None if until is None else until.decode(),
        MIN_CELL_COUNT if count is None else int(count),
    )


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    if status != 304:
        headers = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- pages -----------------------------------------------------------------------------------------------------


def chart_data(cells: list[PublicCell]) -> dict[str, Any]:
    """The published amounts per department (suppressed cells are not in them, and say so)."""
    per_department: dict[str, int] = defaultdict(int)
    for c in cells:
        if c.amount is not None:
            per_department[c.department] += c.amount
    ordered = sorted(per_department.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"labels": [k for k, _ in ordered], "values": [v for _, v in ordered]}


@router.get("/", include_in_schema=False)
async def portal(request: Request, since: str | None = None, until: str | None = None) -> Response:
    try:
        filters = filters_from(since or None, until or None)
    except BadRequest as err:
        return await run_in_threadpool(render, request, "error.html", {"status": 400, "message_key": err.key}, 400)
    published = await state_of(request).reader.shared("public:published", None, _publish)
    # the months as the cells write them (the form also takes 203001)
    first, last = (None if p is None else format_period(p) for p in (filters.since, filters.until))
    cells, point = select(published, first, last, MIN_CELL_COUNT), published.point
    return await run_in_threadpool(_portal_page, request, cells, point, since, until)


def _portal_page(
    request: Request, cells: list[PublicCell], point: Checkpoint | None, since: str | None, until: str | None
) -> Response:
    t = translator(request)
    query = "&".join(f"{k}={v}" for k, v in (("since", since), ("until", until)) if v)
    response = render(
        request,
        "public.html",
        {
            "cells": cells,
            "published": sum(1 for c in cells if not c.suppressed),
            "since": since or "",
            "until": until or "",
            "as_of": point,
            "min_count": MIN_CELL_COUNT,
            "chart": {
                **chart_data(cells),
                "title": t("public.chart.title"),
                "unit": t("unit.krw"),
                "lang": t.lang,
            },
            "query": query,
        },
    )
    response.headers["Cache-Control"] = f"public, max-age={state_of(request).config.public_max_age}"
    response.headers["Vary"] = "Cookie"
    return response


@router.get("/api/docs", include_in_schema=False)
def api_docs(request: Request) -> Response:
    """The OpenAPI document as a page of this site (no CDN: Swagger UI would load from one)."""
    schema = request.app.openapi()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": _type_of(p.get("schema", {})),
                            "description": p.get("description", "") or p.get("schema", {}).get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "responses": sorted(op.get("responses", {})),
                }
            )
    response = render(request, "api_docs.html", {"operations": operations, "info": schema.get("info", {})})
    response.headers["Cache-Control"] = f"public, max-age={state_of(request).config.public_max_age}"
    return response


def _type_of(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    kind = str(schema.get("type", ""))
    if "pattern" in schema:
        kind += f" ({schema['pattern']})"
    if "minimum" in schema or "maximum" in schema:
        kind += f" [{schema.get('minimum', '')}..{schema.get('maximum', '')}]"
    return kind
