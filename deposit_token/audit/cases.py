"""Cases: an auditor's dispositions of flags (justified, explanation requested, referred, recovered), recorded
with who decided, when and why, and never changed afterwards.

``record_disposition`` is the only write: there is no update or delete here, and the databases refuse one
anyway (``db.casework``: a trigger on SQLite and on PostgreSQL). Reading (a flag's history, the queue with
each flag's latest disposition, the export) is in ``query.cases``, re-exported here for callers that work with
cases as a whole.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, select

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.cases import (
    DISPOSITIONS,
    STATUSES,
    Disposition,
    FlagCount,
    FlagFilter,
    FlagId,
    FlagPage,
    FlagRow,
    disposition_history,
    flag_counts,
    flag_key,
    flag_queue,
    iter_dispositions,
    iter_flags,
    latest_dispositions,
    parse_flag_key,
)

__all__ = [
    "DISPOSITIONS",
    "MAX_NOTE",
    "STATUSES",
    "Disposition",
    "FlagCount",
    "FlagFilter",
    "FlagId",
    "FlagPage",
    "FlagRow",
    "disposition_history",
    "flag_counts",
    "flag_key",
    "flag_queue",
    "iter_dispositions",
    "iter_flags",
    "latest_dispositions",
    "parse_flag_key",
    "record_disposition",
]

MAX_NOTE = 4_000  # characters
MAX_WHO = 120


def record_disposition(
    target: Engine | Connection,
    flag: str | FlagId,
    disposition: str,
    note: str,
    decided_by: str,
    decided_at: datetime | None = None,
) -> Disposition:
    """Appends a disposition of one flag (a flag key or (block, log, rule)) and returns it as stored.

    The flag must be in the queue (``payment_flags``); `decided_by` names the auditor (their user name);
    `decided_at` defaults to now (UTC). Raises ValueError in one sentence for an unknown flag, disposition or an
    empty / overlong note or name. On a Connection the caller's transaction holds it (e.g. with an access-log
    line); on an Engine it commits at once."""
    block, log, rule = parse_flag_key(flag) if isinstance(flag, str) else flag
    if disposition not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {disposition!r} (known: {', '.join(DISPOSITIONS)})")
    text = note.strip()
    if len(text) > MAX_NOTE:
        raise ValueError(f"the note is {len(text):,} characters long; at most {MAX_NOTE:,} are kept")
    who = decided_by.strip()
    if not who:
        raise ValueError("a disposition needs the name of the auditor who decided it")
    if len(who) > MAX_WHO:
        raise ValueError(f"the auditor's name is longer than {MAX_WHO} characters")
    when = (decided_at or datetime.now(UTC)).astimezone(UTC)
    if isinstance(target, Engine):
        with target.begin() as conn:
            return _insert(conn, (block, log, rule), disposition, text, who, when)
    return _insert(target, (block, log, rule), disposition, text, who, when)


def _insert(conn: Connection, flag: FlagId, disposition: str, note: str, who: str, when: datetime) -> Disposition:
    block, log, rule = flag
    f = casework.payment_flags
    raised = conn.execute(
        select(f.c.tx_hash).where(f.c.block_number == block, f.c.log_index == log, f.c.rule == rule)
    ).scalar_one_or_none()
    if raised is None:
        p = schema.payments
        paid = conn.execute(
            select(p.c.tx_hash).where(p.c.block_number == block, p.c.log_index == log)
        ).scalar_one_or_none()
        if paid is None:
            raise ValueError(f"no payment at block {block}, log {log}: nothing to decide")
        raise ValueError(f"the payment at block {block}, log {log} has no {rule} flag (refresh the flags?)")
    d = casework.dispositions
    new_id = conn.execute(
        insert(d)
        .values(
            block_number=block,
            log_index=log,
            rule=rule,
            tx_hash=raised,
            disposition=disposition,
            note=note,
            decided_by=who,
            decided_at=when,
        )
        .returning(d.c.id)
    ).scalar_one()
    (stored,) = [x for x in disposition_history(conn, block, log, rule) if x.id == new_id]
    return stored
