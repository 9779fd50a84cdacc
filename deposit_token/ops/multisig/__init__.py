"""Dual control through Safe multisigs (Safe v1.4.1): the contracts from npm (`artifacts`), the Safes of a
deployment and their config file (`config`), SafeTx proposals, signatures and their file (`proposal`), what a
proposal does in words (`words`), and the Safes on chain: deploying, reading, simulating, executing (`safes`).

A privileged role held by a Safe acts only when `threshold` of its owners signed the same SafeTx: the token's
own role checks do the rest (a Safe simply holds the role)."""
