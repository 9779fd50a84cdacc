"""Deployment records and the deploy script, against the Anvil that `ape test` runs (no mocked chain).

Records go to pytest's tmp_path, never to the repository's deployments/. The end-to-end tests run
`ape run deploy` in a subprocess: one starts its own Anvil (as an operator would), the others reach the test
session's Anvil through APE_FOUNDRY_HOST so that their effects are undone by ape's per-test isolation.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from ape import project
from click.testing import CliRunner

import deposit_token
from deposit_token.chain import deployment
from deposit_token.chain.contracts import TOKEN_NAME, deploy_system, token_at
from deposit_token.paths import ROOT

LOCAL = "ethereum:local:foundry"


# --- helpers ---------------------------------------------------------------------------------------------------


def deploy_and_record(path: Path, provider, chain, sender, admin=None, delay: int = 0) -> dict:
    deployed = deploy_system(sender, admin=admin, admin_transfer_delay=delay)
    record = deployment.make_record(
        network=provider.network_choice,
        chain_id=provider.chain_id,
        deployed=deployed,
        deployer=sender.address,
        admin=admin or sender.address,
        admin_transfer_delay=delay,
        block_timestamp=chain.blocks[deployed.block].timestamp,
        project=project,
        contracts_dir=project.contracts_folder,
    )
    deployment.write_record(path, record)
    return record


def ape_run(*args: str, deployments_dir: Path, host: str | None = None, timeout: int = 180, **env_extra: str):
    ape = Path(sys.executable).with_name("ape")
    env = dict(os.environ, **{deployment.DEPLOYMENTS_ENV: str(deployments_dir)}, **env_extra)
    env.pop("APE_FOUNDRY_HOST", None)
    if host is not None:
        env["APE_FOUNDRY_HOST"] = host
    return subprocess.run(
        [str(ape if ape.exists() else "ape"), "run", "deploy", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


@pytest.fixture
def provider(networks):
    return networks.provider


@pytest.fixture
def path(tmp_path) -> Path:
    return deployment.record_path(LOCAL, tmp_path / "deployments")


# --- file names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "choice, name",
    [
        ("ethereum:local:foundry", "ethereum-local-foundry.json"),
        ("ethereum:mainnet-fork:foundry", "ethereum-mainnet_fork-foundry.json"),
        ("Ethereum:Sepolia:node", "ethereum-sepolia-node.json"),
        ("ethereum:local:http://127.0.0.1:8545", "ethereum-local-http___127.0.0.1_8545.json"),
        ("http://127.0.0.1:8545", "http___127.0.0.1_8545.json"),
        ("../../etc:passwd:x", "_._.._etc-passwd-x.json"),
    ],
)
def test_record_path_maps_network_choice_to_a_safe_file_name(tmp_path, choice, name):
    path = deployment.record_path(choice, tmp_path)
    assert path == tmp_path / name
    assert path.parent == tmp_path


def test_record_path_rejects_empty_parts_and_honours_env(tmp_path, monkeypatch):
    for bad in ("", "ethereum::foundry", "ethereum:local:"):
        with pytest.raises(ValueError):
            deployment.record_path(bad, tmp_path)
    monkeypatch.delenv(deployment.DEPLOYMENTS_ENV, raising=False)
    assert deployment.record_path(LOCAL) == ROOT / "deployments" / "ethereum-local-foundry.json"
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(tmp_path))
    assert deployment.record_path(LOCAL) == tmp_path / "ethereum-local-foundry.json"


# --- source hash ---------------------------------------------------------------------------------------------------


def _write(root: Path, relative: str, text: str) -> None:
    file = root / relative
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)


def test_source_hash_is_stable_and_tracks_sources(tmp_path):
    root = tmp_path / "a" / "contracts"
    _write(root, "token/Token.sol", "contract Token {}\n")
    _write(root, "libraries/Lib.sol", "library Lib {}\n")
    _write(root, "test/Mock.sol", "contract Mock {}\n")
    _write(root, ".cache/openzeppelin/ERC20.sol", "contract ERC20 {}\n")
    _write(root, "NOTES.md", "not a source\n")
    first = deployment.source_hash(root)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert deployment.source_hash(root) == first
    assert [p.relative_to(root).as_posix() for p in deployment.source_files(root)] == [
        "libraries/Lib.sol",
        "token/Token.sol",
    ]

    copy = tmp_path / "elsewhere" / "contracts"  # the checkout's location does not matter
    shutil.copytree(root, copy)
    assert deployment.source_hash(copy) == first

    _write(root, "test/Mock.sol", "contract Mock { uint x; }\n")  # excluded folders do not count
    _write(root, ".cache/openzeppelin/ERC20.sol", "contract ERC20 { uint x; }\n")
    _write(root, "NOTES.md", "edited\n")
    assert deployment.source_hash(root) == first

    _write(root, "token/Token.sol", "contract Token { }\n")  # one byte of a source
    edited = deployment.source_hash(root)
    assert edited != first
    (root / "token/Token.sol").rename(root / "token/Token2.sol")  # same content, other path
    assert deployment.source_hash(root) not in (first, edited)
    _write(root, "token/Token2.sol", "contract Token {}\n")
    _write(root, "token/Extra.sol", "")  # a new (even empty) file
    assert deployment.source_hash(root) not in (first, edited)


def test_source_hash_of_the_project_excludes_test_contracts():
    files = deployment.source_files(project.contracts_folder)
    names = {p.relative_to(project.contracts_folder).parts[0] for p in files}
    assert "test" not in names and ".cache" not in names
    assert any(p.name == "DepositToken.sol" for p in files)
    assert deployment.source_hash(project.contracts_folder) == deployment.source_hash(ROOT / "contracts")


# --- records of real deployments -------------------------------------------------------------------------------


def test_record_has_every_field_with_the_chain_values(path, provider, chain, accounts):
    deployer, admin = accounts[0], accounts[1]
    record = deploy_and_record(path, provider, chain, deployer, admin=admin.address, delay=3600)
    loaded = deployment.load_record(path)
    assert loaded == record
    assert path.name == "ethereum-local-foundry.json"
    assert leftovers(path.parent) == []

    assert loaded["network"] == LOCAL == provider.network_choice
    assert loaded["chain_id"] == chain.chain_id == 31337
    for key in ("token", "admin_module"):
        assert deployment.has_code(provider, loaded[key]), key
    assert loaded["deployer"] == deployer.address
    assert loaded["admin"] == admin.address
    assert loaded["admin_transfer_delay"] == 3600

    module_receipt = chain.get_receipt(loaded["transactions"]["admin_module"])
    token_receipt = chain.get_receipt(loaded["transactions"]["token"])
    assert module_receipt.contract_address == loaded["admin_module"]
    assert token_receipt.contract_address == loaded["token"]
    assert module_receipt.sender == token_receipt.sender == deployer.address
    assert loaded["block"]["number"] == token_receipt.block_number
    assert loaded["block"]["timestamp"] == chain.blocks[token_receipt.block_number].timestamp
    assert (
        datetime.fromisoformat(loaded["block"]["time"].replace("Z", "+00:00")).timestamp()
        == loaded["block"]["timestamp"]
    )

    token = token_at(loaded["token"])
    assert token.name() == TOKEN_NAME
    assert token.hasRole(token.DEFAULT_ADMIN_ROLE(), admin.address)
    assert not token.hasRole(token.DEFAULT_ADMIN_ROLE(), deployer.address)

    compiler = loaded["compiler"]
    solidity = project.config.solidity
    assert compiler["name"] == "solidity"
    assert compiler["version"].startswith("0.8.30+commit.")
    assert compiler["build"] in ("native", "solc-js")
    assert (
        compiler["settings"]
        == {
            "via_ir": solidity.via_ir is True,
            "optimizer_enabled": True,
            "optimizer_runs": solidity.optimization_runs,
            "evm_version": solidity.evm_version,
        }
        == {"via_ir": True, "optimizer_enabled": True, "optimizer_runs": 200, "evm_version": "paris"}
    )
    assert loaded["sources"]["sha256"] == deployment.source_hash(ROOT / "contracts")
    assert loaded["sources"]["files"] == len(deployment.source_files(ROOT / "contracts"))
    assert loaded["dependencies"] == {"openzeppelin": "5.4.0", "openzeppelin-upgradeable": "5.4.0"}
    assert loaded["package_version"] == deposit_token.__version__
    written = datetime.fromisoformat(loaded["written_at"].replace("Z", "+00:00"))
    assert written.utcoffset().total_seconds() == 0


def test_live_deployment_is_not_overwritten(path, provider, chain, accounts):
    record = deploy_and_record(path, provider, chain, accounts[0])
    before = path.read_bytes()
    with pytest.raises(deployment.LiveDeploymentError) as refused:
        deployment.check_can_deploy(path, provider)
    message = str(refused.value)
    assert str(path) in message
    assert record["token"] in message
    assert str(chain.chain_id) in message
    assert "--force" in message
    assert path.read_bytes() == before


def test_force_overwrites_a_live_deployment(path, provider, chain, accounts):
    first = deploy_and_record(path, provider, chain, accounts[0])
    check = deployment.check_can_deploy(path, provider, force=True)
    assert check.existing == first and "--force" in check.reason
    second = deploy_and_record(path, provider, chain, accounts[0])
    assert second["token"] != first["token"]
    assert deployment.load_record(path)["token"] == second["token"]
    assert leftovers(path.parent) == []


def test_record_without_code_is_overwritten(path, provider, chain, accounts):
    """A dev chain that was restarted: the recorded address is empty again, so deploying is allowed."""
    snapshot = chain.snapshot()
    first = deploy_and_record(path, provider, chain, accounts[0])
    chain.restore(snapshot)
    assert not deployment.has_code(provider, first["token"])
    check = deployment.check_can_deploy(path, provider)
    assert check.existing == first
    assert "no code" in check.reason and first["token"] in check.reason
    second = deploy_and_record(path, provider, chain, accounts[0])
    assert deployment.load_record(path) == second
    assert second["written_at"] >= first["written_at"]


def test_record_of_another_chain_is_replaced(path, provider, chain, accounts):
    record = deploy_and_record(path, provider, chain, accounts[0])
    deployment.write_record(path, dict(record, chain_id=1))
    check = deployment.check_can_deploy(path, provider)
    assert "chain id 1" in check.reason and str(chain.chain_id) in check.reason


def test_no_record_and_unreadable_record(path, provider):
    assert deployment.check_can_deploy(path, provider).existing is None
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    with pytest.raises(deployment.LiveDeploymentError, match="not valid JSON"):
        deployment.check_can_deploy(path, provider)
    assert "--force" in deployment.check_can_deploy(path, provider, force=True).reason


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "ethereum-local-foundry.json"
    deployment.write_record(path, {"token": "0x" + "11" * 20, "n": 1})
    deployment.write_record(path, {"token": "0x" + "22" * 20, "n": 2})
    assert deployment.load_record(path) == {"token": "0x" + "22" * 20, "n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    blocked = tmp_path / "blocked.json"  # the rename fails: a folder is in the way
    blocked.mkdir()
    with pytest.raises(OSError):
        deployment.write_record(blocked, {"token": "0x" + "33" * 20})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.json", path.name]
    assert list(blocked.iterdir()) == []


# --- the script ----------------------------------------------------------------------------------------------------


def _load_script():
    module = importlib.import_module("deposit_token.cli.deploy")
    return module


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--admin", "0x1234"], "is not an address"),
        (["--admin", "0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266".lower()[:-1] + "G"], "is not an address"),
        (["--admin", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267"], "checksum"),
        (["--admin", "0x" + "00" * 20], "zero address"),
        (["--admin-delay", "-1"], "--admin-delay"),
        (["--admin-delay", "soon"], "--admin-delay"),
    ],
)
def test_bad_input_is_a_click_error_and_deploys_nothing(tmp_path, chain, args, problem):
    """Parsed in-process (nothing connects: the options fail before the command runs)."""
    height = chain.blocks.height
    result = CliRunner().invoke(
        _load_script().cli, ["--network", LOCAL, *args], env={deployment.DEPLOYMENTS_ENV: str(tmp_path)}
    )
    assert result.exit_code == 2, result.output
    assert problem in result.output
    assert "Traceback" not in result.output
    assert chain.blocks.height == height
    assert list(tmp_path.iterdir()) == []


def test_script_help_documents_every_option(tmp_path):
    result = ape_run("--help", deployments_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--network", "--account", "--admin", "--admin-delay", "--force"):
        assert option in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_script_deploys_on_its_own_anvil(tmp_path):
    """What an operator runs: ape-foundry starts a fresh Anvil for the subprocess and stops it afterwards."""
    result = ape_run("--network", LOCAL, "--admin-delay", "60", deployments_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    path = tmp_path / "ethereum-local-foundry.json"
    record = deployment.load_record(path)
    assert record["network"] == LOCAL and record["chain_id"] == 31337
    assert record["admin_transfer_delay"] == 60
    assert record["deployer"] == record["admin"]
    assert record["token"] in result.stdout and "Deposit token deployed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# ape-foundry's "auto" host draws Anvil's port at random without checking it: here every draw lands on a port
# already held (before the commands asked the OS for a free port, Anvil exited at once and ape waited for it). And
# the first port the OS gives is taken again before Anvil binds it, as on a busy machine: ape gives up after 20 s,
# and the command starts Anvil again on another port.
UNLUCKY_PORTS = """
import types
import ape_foundry.provider
import deposit_token.cli.common

