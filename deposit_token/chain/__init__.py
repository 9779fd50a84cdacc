"""Chain plumbing: talking to an EVM node and to the deployed token system, and nothing about who uses it.

The one JSON-RPC client and its errors (``rpc``), fast signed submission (``submit``), batched multicall reads
(``reads``), revert decoding (``reverts``), the merged token + admin-module ABI shipped as package data
(``abi``), the ape contract objects and deployment (``contracts``), deployment records and network naming
(``deployment``), the local Anvil node (``node``), throwaway nodes for the demo/benchmarks (``sandbox``) and the
solc toolchain shim (``toolchain``).

Imports only ``deposit_token.domain`` (and ``deposit_token.paths``, ``deposit_token.errors``).
"""
