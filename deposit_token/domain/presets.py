"""Program presets from Korean public-sector practice (docs/DOMAIN.md).

* Business promotion expenses of officials: only meal/meeting categories, never the restricted ones;
  no payment between 23:00 and 06:00 KST; evidence of the meeting's counterparties from 500,000 KRW.
  The 2026 pilot's stricter "working hours" variant allows 09:00-18:00 on weekdays only.
* EV-charger subsidy: payable only to certified charger suppliers, installers and electrical contractors,
  on working days, within the subsidy period.
Weekends and public holidays are not blocked on-chain for business promotion (they need justification, not
prohibition); the audit flags them.
"""

from __future__ import annotations

from deposit_token.domain.categories import Category
from deposit_token.domain.rules import KST_OFFSET_MINUTES, NO_CAP, ProgramSpec

EVIDENCE_THRESHOLD_KRW = 500_000
EVERY_DAY_06_TO_23 = ((6, 23),) * 7
WORKING_DAYS_09_TO_18 = ((9, 18),) * 5 + ((0, 0),) * 2

BUSINESS_PROMOTION_CAPS: dict[int, int] = {
    Category.RESTAURANT: 2_000_000,
    Category.CAFE_BAKERY: 300_000,
    Category.CATERING: 1_000_000,
    Category.CONFERENCE_VENUE: 1_500_000,
}

EV_CHARGER_CAPS: dict[int, int] = {
    Category.EV_CHARGER_SUPPLIER: NO_CAP,
    Category.EV_CHARGER_INSTALLER: NO_CAP,
    Category.ELECTRICAL_CONTRACTOR: 20_000_000,
}


def business_promotion(
    name: str, treasury: str, start: int, end: int, *, working_hours_only: bool = False
) -> ProgramSpec:
    """Officials' business promotion expenses (e.g. "BP-2026-MOEF")."""
    return ProgramSpec(
        name=name,
        treasury=treasury,
        start=start,
        end=end,
        hours=WORKING_DAYS_09_TO_18 if working_hours_only else EVERY_DAY_06_TO_23,
        per_payment_limit=1_000_000,
        evidence_threshold=EVIDENCE_THRESHOLD_KRW,
        caps=dict(BUSINESS_PROMOTION_CAPS),
        utc_offset_minutes=KST_OFFSET_MINUTES,
    )


def ev_charger_subsidy(name: str, treasury: str, start: int, end: int) -> ProgramSpec:
    """The EV-charger installation subsidy (e.g. "EV-2026-MOE")."""
    return ProgramSpec(
        name=name,
        treasury=treasury,
        start=start,
        end=end,
        hours=WORKING_DAYS_09_TO_18,
        per_payment_limit=50_000_000,
        evidence_threshold=EVIDENCE_THRESHOLD_KRW,
        caps=dict(EV_CHARGER_CAPS),
        utc_offset_minutes=KST_OFFSET_MINUTES,
    )


PRESETS = {"business-promotion": business_promotion, "ev-charger": ev_charger_subsidy}
