"""The web console's tests: a small pilot chain (the demo's cast, programs and two days of payments, on a node of
its own), indexed by the real indexer into a SQLite file; servers over copies of it; logging in with password and
TOTP; the browser.

The demo's cast normally lives in ape keystores (seconds of key derivation); here the same people hold
throwaway sandbox keys, so that the chain is ready in a few seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from sqlalchemy import create_engine, text

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain import node, sandbox
from deposit_token.domain.categories import Category, category_name
from deposit_token.domain.receipts import receipt_id
from deposit_token.ops.accounts import demo_aliases
from deposit_token.processes import free_port
from deposit_token.sim.demo import KST, MINISTRIES, SAFE_OFFICERS, VENDOR_MIX, ZERO32, Demo, Spender, Vendor
from deposit_token.web.core import accounts
from support.postgres import in_ci

CHROMIUM = "/usr/bin/chromium"
TEXT_RECEIPTS = ("INV-WEB-0001", "INV-WEB-0002", "INV-WEB-0003")
PASSWORD = "correct horse battery staple"


class QuickDemo(Demo):
    """The demo with sandbox keys instead of keystores (same people, programs, departments and vendors)."""

    def make_cast(self) -> None:
        roles = ("admin", "issuer", "manager", "registrar", "compliance", "treasury")
        self.roles = {role: sandbox.signer_for(f"web-test {role}") for role in roles}
        # The issuing bank's and compliance's Safe owners (the demo mints, freezes and claws back through them).
        self.officers = {
            role: [(alias, sandbox.signer_for(f"web-test {alias}")) for alias in demo_aliases(prefix, 3)]
            for role, prefix in SAFE_OFFICERS.items()
        }
        self.officials = [
            Spender(
                sandbox.signer_for(f"web-test official {i}"),
                1 + i % 3,
                f"{MINISTRIES[i % 3][0]}-{MINISTRIES[i % 3][1][i % len(MINISTRIES[i % 3][1])]}",
            )
            for i in range(50)
        ]
        self.recipients = [
            Spender(sandbox.signer_for(f"web-test recipient {i}"), 4, f"EV-BIZ-{i + 1:02d}") for i in range(20)
        ]
        self.vendors = [
            Vendor(
                sandbox.signer_for(f"web-test vendor {category.name} {n}"),
                category,
                f"{category_name(category).title()} #{n + 1}",
                amounts,
            )
            for category, count, amounts in VENDOR_MIX
            for n in range(count)
        ]


@dataclass
class Pilot:
    demo: QuickDemo
    db: Path  # the indexed SQLite file (copy it before serving: servers write their accounts and logs)

    @property
    def rpc_url(self) -> str:
        return self.demo.rpc_url

    def copy_db(self, folder: Path) -> str:
        """A copy of the indexed database (with its WAL folded in) as a sqlite:/// URL."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"audit-{uuid.uuid4().hex[:8]}.sqlite"
        shutil.copy(self.db, target)
        return f"sqlite:///{target}"

    def index(self, db_url: str) -> None:
        """Indexes the chain up to its head into `db_url` (created and migrated)."""
        engine = store.open_database(db_url)
        try:
            store.bind_to_chain(engine, self.demo.rpc.chain_id(), self.demo.token, self.demo.deploy_block)
            Indexer(
                self.demo.rpc, engine, IndexerConfig(token=self.demo.token, start_block=self.demo.deploy_block)
            ).run()
        finally:
            engine.dispose()

    def pay_more(self) -> tuple[date, int]:
        """A slot of new payments at 12:05 KST on the first working day after the chain's clock (tests may call it
        in any order): the day, and how many payments went through."""
        day = self.demo.now().date() + timedelta(days=1)
        while day.weekday() >= 5 or day in self.demo.kr_holidays:
            day += timedelta(days=1)
        before = self.demo.tally.by_reason["accepted"]
        self.demo.run_slot(datetime(day.year, day.month, day.day, 12, 5, tzinfo=KST), self.demo.attempts_for(day))
        return day, self.demo.tally.by_reason["accepted"] - before


