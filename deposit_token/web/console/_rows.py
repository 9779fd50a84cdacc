"""The rows of the console's long tables (payments, the flag queue) written in one pass in Python: in the
templates each of a page's 50 rows cost a dozen filter and translator calls and as many escapes, a third of the
page's rendering; here each field is escaped once and the labels a language repeats on every row (rules,
categories) are looked up once per language."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from markupsafe import Markup, escape

from deposit_token.audit.query.cases import FlagRow
from deposit_token.audit.query.payments import PaymentRow
from deposit_token.web.console._flagtext import flag_text
from deposit_token.web.core.i18n import Translator


@cache
def _rule_label(lang: str, rule: str) -> str:
    return str(escape(Translator(lang)(f"rule.{rule}")))


@cache
def _rule_help(lang: str, rule: str) -> str:
    return str(escape(Translator(lang)(f"rule_help.{rule}")))


@cache
def _category_label(lang: str, name: str) -> str:
    return str(escape(Translator(lang).category(name)))


def payment_rows(t: Translator, rows: Sequence[PaymentRow]) -> Markup:
    """The ``<tr>`` of each payment of the payments list (``console/payments.html``)."""
    lang, out = t.lang, []
    for p in rows:
        key = escape(p.key)
        flags = " ".join(f'<span class="flag">{_rule_label(lang, r)}</span>' for r in p.flags)
        out.append(
            f'<tr data-key="{key}">'
            f'<td><a href="/console/payments/{key}">{escape(p.time_kst)}</a></td><td>{escape(p.department)}</td>'
            f"<td>{escape(p.program)}</td>"
            f'<td><a href="/console/vendors/{escape(p.vendor)}" title="{escape(p.vendor)}">{escape(p.vendor_name)}</a>'
            f"</td><td>{_category_label(lang, p.category_name)}</td>"
            f'<td class="num">{escape(t.amount(p.amount))}</td><td>{escape(p.receipt)}</td><td>{flags}</td></tr>\n'
        )
    return Markup("".join(out))


def flag_rows(t: Translator, rows: Sequence[FlagRow]) -> Markup:
    """The ``<tr>`` of each flag of the flag queue (``console/flags.html``)."""
    lang, out = t.lang, []
    open_label = escape(t("status.open"))
    for f in rows:
        p = f.payment
        if f.latest is None:
            status = open_label
        else:
            d = f.latest
            status = escape(f"{t('disposition.' + d.disposition)} ({d.decided_by}, {d.decided_at_kst})")
        out.append(
            f'<tr data-key="{escape(f.key)}">'
            f'<td><a href="/console/payments/{escape(p.key)}#flag-{escape(f.key)}">{escape(p.time_kst)}</a></td>'
            f'<td title="{_rule_help(lang, f.rule)}">{_rule_label(lang, f.rule)}</td>'
            f"<td>{escape(flag_text(t, f.rule, f.detail))}</td><td>{escape(p.department)}</td>"
            f'<td>{escape(p.vendor_name)}</td><td class="num">{escape(t.amount(p.amount))}</td>'
            f"<td>{status}</td></tr>\n"
        )
    return Markup("".join(out))
