"""Korean (the default) and English: every label of the pages in a catalogue per language
(``catalogue/ko.json``, ``catalogue/en.json``: flat ``"section.name": "text"`` maps with ``{placeholders}``), and
how values read in each language.

Amounts: ``1,234,000원`` (ko), ``KRW 1,234,000`` (en). Times: KST, as every command shows them
(``deposit_token.domain.display``). The language is the ``lang`` query parameter when given (and then kept in a
cookie), else the cookie, else Korean. ``tests/web`` checks that both catalogues have the same keys and that
every key the templates and the code use exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from deposit_token.domain import display
from deposit_token.domain.categories import category_name

LANGUAGES = ("ko", "en")
DEFAULT = "ko"
COOKIE = "lang"
CATALOGUE_DIR = Path(__file__).resolve().parents[1] / "catalogue"


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The labels of `lang` (read once)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
    data = json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"catalogue/{lang}.json must map keys to strings")
    return data


def choose(query: str | None, cookie: str | None) -> str:
    """The language of a request: the query's, else the cookie's, else the default."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT


class Translator:
    """Labels and value formats of one language (what templates call ``t``)."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.labels = catalogue(self.lang)

    def __call__(self, key: str, **values: Any) -> str:
        """The label `key` with `values` filled in; a missing key is a bug the tests catch (KeyError)."""
        text = self.labels[key]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self.labels

    def amount(self, value: int | None) -> str:
        """``1,234,000원`` / ``KRW 1,234,000``; an empty value (a suppressed cell) as a dash."""
        if value is None:
            return "-"
        return f"{int(value):,}원" if self.lang == "ko" else f"KRW {int(value):,}"

    def number(self, value: int | None) -> str:
        return "-" if value is None else f"{int(value):,}"

    def pct(self, value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}%"

    def moment(self, timestamp: int | None, offset_minutes: int | None = None) -> str:
        """``2026-12-01 09:00 KST`` (KST unless another program zone is given)."""
        if timestamp is None:
            return "-"
        return display.moment(timestamp) if offset_minutes is None else display.moment(timestamp, offset_minutes)

    def period(self, value: int | str) -> str:
        """``2026-12`` from 202612 or "2026-12"."""
        return value if isinstance(value, str) else display.period(value)

    def category(self, value: int | str) -> str:
        """A merchant category's label: from its code or its name (``RESTAURANT``)."""
        name = category_name(value) if isinstance(value, int) else value
        key = f"category.{name}"
        return self.labels.get(key, name)

    def role(self, role: str) -> str:
        key = f"role.{role}"
        return self.labels.get(key, role)
