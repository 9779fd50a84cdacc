"""A flag's detail in the reader's language: the rule's sentence from the catalogue (``flag_detail.<rule>``)
filled with the parameters read back from the stored English text (``audit.query.cases.detail_values``), amounts
as the language writes them, weekdays and Korea's holiday names in Korean for ``ko``."""

from __future__ import annotations

from datetime import date
from functools import cache, lru_cache

import holidays

from deposit_token.audit.query.cases import DETAIL_AMOUNTS, detail_values
from deposit_token.web.core.i18n import Translator


@cache
def _korean_names(year: int) -> dict[date, str]:
    return dict(holidays.country_holidays("KR", years=year, language="ko").items())


def flag_text(t: Translator, rule: str, detail: str) -> str:
    """`detail` (a flag's stored sentence) said in `t`'s language; the stored text itself when it is not the
    sentence `rule` writes."""
    return _said(t.lang, rule, detail)


# many flags share a sentence (a weekend day's, a night minute's, a split day's): each is said once per language
@lru_cache(maxsize=8192)
def _said(lang: str, rule: str, detail: str) -> str:
    t = Translator(lang)
    values = detail_values(rule, detail)
    if values is None:
        return detail
    shown: dict[str, str] = {}
    for name, value in values.items():
        if name in DETAIL_AMOUNTS:
            shown[name] = t.amount(int(value))
        elif name == "weekday":
            shown[name] = t(f"weekday.{value}")
        elif isinstance(value, int):
            shown[name] = t.number(value)
        else:
            shown[name] = str(value)
    if rule == "holiday" and t.lang == "ko":
        day = date.fromisoformat(str(values["date"]))
        shown["name"] = _korean_names(day.year).get(day, shown["name"])
    return t(f"flag_detail.{rule}", **shown)
