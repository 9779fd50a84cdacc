"""The console's pages beyond the overview, against a real server over the database the real indexer filled
from the folder's pilot chain: payments (filters, keyset pages both ways, one payment in full), the flag queue,
dispositions (recorded with a note through the CSRF-protected form, shown on the payment, append-only, in the
access log), exports of filtered views (zip of the file and its manifest, hashes checked, logged), participants
and programs, and verification from the browser (refused in a sentence without a node; run against the node)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile

import pytest
import requests
from sqlalchemy import text
from support.web import User, logged_in, new_user

from deposit_token.audit.db import store
from deposit_token.web.core import accesslog, accounts
from deposit_token.web.core.config import Follow, WebConfig
from deposit_token.web.server import BackgroundServer

pytestmark = pytest.mark.chain  # the folder's pilot chain runs on a node of its own

ROW_KEY = re.compile(r'<tr data-key="([^"]+)"')
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def db_url(pilot, tmp_path_factory) -> str:
    return pilot.copy_db(tmp_path_factory.mktemp("web-console-pages"))


@pytest.fixture(scope="module")
def server(db_url):
    with BackgroundServer(WebConfig(db_url)) as running:
        yield running


@pytest.fixture(scope="module")
def auditor(db_url) -> User:
    return new_user(db_url, accounts.AUDITOR, "auditor")


@pytest.fixture(scope="module")
def client(server, auditor) -> tuple[requests.Session, str]:
    return logged_in(server.url, auditor)


def get(client, server, path: str, **params) -> requests.Response:
    session, _ = client
    return session.get(f"{server.url}{path}", params=params, headers=HTML, allow_redirects=False)


def keys(page: requests.Response) -> list[str]:
    assert page.status_code == 200, page.text[:400]
    return ROW_KEY.findall(page.text)


def download(client, server, path: str, **params) -> tuple[list[dict] | str, dict, requests.Response]:
    """An export: its rows (JSON Lines parsed, CSV as text) and its manifest, the manifest's hash checked."""
    answer = get(client, server, path, **params)
    assert answer.status_code == 200, answer.text[:400]
    assert answer.headers["content-type"] == "application/zip"
    assert "attachment" in answer.headers["content-disposition"]
    bundle = zipfile.ZipFile(io.BytesIO(answer.content))
    manifest = json.loads(bundle.read("manifest.json"))
    (entry,) = manifest["tables"]
    data = bundle.read(entry["file"])
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] == answer.headers["x-export-sha256"]
    if entry["file"].endswith(".jsonl"):
        rows = [json.loads(line) for line in data.decode().splitlines()]
        assert len(rows) == entry["rows"]
        return rows, manifest, answer
    assert len(data.decode().splitlines()) == entry["rows"] + 1  # header
    return data.decode(), manifest, answer


@pytest.fixture(scope="module")
def everything(client, server) -> list[dict]:
    rows, manifest, _ = download(client, server, "/console/export/payments.jsonl")
    assert len(rows) > 100 and manifest["checkpoint"]["block_number"] > 0
    return rows


# --- payments -------------------------------------------------------------------------------------------------


