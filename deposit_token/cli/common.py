"""What every command shares: input types that reject bad values before anything is sent, the deployed
token of the connected network, and one-line error reporting with reverts turned into sentences."""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from ape.cli import ConnectedProviderCommand as ApeConnectedProviderCommand
from ape.cli import network_option as ape_network_option
from ape.exceptions import ApeException
from click.core import ParameterSource
from rich.console import Console
from web3.exceptions import Web3Exception

from deposit_token.chain import deployment
from deposit_token.chain.contracts import token_at
from deposit_token.chain.reverts import explain
from deposit_token.chain.rpc import API_KEY_ENV, RpcClient, RpcError, mask_url
from deposit_token.domain.categories import parse_category
from deposit_token.domain.inputs import InputError, check_address, check_amount
from deposit_token.domain.receipts import receipt_id
from deposit_token.errors import DepositTokenError
from deposit_token.ops.authorization import SignedAuthorization
from deposit_token.ops.roles import parse_role
from deposit_token.processes import free_port

if TYPE_CHECKING:
    from ape.api import AccountAPI, ProviderAPI, ReceiptAPI
    from ape.contracts import ContractInstance

ZERO32 = b"\0" * 32
# So that `pay VENDOR -5` reaches the amount check ("amount -5 is negative") instead of click's "no such
# option: -5". `ConnectedProviderCommand` applies it by itself to every command with a KRW argument.
NEGATIVE_NUMBERS_ARE_ARGUMENTS = {"ignore_unknown_options": True}
PILOT_NETWORK = "ethereum:pilot:node"
PILOT_URI = "http://127.0.0.1:8545"  # ape-config.yaml's node.ethereum.pilot.uri, if ape cannot tell
NETWORK_HELP = (
    f"Ape network choice ecosystem:network:provider (see `ape networks list`). Default: the pilot "
    f"network {PILOT_NETWORK}, if its node answers (`ape run network up` starts it)."
)


def console() -> Console:
    # Off a terminal (CI logs, subprocesses) keep addresses and hashes on one line.
    return Console(width=None if sys.stdout.isatty() else 200)


def ape_account_address(text: str) -> str | None:
    """The address of the ape account named `text` (an alias, or TEST::n for test accounts); None when no
    account has that name. ValueError (one sentence) when ape cannot load it."""
    from ape import accounts

    try:
        if text.upper().startswith("TEST::") and text[6:].isdigit():
            return str(accounts.test_accounts[int(text[6:])].address)
        if text in accounts.aliases:
            return str(accounts.load(text).address)
    except (ApeException, IndexError) as error:
        raise ValueError(f"{text!r}: {error}") from None
    return None


class AddressType(click.ParamType):
    """An address, checked by `inputs.check_address` (the one address rule: 0x + 40 hex digits, not the zero
    address, a correct EIP-55 checksum if mixed-case); with `aliases`, also the alias of an ape account
    (``TEST::n`` for test accounts), resolved to its address."""

    def __init__(self, aliases: bool = False) -> None:
        self.aliases = aliases
        self.name = "ADDRESS|ALIAS" if aliases else "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if not self.aliases or text.lower().startswith("0x"):
            try:
                return check_address(text)
            except InputError as error:
                self.fail(str(error), param, ctx)
        return self._alias(text, param, ctx)

    def _alias(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            address = ape_account_address(text)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if address is not None:
            return address
        self.fail(
            f"{text!r} is neither an address (0x followed by 40 hex digits) nor the alias of an ape account "
            "(see `ape accounts list`)",
            param,
            ctx,
        )


class AmountType(click.ParamType):
    """A positive whole number of KRW (the token has 0 decimals): ``1000000`` or ``1,000,000``; parsed by
    `inputs.check_amount`, the one amount rule of every command and file."""

    name = "KRW"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # a default already converted
        try:
            return check_amount(str(value), allow_zero=self.allow_zero)
        except InputError as error:
            self.fail(str(error), param, ctx)


class ReceiptType(click.ParamType):
    """The vendor's invoice number, mapped to the on-chain receipt id by `receipts.receipt_id`: a plain number
    (big-endian, so consecutive invoices share a bitmap word and stay cheap), text such as INV-2026-0042 (at
    most 32 bytes, stored left-aligned so it reads back from the chain), or 0x + 64 hex digits. The value is
    a `Receipt`: the id and the text as typed, which the commands print and keep for auditors."""

    name = "RECEIPT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Receipt:
        if isinstance(value, Receipt):
            return value
        text = str(value).strip()
        try:
            return Receipt(receipt_id(text), text)
        except InputError as error:
            self.fail(str(error), param, ctx)


@dataclass(frozen=True)
class Receipt:
    id: bytes
    text: str

    @property
    def given(self) -> bool:
        return self.id != ZERO32


class VendorType(click.ParamType):
    """A vendor: a 0x address (checked at once), or a registered business name or ape account alias, resolved
    by `vendors.resolve_vendor` once the command is connected (names live on the chain)."""

    name = "VENDOR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if text.lower().startswith("0x"):
            return ADDRESS.convert(text, param, ctx)
        if not text:
            self.fail("the vendor is empty: give its address, registered name or ape alias", param, ctx)
        return VendorName(text)


class VendorName(str):
    """A vendor named by name or alias, not yet resolved to an address."""


class EvidenceType(click.ParamType):
    """Evidence of a large payment: a file (its SHA-256 is recorded on-chain, the file stays off-chain) or
    0x-prefixed 32 bytes."""

    name = "FILE|0xHASH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        text = str(value).strip()
        path = Path(text)
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).digest()
        if text.startswith("0x"):
            return bytes32_of(text, self, param, ctx)
        self.fail(f"{value!r} is neither a file nor a 0x-prefixed 32-byte hash", param, ctx)


