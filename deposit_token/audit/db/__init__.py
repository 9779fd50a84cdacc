"""The audit database: tables (``schema``), opening, binding and migrating it (``store``, ``migrations/``), and
a throwaway PostgreSQL server for tests and benchmarks (``pgserver``)."""
