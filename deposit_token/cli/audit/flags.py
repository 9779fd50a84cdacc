"""``ape run audit flags``: anomalies from Korean public-sector card audit practice, one per payment and rule."""

from __future__ import annotations

import click

from deposit_token.audit.query.common import Filters, checkpoint_info
from deposit_token.audit.query.flags import RULES, FlagSettings, flag_section, flags_of, rule_counts
from deposit_token.audit.query.render import console, render
from deposit_token.cli.audit._reading import database_options, filter_options, format_option, reading

_RULE_HELP = "\n".join(f"  {name:<24} {text}" for name, text in RULES.items())


@click.command(
    "flags",
    short_help="Flag night, weekend, holiday, split, near-limit and concentrated payments",
    epilog="\b\nRules:\n" + _RULE_HELP + "\n\nExact definitions: deposit_token/audit/query/flags.py.",
)
@database_options
@filter_options
@click.option(
    "--rule",
    "rules",
    type=click.Choice(list(RULES)),
    multiple=True,
    help="Only this rule (repeat for several; default: all).",
)
@click.option(
    "--near-pct",
    type=click.IntRange(1, 99),
    default=5,
    show_default=True,
    metavar="PCT",
    help="near-* rules: the band below a limit, in percent of the limit.",
)
@click.option(
    "--concentration-share",
    type=click.IntRange(1, 100),
    default=50,
    show_default=True,
    metavar="PCT",
    help="concentration: the share of a payer's monthly spend one vendor must reach.",
)
@click.option(
    "--concentration-min-payments",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    metavar="N",
    help="concentration: payments the payer must have made in the month.",
)
@click.option("--fail-on-flags", is_flag=True, default=False, help="Exit with status 2 if any flag is raised.")
@format_option(("table", "csv", "json"), "table", "table (for people), csv or json.")
def command(
    db: str | None,
    network: str | None,
    filters: Filters,
    rules: tuple[str, ...],
    near_pct: int,
    concentration_share: int,
    concentration_min_payments: int,
    fail_on_flags: bool,
    fmt: str,
) -> None:
    """Anomalies in the indexed payments: each flag names the payment (tx hash, log index) and the rule.

    Times are the program's local time (KST unless the program says otherwise); limits are those of the
    program's configuration in force at the payment. Flags need justification; they are not violations (the
    contracts refuse those).
    """
    settings = FlagSettings(near_pct, concentration_share, concentration_min_payments)
    with reading(db, network) as conn:
        found = flags_of(conn, settings, filters, list(dict.fromkeys(rules)) or None)
        per_rule = rule_counts(found)
        meta = {
            "checkpoint": checkpoint_info(conn),
            "filters": filters.as_dict(),
            "settings": settings.__dict__,
            "counts": per_rule,
        }
    render([flag_section(found)], fmt, meta)
    if fmt == "table":
        counts = ", ".join(f"{rule} {n}" for rule, n in per_rule.items() if n)
        console().print(
            f"{len(found)} flag(s) on {len({(f.tx_hash, f.log_index) for f in found})} payment(s)"
            + (f": {counts}" if counts else "")
        )
    if fail_on_flags and found:
        raise SystemExit(2)
