"""One network name and one --db rule for every command, and `audit verify` on a node without old state
(issue 7, bugs 3.1, 3.2 and 3.6), on real Anvil processes and real SQLite files.

* 3.1: ape names the pilot network `ethereum:pilot:http://127.0.0.1:8545` once its URI is configured, and the
  commands that connect wrote `deployments/ethereum-pilot-http___...json` while the ones that do not looked
  for `ethereum-pilot-node`. `deployment.network_name` names both `ethereum:pilot:node`.
* 3.2: a node restarted from its saved state (`network down` + `network up`), or loaded from an
  `anvil_dumpState`, answers no state query before the block it was loaded at; verify skips those facts and
  says so in one sentence, and reports how far the database is behind the head.
* 3.6: `--db PATH` (a plain file path) is a SQLite file for every audit command.
"""

from __future__ import annotations

import gzip
import importlib
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from support.system import MONDAY_10, pay, set_time

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.audit.verify import earliest_state_block, verify
from deposit_token.chain import deployment
from deposit_token.chain import node as net
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.sandbox import throwaway_node
from deposit_token.cli.audit import discover
from deposit_token.paths import ROOT
from deposit_token.processes import free_port

PILOT = "ethereum:pilot:node"
LOCAL = "ethereum:local:foundry"


def load_script(name: str):
    module = importlib.import_module(f"deposit_token.cli.{name}")
    return module.cli


def ape_run(script: str, *args: str, env: dict[str, str], timeout: int = 240) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape if ape.exists() else "ape"), "run", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


# --- 3.1: one naming rule ------------------------------------------------------------------------------------


def test_network_name_of_ape_provider_objects(networks):
    """ape's own `network_choice` differs between the pilot network with and without a configured URI; the
    project's name does not. An ad-hoc URI stays its own name (each URI may be another chain)."""
    pilot = networks.get_provider_from_choice(PILOT)
    assert pilot.network_choice.startswith("ethereum:pilot:http")  # what deploy used to name the file by
    assert deployment.network_name(pilot) == PILOT
    other_port = networks.get_provider_from_choice("ethereum:pilot:http://127.0.0.1:9545")
    assert deployment.network_name(other_port) == PILOT
    assert deployment.network_name(networks.get_provider_from_choice(LOCAL)) == LOCAL
    assert deployment.network_name(networks.provider) == LOCAL  # the session's connected Anvil
    adhoc = networks.get_provider_from_choice("http://127.0.0.1:9545")
    assert deployment.network_name(adhoc) == "http://127.0.0.1:9545"
    for choice, name in (
        (PILOT, PILOT),
        ("ethereum:pilot", PILOT),
        ("ethereum:pilot:http://127.0.0.1:1", PILOT),
        (LOCAL, LOCAL),
        ("ethereum:local", LOCAL),
        ("http://127.0.0.1:1", "http://127.0.0.1:1"),
    ):
        assert deployment.network_name_of_choice(choice) == name, choice
    assert deployment.record_path(PILOT, "/r") == Path("/r/ethereum-pilot-node.json")
    with pytest.raises(ValueError, match="unknown network 'ethereum:nowhere:node'") as err:
        deployment.network_name_of_choice("ethereum:nowhere:node")
    assert "\n" not in str(err.value)


def test_read_commands_refuse_an_unknown_network_in_one_sentence(tmp_path):
    result = CliRunner().invoke(load_script("audit"), ["report", "--network", "nowhere:x:y"])
    assert result.exit_code == 2 and "unknown network 'nowhere:x:y'" in result.output
    assert "Traceback" not in result.output


# --- 3.6: one --db rule ----------------------------------------------------------------------------------------


