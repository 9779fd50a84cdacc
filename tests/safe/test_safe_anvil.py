"""Dual control through Safes (issue 11) on the test session's Anvil: the Safe v1.4.1 contracts from npm are
deployed, the token's operational roles handed to three 2-of-3 Safes (issuer, compliance, budget office) and
taken from the EOAs, and the admin role handed to a 2-of-3 admin Safe by the two-step handover. Every privileged
command is then proposed (`--propose`), signed by owners (`ape run safe sign`) and executed (`safe execute`),
in-process through click, as treasury teams run them. Refusals are one sentence, exit 1, and change nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_utils import keccak
from support.system import PROGRAM_END, PROGRAM_START, ts
from support.treasury import Cli, fresh

from deposit_token.chain import deployment
from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.rpc import RpcClient, RpcError
from deposit_token.chain.submit import LocalSigner, Submitter, encode_call
from deposit_token.cli import safe as safe_command
from deposit_token.ops.multisig import artifacts, config, proposal, safes, words

OWNERS = {"issuer": (22, 23, 24), "compliance": (25, 26, 27), "budget-office": (28, 29, 30), "admin": (31, 32, 33)}
ROLES = {
    "issuer": ["issuer"],
    "compliance": ["compliance"],
    "budget-office": ["program-manager", "vendor-registrar"],
    "admin": ["admin"],
}
LARGE_ABOVE = 100_000_000  # KRW: the budget office's Safe pays disbursal files above this
EXECUTOR = "TEST::7"  # an outsider: anyone may send a fully signed Safe transaction


@pytest.fixture(scope="module")
def deployed(system, accounts, chain, networks):
    """The Safe contracts and four Safes on the session's Anvil, with the roles handed over (the EOAs' revoked)."""
    uri = networks.provider.uri
    admin = LocalSigner.from_account(system.people.admin)
    people = system.people
    with Submitter(uri, chain.chain_id) as submitter:
        infra = safes.deploy_infrastructure(submitter, admin)
        content = {
            "safes": {
                name: {
                    "owners": [accounts[i].address for i in OWNERS[name]],
                    "threshold": 2,
                    "roles": ROLES[name],
                    **({"mint_allowance": "5,000,000,000"} if name == "issuer" else {}),
                }
                for name in OWNERS
            },
            "policy": {"large_disbursal": {"above": "100,000,000", "safe": "budget-office"}},
        }
        settings = config.parse(content)
        made = [
            config.DeployedSafe(spec, safes.create_safe(submitter, admin, infra, spec.owners, spec.threshold, n))
            for n, spec in enumerate(settings.safes)
        ]
        config.hand_over(
            submitter,
            system.token.address,
            system_contract_type(),
            admin,
            made,
            revoke_from=[
                people.issuer.address,
                people.manager.address,
                people.registrar.address,
                people.compliance.address,
            ],
        )
        with RpcClient(uri) as rpc:
            record_safes = infra.as_record(rpc)
    return {"infra": infra, "record": record_safes, "safes": {s.spec.name: s for s in made}}


@pytest.fixture
def cli(deployed, system, chain, networks, tmp_path, monkeypatch) -> Cli:
    uri = networks.provider.uri
    folder = tmp_path / "deployments"
    record = {
        "token": system.token.address,
        "chain_id": chain.chain_id,
        "network": uri,
        "block": {"number": 0},
        "safe_contracts": deployed["record"],
        "safes": {name: s.as_record() for name, s in deployed["safes"].items()},
        "policy": {"large_disbursal": {"above": LARGE_ABOVE, "safe": "budget-office"}},
    }
    deployment.write_record(deployment.record_path(uri, folder), record)
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(folder))
    return Cli(uri, folder, chain)


def safe(*args: str):
    return CliRunner().invoke(safe_command.cli, list(args))


def owners(name: str) -> list[str]:
    return [f"TEST::{i}" for i in OWNERS[name]]


def through_safe(cli: Cli, tmp_path: Path, name: str, *args: str, signers: int = 2) -> Path:
    """Proposes `args` (a treasury command) to the Safe of its role, signs it by `signers` owners, executes it."""
    path = tmp_path / f"op-{abs(hash(args))}.json"
    result = cli(*args, "--propose", str(path))
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    for owner in owners(name)[:signers]:
        signed = safe("sign", str(path), "--account", owner)
        assert signed.exit_code == 0, signed.output
    done = safe("execute", str(path), "--account", EXECUTOR)
    assert done.exit_code == 0, done.output
    return path


def line(result) -> str:
    return " ".join(result.output.split())


# --- the contracts -------------------------------------------------------------------------------------------------


def test_the_npm_code_runs_on_paris_and_is_what_was_deployed(deployed, networks):
    artifacts.check_paris()
    with RpcClient(networks.provider.uri) as rpc:
        for name, address in vars(deployed["infra"]).items():
            assert artifacts.is_release_code(name, rpc.code(address), address), name
            assert deployed["record"][name] == address
        state = safes.read_safe(rpc, deployed["safes"]["issuer"].address)
    assert state.version == "1.4.1" and state.threshold == 2 and len(state.owners) == 3
    assert artifacts.later_opcodes(bytes.fromhex("5f00")) == ["PUSH0"]  # the check sees what it looks for


def test_safe_tx_hash_is_the_contracts_own(deployed, system, chain, networks):
    address = deployed["safes"]["issuer"].address
    with RpcClient(networks.provider.uri) as rpc:
        for nonce, data in ((0, b""), (7, b"\x01" * 100), (2**40, encode_call(system_contract_type(), "pause", []))):
            tx = proposal.SafeTx(safe=address, chain_id=chain.chain_id, to=system.token.address, data=data, nonce=nonce)
            assert tx.hash() == safes.contract_tx_hash(rpc, tx)
        odd = proposal.SafeTx(
            safe=address,
            chain_id=chain.chain_id,
            to=fresh("to"),
            data=b"\xff",
            nonce=3,
            value=5,
            operation=1,
            safe_tx_gas=10,
            base_gas=20,
            gas_price=30,
            gas_token=fresh("gas token"),
            refund_receiver=fresh("refund"),
        )
        assert odd.hash() == safes.contract_tx_hash(rpc, odd)


# --- issuance through the issuer's Safe --------------------------------------------------------------------------


def test_issue_is_proposed_shown_signed_and_executed(cli, system, tmp_path):
    treasury = system.people.treasury.address
    before = int(system.token.balanceOf(treasury))
    path = tmp_path / "mint.json"
    result = cli("issue", "1,000,000", "--to", treasury, "--propose", str(path))
    assert result.exit_code == 0, result.output
    assert f"mint 1,000,000 KRW into treasury {treasury}" in line(result)
    assert int(system.token.balanceOf(treasury)) == before  # proposed, not sent

    shown = safe("show", str(path))
    assert shown.exit_code == 0, shown.output
    text = line(shown)
    assert f"mint 1,000,000 KRW into treasury {treasury}" in text
    assert "2 of 3 owners" in text and "nobody yet" in text and "it would succeed" in text

    first, second, third = owners("issuer")
    assert safe("sign", str(path), "--account", first).exit_code == 0
    below = safe("execute", str(path), "--account", EXECUTOR)
    assert below.exit_code == 1 and "1 more signature(s) needed" in line(below)
    assert int(system.token.balanceOf(treasury)) == before

    # An owner that executes counts as approving: one signature plus the executing owner is 2 of 3.
    done = safe("execute", str(path), "--account", third)
    assert done.exit_code == 0, done.output
    assert int(system.token.balanceOf(treasury)) == before + 1_000_000

    again = safe("execute", str(path), "--account", second)
    assert again.exit_code == 1 and "cannot run twice" in line(again)
    assert int(system.token.balanceOf(treasury)) == before + 1_000_000


def test_a_single_owner_cannot_mint_grant_pause_or_claw_back(cli, system):
    spender = system.people.spenders[0].address
    treasury = system.people.treasury.address
    for args, role in (
        (("issue", "1,000", "--to", treasury), "issuer"),
        (("pause",), "compliance"),
        (("clawback", spender, "1,000", "--reason", "test"), "compliance"),
        (("role", "grant", "issuer", fresh("someone")), "admin"),
    ):
        for owner in owners(role):  # each owner alone, with its own key
            text = cli.refused(*args, account=owner)
            assert "does not hold" in text or "missing role" in text.lower() or "not the admin" in text, text
    # ... and the EOAs that held the roles before the Safes do not any more
    cli.refused("issue", "1,000", "--to", treasury, account="TEST::1")
    cli.refused("pause", account="TEST::4")


def test_a_proposal_that_would_revert_is_refused_before_signatures(cli, system, tmp_path):
    spender = system.people.spenders[1].address
    balance = int(system.token.balanceOf(spender))
    path = tmp_path / "too-much.json"
    text = cli.refused("clawback", spender, f"{balance + 1:,}", "--reason", "too much", "--propose", str(path))
    assert "KRW" in text and not path.exists()
    # the mint allowance is the issuer Safe's limit, said in the token's own words
    text = cli.refused("issue", "9,000,000,000", "--to", system.people.treasury.address, "--propose", str(path))
    assert "may mint" in text and not path.exists()


def test_a_proposal_that_became_invalid_is_not_signed_or_executed(cli, system, tmp_path):
    spender = system.people.spenders[2].address
    path = tmp_path / "clawback.json"
    assert cli("clawback", spender, "1,000", "--reason", "audit finding", "--propose", str(path)).exit_code == 0
    assert "claw back 1,000 KRW from spender" in line(safe("show", str(path)))
    # meanwhile compliance claws back the whole balance through another proposal at the same nonce
    whole = int(system.token.balanceOf(spender))
    other = tmp_path / "whole.json"
    assert cli("clawback", spender, f"{whole:,}", "--reason", "all", "--propose", str(other)).exit_code == 0
    for owner in owners("compliance")[:2]:
        assert safe("sign", str(other), "--account", owner).exit_code == 0
    assert safe("execute", str(other), "--account", EXECUTOR).exit_code == 0
    refused = safe("sign", str(path), "--account", owners("compliance")[0])
    assert refused.exit_code == 1 and "nothing was signed" in line(refused)


def test_a_tampered_proposal_is_refused(cli, system, tmp_path):
    treasury = system.people.treasury.address
    path = tmp_path / "mint.json"
    assert cli("issue", "1,000", "--to", treasury, "--propose", str(path)).exit_code == 0
    assert safe("sign", str(path), "--account", owners("issuer")[0]).exit_code == 0
    content = json.loads(path.read_text())
    amount_1000 = (1000).to_bytes(32, "big").hex()
    content["safe_tx"]["data"] = content["safe_tx"]["data"].replace(amount_1000, (10**9).to_bytes(32, "big").hex())
    path.write_text(json.dumps(content))
    result = safe("show", str(path))
    assert result.exit_code == 1 and "changed after it was written" in line(result)
    # the hash updated too: the owner's signature no longer matches what the file says
    tampered = proposal.SafeTx.from_json(content["safe_tx"])
    content["safe_tx_hash"] = "0x" + tampered.hash().hex()
    path.write_text(json.dumps(content))
    result = safe("execute", str(path), "--account", owners("issuer")[1])
    assert result.exit_code == 1 and "is not a signature of this transaction" in line(result)


def test_replayed_signatures_are_refused_by_the_safe_itself(cli, system, chain, networks, tmp_path):
    treasury = system.people.treasury.address
    path = through_safe(cli, tmp_path, "issuer", "issue", "2,000", "--to", treasury)
    done = proposal.Proposal.read(path)
    executor = system.people.outsider.address
    with RpcClient(networks.provider.uri) as rpc:
        state = safes.read_safe(rpc, done.tx.safe)
        data = safes.call_data(safes.EXEC, *done.tx.exec_args(proposal.pack(done.signatures)))
        with pytest.raises(RpcError) as refused:
            rpc.call("eth_call", [{"from": executor, "to": done.tx.safe, "data": "0x" + data.hex()}, "latest"])
        assert "GS026" in safes.safe_sentence(refused.value.revert_data() or b"")
        assert state.nonce == done.tx.nonce + 1


def test_a_removed_owners_signature_no_longer_counts(cli, system, deployed, chain, networks, tmp_path, accounts):
    issuer_safe = deployed["safes"]["issuer"].address
    first, second, third = (LocalSigner.from_account(accounts[i]) for i in OWNERS["issuer"])
    treasury = system.people.treasury.address
    path = tmp_path / "mint.json"
    assert cli("issue", "3,000", "--to", treasury, "--propose", str(path), "--safe-nonce", "1").exit_code == 0
    assert safe("sign", str(path), "--account", "TEST::22").exit_code == 0
    assert safe("sign", str(path), "--account", "TEST::23").exit_code == 0
    uri = networks.provider.uri
    with RpcClient(uri) as rpc:
        state = safes.read_safe(rpc, issuer_safe)
        index = state.owners.index(first.address)
        previous = safes.SENTINEL_OWNERS if index == 0 else state.owners[index - 1]
        removal = proposal.SafeTx(
            safe=issuer_safe,
            chain_id=chain.chain_id,
            to=issuer_safe,
            data=safes.call_data("removeOwner(address,address,uint256)", previous, first.address, 2),
            nonce=state.nonce,
        )
    remove = proposal.Proposal(removal, ["remove owner"], uri)
    remove.add(proposal.sign(removal, second))
    remove.add(proposal.sign(removal, third))
    assert "remove owner " + first.address in " ".join(words.describe(removal, None))
    safes.execute(uri, remove, LocalSigner.from_account(system.people.outsider))
    before = int(system.token.balanceOf(treasury))
    refused = safe("execute", str(path), "--account", EXECUTOR)
    assert refused.exit_code == 1
    assert "1 of the Safe's owners approved" in line(refused) and "no longer own the Safe" in line(refused)
    shown = safe("show", str(path))
    assert "no longer an owner: does not count" in line(shown)
    assert safe("sign", str(path), "--account", "TEST::22").exit_code == 1  # not an owner any more
    assert safe("sign", str(path), "--account", "TEST::24").exit_code == 0
    assert safe("execute", str(path), "--account", EXECUTOR).exit_code == 0
    assert int(system.token.balanceOf(treasury)) == before + 3_000


# --- every privileged function ---------------------------------------------------------------------------------


def test_every_privileged_function_works_through_a_safe(cli, system, deployed, chain, tmp_path):
    token, people = system.token, system.people
    spender, vendor = people.spenders[3].address, people.cafe.address
    newcomer, new_treasury = fresh("newcomer"), fresh("new treasury")
    issuer_safe = deployed["safes"]["issuer"].address
    start, end = str(ts(PROGRAM_START)), str(ts(PROGRAM_END))

    chain.provider.make_request("evm_increaseTime", [60])  # the handover (delay 0) is acceptable after its block
    chain.mine()
    through_safe(cli, tmp_path, "admin", "role", "handover", "accept")
    assert token.defaultAdmin() == deployed["safes"]["admin"].address
    through_safe(cli, tmp_path, "admin", "allowance", issuer_safe, "7,000,000,000")
    assert int(token.mintAllowance(issuer_safe)) == 7_000_000_000
    through_safe(cli, tmp_path, "admin", "treasury", "register", new_treasury)
    through_safe(cli, tmp_path, "issuer", "issue", "5,000,000", "--to", new_treasury)
    assert int(token.balanceOf(new_treasury)) == 5_000_000
    through_safe(cli, tmp_path, "admin", "role", "grant", "compliance", newcomer)
    assert token.hasRole(keccak(text="COMPLIANCE_ROLE"), newcomer)
    through_safe(cli, tmp_path, "admin", "role", "revoke", "compliance", newcomer)
    assert not token.hasRole(keccak(text="COMPLIANCE_ROLE"), newcomer)

    count = int(token.programCount())
    preset = ("--preset", "business-promotion", "--treasury", new_treasury, "--start", start, "--end", end)
    through_safe(cli, tmp_path, "budget-office", "program", "create", "--name", "BP-SAFE", *preset)
    assert int(token.programCount()) == count + 1 and token.programName(count + 1) == "BP-SAFE"
    through_safe(cli, tmp_path, "budget-office", "program", "update", "BP-SAFE", "--name", "BP-SAFE", *preset)
    official = fresh("official")
    through_safe(cli, tmp_path, "budget-office", "enrol", official, "--program", "BP-SAFE", "--department", "SAFE")
    through_safe(cli, tmp_path, "budget-office", "allocate", official, "100,000", "--program", "BP-SAFE", "--ref", "S1")
    assert int(token.balanceOf(official)) == 100_000
    shop = fresh("shop")
    through_safe(cli, tmp_path, "budget-office", "vendor", "register", shop, "--category", "RESTAURANT", "--name", "S")

    for args in (
        ("vendor", "suspend", vendor, "--reason", "inspection"),
        ("vendor", "reactivate", vendor, "--reason", "cleared"),
        ("freeze", spender, "--reason", "lost phone"),
        ("unfreeze", spender, "--reason", "found"),
        ("clawback", official, "40,000", "--reason", "unspent"),
        ("pause", "--program", "BP-SAFE"),
        ("unpause", "--program", "BP-SAFE"),
        ("pause",),
    ):
        through_safe(cli, tmp_path, "compliance", *args)
    assert token.paused() and int(token.balanceOf(official)) == 60_000
    through_safe(cli, tmp_path, "compliance", "unpause")
    assert not token.paused()
    through_safe(cli, tmp_path, "admin", "role", "handover", "begin", fresh("next admin"))
    through_safe(cli, tmp_path, "admin", "role", "handover", "cancel")


def test_propose_refuses_what_a_safe_cannot_do_in_one_sentence(cli, system, tmp_path):
    path = tmp_path / "x.json"
    text = cli.refused(
        "issue", "1", "--to", system.people.treasury.address, "--propose", str(path), account="TEST::22", code=2
    )
    assert "leave out --account" in text
    text = cli.refused("issue", "1", "--to", system.people.treasury.address, "--safe", "nobody", "--propose", str(path))
    assert "no Safe named 'nobody'" in text
    assert cli.refused("issue", "1", "--to", system.people.treasury.address, "--safe", "issuer", code=2)
    bad = safe("show", str(Path(__file__)))
    assert bad.exit_code == 1 and "not JSON" in line(bad)


# --- large disbursals ------------------------------------------------------------------------------------------


def test_a_large_disbursal_goes_through_the_budget_office_safe(cli, system, deployed, tmp_path):
    token, people = system.token, system.people
    token.grantRole(keccak(text="PROGRAM_MANAGER_ROLE"), people.manager, sender=people.admin)  # sends alone below
    spenders = [s.address for s in people.spenders[:4]]
    large = tmp_path / "large.csv"
    large.write_text("address,amount\n" + "".join(f"{a},30000000\n" for a in spenders))  # 120,000,000 KRW
    before = [int(token.balanceOf(a)) for a in spenders]

    text = cli.refused("disburse", str(large), "--program", "1", account="TEST::2")
    assert "above the large-disbursal limit of 100,000,000 KRW" in text and "budget-office Safe" in text
    small = tmp_path / "small.csv"
    small.write_text(f"address,amount\n{people.spenders[4].address},1000000\n")
    cli.ok("disburse", str(small), "--program", "1", account="TEST::2")
    assert int(token.balanceOf(people.spenders[4].address)) == 3_000_000 + 1_000_000

    path = tmp_path / "large.json"
    result = cli("disburse", str(large), "--program", "1", "--batch-size", "2", "--propose", str(path))
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output and [int(token.balanceOf(a)) for a in spenders] == before
    shown = line(safe("show", str(path)))
    # two batches, one MultiSendCallOnly transaction: each allocate in words, and the Safe's 2 of 3
    assert shown.count("allocate 60,000,000 KRW from program 'BP-2030-MOEF'") == 2 and "2 spenders" in shown
    assert "2 of 3 owners" in shown and "it would succeed" in shown
    tx = proposal.Proposal.read(path).tx
    assert tx.operation == proposal.DELEGATECALL and tx.to == deployed["record"]["multi_send_call_only"]
    assert tx.safe == deployed["safes"]["budget-office"].address

    for owner in owners("budget-office")[:2]:
        assert safe("sign", str(path), "--account", owner).exit_code == 0
    done = safe("execute", str(path), "--account", EXECUTOR)
    assert done.exit_code == 0, done.output
    assert [int(token.balanceOf(a)) for a in spenders] == [b + 30_000_000 for b in before]
    # the batch references are the file's: re-running the command finds them applied and pays nobody twice
    again = cli.ok("disburse", str(large), "--program", "1", account="TEST::2")
    assert "already paid" in line(again)
    assert [int(token.balanceOf(a)) for a in spenders] == [b + 30_000_000 for b in before]
    assert "nothing to propose" in cli.refused("disburse", str(large), "--program", "1", "--propose", str(path))
