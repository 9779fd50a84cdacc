"""Reading the audit database: shared filters and lookups (``common``), reports (``reports``), red flags
(``flags``), public aggregates (``public``), the export (``export``) and table/CSV/JSON output (``render``)."""
