"""Naming a vendor the way people do: by address, by the business name it was registered under
(``registerVendor``'s name, kept in the VendorRegistered events), or by the alias of an ape account.

Resolution is a pure function over the registered vendors and the known aliases, so that every command (paying
from a wallet, the treasury's listings) names vendors by the same rule:

* ``0x`` + 40 hex digits is an address (EIP-55 checked) and is taken as it is;
* otherwise the text is compared, ignoring case and repeated spaces, with every vendor's latest registered
  name and with the ape aliases; exactly one address must match. Two vendors under one name (or a name and an
  alias naming different accounts) are refused, listing the candidates; an unknown name is refused, listing
  the registered vendors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deposit_token.domain.categories import category_name
from deposit_token.domain.inputs import InputError, check_address

SHOWN = 20  # vendors listed in a "no such vendor" sentence


@dataclass(frozen=True)
class NamedVendor:
    """A registered vendor as far as naming goes (`listing.VendorRow` has these fields too)."""

    address: str
    name: str
    category: int


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _label(vendor: NamedVendor) -> str:
    return f"{vendor.name!r} ({vendor.address}, {category_name(vendor.category)})"


def resolve_vendor(text: str, vendors: Sequence[NamedVendor], aliases: Mapping[str, str] | None = None) -> str:
    """The checksummed address that `text` names (see the module docstring); InputError names the problem."""
    value = str(text).strip()
    if value.lower().startswith("0x"):
        return check_address(value, "vendor address")
    key = _key(value)
    by_name = {v.address: v for v in vendors if _key(v.name) == key}
    by_alias = {address: alias for alias, address in (aliases or {}).items() if _key(alias) == key}
    found = sorted({*by_name, *by_alias})
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        choices = [_label(by_name[a]) if a in by_name else f"ape account {by_alias[a]!r} ({a})" for a in found]
        raise InputError(
            f"{value!r} is ambiguous: it names {len(found)} accounts ({'; '.join(choices)}); pay by address"
        )
    raise InputError(
        f"no vendor is registered under the name {value!r} and no ape account has that alias; {_choices(vendors)}"
    )


def _choices(vendors: Sequence[NamedVendor]) -> str:
    if not vendors:
        return "no vendor is registered yet"
    shown = ", ".join(_label(v) for v in vendors[:SHOWN])
    more = f" and {len(vendors) - SHOWN} more (`ape run treasury vendors`)" if len(vendors) > SHOWN else ""
    return f"registered vendors: {shown}{more}"


def registered_vendors(rpc_url: str, token: str, from_block: int) -> list[NamedVendor]:
    """Every registered vendor with its latest name, read from the chain (the token keeps no list)."""
    from deposit_token.chain.rpc import RpcClient
    from deposit_token.ops import listing

    return [NamedVendor(r.address, r.name, r.category) for r in listing.vendors(RpcClient(rpc_url), token, from_block)]


def ape_aliases() -> dict[str, str]:
    """{alias: address} of the accounts in ape's keystore (no key is unlocked to list them)."""
    from ape import accounts

    return {alias: str(accounts.load(alias).address) for alias in accounts.aliases}