ape_foundry.provider.random = types.SimpleNamespace(randint=lambda low, high: {drawn})
ports = [{taken}]
free_port = deposit_token.cli.common.free_port
deposit_token.cli.common.free_port = lambda: ports.pop() if ports else free_port()
"""


def test_an_own_anvil_gets_a_free_port_and_another_start_if_it_does_not_answer(tmp_path):
    with socket.socket() as drawn, socket.socket() as taken:
        drawn.bind(("127.0.0.1", 0))
        drawn.listen()
        taken.bind(("127.0.0.1", 0))  # bound, not listening: Anvil cannot bind it and nothing answers there
        patch = tmp_path / "patch"
        patch.mkdir()
        ports = {"drawn": drawn.getsockname()[1], "taken": taken.getsockname()[1]}
        (patch / "sitecustomize.py").write_text(UNLUCKY_PORTS.format(**ports))
        deployments = tmp_path / "deployments"
        deployments.mkdir()
        result = ape_run("--network", LOCAL, deployments_dir=deployments, timeout=90, PYTHONPATH=str(patch))
    assert result.returncode == 0, result.stdout + result.stderr
    assert deployment.load_record(deployments / "ethereum-local-foundry.json")["chain_id"] == 31337


def test_script_refuses_live_deployment_of_the_session_chain(path, provider, chain, accounts):
    record = deploy_and_record(path, provider, chain, accounts[0])
    before = path.read_bytes()
    height = chain.blocks.height
    result = ape_run("--network", LOCAL, deployments_dir=path.parent, host=provider.uri)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert str(path) in output and record["token"] in output and "refusing" in output
    assert "Traceback" not in output
    assert path.read_bytes() == before
    assert chain.blocks.height == height


def test_script_reports_a_failed_transaction_in_one_line(tmp_path, provider, chain, accounts):
    deployer = accounts[0]
    deployer.balance = 0  # the first test account cannot pay for gas; undone by ape's test isolation
    result = ape_run("--network", LOCAL, deployments_dir=tmp_path, host=provider.uri)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    # ape rejects it before sending (AccountsError: balance) or Anvil fails gas estimation (TransactionError)
    assert len(errors) == 1 and re.match(r"Error: deployment failed: \w+Error: ", errors[0]), output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_script_off_dev_networks_needs_an_account_and_warns_of_no_delay(tmp_path, provider, chain):
    """The session's Anvil reached by its URI is an ad-hoc, non-dev network: no default test account, and a
    zero admin-transfer delay is warned about."""
    result = ape_run("--network", provider.uri, deployments_dir=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "--account is required" in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []

    result = ape_run("--network", provider.uri, "--account", "TEST::0", deployments_dir=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning: --admin-delay is 0" in output
    path = deployment.record_path(provider.uri, tmp_path)
    assert path.name.startswith("http___127.0.0.1_")
    record = deployment.load_record(path)
    assert record["network"] == provider.uri and record["chain_id"] == chain.chain_id
    assert deployment.has_code(provider, record["token"])


def test_script_reports_an_unreachable_node_in_one_line(tmp_path):
    """Nothing listens on the discard port: the connection error is one line, not a traceback."""
    result = ape_run("--network", "http://127.0.0.1:9", "--account", "TEST::0", deployments_dir=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "127.0.0.1:9" in errors[0], output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []
