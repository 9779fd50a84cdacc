"""The deployment record keeps the keccak256 of the token's and the admin module's on-chain code, and
`audit verify` checks the chain's code (eth_getCode + keccak) against it, reporting any difference.

The code hashes are compared with eth_getProof's codeHash (the node's own account hash), not with the same
keccak the record computed. A changed module is made with anvil_setCode: on a real chain deployed code cannot
change, so a mismatch means the record or the address the auditor was given is not the deployment it claims.
"""

from __future__ import annotations

from datetime import timedelta

from ape import project
from support.system import MONDAY_10, pay, set_time

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.audit.verify import verify
from deposit_token.chain import deployment
from deposit_token.chain.contracts import TOKEN_NAME, deploy_system
from deposit_token.chain.rpc import RpcClient


def account_code_hash(chain, address: str) -> str:
    return chain.provider.make_request("eth_getProof", [str(address), [], "latest"])["codeHash"].lower()


def test_record_keeps_the_code_hashes_of_token_and_module(chain, people, tmp_path):
    deployed = deploy_system(people.admin)
    record = deployment.make_record(
        network="ethereum:local:foundry",
        chain_id=chain.chain_id,
        deployed=deployed,
        deployer=people.admin.address,
        admin=people.admin.address,
        admin_transfer_delay=0,
        block_timestamp=chain.blocks[deployed.block].timestamp,
        project=project,
        contracts_dir=project.contracts_folder,
    )
    hashes = record["code_hashes"]
    assert set(hashes) == {"token", "admin_module"}
    assert hashes["token"] == account_code_hash(chain, deployed.token.address)
    assert hashes["admin_module"] == account_code_hash(chain, deployed.module_address)
    assert hashes["token"] != hashes["admin_module"]
    path = deployment.write_record(tmp_path / "record.json", record)
    assert deployment.load_record(path)["code_hashes"] == hashes


def _record(chain, token) -> dict:
    module = token.ADMIN_MODULE()
    return {
        "token": str(token.address),
        "admin_module": str(module),
        "code_hashes": deployment.code_hashes(chain.provider.get_code, token.address, module),
    }


def test_verify_checks_the_chain_code_against_the_record(system, chain, networks, tmp_path, people):
    set_time(chain, MONDAY_10 + timedelta(hours=2))
    pay(system, people.spenders[0], people.restaurant, 40_000)
    chain.mine()
    token = str(system.token.address)
    module = str(system.token.ADMIN_MODULE())
    rpc = RpcClient(networks.provider.uri)
    engine = store.open_database(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    try:
        Indexer(rpc, engine, IndexerConfig(token=token, start_block=0, confirmations=0)).run()
        record = _record(chain, system.token)

        clean = verify(rpc, engine, token, record=record)
        assert clean.ok, clean.mismatches
        assert clean.code_note is None
        without = verify(rpc, engine, token)
        assert without.ok and clean.checks == without.checks + 3  # two code hashes and ADMIN_MODULE
        assert without.code_note == "no deployment record given: the contracts' code was not checked"
        old = verify(rpc, engine, token, record={k: v for k, v in record.items() if k != "code_hashes"})
        assert old.ok and "has no code hashes" in old.code_note

        # The module's code is not the recorded one (one byte changed at its address).
        code = bytearray(chain.provider.get_code(module))
        code[-1] ^= 0xFF
        chain.provider.make_request("anvil_setCode", [module, "0x" + code.hex()])
        changed = verify(rpc, engine, token, record=record)
        assert [(m.check, m.subject, m.database) for m in changed.mismatches] == [
            ("code_hash", f"admin module {module}", record["code_hashes"]["admin_module"])
        ]
        assert changed.mismatches[0].chain == account_code_hash(chain, module) != record["code_hashes"]["admin_module"]

        # A record naming another module (a second deployment's) than the one the token delegates to.
        other = project.DepositTokenAdmin.deploy(TOKEN_NAME, sender=people.admin)
        elsewhere = dict(
            record,
            admin_module=str(other.address),
            code_hashes=dict(
                record["code_hashes"], admin_module=deployment.code_hash(chain.provider.get_code(other.address))
            ),
        )
        wrong = verify(rpc, engine, token, record=elsewhere)
        assert [(m.check, m.database, m.chain) for m in wrong.mismatches] == [
            ("ADMIN_MODULE", str(other.address), module)
        ]
    finally:
        rpc.close()
        engine.dispose()
