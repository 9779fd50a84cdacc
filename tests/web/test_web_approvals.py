"""The console's privileged actions (issue 11) against a real server over the database the real indexer filled from
the folder's pilot chain, where the issuing bank's Safe minted and compliance's Safe froze a wallet and clawed it
back, each signed by two of three officers: the list in Korean and English (time, Safe, the decoded call, the
approvers, signatures against the threshold, executor, outcome), the Safe filter, an action's own page by its
transaction hash, one-sentence refusals of bad input, and no page without logging in.

The expected approvers come from the demo's own bookkeeping (which officers it had sign which Safe nonce), not
from the audit library the pages use."""

from __future__ import annotations

import re

import pytest
import requests
from support.web import User, logged_in, new_user

from deposit_token.sim.demo import SAFE_THRESHOLD
from deposit_token.web.core import accounts
from deposit_token.web.core.config import WebConfig
from deposit_token.web.server import BackgroundServer

pytestmark = pytest.mark.chain  # the folder's pilot chain runs on a node of its own

HTML = {"Accept": "text/html"}
ROW_TX = re.compile(r'<tr data-tx="(0x[0-9a-f]{64})">')


@pytest.fixture(scope="module")
def db_url(pilot, tmp_path_factory) -> str:
    return pilot.copy_db(tmp_path_factory.mktemp("web-approvals"))


@pytest.fixture(scope="module")
def server(db_url):
    with BackgroundServer(WebConfig(db_url)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server, db_url) -> requests.Session:
    auditor: User = new_user(db_url, accounts.AUDITOR, "auditor")
    session, _ = logged_in(server.url, auditor)
    return session


def get(session: requests.Session, server, path: str, **params) -> requests.Response:
    return session.get(f"{server.url}{path}", params=params, headers=HTML, allow_redirects=False)


def expected(pilot) -> list[tuple[str, str, list[str], str]]:
    """(Safe, call name, approvers, executor) of every Safe execution the demo made, in its order: a role's
    officers take turns, nonce n signed by officers n and n + 1 (mod 3), carried by the role's own account."""
    demo = pilot.demo
    calls = [("issuer", 0, "mint"), ("compliance", 0, "freeze"), ("compliance", 1, "clawback")]
    return [
        (
            demo.safes[role],
            name,
            [demo.officers[role][(nonce + i) % 3][1].address for i in range(SAFE_THRESHOLD)],
            demo.roles[role].address,
        )
        for role, nonce, name in calls
    ]


def test_the_list_shows_every_privileged_action_with_its_approvers_in_both_languages(client, server, pilot):
    wanted = expected(pilot)
    for lang, title, signed in (("en", "Privileged actions", "2 of threshold 2"), ("ko", "권한 작업", "2명 서명")):
        page = get(client, server, "/console/approvals", lang=lang)
        assert page.status_code == 200, page.text[:400]
        html = page.text
        assert f'<html lang="{lang}">' in html and title in html
        assert not re.search(r"\{[a-z_]+\}", html)  # every placeholder filled
        assert 'href="/console/approvals"' in html  # in the navigation
        rows = html.split('<tr data-tx="')[1:]
        assert len(rows) == len(wanted)
        # newest first: the claw-back, the freeze, the mint
        for row, (safe, call, approvers, executor) in zip(rows, reversed(wanted), strict=True):
            assert f'title="{safe}"' in row and f'<code class="call">{call}(' in row
            cell = row.split('<td class="approvers">')[1].split("</td>")[0]
            assert sorted(re.findall(r'title="(0x[0-9A-Fa-f]{40})"', cell)) == sorted(approvers)
            assert signed in row and f'title="{executor}"' in row
            assert ("executed" if lang == "en" else "실행됨") in row
            assert "KST" in row


def test_the_safe_filter_and_an_actions_own_page(client, server, pilot):
    wanted = expected(pilot)
    compliance = pilot.demo.safes["compliance"]
    only = get(client, server, "/console/approvals", safe=compliance.lower(), lang="en")
    assert only.status_code == 200 and len(ROW_TX.findall(only.text)) == 2
    assert f'<option value="{compliance}" selected>' in only.text

    mint_tx = ROW_TX.findall(get(client, server, "/console/approvals").text)[-1]  # the oldest
    safe, _, approvers, executor = wanted[0]
    for lang, own in (("en", "the executor's own approval"), ("ko", "실행자 본인의 승인")):
        page = get(client, server, f"/console/approvals/{mint_tx}", lang=lang)
        assert page.status_code == 200, page.text[:400]
        html = page.text
        assert f'<html lang="{lang}">' in html and mint_tx in html
        assert f"mint({pilot.demo.roles['treasury'].address}, 2,000,000,000)" in html
        listed = re.findall(r"<li><code>(0x[0-9A-Fa-f]{40})</code>", html.split('<ol class="approvers">')[1])
        assert sorted(listed) == sorted(approvers)
        assert f"<code>{safe}</code>" in html and f"<code>{executor}</code>" in html
        assert own not in html  # the carrier is the issuer's account, not one of the signing officers
        assert not re.search(r"\{[a-z_]+\}", html)
    # the same page whatever the hash's case
    assert get(client, server, f"/console/approvals/{mint_tx.upper().replace('0X', '0x')}").status_code == 200


def test_bad_input_gets_one_sentence(client, server):
    for path, params, status, words in (
        ("/console/approvals", {"safe": "0x12"}, 400, "malformed"),
        ("/console/approvals/0x12", {}, 404, "not a transaction hash"),
        (f"/console/approvals/0x{'ab' * 32}", {}, 404, "no Safe execution"),
    ):
        answer = get(client, server, path, lang="en", **params)
        assert answer.status_code == status and words in answer.text, (path, answer.status_code)
        assert "Traceback" not in answer.text


def test_no_page_without_logging_in(server):
    for path in ("/console/approvals", f"/console/approvals/0x{'ab' * 32}"):
        answer = requests.get(f"{server.url}{path}", headers=HTML, allow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
