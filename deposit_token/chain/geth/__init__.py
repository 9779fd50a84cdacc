"""The permissioned Geth network: three Clique sealers (one per institution) and one archive RPC node.

Modules, in the order they build on each other:

    binary     the geth executable (v1.13.15: the last release that seals Clique blocks)
    ipc        JSON-RPC over a node's unix socket (the sealers expose no HTTP; admin/clique/miner are IPC-only)
    keys       node keys (p2p identity), sealer keystores, where the keystore passphrase comes from
    genesis    the Clique genesis (chain id 20261, 1 s blocks, the sealers in extraData, base fee 0)
    nodes      one node: files, config.toml (static/trusted peers only), command line, process, zero-tip sealing
    cluster    `GethNetwork`: init, start/stop/kill/restart, status, validator votes

The Anvil pilot node (``deposit_token.chain.node``) stays the default engine; docs/NETWORK.md compares the two.
"""

from deposit_token.chain.geth.cluster import GethNetwork, GethNetworkError, Ports

__all__ = ["GethNetwork", "GethNetworkError", "Ports"]
