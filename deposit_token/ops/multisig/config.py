"""The Safes of a deployment, from a YAML file (docs/SAFE.md), and handing the token's roles to them.

    safes:
      admin:         {roles: [admin], threshold: 3, owners: [0x..., 0x..., 0x..., 0x..., 0x...]}
      issuer:        {roles: [issuer], threshold: 2, owners: [...], mint_allowance: 10,000,000,000}
      compliance:    {roles: [compliance], threshold: 2, owners: [...]}
      budget-office: {roles: [program-manager, vendor-registrar], threshold: 2, owners: [...]}
    policy:
      large_disbursal: {above: 100,000,000, safe: budget-office}

Owners are addresses (or, where the caller resolves them, ape account aliases). Each role is held by at most
one Safe. The admin role moves by the token's two-step handover: deploying begins it, and the admin Safe's
owners accept it after the delay (``treasury role handover accept --propose``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from eth_utils import keccak

from deposit_token.chain.submit import LocalSigner, Submitter, TxRequest, encode_call
from deposit_token.domain.inputs import InputError, check_address, check_amount
from deposit_token.errors import DepositTokenError
from deposit_token.ops.roles import ADMIN, parse_role

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


class SafeConfigError(DepositTokenError):
    """The Safes file is not usable (the message names the entry and the problem)."""


@dataclass(frozen=True)
class SafeSpec:
    name: str
    owners: tuple[str, ...]
    threshold: int
    roles: tuple[str, ...]
    mint_allowance: int | None = None


@dataclass(frozen=True)
class DisbursalPolicy:
    """A disbursal file totalling more than `above` KRW must be proposed to the Safe named `safe`."""

    above: int
    safe: str


@dataclass(frozen=True)
class SafesConfig:
    safes: tuple[SafeSpec, ...]
    large_disbursal: DisbursalPolicy | None = None
    source: str = ""

    def for_role(self, role: str) -> SafeSpec | None:
        return next((s for s in self.safes if role in s.roles), None)


def _owner(text: Any, where: str, resolve: Callable[[str], str] | None) -> str:
    value = str(text).strip()
    if not value.lower().startswith("0x") and resolve is not None:
        try:
            return resolve(value)
        except (InputError, ValueError) as error:
            raise SafeConfigError(f"{where}: {error}") from None
    try:
        return check_address(value)
    except InputError as error:
        raise SafeConfigError(f"{where}: {error}") from None


def _amount(value: Any, where: str) -> int:
    try:
        return check_amount(str(value))
    except InputError as error:
        raise SafeConfigError(f"{where}: {error}") from None


def parse(content: Any, source: str = "the Safes file", resolve: Callable[[str], str] | None = None) -> SafesConfig:
    """The checked config; SafeConfigError naming the first problem."""
    if not isinstance(content, Mapping) or not isinstance(content.get("safes"), Mapping) or not content["safes"]:
        raise SafeConfigError(f"{source} has no 'safes' mapping (name: {{owners, threshold, roles}})")
    unknown = set(content) - {"safes", "policy"}
    if unknown:
        raise SafeConfigError(f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}")
    specs: list[SafeSpec] = []
    holder: dict[str, str] = {}
    for name, entry in content["safes"].items():
        where = f"{source}: safe {name!r}"
        if not isinstance(name, str) or not name or set(name) - NAME_CHARS:
            raise SafeConfigError(f"{where}: a name is lower-case letters, digits, '-' and '_'")
        if not isinstance(entry, Mapping):
            raise SafeConfigError(f"{where} is not a mapping with owners, threshold and roles")
        extra = set(entry) - {"owners", "threshold", "roles", "mint_allowance"}
        if extra:
            raise SafeConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
        owners_in = entry.get("owners")
        if not isinstance(owners_in, Sequence) or isinstance(owners_in, str) or not owners_in:
            raise SafeConfigError(f"{where}: owners is a list of addresses")
        owners = tuple(_owner(o, f"{where}, owner {i + 1}", resolve) for i, o in enumerate(owners_in))
        if len(set(owners)) != len(owners):
            raise SafeConfigError(f"{where}: an owner is listed twice")
        threshold = entry.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or not 1 <= threshold <= len(owners):
            raise SafeConfigError(f"{where}: threshold must be a whole number from 1 to {len(owners)} (its owners)")
        roles_in = entry.get("roles") or []
        if isinstance(roles_in, str) or not isinstance(roles_in, Sequence):
            raise SafeConfigError(f"{where}: roles is a list (e.g. [issuer])")
        try:
            roles = tuple(parse_role(str(r)) for r in roles_in)
        except InputError as error:
            raise SafeConfigError(f"{where}: {error}") from None
        for role in roles:
            if role in holder:
                raise SafeConfigError(f"{where}: {role} is already held by safe {holder[role]!r}")
            holder[role] = name
        allowance = entry.get("mint_allowance")
        if allowance is not None and "ISSUER_ROLE" not in roles:
            raise SafeConfigError(f"{where}: mint_allowance needs the issuer role")
        specs.append(
            SafeSpec(
                name=name,
                owners=owners,
                threshold=threshold,
                roles=roles,
                mint_allowance=_amount(allowance, f"{where}, mint_allowance") if allowance is not None else None,
            )
        )
    policy = _policy(content.get("policy"), source, {s.name for s in specs})
    return SafesConfig(safes=tuple(specs), large_disbursal=policy, source=source)


def _policy(policy: Any, source: str, names: set[str]) -> DisbursalPolicy | None:
    if policy is None:
        return None
    if not isinstance(policy, Mapping) or set(policy) - {"large_disbursal"}:
        raise SafeConfigError(f"{source}: policy has one key, large_disbursal: {{above: KRW, safe: NAME}}")
    rule = policy.get("large_disbursal")
    if not isinstance(rule, Mapping) or set(rule) != {"above", "safe"}:
        raise SafeConfigError(f"{source}: policy.large_disbursal needs exactly above (KRW) and safe (a Safe's name)")
    if rule["safe"] not in names:
        raise SafeConfigError(f"{source}: policy.large_disbursal names safe {rule['safe']!r}, which is not listed")
    return DisbursalPolicy(above=_amount(rule["above"], f"{source}: policy.large_disbursal.above"), safe=rule["safe"])


def load(path: Path, resolve: Callable[[str], str] | None = None) -> SafesConfig:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SafeConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise SafeConfigError(f"{path} is not YAML: {' '.join(str(error).split())}") from None
    return parse(content, str(path), resolve)


# --- the record and the hand-over -----------------------------------------------------------------------------


@dataclass
class DeployedSafe:
    spec: SafeSpec
    address: str

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "address": self.address,
            "owners": list(self.spec.owners),
            "threshold": self.spec.threshold,
            "roles": list(self.spec.roles),
        }
        if self.spec.mint_allowance is not None:
            record["mint_allowance"] = self.spec.mint_allowance
        return record


@dataclass
class Handover:
    """What `hand_over` sent: the roles granted, allowances set, roles revoked, the admin handover begun."""

    granted: list[tuple[str, str]] = field(default_factory=list)
    revoked: list[tuple[str, str]] = field(default_factory=list)
    allowances: list[tuple[str, int]] = field(default_factory=list)
    admin_to: str | None = None


def _role_id(role: str) -> bytes:
    return b"\0" * 32 if role == ADMIN else keccak(text=role)


def hand_over(
    submitter: Submitter,
    token: str,
    token_type: Any,
    admin: LocalSigner,
    safes: Sequence[DeployedSafe],
    revoke_from: Sequence[str] = (),
) -> Handover:
    """Grants each Safe its roles and mint allowance, revokes the operational roles from `revoke_from` (the
    EOAs that held them), and begins handing the admin role to the admin Safe (it accepts after the delay).
    One submission from `admin` (in nonce order); SafeConfigError if any transaction fails."""
    done = Handover()
    requests: list[TxRequest] = []

    def call(fn: str, *args: Any) -> None:
        requests.append(TxRequest(admin, token, encode_call(token_type, fn, list(args)), 300_000))

    for safe in safes:
        for role in safe.spec.roles:
            if role == ADMIN:
                done.admin_to = safe.address
                continue
            call("grantRole", _role_id(role), safe.address)
            done.granted.append((role, safe.address))
        if safe.spec.mint_allowance is not None:
            call("setMintAllowance", safe.address, safe.spec.mint_allowance)
            done.allowances.append((safe.address, safe.spec.mint_allowance))
    for holder in revoke_from:
        for role, _safe in done.granted:
            call("revokeRole", _role_id(role), holder)
            done.revoked.append((role, holder))
    if done.admin_to is not None:
        call("beginDefaultAdminTransfer", done.admin_to)
    for outcome in submitter.submit(requests):
        if not outcome.status:
            raise SafeConfigError(f"handing the roles to the Safes failed: {outcome.error}")
    return done