def bytes32_of(text: str, kind: click.ParamType, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
    if text.isdigit():
        number = int(text)
        if number >= 2**256:
            kind.fail(f"{text} does not fit in 32 bytes", param, ctx)
        return number.to_bytes(32, "big")
    if text.startswith("0x") and len(text) == 66:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    kind.fail(f"{text!r} is neither a number nor 0x followed by 64 hex digits", param, ctx)


class ParsedType(click.ParamType):
    """A value read by one parser of the domain (or ops) layer: the parser's InputError / ValueError message
    is click's message, so the command line and files refuse the same text in the same words."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.parse(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


ADDRESS = AddressType()
ADDRESS_OR_ALIAS = AddressType(aliases=True)
AMOUNT = AmountType()
RECEIPT = ReceiptType()
EVIDENCE = EvidenceType()
VENDOR = VendorType()
CATEGORY = ParsedType("CATEGORY", parse_category)  # a merchant category by name or code
ROLE = ParsedType("ROLE", parse_role)  # issuer, program-manager, ..., admin, or the contract's ISSUER_ROLE
CSV_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def deployed_token(ecosystem_network_provider: str | None = None) -> ContractInstance:
    """The token recorded for the connected network in deployments/ (the deploy script wrote it)."""
    from ape import chain, networks

    choice = ecosystem_network_provider or deployment.network_name(networks.provider)
    path = deployment.record_path(choice)
    if not path.is_file():
        raise click.ClickException(f"no deployment for network {choice}: {path} is missing (run `ape run deploy`)")
    record = deployment.load_record(path)
    if record is None:  # removed since the check above
        raise click.ClickException(f"no deployment for network {choice}: {path} is missing (run `ape run deploy`)")
    chain_id = chain.provider.web3.eth.chain_id  # what the node says (eth_chainId), not the network's config
    if int(record["chain_id"]) != chain_id:
        raise click.ClickException(
            f"{path} was written for chain {record['chain_id']}, but the connected chain is {chain_id}"
        )
    if not chain.provider.get_code(record["token"]):
        raise click.ClickException(f"{path} records token {record['token']}, which has no code on this chain")
    return token_at(record["token"])


def deployment_block(provider: ProviderAPI | None = None) -> int:
    """The block the token of `provider`'s network (default: the connected one) was deployed at, from its
    deployment record: where reading its events starts."""
    if provider is None:
        from ape import networks

        provider = networks.provider
    record = deployment.load_record(deployment.record_path(deployment.network_name(provider))) or {}
    return int((record.get("block") or {}).get("number", 0))


def vendor_address(token: ContractInstance, vendor: str) -> str:
    """The address a VENDOR argument names: an address as given; a name or ape alias (``TEST::n`` on
    development networks) looked up among the registered vendors and ape's accounts, ambiguity refused."""
    if not isinstance(vendor, VendorName):
        return vendor
    from ape import accounts, networks

    from deposit_token.ops.vendors import ape_aliases, registered_vendors, resolve_vendor

    if vendor.upper().startswith("TEST::") and vendor[6:].isdigit():
        try:
            return str(accounts.test_accounts[int(vendor[6:])].address)
        except IndexError:
            raise click.ClickException(f"there is no test account {vendor}") from None
    try:
        named = registered_vendors(str(networks.provider.uri), token.address, deployment_block())
        return resolve_vendor(vendor, named, ape_aliases())
    except InputError as error:
        raise click.ClickException(str(error)) from None


def unattended(account: Any) -> Any:
    """Lets an ape keystore account sign without a person at the keyboard when its passphrase is in ape's
    documented environment variable (APE_ACCOUNTS_<alias>_PASSPHRASE); otherwise ape asks, as usual."""
    import os

    from ape.exceptions import ApeException

    alias = getattr(account, "alias", None)
    variable = f"APE_ACCOUNTS_{alias}_PASSPHRASE"
    if alias and hasattr(account, "set_autosign") and os.environ.get(variable):
        from ape.logging import logger

        try:
            # ape warns "Danger! This account will now sign any transaction" on every command; the operator
            # chose unattended signing by setting the variable, so the warning is noise in every log line.
            with logger.at_level("ERROR"):
                account.set_autosign(True, passphrase=os.environ[variable])
        except ApeException:
            raise click.ClickException(f"the passphrase in {variable} does not unlock ape account '{alias}'") from None
    return account


def fail(error: BaseException, token: ContractInstance | None = None) -> NoReturn:
    """Ends a command with one readable line (the revert as a sentence) and exit status 1, no traceback."""
    raise click.ClickException(explain(error, token=token)) from None


def checked_send(
    token: ContractInstance, function: str, args: tuple[Any, ...], account: AccountAPI, refused: str
) -> ReceiptAPI:
    """Runs `function(*args)` as `account` only if the contract would accept it in the next block; otherwise
    stops with `refused` and the sentence naming the rule, having sent nothing. Returns the receipt."""
    from deposit_token.ops.wallet import why_not

    reason = why_not(token, function, args, account.address)
    if reason is not None:
        raise click.ClickException(f"{refused}: {reason}")
    try:
        return getattr(token, function)(*args, sender=account)
    except Exception as error:  # noqa: BLE001 - a rule can change between the check and the block
        fail(error, token)


# --- networks ---------------------------------------------------------------------------------------------------
# Every command of the project connects through `ConnectedProviderCommand` and `network_option` below (drop-in
# replacements of ape's), so that an unusable network is one sentence and exit status 1 everywhere.


def pilot_uri() -> str:
    """The JSON-RPC URI of the pilot node as ape-config.yaml configures it."""
    from ape import networks

    try:
        return str(networks.get_provider_from_choice(PILOT_NETWORK).uri)
    except Exception:  # noqa: BLE001 - a broken config still gets the documented default
        return PILOT_URI


def node_answers(uri: str, timeout: float = 2.0) -> bool:
    """Whether a JSON-RPC node answers eth_chainId at `uri` (a quick probe, before ape's slow retries)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(uri, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return "result" in json.loads(answer.read() or b"{}")
    except (OSError, ValueError):
        return False


def network_option(**kwargs: Any) -> Callable[..., Any]:
    """ape's --network option, defaulting to the pilot network (`ConnectedProviderCommand` says so in one
    sentence when no pilot node answers, instead of starting a throwaway local chain with no token on it)."""
    kwargs.setdefault("help", NETWORK_HELP)
    kwargs.setdefault("default", PILOT_NETWORK)
    return ape_network_option(**kwargs)


def one_line(error: BaseException) -> str:
    """An exception's message on one line (ape's messages span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _unknown_network(value: Any, error: click.BadParameter) -> str:
    # ape lists every network of every installed ecosystem (hundreds of lines): keep only its reason.
    reason = str(error.message).split("Options:")[0].strip().rstrip(".")
    return (
        f"{value!r} is not a network ape knows ({reason}): use {PILOT_NETWORK} for the pilot chain, "
        "ethereum:local:foundry for a throwaway local chain, or see `ape networks list`"
    )


