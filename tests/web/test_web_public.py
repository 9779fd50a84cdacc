"""The public portal and its API against a real server over a real indexed database: no address, hash, vendor or
receipt in any public response (every public route, languages and filters), the same cells as `audit public`,
cache headers and ETags, bad queries answered 4xx, schemathesis over the OpenAPI document (no 5xx), the vendored
chart and htmx files as pinned in package.json, and the whole thing on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import select, text
from support.web import TEXT_RECEIPTS, logged_in, new_user, postgres_schema, routes_of

from deposit_token.audit.db import schema, store
from deposit_token.audit.query.common import snapshot
from deposit_token.audit.query.public import public_aggregates
from deposit_token.domain.receipts import receipt_text
from deposit_token.processes import free_port
from deposit_token.web.core import accounts
from deposit_token.web.core.config import WebConfig
from deposit_token.web.server import BackgroundServer

pytestmark = pytest.mark.chain  # the folder's pilot chain runs on a node of its own

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
HASH = re.compile(r"0x[0-9a-fA-F]{64}")
QUERIES = (
    "",
    "?lang=en",
    "?lang=ko",
    "?since=2026-12&until=2026-12",
    "?since=2026-11",
    "?min_count=6",
    "?until=2020-01",
)


@pytest.fixture(scope="module")
def db_url(pilot, tmp_path_factory) -> str:
    return pilot.copy_db(tmp_path_factory.mktemp("web-public"))


@pytest.fixture(scope="module")
def server(db_url):
    with BackgroundServer(WebConfig(db_url)) as running:
        yield running


@pytest.fixture(scope="module")
def private_words(db_url) -> list[str]:
    """What the database knows that the public must never see: vendor names and receipts (besides the
    addresses and hashes, found by pattern)."""
    engine = store.create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            vendors = [r.name for r in conn.execute(select(schema.vendor_registrations.c.name))]
            receipts = [receipt_text(r.receipt_id) for r in conn.execute(select(schema.payments.c.receipt_id))]
    finally:
        engine.dispose()
    texts = [r for r in receipts if not r.isdigit()]  # invoice texts; numbers are only numbers
    assert len(vendors) == 40 and set(TEXT_RECEIPTS) <= set(texts)
    return vendors + texts


def public_routes(server) -> list[str]:
    paths = [p for m, p in routes_of(server.app) if m == "GET" and not p.startswith(("/console", "/login"))]
    assert {"/", "/api/public/cells", "/api/public/cells.csv", "/api/public/meta", "/api/docs"} <= set(paths)
    assert "{" not in "".join(paths)  # a public route with a path parameter would need values here
    return paths


def test_no_public_response_shows_an_address_hash_vendor_or_receipt(server, private_words):
    checked = 0
    for path in [*public_routes(server), "/no-such-page", "/static/app.css"]:
        for query in QUERIES:
            for accept in ("text/html", "application/json"):
                answer = requests.get(f"{server.url}{path}{query}", headers={"Accept": accept})
                assert answer.status_code < 500, (path, query)
                seen = answer.text + json.dumps(dict(answer.headers))
                assert not ADDRESS.search(seen) and not HASH.search(seen), (path, query, ADDRESS.search(seen))
                leaked = [word for word in private_words if word in seen]
                assert not leaked, (path, query, leaked)
                checked += 1
    assert checked > 50


def test_the_api_serves_the_cells_of_audit_public(server, db_url):
    engine = store.create_db_engine(db_url)
    try:
        with snapshot(engine) as conn:
            expected = [asdict(c) for c in public_aggregates(conn)]
    finally:
        engine.dispose()
    answer = requests.get(f"{server.url}/api/public/cells")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=60"
    body = answer.json()
    assert body["cells"] == expected and body["min_count"] == 5
    published = [c for c in expected if not c["suppressed"]]
    assert published and all(c["payments"] >= 5 for c in published)
    assert all(c["payments"] is None and c["amount"] is None for c in expected if c["suppressed"])
    assert body["as_of"]["block_number"] > 0 and body["as_of"]["block_time"].endswith("+09:00")
    # the same cells as CSV, suppressed ones without numbers
    rows = requests.get(f"{server.url}/api/public/cells.csv").text.splitlines()
    assert rows[0] == "month,department,category,payments,amount_krw,suppressed" and len(rows) == len(expected) + 1
    assert any(row.endswith(",,,true") for row in rows[1:])
    meta = requests.get(f"{server.url}/api/public/meta").json()
    assert meta["months"] == ["2026-12"] and "MOEF-BUDGET" in meta["departments"]
    # the portal page: Korean amounts, the chart's data, the download links
    page = requests.get(f"{server.url}/").text
    first = published[0]
    assert f"{first['amount']:,}원" in page and 'data-chart="public-chart-data"' in page
    assert "/api/public/cells.csv" in page
    english = requests.get(f"{server.url}/?lang=en")
    assert f"KRW {first['amount']:,}" in english.text and "lang=en" in english.headers["set-cookie"]


def test_cache_headers_and_etags(server):
    first = requests.get(f"{server.url}/api/public/cells?since=2026-12")
    tag = first.headers["etag"]
    again = requests.get(f"{server.url}/api/public/cells?since=2026-12", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["etag"] == tag and not again.content
    other = requests.get(f"{server.url}/api/public/cells?since=2026-11", headers={"If-None-Match": tag})
    assert other.status_code == 200  # another query, another body
    for path in ("/", "/api/docs", "/api/public/cells.csv", "/api/public/meta"):
        assert requests.get(f"{server.url}{path}").headers["cache-control"] == "public, max-age=60", path
    assert requests.get(f"{server.url}/api/health").headers["cache-control"] == "no-store"
    csp = first.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_the_fast_path_answers_as_the_routes(server, db_url):
    """/api/health and /api/public/cells are answered before FastAPI's routing (public.FastPublic); a name the
    fast path does not know sends the same query on to the route, which must give the same bytes and headers."""
    for query in ("", "?since=2026-12", "?until=2026-12&min_count=12", "?min_count=10000", "?since=2026-13"):
        for path in (f"/api/public/cells{query}", f"/api/health{query}"):
            fast = requests.get(f"{server.url}{path}")
            routed = requests.get(f"{server.url}{path}{'&' if query else '?'}unknown=1")
            assert fast.status_code == routed.status_code and fast.content == routed.content, path
            keep = ("date",)
            assert {k: v for k, v in fast.headers.items() if k.lower() not in keep} == {
                k: v for k, v in routed.headers.items() if k.lower() not in keep
            }, path
    tag = requests.get(f"{server.url}/api/public/cells?min_count=12").headers["etag"]
    again = requests.get(f"{server.url}/api/public/cells?min_count=12", headers={"If-None-Match": f'"x", {tag}'})
    assert again.status_code == 304 and not again.content and again.headers["etag"] == tag
    # a larger min_count, selected from the published cells, suppresses as the query with it does
    engine = store.create_db_engine(db_url)
    try:
        with snapshot(engine) as conn:
            expected = [asdict(c) for c in public_aggregates(conn, min_count=12)]
    finally:
        engine.dispose()
    assert requests.get(f"{server.url}/api/public/cells?min_count=12").json()["cells"] == expected


def test_bad_queries_are_client_errors(server):
    for query, status in (
        ("since=2026-13", 400),
        ("since=2026-12&until=2026-01", 400),
        ("since=december", 422),
        ("min_count=4", 422),
        ("min_count=x", 422),
    ):
        answer = requests.get(f"{server.url}/api/public/cells?{query}")
        assert answer.status_code == status and "detail" in answer.json(), (query, answer.text)
    page = requests.get(f"{server.url}/?since=2026-13", headers={"Accept": "text/html"})
    assert page.status_code == 400 and "YYYY-MM" in page.text


def test_the_api_documentation_lists_every_public_operation(server):
    document = requests.get(f"{server.url}/api/openapi.json").json()
    assert set(document["paths"]) == {"/api/public/cells", "/api/public/cells.csv", "/api/public/meta", "/api/health"}
    page = requests.get(f"{server.url}/api/docs?lang=en").text
    for path in document["paths"]:
        assert f"GET {path}" in page
    assert "cdn" not in page.lower() and "https://" not in page


@pytest.fixture(scope="module")
def public_api(server):
    return schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")


api = schemathesis.pytest.from_fixture("public_api")


@api.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_is_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])


def test_the_vendored_chart_and_htmx_files_are_the_pinned_ones():
    pins = json.loads((ROOT / "package.json").read_text())["dependencies"]
    vendor = ROOT / "deposit_token/web/static/vendor"
    for package, source, copy in (
        ("uplot", "dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
        ("uplot", "dist/uPlot.min.css", "uPlot.min.css"),
        ("htmx.org", "dist/htmx.min.js", "htmx.min.js"),
    ):
        installed = ROOT / "node_modules" / package
        assert json.loads((installed / "package.json").read_text())["version"] == pins[package]
        assert (installed / source).read_bytes() == (vendor / copy).read_bytes(), f"run `make web-vendor` ({copy})"


def test_serving_a_postgresql_database(pilot, pg_url):
    with postgres_schema(pg_url) as url:
        pilot.index(url)  # the real indexer, into PostgreSQL (migrated to the console's tables too)
        user = new_user(url, accounts.SUPERVISOR)
        with BackgroundServer(WebConfig(url)) as server:
            session, _ = logged_in(server.url, user)
            overview = session.get(f"{server.url}/console", headers={"Accept": "text/html"})
            assert overview.status_code == 200 and 'data-chart="overview-chart-data"' in overview.text
            cells = requests.get(f"{server.url}/api/public/cells").json()["cells"]
            engine = store.create_db_engine(url)
            try:
                with snapshot(engine) as conn:
                    assert cells == [asdict(c) for c in public_aggregates(conn)]
                with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                    conn.execute(text("DELETE FROM web_access_log"))
            finally:
                engine.dispose()


def test_python_m_entry_point_serves_and_follows_the_chain(pilot, tmp_path):
    """What a service manager runs: `python -m deposit_token.web`, here with its own follower; SIGTERM stops it."""
    db_url = pilot.copy_db(tmp_path)
    port = free_port()
    demo = pilot.demo
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deposit_token.web",
            "--db",
            db_url,
            "--port",
            str(port),
            "--rpc-url",
            pilot.rpc_url,
            "--token",
            demo.token,
            "--start-block",
            str(demo.deploy_block),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        day, paid = pilot.pay_more()  # payments the copied database does not hold yet
        assert paid > 0
        head = int(demo.rpc.call("eth_blockNumber", []), 16)
        deadline = time.monotonic() + 30
        block = -1
        while block < head and time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError, KeyError, TypeError):  # not up, or nothing yet
                block = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()["as_of"]["block_number"]
            time.sleep(0.2)
        assert block >= head  # served, and indexed up to the head by its own follower
        cells = requests.get(f"http://127.0.0.1:{port}/api/public/meta").json()
        assert cells["as_of"]["block_time"].startswith(f"{day:%Y-%m-%d}")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    # uvicorn shuts down cleanly, then lets the signal end the process as it would have (exit status -15)
    assert process.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output
    assert "Traceback" not in output
    wrong = subprocess.run(
        [sys.executable, "-m", "deposit_token.web", "--db", db_url, "--rpc-url", pilot.rpc_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode != 0 and "go together" in wrong.stderr
