"""Who may send transactions through the gateway, kept current from the token's events.

A sender is admitted when it

* holds a role of the token (``RoleGranted`` / ``RoleRevoked``: the admin from the constructor on, issuers,
  program managers, vendor registrars, compliance officers), or is the pending admin of a scheduled admin
  transfer (it must be able to accept it), or deployed the token (the deployment record's ``deployer``);
* or is a registered participant that is not frozen: a treasury (``TreasuryRegistered``), a vendor
  (``VendorRegistered``) or an enrolled spender (``SpenderEnrolled``), minus ``FreezeChanged(frozen=true)``;
* or is a current owner of a Safe (any contract answering ``getOwners()``) that holds a role or is the pending
  admin: a Safe acts only through ``execTransaction``, which one of its owners' keys sends (docs/SAFE.md);
* or, for operator clients only, is one of the gateway's ``--allow-sender`` accounts (the deployer's key before
  the token exists, a key that sets up a new deployment).

Every other sender is refused before the node sees its transaction: on a chain whose gas is priced at zero this
is what keeps unknown keys from filling blocks.

`Follower` polls ``eth_getLogs`` (the token's address, these events' topics) from the deployment block on, in a
background task, and after every poll checks that the last block it read is still on the chain (Clique can
fork briefly); if not, it rebuilds the registry from the deployment block (a few events per participant: cheap).
The owners of the role-holding contracts are read (``getOwners()`` at the block read up to) whenever the token's
events changed who holds a role, and whenever one of those Safes logged ``AddedOwner`` or ``RemovedOwner``; a
removed owner is refused from the next poll on.
A transaction whose sender is not (yet) admitted makes it poll once more before refusing, so a role granted or a
spender enrolled in a block that was mined before the transaction arrived is always seen.

With a deployment record (``--deployment``) the follower re-reads the file when it changes: a gateway started
before the token was deployed (only ``--allow-sender`` accounts may send) follows the token once ``ape run
deploy`` has written its record.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from deposit_token.chain.abi import abi_signature, system_abi
from deposit_token.errors import DepositTokenError
from deposit_token.gateway.transactions import checksum
from deposit_token.gateway.upstream import Upstream, UpstreamError

EVENTS = (
    "RoleGranted",
    "RoleRevoked",
    "TreasuryRegistered",
    "VendorRegistered",
    "SpenderEnrolled",
    "FreezeChanged",
    "DefaultAdminTransferScheduled",
    "DefaultAdminTransferCanceled",
)
DEFAULT_ADMIN_ROLE = "0x" + "00" * 32
GET_OWNERS = "0x" + keccak(text="getOwners()")[:4].hex()
# Safe's OwnerManager events (v1.3 and v1.4 alike: the topic does not depend on which arguments are indexed).
OWNER_EVENTS = ["0x" + keccak(text=f"{name}(address)").hex() for name in ("AddedOwner", "RemovedOwner")]
LOG_CHUNK = 50_000  # blocks per eth_getLogs; halved while the node says the range is too large


class RegistryError(DepositTokenError):
    """The token to follow cannot be read (a bad deployment record, another chain, an unreachable node)."""


@lru_cache(maxsize=1)
def topics() -> dict[str, str]:
    """topic0 (0x-hex) -> event name, for the events the registry follows (from the shipped merged ABI)."""
    found = {
        "0x" + keccak(text=abi_signature(item)).hex(): str(item["name"])
        for item in system_abi()
        if item["type"] == "event" and item["name"] in EVENTS
    }
    missing = set(EVENTS) - set(found.values())
    if missing:
        raise RegistryError(f"the token's ABI declares no event {sorted(missing)}: the registry cannot follow it")
    return found


def _address(word: str) -> bytes:
    return bytes.fromhex(word[-40:])


def parse_address(text: str) -> bytes:
    """20 bytes from a 0x-hex address (any case)."""
    raw = text[2:] if text.startswith(("0x", "0X")) else text
    if len(raw) != 40:
        raise ValueError(f"not an address: {text!r}")
    return bytes.fromhex(raw)


class Registry:
    """The admitted senders of one token, from its events applied in chain order (pure: no I/O)."""

    def __init__(self, token: str | None = None, deployer: bytes | None = None) -> None:
        self.token = token
        self.deployer = deployer
        self.roles: dict[bytes, set[str]] = {}
        self.registered: set[bytes] = set()
        self.frozen: set[bytes] = set()
        self.pending_admin: bytes | None = None
        self.safe_owners: dict[bytes, frozenset[bytes]] = {}  # role-holding Safe -> its owners (getOwners)
        self.events = 0
        self.role_changes = 0  # role and admin-handover events applied (who may hold a Safe's owners changes)

    def holders(self) -> set[bytes]:
        """The accounts that hold a role now, and the pending admin (whose owners must be able to accept)."""
        return set(self.roles) | ({self.pending_admin} if self.pending_admin is not None else set())

    def set_owners(self, holder: bytes, owners: Iterable[bytes] | None) -> None:
        """Records the owners of the role holder `holder` (None or empty: it is not a Safe)."""
        found = frozenset(owners or ())
        if found:
            self.safe_owners[holder] = found
        else:
            self.safe_owners.pop(holder, None)

    def safe_of_owner(self, sender: bytes) -> bytes | None:
        """A role-holding Safe that `sender` owns now, or None."""
        return next((safe for safe in self.holders() if sender in self.safe_owners.get(safe, ())), None)

    def apply(self, log: dict[str, Any]) -> None:
        event_topics = log.get("topics") or []
        name = topics().get(event_topics[0]) if event_topics else None
        if name is None:
            return
        self.events += 1
        if name.startswith(("Role", "DefaultAdmin")):
            self.role_changes += 1
        if name in ("RoleGranted", "RoleRevoked"):
            role, account = event_topics[1], _address(event_topics[2])
            held = self.roles.setdefault(account, set())
            if name == "RoleGranted":
                held.add(role)
                if role == DEFAULT_ADMIN_ROLE and account == self.pending_admin:
                    self.pending_admin = None
            else:
                held.discard(role)
                if not held:
                    del self.roles[account]
        elif name in ("TreasuryRegistered", "VendorRegistered", "SpenderEnrolled"):
            self.registered.add(_address(event_topics[1]))
        elif name == "FreezeChanged":
            account, frozen = _address(event_topics[1]), int(log["data"][2:66] or "0", 16) != 0
            (self.frozen.add if frozen else self.frozen.discard)(account)
        elif name == "DefaultAdminTransferScheduled":
            self.pending_admin = _address(event_topics[1])
        elif name == "DefaultAdminTransferCanceled":
            self.pending_admin = None

    def refusal(self, sender: bytes, allowed_extra: frozenset[bytes] = frozenset()) -> str | None:
        """None if `sender` may transact, else the sentence saying why not (`allowed_extra`: --allow-sender
        accounts, for operator clients)."""
        if sender in self.roles or sender == self.deployer or sender == self.pending_admin or sender in allowed_extra:
            return None
        if self.safe_of_owner(sender) is not None:
            return None
        who = checksum(sender)
        if self.token is None:
            return (
                f"sender {who} may not transact: the gateway follows no token yet, so only its --allow-sender "
                "accounts may send (through an operator key)"
            )
        if sender in self.registered:
            if sender in self.frozen:
                return f"sender {who} is frozen by compliance on token {self.token}: its transactions are refused"
            return None
        return (
            f"sender {who} is not a registered participant or role holder of token {self.token}: only enrolled "
            "spenders, registered vendors and treasuries, and role holders may transact"
        )

    @property
    def admitted(self) -> int:
        """How many accounts may send (role holders, deployer, pending admin, unfrozen participants)."""
        extra = {a for a in (self.deployer, self.pending_admin) if a is not None}
        owners = {o for safe in self.holders() for o in self.safe_owners.get(safe, ())}
        return len(set(self.roles) | extra | owners | (self.registered - self.frozen))


@dataclass(frozen=True)
class Source:
    """What to follow: the token's address, the block it was deployed in, its deployer, the chain it is on."""

    token: str
    from_block: int = 0
    deployer: bytes | None = None
    chain_id: int | None = None