def _option_value(args: list[str], option: str) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
        if arg == option and index + 1 < len(args):
            return args[index + 1]
    return None


def _network_label(provider: Any) -> str:
    network = provider.network
    return f"{network.ecosystem.name}:{network.name}:{provider.name}"


def _provider_uri(provider: Any) -> str | None:
    try:
        return str(getattr(provider, "uri", None) or "") or None
    except ApeException:
        return None  # e.g. "Missing URI for network 'mainnet'": the connect error says it


def read_clique_headers(provider: Any) -> None:
    """Lets ape read a Clique chain's blocks (the Geth network): their extraData holds the sealers and the seal
    (97+ bytes), which web3.py only formats with its ExtraDataToPOAMiddleware. ape 0.8 means to add it when it
    finds such a block, but its web3 has no validation middleware, so the error it gets is not the
    ExtraDataLengthError it looks for and every block read then fails ("Could not format invalid value ... as
    field 'extraData'"). So the latest header is read raw and the middleware added when its extraData is long."""
    from web3.middleware import ExtraDataToPOAMiddleware

    web3 = getattr(provider, "web3", None)
    if web3 is None or ExtraDataToPOAMiddleware in web3.middleware_onion:
        return
    block = provider.make_request("eth_getBlockByNumber", ["latest", False])
    extra = block.get("extraData") if isinstance(block, dict) else None
    if isinstance(extra, str) and len(extra) > 2 + 2 * 32:
        web3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)


