"""Audit tooling: an indexer that loads every event of the token into SQLite or PostgreSQL, reorg- and
crash-safe (``indexer``), a reconciliation of that database with chain state (``verify``), and the auditors'
commands built on the shared schema (``schema``). The CLI is ``ape run audit`` (scripts/audit.py)."""