def test_database_url_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store.database_url("audit.sqlite") == f"sqlite:///{tmp_path / 'audit.sqlite'}"
    assert store.database_url(" ~/a.sqlite ") == f"sqlite:///{Path('~/a.sqlite').expanduser()}"
    for url in ("sqlite:///x/a.sqlite", "postgresql://u@h:5432/d"):
        assert store.database_url(url) == url
    assert store.parse_db_url("audit.sqlite").database == str(tmp_path / "audit.sqlite")
    for bad, reason in (("", "--db is empty"), ("mysql://u@h/d", "unsupported database")):
        with pytest.raises(store.DatabaseError, match=reason):
            store.parse_db_url(bad)


def test_every_audit_command_takes_a_plain_path_as_a_sqlite_file(tmp_path):
    """Each command's own --db option (as click parses it): the same URL for the same plain path."""
    plain = tmp_path / "audit.sqlite"
    commands: dict[str, click.Command] = {}
    for command in discover():  # a group's own subcommands (audit users add|...) each take --db
        subcommands = command.commands if isinstance(command, click.Group) else {"": command}
        commands.update({f"{command.name} {sub}".strip(): each for sub, each in subcommands.items()})
    assert {"index", "verify", "report", "flags", "export", "public", "serve", "users add"} <= set(commands)
    for name, command in commands.items():
        [option] = [p for p in command.params if "--db" in p.opts]
        ctx = click.Context(command)
        assert option.process_value(ctx, str(plain)) == f"sqlite:///{plain}", name
        assert option.process_value(ctx, f"sqlite:///{plain}") == f"sqlite:///{plain}", name
        with pytest.raises(Exception, match="unsupported database"):
            option.process_value(ctx, "mysql://u@h/d")
    assert not plain.exists()  # parsing an option creates nothing


# --- 3.1 + 3.2 + 3.6 end to end on a pilot-like node ----------------------------------------------------------


@pytest.fixture
def pilot_env(tmp_path) -> dict[str, str]:
    env = dict(
        os.environ,
        **{deployment.DEPLOYMENTS_ENV: str(tmp_path / "deployments"), store.AUDIT_DIR_ENV: str(tmp_path / "audit")},
    )
    env.pop("APE_FOUNDRY_HOST", None)
    return env


def test_pilot_deploy_index_report_status_and_verify_after_a_restart(tmp_path, pilot_env, monkeypatch):
    """deploy, index and verify reach the node by URI (as on a pilot chain on another port); report and
    network status are given `ethereum:pilot:node`: all of them use ethereum-pilot-node. Then the node is
    stopped and resumed: verify skips what it cannot read (and says so), index catches up, verify checks all."""
    for name in (deployment.DEPLOYMENTS_ENV, store.AUDIT_DIR_ENV):
        monkeypatch.setenv(name, pilot_env[name])
    with throwaway_node(state_interval=1) as config:
        choice = f"ethereum:pilot:{config.rpc_url}"
        deployed = ape_run("deploy", "--network", choice, "--account", "TEST::0", "--admin-delay", "60", env=pilot_env)
        assert deployed.returncode == 0, output_of(deployed)
        record = tmp_path / "deployments" / "ethereum-pilot-node.json"
        assert sorted(p.name for p in record.parent.iterdir()) == [record.name]
        assert deployment.load_record(record)["network"] == PILOT

        indexed = ape_run("audit", "index", "--network", choice, "--confirmations", "0", env=pilot_env)
        assert indexed.returncode == 0, output_of(indexed)
        database = tmp_path / "audit" / "ethereum-pilot-node.sqlite"
        assert sorted(p.name for p in database.parent.iterdir() if p.suffix == ".sqlite") == [database.name]

        runner = CliRunner()
        report = runner.invoke(load_script("audit"), ["report", "--network", PILOT, "--format", "json"])
        assert report.exit_code == 0, report.output
        status = runner.invoke(
            load_script("network"),
            ["status", "--data-dir", str(config.data_dir), "--port", str(config.port), "--network", choice],
        )
        assert status.exit_code == 0, status.output
        token = deployment.load_record(record)["token"]
        assert token in status.output and "No deployment recorded" not in status.output

        rpc = RpcClient(config.rpc_url)
        wait_for_blocks(rpc, 2)  # the database's block is no longer the head: the resumed node has no state there
        net.stop(config)
        net.start(config)
        # the database's block is older than what the resumed node holds state for; a plain --db path
        verified = ape_run("audit", "verify", "--network", choice, "--db", str(database), env=pilot_env)
        out = output_of(verified)
        assert verified.returncode == 0, out
        assert "Traceback" not in out and "BlockOutOfRange" not in out
        assert "node has no state before block" in out and "facts skipped" in out
        assert "blocks behind" in out

        caught_up = ape_run(
            "audit", "index", "--network", choice, "--confirmations", "0", "--db", str(database), env=pilot_env
        )
        assert caught_up.returncode == 0, output_of(caught_up)
        verified = ape_run("audit", "verify", "--network", choice, "--db", str(database), env=pilot_env)
        out = output_of(verified)
        assert verified.returncode == 0 and "OK" in out and "skipped" not in out, out