class ConnectedProviderCommand(ApeConnectedProviderCommand):
    """ape's connected command, as every command of the project uses it: a network that cannot be used
    (unknown choice, no node answering, a provider that cannot start) is one sentence and exit status 1;
    the package's own errors (`DepositTokenError`) and chain and node errors while the command runs are one
    line, not a traceback; an amount argument may be
    negative-looking (`-100` reaches the amount check instead of click's "no such option")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # ape's __init__ is unannotated
        if any(isinstance(p, click.Argument) and getattr(p.type, "name", None) == "KRW" for p in self.params):
            self.context_settings = {**self.context_settings, **NEGATIVE_NUMBERS_ARE_ARGUMENTS}

    def show_details(self, error: DepositTokenError) -> None:
        """Prints what does not fit the one-line message (e.g. a table of rows), before it; nothing here."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.ignore_unknown_options:
            self._refuse_unknown_long_options(ctx, args)
        given = list(args)  # click's parser consumes `args`
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as error:
            if error.param is not None and error.param.name == "network" and "Options:" in str(error.message):
                raise click.BadParameter(
                    _unknown_network(_option_value(given, "--network"), error), ctx=ctx, param=error.param
                ) from None
            raise

    def _refuse_unknown_long_options(self, ctx: click.Context, args: list[str]) -> None:
        # ignore_unknown_options would pass a mistyped `--recipt` on as an argument: name it as click does.
        known = {"--provider-settings", *(o for p in self.get_params(ctx) for o in (*p.opts, *p.secondary_opts))}
        for arg in args:
            if arg == "--":
                return
            if arg.startswith("--") and arg.split("=", 1)[0] not in known:
                raise click.NoSuchOption(arg.split("=", 1)[0], ctx=ctx)

    def invoke(self, ctx: click.Context) -> Any:
        if self.callback is None:
            return None
        from ape.cli.commands import parse_network

        self._require_default_node(ctx)
        network_ctx = parse_network(ctx)
        if network_ctx is None:
            return self._run(ctx, None)
        provider = self._connect(network_ctx)
        try:
            return self._run(ctx, provider)
        finally:
            network_ctx.__exit__(None, None, None)  # type: ignore[no-untyped-call]  # ape's __exit__ is unannotated

    def _run(self, ctx: click.Context, provider: Any) -> Any:
        try:
            return self._invoke(ctx, provider=provider)
        except DepositTokenError as error:  # ours: the message is already the sentence for the user
            self.show_details(error)
            raise click.ClickException(one_line(error)) from None
        except (ApeException, Web3Exception, OSError) as error:  # the node went away, a call failed, ...
            raise click.ClickException(one_line(error)) from None

    @staticmethod
    def _require_default_node(ctx: click.Context) -> None:
        """No --network given: the pilot network, if its node answers; otherwise say so (and start nothing)."""
        if ctx.get_parameter_source("network") is not ParameterSource.DEFAULT:
            return
        provider = ctx.meta.get("__ape_network__", {}).get("provider")
        if provider is None or _network_label(provider) != PILOT_NETWORK:
            return
        uri = pilot_uri()
        if not node_answers(uri):
            raise click.ClickException(
                f"no network given and no pilot node answers at {uri}: start one with "
                "`ape run network up` or pass --network"
            )

    @staticmethod
    def _connect(network_ctx: Any) -> Any:
        """Connects (ape's retries muted: their warnings are not the answer); failure is one sentence."""
        from ape.logging import logger

        provider = getattr(network_ctx, "_provider", None)
        label = _network_label(provider) if provider is not None else "the network"
        with logger.at_level("ERROR"):
            try:
                connected = _enter(network_ctx, provider)
                read_clique_headers(connected)
                return connected
            except Exception as error:  # noqa: BLE001 - whatever ape raises while connecting
                reason = one_line(error)
            uri = _provider_uri(provider) if provider is not None else None
        reason = _refusal_reason(uri) or reason
        where = f" at {mask_url(uri)}" if uri else ""  # a URL's user-info is a client's key: never shown
        hint = " (start it with `ape run network up`)" if label == PILOT_NETWORK else ""
        raise click.ClickException(f"cannot use network {label}{where}: {reason.rstrip('.')}{hint}")


