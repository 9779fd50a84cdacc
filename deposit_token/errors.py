"""The root of every exception the package raises: ``except DepositTokenError`` catches all of ours and none of
Python's or a library's, so a command can turn any of them into its one-sentence message in one place.

Each family keeps its own base too (``DepositTokenError`` first, then e.g. ``ValueError`` for bad input), so code
that catches the built-in kind keeps working. This module is the package's base layer, like ``paths``: every
layer may import it and it imports nothing of ours.
"""

from __future__ import annotations


class DepositTokenError(Exception):
    """Something this package refused or could not do; the message is the sentence to show the user."""
