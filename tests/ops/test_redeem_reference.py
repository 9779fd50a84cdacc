"""Issue 7, bug 3.5: a settlement reference is spent once per vendor, on-chain, and its text is kept for auditors.

Against the test session's Anvil and a real SQLite file: the vendor's command refuses a reused reference with one
sentence before sending (nothing burned), the revert sentence names the reference, and the indexer stores the
reference's text next to its hash.
"""

from __future__ import annotations

from eth_utils import keccak
from sqlalchemy import select
from support.system import pay

from deposit_token.audit.db import schema, store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain.rpc import RpcClient
from deposit_token.ops.wallet import why_not


def test_vendor_redeem_refuses_a_used_reference_and_sends_nothing(run, system, chain):
    p, t = system.people, system.token
    pay(system, p.spenders[0], p.restaurant, 80_000)
    first = run("vendor", "redeem", "30,000", "--reference", "KB-0012-3456", account=p.restaurant)
    assert first.returncode == 0, first.stdout + first.stderr
    supply, height = t.totalSupply(), chain.blocks.height
    # The same payout instruction again, even with stray spaces: refused before anything is sent.
    again = run("vendor", "redeem", "30000", "--reference", " KB-0012-3456 ", account=p.restaurant)
    out = " ".join((again.stdout + again.stderr).split())
    assert again.returncode == 1 and "Traceback" not in out
    assert "settlement reference 'KB-0012-3456' was already redeemed against by" in out, out
    assert f"in block {height}" in out and "a payout instruction is redeemed once" in out
    assert t.totalSupply() == supply and t.balanceOf(p.restaurant) == 50_000 and chain.blocks.height == height
    other = run("vendor", "redeem", "30000", "--reference", "KB-0012-3457", account=p.restaurant)
    assert other.returncode == 0, other.stdout + other.stderr
    assert t.balanceOf(p.restaurant) == 20_000


def test_the_revert_sentence_names_the_vendor_and_the_reference(system):
    p, t = system.people, system.token
    pay(system, p.spenders[0], p.restaurant, 20_000)
    t.redeem(10_000, "KB-0001", sender=p.restaurant)
    reason = why_not(t, "redeem", (10_000, "KB-0001"), p.restaurant.address)
    assert reason.lower() == (
        f"vendor {p.restaurant.address.lower()} has already redeemed against settlement reference "
        f"0x{keccak(text='KB-0001').hex()}: a payout instruction is redeemed once"
    )


def test_the_indexer_keeps_the_reference_text(system, chain, networks, tmp_path):
    p, t = system.people, system.token
    pay(system, p.spenders[0], p.restaurant, 20_000)
    start = chain.blocks.height
    t.redeem(12_000, "KB-2030-0042 / 국민은행", sender=p.restaurant)
    engine = store.open_database(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    uri = getattr(networks.provider, "http_uri", None) or networks.provider.uri
    Indexer(RpcClient(uri), engine, IndexerConfig(token=t.address, start_block=start)).run()
    r = schema.redemptions
    with engine.connect() as conn:
        rows = conn.execute(select(r.c.vendor, r.c.settlement_ref, r.c.settlement_reference, r.c.amount)).all()
    assert [tuple(row) for row in rows] == [
        (p.restaurant.address, "0x" + keccak(text="KB-2030-0042 / 국민은행").hex(), "KB-2030-0042 / 국민은행", 12_000)
    ]