def source_of_record(path: Path) -> Source | None:
    """The Source a deployment record names, or None if there is no record (yet); RegistryError if the file is
    not a deployment record."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RegistryError(f"cannot read the deployment record {path}: {err}") from err
    try:
        deployer = record.get("deployer")
        return Source(
            token=str(record["token"]),
            from_block=int((record.get("block") or {}).get("number", 0)),
            deployer=parse_address(deployer) if deployer else None,
            chain_id=int(record["chain_id"]) if record.get("chain_id") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise RegistryError(f"{path} is not a deployment record (token, block, deployer): {err}") from err


class Follower:
    """Keeps `registry` current (see the module docstring). Create, `await start()`, then `run()` as a task."""

    def __init__(
        self,
        upstream: Upstream,
        source: Source | None = None,
        deployment: Path | None = None,
        allow_senders: Iterable[bytes] = (),
        poll_interval: float = 1.0,
    ) -> None:
        self.upstream = upstream
        self.source = source
        self.deployment = deployment
        self.allow_senders = frozenset(allow_senders)
        self.poll_interval = poll_interval
        self.registry = Registry()
        self.chain_id: int | None = None
        self.synced: tuple[int, str] | None = None  # (block number, block hash) read up to
        self.rebuilds = 0
        self._record_stamp: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self._last_poll_start = -1.0
        self._chunk = LOG_CHUNK

    def say(self, text: str) -> None:
        print(f"gateway: {text}", file=sys.stderr, flush=True)

    # --- what to follow ---------------------------------------------------------------------------------------

    def _check_record(self) -> None:
        """Switches to the token the deployment record names when the file changed."""
        if self.deployment is None:
            return
        try:
            st = self.deployment.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._record_stamp:
            return
        self._record_stamp = stamp
        source = source_of_record(self.deployment)
        if source is None or source == self.source:
            return
        if source.chain_id is not None and self.chain_id is not None and source.chain_id != self.chain_id:
            raise RegistryError(
                f"the deployment record {self.deployment} is for chain id {source.chain_id}, but the node behind "
                f"the gateway runs chain id {self.chain_id}"
            )
        self.source = source
        self.say(f"following token {source.token} from block {source.from_block} ({self.deployment})")
        self._reset()

    def _reset(self) -> None:
        source = self.source
        self.registry = Registry(source.token if source else None, source.deployer if source else None)
        self.synced = None

    # --- polling -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reads the chain id and catches up with the chain (before the gateway accepts clients)."""
        answer = await self.upstream.call("eth_chainId")
        try:
            self.chain_id = int(answer, 16)
        except (TypeError, ValueError):
            raise RegistryError(f"the node at {self.upstream.shown} answered eth_chainId with {answer!r}") from None
        if self.source is not None and self.source.chain_id not in (None, self.chain_id):
            raise RegistryError(
                f"token {self.source.token} was deployed on chain id {self.source.chain_id}, but the node behind "
                f"the gateway runs chain id {self.chain_id}"
            )
        self._reset()
        self._check_record()
        await self.refresh()

    async def run(self) -> None:
        """Polls every `poll_interval` seconds until cancelled; a failed poll is reported and retried."""
        failing = False
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.refresh()
                if failing:
                    self.say("the registry is following the chain again")
                failing = False
            except Exception as err:  # noqa: BLE001 - the poller must outlive any bad answer; it reports and retries
                if not failing:
                    self.say(f"cannot update the sender registry (retrying): {err or type(err).__name__}")
                failing = True

    async def refresh(self) -> None:
        """One poll that starts after this call was made (callers arriving together share it)."""
        arrival = time.monotonic()
        async with self._lock:
            if self._last_poll_start >= arrival:
                return
            self._last_poll_start = time.monotonic()
            self._check_record()
            await self._poll()

    async def _poll(self) -> None:
        source = self.source
        if source is None:
            return
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False])]
        if self.synced is not None:
            calls.append(("eth_getBlockByNumber", [hex(self.synced[0]), False]))
        answers = await self.upstream.batch(calls)
        head = answers[0]
        if not isinstance(head, dict) or not isinstance(head.get("number"), str):
            raise UpstreamError(f"the node at {self.upstream.shown} has no latest block ({head!r})", answered=True)
        if self.synced is not None and (answers[1] or {}).get("hash") != self.synced[1]:
            self.rebuilds += 1
            self.say(f"block {self.synced[0]} left the chain (a reorganisation): re-reading the token's events")
            self._reset()
        start = self.synced[0] + 1 if self.synced is not None else source.from_block
        end = int(head["number"], 16)
        registry = self.registry
        first, changes_before = start, registry.role_changes
        while start <= end:
            stop = min(end, start + self._chunk - 1)
            try:
                logs = await self.upstream.call(
                    "eth_getLogs",
                    [
                        {
                            "address": source.token,
                            "fromBlock": hex(start),
                            "toBlock": hex(stop),
                            "topics": [list(topics())],
                        }
                    ],
                )
            except UpstreamError as err:
                if not err.answered or self._chunk == 1:  # a node that is down: the next poll retries
                    raise
                self._chunk = max(1, self._chunk // 2)  # most likely a range the node finds too large
                continue
            for log in logs:
                registry.apply(log)
            start = stop + 1
        if first <= end and (registry.role_changes != changes_before or await self._owners_changed(first, end)):
            await self._read_owners(end)
        self.synced = (end, head["hash"])

    async def _owners_changed(self, start: int, end: int) -> bool:
        """Whether a known Safe logged AddedOwner/RemovedOwner in blocks start..end (True if the node cannot say:
        reading the owners again is always right)."""
        safes = [checksum(safe) for safe in self.registry.safe_owners]
        if not safes:
            return False
        try:
            logs = await self.upstream.call(
                "eth_getLogs",
                [{"address": safes, "fromBlock": hex(start), "toBlock": hex(end), "topics": [OWNER_EVENTS]}],
            )
        except UpstreamError as err:
            if not err.answered:
                raise
            return True
        return bool(logs)

    async def _read_owners(self, block: int) -> None:
        """The owners, at `block`, of every role holder that is a contract answering getOwners() (a Safe)."""
        registry = self.registry
        holders = sorted(registry.holders())
        codes = await self.upstream.batch([("eth_getCode", [checksum(h), hex(block)]) for h in holders])
        for holder, code in zip(holders, codes, strict=True):
            owners: list[bytes] | None = None
            if isinstance(code, str) and len(code) > 2:
                try:
                    answer = await self.upstream.call(
                        "eth_call", [{"to": checksum(holder), "data": GET_OWNERS}, hex(block)]
                    )
                    (found,) = abi_decode(["address[]"], bytes.fromhex(str(answer)[2:]))
                    owners = [parse_address(str(o)) for o in found]
                except UpstreamError as err:
                    if not err.answered:
                        raise
                except Exception:  # noqa: BLE001 - eth_abi raises several kinds for data that is not an owner list
                    owners = None  # a contract that is not a Safe: it cannot sign, its "owners" are nobody
            registry.set_owners(holder, owners)

    # --- the decision ------------------------------------------------------------------------------------------

    def refusal(self, sender: bytes, operator: bool) -> str | None:
        return self.registry.refusal(sender, self.allow_senders if operator else frozenset())

    async def refusals(self, senders: list[tuple[bytes, bool]]) -> list[str | None]:
        """For each (sender, operator client?), None or why it is refused; polls once more first if any is
        refused for not being known (it may have been registered in the last block), or admitted only as a
        Safe's owner (it may have been removed, or the Safe lost its role, in the last block: such transactions
        are few, privileged ones, so they are decided on the newest block)."""
        out = [self.refusal(sender, operator) for sender, operator in senders]
        registry = self.registry
        if any(
            (reason is not None and sender not in registry.frozen)
            or (sender not in registry.roles and registry.safe_of_owner(sender) is not None)
            for reason, (sender, _) in zip(out, senders)
        ):
            try:
                await self.refresh()
            except Exception as err:  # noqa: BLE001 - fail closed: the refusals stand
                self.say(f"cannot update the sender registry: {err or type(err).__name__}")
                return out
            out = [self.refusal(sender, operator) for sender, operator in senders]
        return out
