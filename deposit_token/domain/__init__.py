"""The deposit token's vocabulary, free of any chain or I/O: spending categories, program rules and presets,
receipt ids, display formats (KRW, KST times, periods), operator input checks, and the sentences that explain
a contract's refusal.

Imports nothing else of ``deposit_token``.
"""
