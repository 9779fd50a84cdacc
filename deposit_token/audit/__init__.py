"""Audit tooling: the indexer that loads every event of the token into SQLite or PostgreSQL, reorg- and
crash-safe (``sync``), the database schema, store and migrations (``db``), the auditors' queries and reports
(``query``), and the reconciliation of the database with chain state (``verify``).

Imports ``deposit_token.chain`` and ``deposit_token.domain``. The commands are ``deposit_token.cli.audit``
(``ape run audit ...``, or ``python -m deposit_token.audit`` without ape).
"""
