"""What the payments list, the flag queue and their exports share: reading a filter from the query string (the
audit library's ``PaymentFilter.from_params`` / ``FlagFilter``) and writing it back into links, so that a page,
its next page and its download all show the same payments."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from fastapi import Request

from deposit_token.audit.query.cases import FlagFilter
from deposit_token.audit.query.payments import PaymentFilter

# query parameters that are not filters: the page position, the language, the queue's own fields, the format
NOT_FILTERS = frozenset({"after", "before", "lang", "rule", "status", "format"})


def payment_filter(request: Request) -> PaymentFilter:
    """The payments filter of the request's query string; ValueError (one sentence) for a bad value."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in NOT_FILTERS:
            params.setdefault(key, []).append(value)
    return PaymentFilter.from_params(params)


def flag_filter(request: Request) -> FlagFilter:
    """The flag queue's filter: ``rule`` (repeatable), ``status`` (default open) and a payments filter."""
    rules = tuple(dict.fromkeys(v for v in request.query_params.getlist("rule") if v))
    status = request.query_params.get("status") or "open"
    return FlagFilter(rules=rules, status=status, payments=payment_filter(request))


def query(pairs: Iterable[tuple[str, str]]) -> str:
    """A query string (with the leading ``?``, or empty)."""
    items = list(pairs)
    return f"?{urlencode(items)}" if items else ""


def payment_pairs(filt: PaymentFilter) -> list[tuple[str, str]]:
    return [(key, value) for key, values in filt.as_params().items() for value in values]


def flag_pairs(filt: FlagFilter) -> list[tuple[str, str]]:
    return [*(("rule", r) for r in filt.rules), ("status", filt.status), *payment_pairs(filt.payments)]


def one_month(filt: PaymentFilter) -> str:
    """The month the form shows as chosen (YYYY-MM) when the filter is exactly one month, else ''."""
    params = filt.as_params()
    since, until = params.get("since", [""])[0], params.get("until", [""])[0]
    return since if since and since == until else ""
