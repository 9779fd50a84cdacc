"""Korean and English: both catalogues have the same keys, every key the pages and the code use exists, every
merchant category, role, access-log event and report dimension has a label, and values read as the issue says
(``1,234,000원`` / ``KRW 1,234,000``, times in KST)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from deposit_token.domain.categories import Category
from deposit_token.web.console.overview import DIMENSIONS
from deposit_token.web.core import accesslog, accounts, i18n

WEB = Path(__file__).resolve().parents[2] / "deposit_token" / "web"
TEMPLATE_KEY = re.compile(r"""\bt\(\s*['"]([A-Za-z0-9_.\-]+)['"]""")


def test_both_catalogues_have_the_same_keys_and_no_empty_label():
    ko, en = i18n.catalogue("ko"), i18n.catalogue("en")
    assert set(ko) == set(en), f"only ko: {sorted(set(ko) - set(en))}; only en: {sorted(set(en) - set(ko))}"
    assert all(value.strip() for value in [*ko.values(), *en.values()])
    for key in ko:  # the same placeholders in both languages
        assert set(re.findall(r"\{(\w+)\}", ko[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def used_keys() -> set[str]:
    """Catalogue keys written out in the templates (``t('...')``) and in the code (string literals whose first
    part is a catalogue section, e.g. ``"nav.users"``, ``"public.error.month"``)."""
    sections = {key.split(".")[0] for key in i18n.catalogue("en")}
    found = {
        m
        for path in (WEB / "templates").rglob("*.html")
        for m in TEMPLATE_KEY.findall(path.read_text())
        if not m.endswith(".")  # t('col.' ~ d): a family, checked below
    }
    for path in WEB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"[a-z_]+(\.[A-Za-z0-9_\-]+)+", node.value)
                and node.value.split(".")[0] in sections
                and not node.value.endswith((".html", ".json", ".css", ".js"))  # file names
            ):
                found.add(node.value)
    return found


def test_every_key_in_use_exists():
    keys = used_keys()
    assert len(keys) > 80
    missing = sorted(k for k in keys if k not in i18n.catalogue("ko"))
    assert not missing, missing


def test_the_key_families_built_at_run_time_are_complete():
    families = [
        *(f"category.{c.name}" for c in Category),
        *(f"role.{r}" for r in accounts.ROLES),
        *(f"event.{e}" for e in accesslog.EVENTS),
        *(f"report.spend_by.{d}" for d in DIMENSIONS),
        *(f"col.{d}" for d in DIMENSIONS),
        *(f"lang.{lang}" for lang in i18n.LANGUAGES),
        *(f"users.action.{a}" for a in ("disable", "enable", "reset-mfa")),
        *(f"error.forbidden.{reason}" for reason in ("supervisor", "csrf")),
    ]
    for lang in i18n.LANGUAGES:
        missing = [key for key in families if key not in i18n.catalogue(lang)]
        assert not missing, (lang, missing)


def test_amounts_times_and_the_choice_of_language():
    ko, en = i18n.Translator("ko"), i18n.Translator("en")
    assert ko.amount(1_234_000) == "1,234,000원" and en.amount(1_234_000) == "KRW 1,234,000"
    assert ko.amount(None) == "-"
    # 2026-12-01 00:00 UTC is 09:00 in Seoul, whatever the machine's zone
    assert ko.moment(1_796_083_200) == en.moment(1_796_083_200) == "2026-12-01 09:00 KST"
    assert ko.category("RESTAURANT") == "음식점" and en.category(int(Category.RESTAURANT)) == "Restaurants"
    assert ko.category("CATEGORY_63") == "CATEGORY_63"  # a code this release does not name
    assert i18n.choose(None, None) == "ko" and i18n.DEFAULT == "ko"
    assert i18n.choose("en", "ko") == "en" and i18n.choose(None, "en") == "en" and i18n.choose("fr", "xx") == "ko"
