"""Loading the chain into the audit database: log decoding (``decode``), the indexer (``indexer``), reorg
handling (``reorg``) and its progress display (``progress``)."""
