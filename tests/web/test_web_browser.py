"""A real browser (Debian's Chromium through Playwright, headless, kept off the network) against a real server
that follows a real chain: an auditor logs in with password + TOTP and sees the overview's chart drawn, a
payment made on the chain appears in the console by itself (server-sent events), filters the payments and opens
one, records a disposition of a flag and downloads an export; and the public portal's chart is drawn in Korean
and English; no page needs anything but this server (no CDN) or breaks its
Content-Security-Policy.

Screenshots go to docs/screenshots/ when DEPOSIT_TOKEN_WEB_SCREENSHOTS=1 (`make web-screenshots`), else to the
test's temporary folder, so that a test run leaves the checkout as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from support.web import User, chromium_args, chromium_or_skip, new_user

from deposit_token.web.core import accounts
from deposit_token.web.core.config import Follow, WebConfig
from deposit_token.web.server import BackgroundServer

pytestmark = pytest.mark.chain  # the folder's pilot chain runs on a node of its own

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
PAINTED = """(selector) => {
  const canvas = document.querySelector(selector + ' canvas');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {width: canvas.width, height: canvas.height, painted: painted};
}"""


@pytest.fixture(scope="module")
def server(pilot, tmp_path_factory):
    db_url = pilot.copy_db(tmp_path_factory.mktemp("web-browser"))
    demo = pilot.demo
    follow = Follow(pilot.rpc_url, demo.token, demo.deploy_block, confirmations=0, poll_interval=0.2)
    with BackgroundServer(WebConfig(db_url, live_poll=0.3, follow=follow)) as running:
        running.db_url = db_url
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=chromium_args())
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul")
    context.set_default_timeout(20_000)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("request", lambda request: None if request.url.startswith(server.url) else problems.append(request.url))
    yield opened
    context.close()
    assert not problems, problems  # no script error, CSP violation or request to another site


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    target = tmp_path / name
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    if os.environ.get("DEPOSIT_TOKEN_WEB_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SCREENSHOTS / name)


def log_in(page: Page, server, user: User) -> None:
    page.goto(f"{server.url}/console")
    assert "/login?next=" in page.url  # sent to the login page first
    page.fill("#name", user.name)
    page.fill("#password", user.password)
    page.fill("#code", user.code())


def test_an_auditor_logs_in_with_totp_sees_the_chart_and_a_new_payment_arrives(page, server, pilot, tmp_path):
    user = new_user(server.db_url, accounts.AUDITOR, "auditor")
    log_in(page, server, user)
    screenshot(page, "console-login.png", tmp_path)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/console")
    page.wait_for_selector('#overview-chart[data-rendered="true"] canvas')
    drawn = page.evaluate(PAINTED, "#overview-chart")
    assert drawn["width"] > 300 and drawn["painted"] > 1_000, drawn
    assert page.inner_text("h1") == "개요" and "원" in page.inner_text("#flows")
    page.wait_for_selector('tbody[data-live-connected="true"]')
    before = page.locator("#latest-payments tbody tr").count()
    assert page.locator("#latest-payments tbody tr.fresh").count() == 0

    day, paid = pilot.pay_more()  # officials pay at lunch on the next working day
    assert paid > 0

    page.wait_for_selector("#latest-payments tbody tr.fresh")
    fresh = page.locator("#latest-payments tbody tr.fresh").first.inner_text()
    assert f"{day:%Y-%m-%d} 12:05 KST" in fresh and "원" in fresh
    assert page.locator("#latest-payments tbody tr").count() > before
    screenshot(page, "console-overview.png", tmp_path)


def test_the_public_portal_draws_its_chart_in_both_languages(page, server, tmp_path):
    for lang, name, heading in (
        ("ko", "public-portal.png", "공공 재정"),
        ("en", "public-portal-en.png", "public money"),
    ):
        page.goto(f"{server.url}/?lang={lang}")
        page.wait_for_selector('#public-chart[data-rendered="true"] canvas')
        drawn = page.evaluate(PAINTED, "#public-chart")
        assert drawn["painted"] > 1_000, drawn
        assert heading in page.inner_text("h1")
        assert page.locator("#public-cells tbody tr").count() > 5
        screenshot(page, name, tmp_path)


def test_an_auditor_filters_payments_records_a_disposition_and_exports(page, server, tmp_path):
    user = new_user(server.db_url, accounts.AUDITOR, "auditor")
    log_in(page, server, user)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/console")
    # filter the payments (restaurants) and open one
    page.click("nav.main a[href='/console/payments']")
    everything = page.locator("#payments tbody tr").count()
    page.select_option("#payment-filters select[name=category]", "RESTAURANT")
    page.click("#payment-filters button[type=submit]")
    page.wait_for_url("**/console/payments?*category=RESTAURANT*")
    rows = page.locator("#payments tbody tr")
    assert 0 < rows.count() <= everything
    assert all(cells == "음식점" for cells in page.locator("#payments tbody tr td:nth-child(5)").all_inner_texts())
    screenshot(page, "console-payments.png", tmp_path)
    # export this view: a zip of the CSV and its manifest, the file's hash in the manifest
    with page.expect_download() as info:
        page.click("#payment-exports a[href^='/console/export/payments.csv']")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    with zipfile.ZipFile(saved) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        (entry,) = manifest["tables"]
        data = bundle.read(entry["file"])
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and manifest["filters"]["payments"]["category"] == [
        "RESTAURANT"
    ]
    assert entry["rows"] >= rows.count()
    rows.first.locator("a").first.click()
    page.wait_for_selector("#payment-summary")
    assert "음식점" in page.inner_text("#payment-summary") and "이 블록에서 적용된 사업 규칙" in page.inner_text("body")
    # the flag queue: open the newest open flag, record a disposition with a note
    page.click("nav.main a[href='/console/flags']")
    page.locator("#flag-queue tbody tr").first.locator("a").click()
    case = page.locator("article.flag-case").filter(has=page.locator("textarea")).first
    case.locator("select[name=disposition]").select_option("referred")
    case.locator("textarea[name=note]").fill("감사원 이첩: 증빙 없이 반복된 결제")
    case.locator("button[type=submit]").click()
    page.wait_for_selector("table.dispositions tbody tr[data-disposition]")
    history = page.inner_text("table.dispositions")
    assert "이첩" in history and "감사원 이첩: 증빙 없이 반복된 결제" in history and user.name in history
    assert page.locator("article.flag-case .status", has_text="이첩").count() >= 1
    screenshot(page, "console-payment.png", tmp_path)
    page.click("nav.main a[href='/console/flags']")
    page.wait_for_selector("#flag-queue")
    screenshot(page, "console-flags.png", tmp_path)
