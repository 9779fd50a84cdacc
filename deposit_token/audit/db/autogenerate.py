"""What ``alembic revision --autogenerate`` compares (``migrations/env.py``), and what it must leave alone.

The audit database holds tables that no ``MetaData`` of this layer describes, on purpose:

* the monthly partitions of the partitioned tables (PostgreSQL: ``payments_p202601``, ..., ``payments_default``;
  ``audit.db.partitions`` creates them as months arrive): they are rows of a calendar, not schema;
* the web console's tables (``web_users``, ``web_sessions``, ``web_access_log``: migration 0003), described in
  ``deposit_token.web.core.tables``, a layer above this one (imports flow one way: tests/unit/test_layers.py);
* ``safe_events`` (migration 0005), written and read with SQL text by ``audit.sync.safe``/``audit.query.approvals``.

Without :func:`include_object` autogenerate would propose dropping all of them. A table the database holds and
nothing describes otherwise is still reported: that is a real difference.
"""

from __future__ import annotations

import re
from typing import Any

from deposit_token.audit.db import partitions

# described elsewhere or written with SQL text (see the module docstring); compared by tests/audit/test_autogenerate.py
UNDESCRIBED_TABLES = frozenset({"web_users", "web_sessions", "web_access_log", "safe_events"})

_PARTITION = re.compile(rf"^({'|'.join(map(re.escape, partitions.PARTITIONED))})_(p\d{{6}}|default)$")


def is_partition(name: str) -> bool:
    """Whether `name` is a monthly or default partition of a partitioned table."""
    return bool(_PARTITION.match(name))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's ``include_object`` hook: False for the partitions and the tables other layers describe, when
    they are found in the database and absent from the metadata (so never a proposed drop or change)."""
    if not (reflected and compare_to is None):
        return True
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return not (table and (is_partition(table) or table in UNDESCRIBED_TABLES))