def _enter(network_ctx: Any, provider: Any) -> Any:
    """Enters ape's network context; an Anvil that ape-foundry starts itself gets a free port, and a new start on
    another one if it does not answer (as ape-foundry retries a fixed port: its `process_attempts`)."""
    from ape.exceptions import RPCTimeoutError

    if not _starts_its_own_anvil(provider):
        return network_ctx.__enter__()
    for _ in range(provider.settings.process_attempts - 1):
        _pin_free_port(provider)
        try:
            return network_ctx.__enter__()
        except RPCTimeoutError:  # it did not answer in time (a port taken, a loaded machine): stop it, start another
            provider.disconnect()
    _pin_free_port(provider)
    return network_ctx.__enter__()


def _pin_free_port(provider: Any) -> None:
    """ape-foundry draws "auto" ports at random from 49152-60999 without checking them; one already held (a
    server's, or an outgoing connection's: the OS hands out the same range) makes Anvil exit at once and ape wait
    its full 20 s for it."""
    provider._host = f"http://127.0.0.1:{free_port()}"


def _starts_its_own_anvil(provider: Any) -> bool:
    """True for ape-foundry's provider on an "auto" host (a port fixed in the configuration is left alone)."""
    return getattr(provider, "name", None) == "foundry" and getattr(provider, "uri", None) == "auto"


def _refusal_reason(uri: str | None) -> str | None:
    """Why an endpoint that answers HTTP refused us, e.g. the gateway's "the API key is not valid" (ape only
    says "no node found"); None when it does not answer or did not refuse."""
    if not uri or not uri.startswith(("http://", "https://")):
        return None
    try:
        with RpcClient(uri, timeout=5.0) as rpc:
            rpc.call("eth_chainId", [])
    except RpcError as error:
        if error.http_status in (401, 403):
            return f"{error.message.rstrip('.')}; give your gateway API key in ${API_KEY_ENV}"
    except DepositTokenError:
        return None
    return None


def read_authorization(path: Path) -> SignedAuthorization:
    """The signed payment in a file ``ape run wallet authorize`` wrote; a malformed one is a one-line error."""
    try:
        return SignedAuthorization.from_json(path.read_bytes())
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def command_class(
    errors: tuple[type[BaseException], ...], describe: Callable[[BaseException], str] = one_line
) -> type[ConnectedProviderCommand]:
    """A `ConnectedProviderCommand` that also reports a command group's own operational `errors` (a node or a
    database failing while it runs) as one line, exit status 1."""

    class Command(ConnectedProviderCommand):
        def invoke(self, ctx: click.Context) -> Any:
            try:
                return super().invoke(ctx)
            except errors as err:
                raise click.ClickException(describe(err)) from None

    return Command
