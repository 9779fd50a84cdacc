"""Chain plumbing: talking to an EVM node and to the deployed token system, and nothing about who uses it.

JSON-RPC clients (``rpc`` for the indexer and verification, ``submit.JsonRpc`` for the fast submission path,
``node.JsonRpc`` for node control - to be unified into one), fast signed submission (``submit``), batched
multicall reads (``reads``), revert decoding (``reverts``), the merged token + admin-module ABI and deployment
(``contracts``), deployment records and network naming (``deployment``), the local Anvil node (``node``),
throwaway nodes for the demo/benchmarks (``sandbox``) and the solc toolchain shim (``toolchain``).

Imports only ``deposit_token.domain`` (and ``deposit_token.paths``).
"""