def test_keyset_pages_cover_every_payment_once_both_ways(client, server, everything):
    pages, url = [], "/console/payments"
    while url:
        page = get(client, server, url)
        pages.append(keys(page))
        found = re.search(r'id="next-page" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    seen = [key for page in pages for key in page]
    assert len(pages) > 2 and len(set(seen)) == len(seen)  # no overlap
    assert seen == [row["key"] for row in everything]  # no gap, newest first
    # and back from the last page with the "newer" links: the same pages
    back, url = [], re.search(r'id="prev-page" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    while url:
        page = get(client, server, url)
        back.append(keys(page))
        found = re.search(r'id="prev-page" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert back == pages[-2::-1]


def test_each_filter_narrows_the_list_and_its_export_matches(client, server, everything):
    first = everything[0]
    flagged = next(row for row in everything if row["flags"])
    cases = [
        ({"program": str(first["program_id"])}, lambda r: r["program_id"] == first["program_id"]),
        ({"department": first["department"]}, lambda r: r["department"] == first["department"]),
        ({"vendor": first["vendor"]}, lambda r: r["vendor"] == first["vendor"]),
        ({"category": first["category_name"]}, lambda r: r["category_name"] == first["category_name"]),
        ({"month": first["period"]}, lambda r: r["period"] == first["period"]),
        ({"min_amount": "20,000", "max_amount": "45000"}, lambda r: 20_000 <= r["amount"] <= 45_000),
        ({"flag": flagged["flags"].split(";")[0]}, lambda r: flagged["flags"].split(";")[0] in r["flags"].split(";")),
        ({"flag": "any"}, lambda r: bool(r["flags"])),
    ]
    for params, holds in cases:
        expected = [row["key"] for row in everything if holds(row)]
        assert len(expected) > 0, params
        listed = keys(get(client, server, "/console/payments", **params))
        assert listed == expected[:50], params
        rows, manifest, _ = download(client, server, "/console/export/payments.jsonl", **params)
        assert [row["key"] for row in rows] == expected, params
        assert manifest["filters"]["payments"], params  # the manifest says which view it is
    assert len(expected) < len(everything)
    # two filters together narrow further
    both = {"program": str(first["program_id"]), "category": first["category_name"]}
    rows, _, _ = download(client, server, "/console/export/payments.jsonl", **both)
    assert rows and all(
        r["program_id"] == first["program_id"] and r["category_name"] == first["category_name"] for r in rows
    )


def test_bad_filters_get_one_sentence_and_400(client, server):
    for params, words in (
        ({"month": "2026-13"}, "2026-13"),
        ({"vendor": "0x1234"}, "vendor"),
        ({"min_amount": "9", "max_amount": "1"}, "minimum"),
        ({"flag": "no-such-rule"}, "no-such-rule"),
        ({"after": "nonsense"}, "nonsense"),
    ):
        answer = get(client, server, "/console/payments", **params)
        assert answer.status_code == 400 and words in answer.text, params
        assert "Traceback" not in answer.text
    assert get(client, server, "/console/payments/1-x").status_code == 404
    assert get(client, server, "/console/payments/999999-0").status_code == 404


def test_a_payment_page_shows_it_in_full(client, server, everything):
    row = next(r for r in everything if r["receipt"].startswith("INV-WEB-"))
    page = get(client, server, f"/console/payments/{row['key']}")
    assert page.status_code == 200
    html = page.text
    for shown in (row["time_kst"], row["department"], row["vendor_name"], row["tx_hash"], row["receipt"], "41,000원"):
        assert shown in html, shown
    assert 'id="payment-event"' in html and "capLeft" in html and "receiptId" in html
    assert 'id="rules"' in html and "건당 한도" in html  # the program's rules in force at that block
    assert "블록" in html and f"{row['block_number']:,}" in html
    english = get(client, server, f"/console/payments/{row['key']}", lang="en").text
    assert "KRW 41,000" in english and "rules in force at this block" in english
    assert "원" in get(client, server, "/console/payments", lang="ko").text  # (the choice is kept in a cookie)


# --- flags and dispositions -----------------------------------------------------------------------------------


def test_a_disposition_is_recorded_shown_and_never_altered(client, server, db_url, auditor, everything):
    session, csrf = client
    open_queue = get(client, server, "/console/flags")
    flag = keys(open_queue)[0]
    block, log, rule = re.match(r"(\d+)-(\d+)-(.+)", flag).groups()
    payment = f"{block}-{log}"
    form_url = f"{server.url}/console/flags/{flag}/dispositions"
    note = "영수증 확인 요청 (explanation asked by phone)"
    # without the CSRF token, with an empty note, with an unknown kind: refused, nothing recorded
    assert session.post(form_url, data={"disposition": "justified", "note": "x"}, headers=HTML).status_code == 403
    empty = session.post(form_url, data={"csrf_token": csrf, "disposition": "justified", "note": " "}, headers=HTML)
    assert empty.status_code == 400 and "note" in empty.text
    unknown = session.post(form_url, data={"csrf_token": csrf, "disposition": "forgiven", "note": "x"}, headers=HTML)
    assert unknown.status_code == 400 and "forgiven" in unknown.text
    # recorded, then another one: both in the history, oldest first, with who and when
    for kind, text_ in (("explanation_requested", note), ("justified", "explanation received")):
        answer = session.post(
            form_url, data={"csrf_token": csrf, "disposition": kind, "note": text_}, allow_redirects=False
        )
        assert answer.status_code == 303 and answer.headers["location"] == f"/console/payments/{payment}#flag-{flag}"
    page = get(client, server, f"/console/payments/{payment}").text
    case = page[page.index(f'id="flag-{flag}"') :]
    assert "정당함</span>" in case[: case.index("</h3>")]  # its status: the latest disposition
    case = case[case.index("<tbody>") : case.index("</tbody>")]
    assert case.index("소명 요청") < case.index(note) < case.index("정당함") < case.index("explanation received")
    assert case.count(auditor.name) == 2 and "KST" in case
    # the queue: no longer open, decided (latest: justified)
    assert flag not in keys(get(client, server, "/console/flags"))
    assert flag in keys(get(client, server, "/console/flags", status="justified", rule=rule))
    assert flag not in keys(get(client, server, "/console/flags", status="explanation_requested"))
    # the database refuses to change or delete one, and no route does it
    engine = store.create_db_engine(db_url)
    try:
        for statement in ("UPDATE dispositions SET note = 'changed'", "DELETE FROM dispositions"):
            with pytest.raises(Exception, match=r"append-only|not allowed|refuse"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            logged = [e for e in accesslog.recent(conn, 50) if e.event == accesslog.DISPOSITION]
    finally:
        engine.dispose()
    assert [(e.actor, e.detail["flag"], e.detail["disposition"]) for e in logged[:2]] == [
        (auditor.name, flag, "justified"),
        (auditor.name, flag, "explanation_requested"),
    ]
    # the export of every disposition has both
    rows, _, _ = download(client, server, "/console/export/dispositions.jsonl")
    assert [(r["flag"], r["disposition"]) for r in rows[-2:]] == [(flag, "explanation_requested"), (flag, "justified")]


def test_the_flag_queue_filters_by_rule_and_status_and_exports(client, server):
    counts = get(client, server, "/console/flags", status="any").text
    assert 'id="flag-counts"' in counts
    all_flags = keys(get(client, server, "/console/flags", status="any"))
    assert all_flags
    rule = all_flags[0].split("-", 2)[2]
    only = keys(get(client, server, "/console/flags", status="any", rule=rule))
    assert only and all(key.endswith(f"-{rule}") for key in only)
    rows, manifest, _ = download(client, server, "/console/export/flags.csv", status="any", rule=rule)
    assert manifest["filters"]["flags"]["rules"] == [rule] and rows.count(f"-{rule},") >= len(only)
    assert get(client, server, "/console/flags", status="maybe").status_code == 400


def test_exports_carry_manifest_hashes_and_are_logged(client, server, db_url, auditor):
    text_, manifest, answer = download(client, server, "/console/export/payments.csv", category="RESTAURANT")
    assert text_.splitlines()[0].startswith("key,block_number,log_index,tx_hash")
    assert manifest["format"] == "csv" and manifest["filters"]["payments"] == {"category": ["RESTAURANT"]}
    assert get(client, server, "/console/export/payments.xlsx").status_code == 404
    assert get(client, server, "/console/export/users.csv").status_code == 404
    engine = store.create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            exports = [e for e in accesslog.recent(conn, 200) if e.event == accesslog.EXPORT]
    finally:
        engine.dispose()
    latest = exports[0]
    assert latest.actor == auditor.name and latest.detail["view"] == "payments" and latest.detail["format"] == "csv"
    assert latest.detail["sha256"] == answer.headers["x-export-sha256"]
    assert latest.detail["filter"] == {"category": ["RESTAURANT"]}


# --- participants, programs, every page ---------------------------------------------------------------------


def test_every_console_page_renders_for_an_auditor_in_both_languages(client, server, everything):
    row = everything[0]
    pages = [
        "/console/payments",
        f"/console/payments/{row['key']}",
        "/console/flags",
        "/console/flags?status=any",
        "/console/vendors",
        f"/console/vendors/{row['vendor']}",
        f"/console/officials/{row['payer']}",
        f"/console/officials/{row['payer']}?month={row['period']}",
        "/console/programs",
        f"/console/programs/{row['program_id']}",
        "/console/verify",
    ]
    for lang, word in (("en", "Payments"), ("ko", "결제")):
        for path in pages:
            sep = "&" if "?" in path else "?"
            answer = get(client, server, f"{path}{sep}lang={lang}")
            assert answer.status_code == 200, (lang, path, answer.text[:300])
            assert f'<html lang="{lang}">' in answer.text and word in answer.text, (lang, path)
            assert not re.search(r"\{[a-z_]+\}", answer.text), (lang, path)  # every placeholder filled
    for path in ("/console/vendors/0x12", "/console/officials/nobody", "/console/programs/999", "/console/programs/x"):
        assert get(client, server, path).status_code == 404, path


def test_a_vendor_an_official_and_a_program(client, server, everything):
    row = everything[0]
    vendor = get(client, server, f"/console/vendors/{row['vendor']}")
    mine = [r["key"] for r in everything if r["vendor"] == row["vendor"]]
    assert keys(vendor) == mine[:20] and row["vendor_name"] in vendor.text
    assert 'id="vendor-redemptions"' in vendor.text and 'id="vendor-months"' in vendor.text
    official = get(client, server, f"/console/officials/{row['payer']}", month=row["period"])
    theirs = [r["key"] for r in everything if r["payer"] == row["payer"]]
    assert keys(official) == theirs[:20] and row["department"] in official.text
    caps = official.text[official.text.index('id="official-caps"') :]
    assert "월" in caps and t_category(row["category_name"]) in caps  # the category spent in, against its cap
    assert get(client, server, f"/console/officials/{row['payer']}", month="2026-99").status_code == 400
    program = get(client, server, f"/console/programs/{row['program_id']}").text
    assert 'id="program-versions"' in program and "최초 설정" in program and "건당 한도" in program


def t_category(name: str) -> str:
    from deposit_token.web.core.i18n import Translator

    return Translator("ko").category(name)


# --- verification from the browser ----------------------------------------------------------------------------


def test_verify_without_a_node_says_so(client, server):
    session, csrf = client
    page = get(client, server, "/console/verify")
    assert 'id="verify-unavailable"' in page.text and 'id="verify-start"' not in page.text
    refused = session.post(f"{server.url}/console/verify", data={"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 409


def test_verify_runs_against_the_node_in_the_background(pilot, tmp_path):
    db_url = pilot.copy_db(tmp_path)
    demo = pilot.demo
    follow = Follow(pilot.rpc_url, demo.token, demo.deploy_block, confirmations=0, poll_interval=0.5)
    user = new_user(db_url, accounts.AUDITOR, "verifier")
    with BackgroundServer(WebConfig(db_url, follow=follow)) as running:
        session, csrf = logged_in(running.url, user)
        started = session.post(f"{running.url}/console/verify", data={"csrf_token": csrf}, allow_redirects=False)
        assert started.status_code == 303
        deadline = time.monotonic() + 60
        while True:
            page = session.get(f"{running.url}/console/verify", headers=HTML).text
            phase = re.search(r'data-phase="(\w+)"', page).group(1)
            if phase in ("done", "failed") or time.monotonic() > deadline:
                break
            assert 'http-equiv="refresh"' in page  # the page follows the job by itself
            time.sleep(0.3)
    assert phase == "done", page[page.index('id="verify-job"') :][:600]
    assert 'id="verify-result"' in page and "불일치 0건" in page and user.name in page
