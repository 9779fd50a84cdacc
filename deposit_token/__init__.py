"""deposit-token: restricted deposit tokens for public spending (library code shared by scripts and tests)."""

__version__ = "0.1.0"
