"""What each participant does: the treasury (issue, programs, vendors, enrolment, allocation, compliance,
roles), CSV disbursal, a spender's wallet (view, pre-checks), signed payment authorizations, vendors' names,
accounts in ape's keystore, and the chain listings the commands show.

Imports ``deposit_token.chain`` and ``deposit_token.domain``.
"""
