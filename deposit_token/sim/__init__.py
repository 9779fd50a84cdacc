"""Simulations on a throwaway chain: the demo month (``demo``).

Imports ``deposit_token.ops``, ``deposit_token.audit``, ``deposit_token.chain`` and ``deposit_token.domain``.
"""