def wait_for_blocks(rpc: RpcClient, count: int, timeout: float = 20.0) -> None:
    """Waits until the interval-mining node has mined `count` more blocks."""
    start, deadline = rpc.block_number(), time.monotonic() + timeout
    while rpc.block_number() < start + count:
        assert time.monotonic() < deadline, "the node mines no blocks"
        time.sleep(0.2)


# --- 3.2: past periods on a node that lost its history ----------------------------------------------------------


@pytest.fixture
def loaded_copy(chain, tmp_path):
    """A fresh Anvil loaded with the session chain's state (`anvil_dumpState`): the same blocks and current
    state, but no state at older blocks, as a node resumed after `network down` + `network up`."""
    dumped = chain.provider.make_request("anvil_dumpState", [])
    state = tmp_path / "state.json"
    state.write_bytes(gzip.decompress(bytes.fromhex(dumped[2:])))
    port = free_port()
    anvil = net.find_anvil()
    process = subprocess.Popen(
        [anvil, "--port", str(port), "--load-state", str(state), "--chain-id", str(chain.chain_id), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rpc = RpcClient(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc.block_number()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                assert time.monotonic() < deadline and process.poll() is None, "the loaded Anvil did not start"
                time.sleep(0.2)
        yield rpc
    finally:
        rpc.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def two_periods(system, chain):
    """Payments in two spending periods, so that verify reads the first one at an old block."""
    p = system.people
    s0, s1 = p.spenders[:2]
    set_time(chain, MONDAY_10 + timedelta(hours=2))
    pay(system, s0, p.restaurant, 40_000)
    pay(system, s1, p.cafe, 15_000)
    set_time(chain, MONDAY_10 + timedelta(days=35))  # the next month: a new period
    pay(system, s0, p.restaurant, 25_000)
    chain.mine()
    return system


def test_verify_skips_past_periods_a_node_cannot_read(two_periods, chain, networks, tmp_path, request):
    token = str(two_periods.token.address)
    session = RpcClient(networks.provider.uri)
    engine = store.open_database(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    try:
        Indexer(session, engine, IndexerConfig(token=token, start_block=0, confirmations=0)).run()
        full = verify(session, engine, token)  # the session's node has every block's state
        assert full.ok and full.skipped == 0 and full.skipped_note is None
        assert full.lag_note == f"database at block {full.block}, chain head {full.head}: 0 blocks behind"

        copy = request.getfixturevalue("loaded_copy")
        head = copy.block_number()
        assert earliest_state_block(copy, token, 0, head) == head
        partial = verify(copy, engine, token)
        assert partial.ok, partial.mismatches
        assert partial.skipped > 0 and partial.checks < full.checks
        assert partial.skipped_note == (
            f"past periods not checkable: node has no state before block {head}; "
            f"{partial.skipped} fact{'s' if partial.skipped > 1 else ''} skipped"
        )
    finally:
        session.close()
        engine.dispose()
