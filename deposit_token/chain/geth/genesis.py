"""The Clique genesis of the permissioned network (geth's genesis.json).

What it encodes, and why:

* chain id 20261 (the pilot's, the same as the Anvil chain's), Clique with a 1 s period and a 30,000-block
  epoch (the checkpoint interval at which pending votes are reset and the signer list is written into the
  header);
* the initial signers in ``extraData``: 32 zero bytes of vanity, the signers' 20-byte addresses in ascending
  order, 65 zero bytes for the (absent) genesis seal;
* every fork up to London at block 0, plus ``mergeNetsplitBlock`` 0 (the Paris fork marker). No
  ``terminalTotalDifficulty``: a Clique chain never merges, so geth never waits for a beacon client. Without the
  merge, geth runs the London rule set; the EVM difference to Paris is only what opcode 0x44 returns (the
  block's difficulty, 1 or 2, instead of PREVRANDAO), and the contracts do not use it. No ``shanghaiTime`` /
  ``cancunTime``: geth's Clique refuses them ("clique does not support shanghai fork"), so the contracts are
  compiled for the Paris EVM (no PUSH0, no transient storage);
* ``baseFeePerGas`` 0 and a high gas limit: EIP-1559's base fee only rises after a block that used more than
  half the gas limit, so with 1e9 gas (about 20,000 payments per block, far beyond what the nodes process in
  a second) it stays 0 and transactions priced 0 remain valid. Officials hold no ether;
* no allocation: nobody holds ether, and nothing needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import is_hex_address

CHAIN_ID = 20261
PERIOD = 1
EPOCH = 30_000
GAS_LIMIT = 1_000_000_000

_FORK_BLOCKS = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
    "mergeNetsplitBlock",
)


def extra_data(signers: Sequence[str]) -> str:
    """Clique's genesis extraData: vanity, the signers in ascending order, an empty seal."""
    if not signers:
        raise ValueError("a Clique network needs at least one signer")
    for signer in signers:
        if not is_hex_address(signer):
            raise ValueError(f"{signer!r} is not an address")
    ordered = sorted({bytes.fromhex(signer[2:]) for signer in signers})
    return "0x" + (b"\0" * 32 + b"".join(ordered) + b"\0" * 65).hex()


def clique_genesis(
    signers: Sequence[str],
    chain_id: int = CHAIN_ID,
    period: int = PERIOD,
    epoch: int = EPOCH,
    gas_limit: int = GAS_LIMIT,
    timestamp: int = 0,
) -> dict[str, Any]:
    """geth's genesis.json for a Clique network sealed by `signers` (see the module docstring)."""
    if period < 1:
        raise ValueError("the Clique period is at least 1 s")
    config: dict[str, Any] = {"chainId": chain_id, **dict.fromkeys(_FORK_BLOCKS, 0)}
    config["clique"] = {"period": period, "epoch": epoch}
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(timestamp),
        "extraData": extra_data(signers),
        "gasLimit": hex(gas_limit),
        "difficulty": "0x1",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "baseFeePerGas": "0x0",
        "alloc": {},
    }


def signers_of(genesis: dict[str, Any]) -> list[str]:
    """The signer addresses in a Clique genesis' extraData (lower-case hex)."""
    raw = bytes.fromhex(str(genesis["extraData"])[2:])[32:-65]
    return ["0x" + raw[i : i + 20].hex() for i in range(0, len(raw), 20)]


__all__ = ["CHAIN_ID", "EPOCH", "GAS_LIMIT", "PERIOD", "clique_genesis", "extra_data", "signers_of"]
