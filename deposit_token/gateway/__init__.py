"""The authenticated JSON-RPC gateway: the only RPC clients see, in front of a node (the pilot's Geth archive
node, or Anvil: it speaks plain JSON-RPC and needs nothing of the engine).

Per-institution API keys hashed at rest (``keys``), a method allowlist per role and methods never exposed
(``policy``), the sender of every raw transaction recovered (``transactions``) and checked against the token's
participants and role holders followed from the chain's events (``registry``), per-client token-bucket rate
limits (``limits``), request size limits, an access log that holds no secret (``accesslog``), the node client
(``upstream``), the HTTP server (``server``) and ways to run it (``control``). docs/GATEWAY.md describes it.

A layer of its own: imports ``deposit_token.chain`` (the token's ABI) and ``deposit_token.domain`` and the base
modules; only ``cli`` imports it.
"""

from deposit_token.gateway.control import RunningGateway, running, start_process, stop_process
from deposit_token.gateway.keys import KeyStore
from deposit_token.gateway.policy import Role
from deposit_token.gateway.server import Gateway, GatewayConfig

__all__ = ["Gateway", "GatewayConfig", "KeyStore", "Role", "RunningGateway", "running", "start_process", "stop_process"]