@contextmanager
def pilot_chain(folder: Path) -> Iterator[Pilot]:
    """The demo's first two days of December 2026 and, on the 3rd, three payments with invoice-text receipts, on a
    node of its own, indexed into ``folder/audit.sqlite``; the node runs until the end of the block."""
    demo = QuickDemo(folder / "demo", free_port(), lambda _message: None)
    demo.start_node()
    try:
        demo.make_cast()
        demo.deploy_and_set_up()
        demo.play_month(days=2)
        restaurants = [v for v in demo.vendors if v.category == Category.RESTAURANT]
        demo.set_time(datetime(2026, 12, 3, 12, 30, tzinfo=KST))
        demo.mine()
        demo.send(
            [
                demo.tx(official.signer, "pay", vendor.signer.address, 41_000, receipt_id(receipt), ZERO32, gas=150_000)
                for official, vendor, receipt in zip(demo.officials[:3], restaurants, TEXT_RECEIPTS)
            ],
            "text receipts",
        )
        pilot = Pilot(demo, folder / "audit.sqlite")
        pilot.index(f"sqlite:///{pilot.db}")
        yield pilot
    finally:
        demo.submitter.close()
        node.stop(demo.config)


@contextmanager
def postgres_schema(pg_url: str) -> Iterator[str]:
    """A URL of `pg_url`'s database whose connections work in a fresh schema (dropped afterwards)."""
    name = f"web_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


# --- accounts and logging in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password: str
    secret: str

    def code(self, offset_steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(int(time.time()) + 30 * offset_steps)


def new_user(db_url: str, role: str = accounts.AUDITOR, prefix: str = "user") -> User:
    """A fresh account (a new name each time: a TOTP code is accepted once per account)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    engine = store.create_db_engine(db_url)
    try:
        enrolment = accounts.add_user(engine, name, role, PASSWORD, int(time.time()), actor="test")
    finally:
        engine.dispose()
    return User(name, role, PASSWORD, enrolment.secret)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def post_login(session: requests.Session, base: str, name: str, password: str, code: str) -> requests.Response:
    """Fills and posts the login form (its CSRF token and cookie from a GET first); no redirect followed."""
    form = session.get(f"{base}/login")
    return session.post(
        f"{base}/login",
        data={"name": name, "password": password, "code": code, "csrf_token": csrf_of(form.text), "next": "/console"},
        allow_redirects=False,
    )


def logged_in(base: str, user: User) -> tuple[requests.Session, str]:
    """A session logged in as `user`, and its CSRF token (from the overview page)."""
    session = requests.Session()
    answer = post_login(session, base, user.name, user.password, user.code())
    assert answer.status_code == 303, answer.text[:500]
    page = session.get(f"{base}/console", headers={"Accept": "text/html"})
    assert page.status_code == 200
    return session, csrf_of(page.text)


# --- the browser ----------------------------------------------------------------------------------------------

# Chromium without the network: names resolve to nothing but the loopback server, and the background services
# (updates, safe browsing, metrics, sync) are off.
CHROMIUM_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
]


def chromium_or_skip() -> str:
    """Debian's Chromium, or skip (fail under CI, where the browser tests must run)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true: the browser tests fail rather than skip", pytrace=False)
    pytest.skip(reason)


def chromium_args() -> list[str]:
    return [*CHROMIUM_FLAGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]


def routes_of(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of the app (mounts such as /static left out). FastAPI >= 0.16x keeps an
    included router as one entry (``original_router``) instead of copying its routes into the app's list."""
    from fastapi.routing import APIRoute
    from starlette.routing import Route

    found: set[tuple[str, str]] = set()

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:
                walk(included.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif isinstance(route, (APIRoute, Route)):
                found.update((m, prefix + route.path) for m in route.methods or () if m != "HEAD")

    walk(app.routes, "")
    return sorted(found)


def filled(path: str) -> str:
    """A route's path with its parameters filled in."""
    return re.sub(r"\{[^}]+\}", "x1", path)
