"""Deployment records: one JSON file per network in ``deployments/``, written when the token system is deployed.

A record says what was deployed where (addresses, transactions, block), by whom, and from what (compiler, its
settings and a hash of the contract sources), and the keccak256 of the code the token and its admin module have
on-chain (``code_hashes``, what EXTCODEHASH returns), so that an operator or auditor can tell which build runs on
a chain; ``audit verify`` compares those hashes with the chain's code. ``check_can_deploy`` keeps a second
deployment from silently replacing the record of a live one.

Network names: one rule, :func:`network_name`, used by every command that reads or writes a record or an audit
database (deploy, audit, network status, treasury/wallet/vendor). A network is named
``ecosystem:network:provider`` from ape's provider object: ``ethereum:pilot:node`` whatever URI the node
provider reaches. (ape's ``provider.network_choice`` is ``ethereum:pilot:http://127.0.0.1:8545`` once a URI is
configured, while commands that do not connect only had the ``--network`` text ``ethereum:pilot:node``: the
two named files differently.) An ad-hoc network (``--network http://host:8545``, which ape calls ``custom``)
is named by its URI instead: each URI may be another chain. :func:`network_name_of_choice` gives the same
name for a ``--network`` value without connecting.

File names: the network name is split at its first two colons (an ad-hoc URI with colons of its own is one
part). Each part is lower-cased, every character other than ``a-z 0-9 _ .`` (hyphens included) becomes
``_``, and a leading ``.`` becomes ``_``; the parts are joined with ``-``. So ``ethereum:local:foundry`` ->
``ethereum-local-foundry.json``, ``ethereum:pilot:node`` -> ``ethereum-pilot-node.json``,
``ethereum:mainnet-fork:foundry`` -> ``ethereum-mainnet_fork-foundry.json``, ``http://127.0.0.1:8545`` ->
``http___127.0.0.1_8545.json``: a ``-`` in a file name always separates two parts.

The folder is ``deployments/`` at the repository root unless the environment variable
``DEPOSIT_TOKEN_DEPLOYMENTS_DIR`` names another one (tests and dry runs use a temporary folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from eth_utils import keccak

from deposit_token import paths
from deposit_token.errors import DepositTokenError

DEPLOYMENTS_ENV = "DEPOSIT_TOKEN_DEPLOYMENTS_DIR"
DEFAULT_DEPLOYMENTS_DIR = paths.DEPLOYMENTS_DIR
CONTRACTS_DIR = paths.CONTRACTS_DIR
EXCLUDED_SOURCE_DIRS = ("test", ".cache")  # test-only contracts and ape's copies of dependencies
RECORD_FORMAT = 1
TOKEN_CONTRACT = "DepositToken"

_UNSAFE = re.compile(r"[^a-z0-9_.]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class DeploymentRecordError(DepositTokenError):
    """A deployment record cannot be read or written."""


class LiveDeploymentError(DepositTokenError):
    """Deploying is refused: the record names a token that still has code on the connected chain (a new
    deployment would orphan it), or the record cannot be read (so that cannot be ruled out)."""


# --- where records live ---------------------------------------------------------------------------------------


def deployments_dir() -> Path:
    """The records folder: ``$DEPOSIT_TOKEN_DEPLOYMENTS_DIR`` if set, else ``deployments/`` in the repository."""
    configured = os.environ.get(DEPLOYMENTS_ENV, "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_DEPLOYMENTS_DIR


def network_name(provider: Any) -> str:
    """The name of the network of an ape provider (connected or not): ``ecosystem:network:provider-name``, or
    the URI of an ad-hoc network (see the module docstring)."""
    network = provider.network
    if getattr(network, "is_adhoc", False) or network.name == "custom":
        uri = getattr(provider, "connection_str", None) or getattr(provider, "uri", None)
        if not uri:
            raise ValueError(f"the ad-hoc network of provider {provider.name!r} has no URI")
        return str(uri)
    return f"{network.ecosystem.name}:{network.name}:{provider.name}"


def network_name_of_choice(choice: str | None) -> str:
    """:func:`network_name` of what ape would connect to for the ``--network`` value `choice` (None: ape's
    default network), without connecting. ValueError (one sentence) for a choice ape does not know."""
    from ape import networks

    try:
        provider = networks.get_provider_from_choice(choice.strip() if choice else None)
    except Exception as err:  # noqa: BLE001 - ape raises several kinds for an unknown choice
        reason = " ".join(str(err).split()) or type(err).__name__
        if len(reason) > 200:  # ape lists every known ecosystem after "Options:"
            reason = reason.split(" Options:")[0]
        raise ValueError(f"unknown network {choice!r}: {reason}") from None
    return network_name(provider)


def network_parts(network_name: str) -> list[str]:
    """The parts of an ape network choice; a provider URI (``ethereum:local:http://host:8545``) or an ad-hoc
    URI choice (``http://host:8545``) stays one part although it contains colons."""
    text = network_name.strip()
    parts = [text] if _URI.match(text) else text.split(":", 2)
    if not all(part.strip() for part in parts):
        raise ValueError(f"not an ape network choice (ecosystem:network:provider): {network_name!r}")
    return parts


def network_file_stem(network_name: str) -> str:
    """``ethereum:local:foundry`` -> ``ethereum-local-foundry`` (see the module docstring for the rule)."""
    parts = network_parts(network_name)
    safe = [_UNSAFE.sub("_", part.strip().lower()) for part in parts]
    return "-".join(part if not part.startswith(".") else "_" + part[1:] for part in safe)


def record_path(network_name: str, directory: Path | str | None = None) -> Path:
    """The record file of a network, in `directory` (default: :func:`deployments_dir`)."""
    folder = Path(directory) if directory is not None else deployments_dir()
    return folder / f"{network_file_stem(network_name)}.json"


# --- reading and writing ------------------------------------------------------------------------------------


def load_record(path: Path | str) -> dict[str, Any] | None:
    """The record at `path`, or None if there is no file; raises DeploymentRecordError if it is not a record."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DeploymentRecordError(f"cannot read deployment record {path}: {err}") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise DeploymentRecordError(f"deployment record {path} is not valid JSON: {err}") from err
    if not isinstance(record, dict) or not isinstance(record.get("token"), str):
        raise DeploymentRecordError(f"deployment record {path} has no token address")
    return record


def write_record(path: Path | str, record: Mapping[str, Any]) -> Path:
    """Writes `record` as JSON atomically: a temporary file in the same folder, flushed, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


# --- may we deploy? ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployCheck:
    """Outcome of :func:`check_can_deploy`: deploying is allowed; `reason` says why (for the operator)."""

    path: Path
    existing: dict[str, Any] | None
    reason: str


def has_code(provider: Any, address: str) -> bool:
    """True if `address` holds contract code on the provider's chain (``eth_getCode`` is not empty)."""
    return len(bytes(provider.get_code(address))) > 0


def check_can_deploy(path: Path | str, provider: Any, force: bool = False) -> DeployCheck:
    """Refuses (LiveDeploymentError) to replace the record of a token that still has code on this chain.

    Allowed: no record; a record for another chain id; a record whose token has no code any more (a dev chain
    that was restarted); anything when `force` is set. An unreadable record is refused unless `force`.
    """
    path = Path(path)
    try:
        existing = load_record(path)
    except DeploymentRecordError as err:
        if force:
            return DeployCheck(path, None, f"{err}; overwriting it (--force)")
        raise LiveDeploymentError(f"{err}; refusing to overwrite it (use --force to replace it)") from err
    if existing is None:
        return DeployCheck(path, None, f"no deployment record at {path}")
    token, recorded_chain = existing["token"], existing.get("chain_id")
    chain_id = int(provider.chain_id)
    if recorded_chain != chain_id:
        return DeployCheck(
            path,
            existing,
            f"{path} records token {token} on chain id {recorded_chain}, connected chain id is {chain_id}: "
            "the record will be replaced",
        )
    if not has_code(provider, token):
        return DeployCheck(
            path,
            existing,
            f"{path} records token {token} but chain {chain_id} has no code there (restarted dev chain?): "
            "the record will be replaced",
        )
    if force:
        return DeployCheck(
            path, existing, f"{path} records live token {token} on chain {chain_id}; replacing the record (--force)"
        )
    raise LiveDeploymentError(
        f"{path} records token {token}, which still has code on chain {chain_id} "
        f"({existing.get('network', 'unknown network')}); refusing to deploy over it (use --force to replace "
        "the record)"
    )


# --- what goes into a record -----------------------------------------------------------------------------------


def source_files(contracts_dir: Path | str = CONTRACTS_DIR) -> list[Path]:
    """Every ``.sol`` file under `contracts_dir` except those in ``test/`` and ``.cache/``, sorted by path."""
    root = Path(contracts_dir)
    files: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        if Path(folder) == root:
            subfolders[:] = [d for d in subfolders if d not in EXCLUDED_SOURCE_DIRS]
        files.extend(Path(folder) / name for name in names if name.endswith(".sol"))
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


def source_hash(contracts_dir: Path | str = CONTRACTS_DIR) -> str:
    """sha256 over the sources of :func:`source_files`, each as ``<path>\\0<size>\\0<bytes>``.

    The path is relative to `contracts_dir` in POSIX form, so the hash does not depend on where the checkout
    is; the size makes the framing unambiguous. Renaming, adding, removing or editing a file changes it.
    """
    root = Path(contracts_dir)
    digest = hashlib.sha256()
    for file in source_files(root):
        content = file.read_bytes()
        digest.update(f"{file.relative_to(root).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return "sha256:" + digest.hexdigest()


@lru_cache(maxsize=8)
def solc_build(version: str) -> str:
    """Which solc py-solc-x (so ape-solidity) runs for `version`: ``native`` or ``solc-js`` (or ``unknown``).

    ape's manifest records the version and settings but not the binary, so this asks the compiler registered
    now (``deposit_token.chain.toolchain`` registers either a native solc or the solc-js shim); solc-js reports an
    ``Emscripten`` build in ``--version``."""
    try:
        from solcx.install import get_executable

        executable = get_executable(version=version.split("+")[0])
        out = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=60).stdout
    except Exception:  # noqa: BLE001 - the record is still useful without it
        return "unknown"
    if "Version:" not in out:
        return "unknown"
    return "solc-js" if "Emscripten" in out else "native"


def compiler_info(project: Any, contract_name: str = TOKEN_CONTRACT) -> dict[str, Any]:
    """Compiler, version and settings of the build that produced `contract_name` (from ape's manifest)."""
    compilers = [c for c in (project.manifest.compilers or []) if contract_name in (c.contractTypes or [])]
    if not compilers:
        raise DeploymentRecordError(f"the project manifest has no compiler entry for {contract_name}")
    compiler = compilers[0]
    settings = compiler.settings or {}
    optimizer = settings.get("optimizer") or {}
    return {
        "name": compiler.name,
        "version": compiler.version,
        "build": solc_build(compiler.version),
        "settings": {
            "via_ir": bool(settings.get("viaIR", False)),
            "optimizer_enabled": bool(optimizer.get("enabled", False)),
            "optimizer_runs": optimizer.get("runs"),
            "evm_version": settings.get("evmVersion"),
        },
    }


def dependency_versions(project: Any) -> dict[str, str]:
    """Dependency name -> version, as pinned in ape-config.yaml."""
    return {d["name"]: str(d.get("version", "")) for d in project.config.dependencies or [] if "name" in d}


def package_version() -> str:
    try:
        return metadata.version("deposit-token")
    except metadata.PackageNotFoundError:
        from deposit_token import __version__

        return __version__


def utc_iso(timestamp: int | float | None = None) -> str:
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def code_hash(code: bytes | str) -> str:
    """keccak256 of runtime code (bytes or 0x-hex) as 0x-hex: what EXTCODEHASH returns for a contract."""
    raw = bytes.fromhex(code[2:] if code.startswith("0x") else code) if isinstance(code, str) else bytes(code)
    return "0x" + keccak(raw).hex()


def code_hashes(get_code: Callable[[str], Any], token: str, admin_module: str) -> dict[str, str]:
    """The record's ``code_hashes``: {"token": ..., "admin_module": ...} of the code `get_code` reads on-chain
    (the token's code includes its immutables: the admin module's address and its EIP-712 domain)."""
    return {"token": code_hash(get_code(str(token))), "admin_module": code_hash(get_code(str(admin_module)))}


def make_record(
    *,
    network: str,
    chain_id: int,
    deployed: Any,
    deployer: str,
    admin: str,
    admin_transfer_delay: int,
    block_timestamp: int,
    project: Any,
    contracts_dir: Path | str = CONTRACTS_DIR,
) -> dict[str, Any]:
    """The record of a deployment; `deployed` is :class:`deposit_token.chain.contracts.Deployed` (its contract's
    provider reads the deployed code for ``code_hashes``)."""
    get_code = deployed.token.provider.get_code
    return {
        "format": RECORD_FORMAT,
        "network": network,
        "chain_id": int(chain_id),
        "token": str(deployed.token.address),
        "admin_module": str(deployed.module_address),
        "code_hashes": code_hashes(get_code, str(deployed.token.address), str(deployed.module_address)),
        "deployer": str(deployer),
        "admin": str(admin),
        "admin_transfer_delay": int(admin_transfer_delay),
        "transactions": {"admin_module": _hex(deployed.module_tx), "token": _hex(deployed.token_tx)},
        "block": {"number": int(deployed.block), "timestamp": int(block_timestamp), "time": utc_iso(block_timestamp)},
        "compiler": compiler_info(project),
        "sources": {"sha256": source_hash(contracts_dir), "files": len(source_files(contracts_dir))},
        "dependencies": dependency_versions(project),
        "package_version": package_version(),
        "written_at": utc_iso(),
    }


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text
