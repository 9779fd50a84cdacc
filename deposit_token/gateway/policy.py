"""What each client may call: the roles, their method allowlists, the methods never exposed, and the JSON-RPC
error every refusal carries.

An allowlist, not a denylist: a method that is on no list (a node's newer API, a typo, a vendor extension) is
refused like the never-exposed families, so a node upgrade cannot widen what clients reach. The never-exposed
families are listed too, so that their refusal can say that no key will ever reach them (rather than that this
client's role lacks them).
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any

from deposit_token.errors import DepositTokenError


class Role(StrEnum):
    """A client's role. Auditors read; wallets (officials, vendors) and operators (the treasury's tools, the
    issuing bank, compliance) also send signed transactions. Only operators' transactions may come from the
    gateway's --allow-sender accounts (the deployer before the token exists)."""

    AUDITOR = "auditor"
    WALLET = "wallet"
    OPERATOR = "operator"


ROLE_NAMES = tuple(role.value for role in Role)


class RoleError(DepositTokenError, ValueError):
    """A role name that is not one of ROLE_NAMES."""


def parse_role(text: str) -> Role:
    """The Role named `text` (case-insensitive); RoleError naming the roles otherwise."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise RoleError(f"unknown role {text!r}: use one of {', '.join(ROLE_NAMES)}") from None


SEND_RAW = "eth_sendRawTransaction"

# Reads: what the audit indexer, `verify`, ape and web3.py need (measured: tests/gateway runs ape and web3.py
# through the gateway). eth_accounts is answered by the gateway itself with [] (as proxyd does): a node behind it
# holds no client's keys, and ape asks for them when it connects.
READ_METHODS = frozenset(
    {
        "eth_chainId",
        "net_version",
        "net_listening",
        "eth_blockNumber",
        "eth_call",
        "eth_getLogs",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getCode",
        "eth_getBalance",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_estimateGas",
        "eth_gasPrice",
        "eth_feeHistory",
        "eth_maxPriorityFeePerGas",
        "eth_syncing",
        "web3_clientVersion",
        "eth_getBlockTransactionCountByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockReceipts",
        "eth_accounts",
    }
)
LOCAL_ANSWERS: dict[str, Any] = {"eth_accounts": []}

ALLOWED: dict[Role, frozenset[str]] = {
    Role.AUDITOR: READ_METHODS,
    Role.WALLET: READ_METHODS | {SEND_RAW},
    Role.OPERATOR: READ_METHODS | {SEND_RAW},
}

# Never forwarded, whoever asks: node administration, tracing (debug_ can read any state cheaply and stall the
# node), keys held by the node (personal_, eth_sign*, eth_sendTransaction), block production and validator votes
# (miner_, clique_), the mempool (txpool_), and Anvil/Hardhat test controls.
NEVER_PREFIXES = (
    "admin_",
    "debug_",
    "personal_",
    "miner_",
    "clique_",
    "txpool_",
    "engine_",
    "les_",
    "trace_",
    "anvil_",
    "evm_",
    "hardhat_",
)
NEVER_METHODS = frozenset({"eth_sendTransaction", "eth_sign", "eth_signTransaction", "eth_signTypedData"})


def never_exposed(method: str) -> bool:
    """True for a method no client reaches through the gateway (see NEVER_PREFIXES)."""
    return method in NEVER_METHODS or method.startswith(NEVER_PREFIXES) or method.startswith("eth_signTypedData")


# --- refusals ---------------------------------------------------------------------------------------------------


class Code(int, Enum):
    """The gateway's JSON-RPC error codes (docs/GATEWAY.md lists them with their HTTP statuses)."""

    PARSE_ERROR = -32700  # the body is not JSON
    INVALID_REQUEST = -32600  # not a JSON-RPC request object or batch
    METHOD_NOT_AVAILABLE = -32601  # never exposed, or no such method
    INVALID_PARAMS = -32602  # eth_sendRawTransaction's transaction cannot be decoded
    UNAUTHENTICATED = -32001  # no key, an unknown key or a revoked key
    NODE_UNAVAILABLE = -32002  # the node behind the gateway did not answer
    SENDER_REFUSED = -32003  # the transaction's sender may not transact (EIP-1474: transaction rejected)
    ROLE_REFUSED = -32004  # the method exists but the client's role does not include it
    LIMIT_EXCEEDED = -32005  # rate limit, request size or batch length (EIP-1474: limit exceeded)


class Refusal(DepositTokenError):
    """A request or one call of a batch is refused: `code` and `message` become its JSON-RPC error object; `http`
    is the status when the refusal concerns the whole HTTP request; `reason` is a short tag for the access log
    (unauthenticated, method, role, sender, params, rate, size, request, node)."""

    def __init__(self, code: Code, message: str, http: int = 200, reason: str = "", retry_after: float = 0) -> None:
        super().__init__(message)
        self.code, self.message, self.http, self.reason = code, message, http, reason
        self.retry_after = retry_after  # seconds, for a rate limit's Retry-After header

    def error(self) -> dict[str, Any]:
        return {"code": int(self.code), "message": self.message}


def method_refusal(method: str, role: Role, client: str) -> Refusal | None:
    """None if `client` (of `role`) may call `method`, else why not."""
    if method in ALLOWED[role]:
        return None
    if never_exposed(method):
        return Refusal(
            Code.METHOD_NOT_AVAILABLE,
            f"method {method} is not available through the gateway (node administration, tracing, node-held "
            "keys, block production and the mempool are never exposed)",
            reason="method",
        )
    if any(method in methods for methods in ALLOWED.values()):
        allowed = ", ".join(r.value for r, methods in ALLOWED.items() if method in methods)
        return Refusal(
            Code.ROLE_REFUSED,
            f"client {client} has role {role.value}, which may not call {method} (roles that may: {allowed})",
            reason="role",
        )
    return Refusal(Code.METHOD_NOT_AVAILABLE, f"method {method} is not available through the gateway", reason="method")
