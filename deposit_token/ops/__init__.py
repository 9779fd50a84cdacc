"""What each participant does: the treasury (`context`: the connected token, its pre-checks and reads;
`actions`: single actions; `bulk`: actions from CSV files; `planning`: gas estimates and block-sized rounds;
`program_spec`: YAML / preset program specifications; `roles`), CSV disbursal (`disburse`), a spender's wallet
(view, pre-checks), signed payment authorizations, vendors' names, accounts in ape's keystore, and the chain
listings the commands show.

Imports ``deposit_token.chain`` and ``deposit_token.domain``.
"""
