"""Merchant categories known to the token (codes 1-63, one bit each in a program's category mask).

Codes are this project's own, not card-scheme MCCs: a vendor registrar maps a business to one of them. The
restricted ones are those Korean public-sector card practice forbids for business-promotion spending.
"""

from __future__ import annotations

from enum import IntEnum


class Category(IntEnum):
    RESTAURANT = 1
    CAFE_BAKERY = 2
    CATERING = 3
    CONFERENCE_VENUE = 4
    LODGING = 5
    TRANSPORT = 6
    OFFICE_SUPPLIES = 7
    BOOKS = 8
    PRINTING = 9
    EV_CHARGER_SUPPLIER = 10
    EV_CHARGER_INSTALLER = 11
    ELECTRICAL_CONTRACTOR = 12
    # Restricted for business promotion (docs/DOMAIN.md).
    ENTERTAINMENT_BAR = 20
    KARAOKE = 21
    GOLF_LEISURE = 22
    BEAUTY_SAUNA_MASSAGE = 23
    GAMBLING = 24
    JEWELLERY = 25
    GIFT_CERTIFICATES = 26


RESTRICTED_FOR_BUSINESS_PROMOTION: frozenset[Category] = frozenset(
    {
        Category.ENTERTAINMENT_BAR,
        Category.KARAOKE,
        Category.GOLF_LEISURE,
        Category.BEAUTY_SAUNA_MASSAGE,
        Category.GAMBLING,
        Category.JEWELLERY,
        Category.GIFT_CERTIFICATES,
    }
)

MAX_CATEGORY = 63


def category_name(code: int) -> str:
    """The category's name, or 'CATEGORY_<n>' for a code this release does not name."""
    try:
        return Category(code).name
    except ValueError:
        return f"CATEGORY_{code}"


def parse_category(text: str | int) -> Category:
    """A category from its name (case-insensitive) or code; raises ValueError naming the bad input."""
    if isinstance(text, int) or str(text).isdigit():
        try:
            return Category(int(text))
        except ValueError:
            raise ValueError(f"unknown merchant category code {text}") from None
    try:
        return Category[str(text).strip().upper()]
    except KeyError:
        known = ", ".join(c.name for c in Category)
        raise ValueError(f"unknown merchant category {text!r} (known: {known})") from None
