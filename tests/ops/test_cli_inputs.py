"""What every command does with what people type: amounts, vendors by name, invoice numbers as receipts, and
networks that cannot be used. Commands run in-process (click's CliRunner) against the session's Anvil by its
URI, so ape's per-test isolation undoes them; a refusal must be one sentence, a non-zero exit, no traceback,
no block and no balance change."""

from __future__ import annotations

import importlib
import json

import pytest
from click.testing import CliRunner
from eth_utils import keccak, to_checksum_address

from deposit_token.chain import deployment
from deposit_token.cli import common as shared
from deposit_token.domain.categories import Category
from deposit_token.domain.inputs import InputError, check_amount
from deposit_token.domain.receipts import receipt_id, receipt_text
from deposit_token.domain.sentences import describe
from deposit_token.ops import disburse
from deposit_token.ops.authorization import PaymentAuthorization
from deposit_token.ops.vendors import NamedVendor, resolve_vendor

SPENDER, MANAGER = "TEST::8", "TEST::2"  # conftest's people: spenders start at account 8


def script(name: str):
    module = importlib.import_module(f"deposit_token.cli.{name}")
    return module


WALLET, TREASURY, VENDOR = script("wallet"), script("treasury"), script("vendor")


class Run:
    def __init__(self, uri: str, chain) -> None:
        self.uri, self.chain = uri, chain

    def __call__(self, module, *args: str, account: str | None = None, network: str | None = "uri"):
        extra = ["--network", self.uri if network == "uri" else network] if network else []
        extra += ["--account", account] if account else []
        cut = args.index("--") if "--" in args else len(args)  # options go before a "--"
        return CliRunner().invoke(module.cli, [*args[:cut], *extra, *args[cut:]])

    def refused(self, module, *args: str, code: int = 1, watch=(), **kwargs) -> str:
        """The command fails with one sentence and changes nothing; returns its output on one line."""
        height, before = self.chain.blocks.height, [w() for w in watch]
        result = self(module, *args, **kwargs)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
        assert [line for line in result.output.splitlines() if line.startswith("Error:")], result.output
        assert self.chain.blocks.height == height and [w() for w in watch] == before
        return " ".join(result.output.split())


@pytest.fixture
def run(system, chain, networks, tmp_path, monkeypatch) -> Run:
    uri = networks.provider.uri
    record = {"token": system.token.address, "chain_id": chain.chain_id, "network": uri, "block": {"number": 0}}
    deployment.write_record(deployment.record_path(uri, tmp_path), record)
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(tmp_path))
    return Run(uri, chain)


# --- amounts: one parser -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, amount",
    [("1000000", 1_000_000), ("1,000,000", 1_000_000), ("1,000", 1000), ("45,000", 45_000), (" 7 ", 7), ("999", 999)],
)
def test_plain_digits_or_groups_of_three_are_amounts(text, amount):
    assert check_amount(text) == amount
    assert shared.AMOUNT.convert(text, None, None) == amount


@pytest.mark.parametrize(
    "text, problem",
    [
        ("10,00", "misplaced commas"),
        ("1,0000", "misplaced commas"),
        ("0,100", "misplaced commas"),
        (",100", "misplaced commas"),
        ("1.5", "no decimals"),
        ("1,000.50", "no decimals"),
        ("²", "ASCII digits"),
        ("１００", "ASCII digits"),
        ("-100", "is negative"),
        ("0", "is zero"),
        ("1_000", "not a whole number"),
        ("1 000", "not a whole number"),
        ("lots", "not a whole number"),
        ("", "is empty"),
    ],
)
def test_anything_else_is_refused_with_its_reason_by_every_amount_parser(text, problem):
    with pytest.raises(InputError, match=problem):
        check_amount(text)
    with pytest.raises(Exception) as caught:
        shared.AMOUNT.convert(text, None, None)  # the one KRW parameter type of every command
    assert problem in str(caught.value)


def test_a_comma_amount_in_a_disbursal_file_is_refused(tmp_path):
    path = tmp_path / "pay.csv"
    first, second = (to_checksum_address(keccak(text=f"cli-inputs:csv{i}")[12:]) for i in (1, 2))
    path.write_text(f'address,amount\n{first},"10,00"\n{second},"1,000"\n')
    parsed = disburse.parse_file(path)
    assert [(p.line, "misplaced commas" in p.reason) for p in parsed.problems] == [(2, True)]
    assert [row.amount for row in parsed.rows] == [1000]


@pytest.mark.parametrize(
    "amount, problem", [("10,00", "misplaced commas"), ("²", "ASCII digits"), ("-100", "amount -100 is negative")]
)
def test_wallet_pay_refuses_a_bad_amount_and_pays_nothing(run, system, amount, problem):
    p, t = system.people, system.token
    out = run.refused(
        WALLET,
        "pay",
        p.restaurant.address,
        "--",
        amount,
        account=SPENDER,
        code=2,
        watch=[lambda: t.balanceOf(p.spenders[0])],
    )
    assert problem in out


def test_wallet_pay_with_thousands_separators(run, system):
    p, t = system.people, system.token
    before = t.balanceOf(p.spenders[0])
    result = run(WALLET, "pay", p.restaurant.address, "1,000", account=SPENDER)
    assert result.exit_code == 0, result.output
    assert t.balanceOf(p.spenders[0]) == before - 1000
    assert f"paid 1,000 KRW to {p.restaurant.address}" in result.output
    assert "for 2030-01: 1,999,000 KRW" in " ".join(result.output.split())  # period as YYYY-MM, KRW grouped


def test_treasury_allocate_negative_amount_says_negative(run, system):
    p, t = system.people, system.token
    out = run.refused(
        TREASURY,
        "allocate",
        p.spenders[0].address,
        "-100",
        "--program",
        "1",
        account=MANAGER,
        code=2,
        watch=[lambda: t.balanceOf(p.spenders[0])],
    )
    assert "amount -100 is negative" in out and "No such option" not in out
    out = run.refused(TREASURY, "allocate", p.spenders[0].address, "10,00", "--program", "1", account=MANAGER, code=2)
    assert "misplaced commas" in out


def test_a_mistyped_option_is_still_named(run, system):
    out = run.refused(WALLET, "pay", system.people.restaurant.address, "100", "--recipt", "5", account=SPENDER, code=2)
    assert "No such option: --recipt" in out


# --- networks ----------------------------------------------------------------------------------------------------


def test_unknown_network_is_one_sentence_not_the_list_of_every_network(run, system):
    out = run.refused(WALLET, "balance", account=SPENDER, network="ethereum:nowhere", code=2)
    assert "'ethereum:nowhere' is not a network ape knows" in out and "ape networks list" in out
    assert len(out) < 400


def test_unreachable_node_is_one_sentence(run, system):
    out = run.refused(WALLET, "balance", account=SPENDER, network="http://127.0.0.1:9")
    assert "cannot use network" in out and "127.0.0.1:9" in out


def test_network_without_deployment_record_is_one_sentence(run, system, tmp_path, monkeypatch):
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(tmp_path / "none"))
    out = run.refused(WALLET, "balance", account=SPENDER)
    assert "no deployment for network" in out and "ape run deploy" in out


@pytest.mark.parametrize("module, args", [(WALLET, ["balance"]), (VENDOR, ["payments"]), (TREASURY, ["vendors"])])
def test_no_network_and_no_pilot_node_is_one_sentence(run, system, monkeypatch, module, args):
    monkeypatch.setattr(shared, "pilot_uri", lambda: "http://127.0.0.1:9")  # whatever runs on 8545 here
    out = run.refused(module, *args, account=SPENDER if module is not TREASURY else None, network=None)
    assert (
        "no network given and no pilot node answers at http://127.0.0.1:9: start one with "
        "`ape run network up` or pass --network"
    ) in out


def test_the_pilot_probe_sees_a_running_node(networks):
    assert shared.node_answers(networks.provider.uri)
    assert not shared.node_answers("http://127.0.0.1:9")


# --- vendors by name or alias ----------------------------------------------------------------------------------


def test_pay_by_registered_name_and_by_test_alias(run, system):
    p, t = system.people, system.token
    result = run(WALLET, "pay", "hanok  table", "2,000", account=SPENDER)
    assert result.exit_code == 0, result.output
    assert f"paid 2,000 KRW to hanok  table ({p.restaurant.address})" in result.output
    assert t.balanceOf(p.restaurant) == 2000
    result = run(WALLET, "pay", "TEST::18", "300", account=SPENDER)  # conftest's cafe
    assert result.exit_code == 0, result.output
    assert t.balanceOf(p.cafe) == 300


def test_unknown_or_ambiguous_vendor_name_is_refused_with_the_choices(run, system):
    p, t = system.people, system.token
    watch = [lambda: t.balanceOf(p.spenders[0])]
    out = run.refused(WALLET, "pay", "Hanok Tabel", "100", account=SPENDER, watch=watch)
    assert "no vendor is registered under the name 'Hanok Tabel'" in out
    assert f"'Hanok Table' ({p.restaurant.address}, RESTAURANT)" in out and "'Bean Brothers'" in out
    twin = to_checksum_address(keccak(text="cli-inputs:twin")[12:])
    t.registerVendor(twin, int(Category.RESTAURANT), "Hanok Table", sender=p.registrar)
    out = run.refused(WALLET, "pay", "Hanok Table", "100", account=SPENDER, watch=watch)
    assert "'Hanok Table' is ambiguous: it names 2 accounts" in out
    assert p.restaurant.address in out and twin in out and "pay by address" in out


def test_resolution_rules():
    a, b = (to_checksum_address(keccak(text=f"v{i}")[12:]) for i in (1, 2))
    vendors = [NamedVendor(a, "Hanok Table", 4), NamedVendor(b, "Bean Brothers", 5)]
    assert resolve_vendor("Bean  brothers", vendors) == b
    assert resolve_vendor("hanok-desk", vendors, {"hanok-desk": a}) == a
    assert resolve_vendor(a.lower(), vendors) == a
    with pytest.raises(InputError, match="ambiguous"):
        resolve_vendor("Bean Brothers", vendors, {"bean brothers": a})
    with pytest.raises(InputError, match="malformed"):
        resolve_vendor("0x12", vendors)


# --- receipts -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1001", "INV-2026-0042", "영수증-7", "0x" + "ab" * 32, "x" * 32])
def test_receipt_text_round_trips(text):
    assert receipt_text(receipt_id(text)) == text


def test_receipt_mapping_is_the_documented_one():
    assert receipt_id("1001") == (1001).to_bytes(32, "big")  # consecutive numbers share a bitmap word
    assert int.from_bytes(receipt_id("1001"), "big") >> 8 == int.from_bytes(receipt_id("1002"), "big") >> 8
    assert receipt_id("INV-2026-0042") == b"INV-2026-0042".ljust(32, b"\0")
    assert receipt_id("0") == b"\0" * 32 and receipt_text(b"\0" * 32) == "-"
    for bad, problem in (("x" * 33, "at most 32"), ("0x12", "64 hex digits"), ("2" * 80, "too large")):
        with pytest.raises(InputError, match=problem):
            receipt_id(bad)


def test_invoice_text_is_the_on_chain_receipt_and_is_paid_once(run, system):
    p, t = system.people, system.token
    start = run.chain.blocks.height
    result = run(WALLET, "pay", p.restaurant.address, "5000", "--receipt", "INV-2026-0042", account=SPENDER)
    assert result.exit_code == 0, result.output
    assert "for receipt INV-2026-0042" in result.output
    log = list(t.Payment.range(start, run.chain.blocks.height + 1))[-1]
    assert bytes(log.receiptId) == b"INV-2026-0042".ljust(32, b"\0")
    out = run.refused(
        WALLET,
        "pay",
        p.restaurant.address,
        "5000",
        "--receipt",
        "INV-2026-0042",
        account=SPENDER,
        watch=[lambda: t.balanceOf(p.spenders[0])],
    )
    assert f"receipt INV-2026-0042 has already been paid to vendor {p.restaurant.address}" in out
    result = run(VENDOR, "payments", account="TEST::17")  # the vendor's terminal reads the invoice back
    assert result.exit_code == 0, result.output
    assert "INV-2026-0042" in result.output and "KST" in result.output and "2030-01" in result.output


def test_authorization_keeps_the_invoice_text(run, system, tmp_path):
    p = system.people
    signed = tmp_path / "pay.json"
    result = run(
        WALLET, "authorize", "Hanok Table", "4,000", "--receipt", "INV-2026-0043", "--out", str(signed), account=SPENDER
    )
    assert result.exit_code == 0, result.output
    data = json.loads(signed.read_text())
    assert data["receipt_text"] == "INV-2026-0043" and data["vendor"] == p.restaurant.address
    assert data["receipt_id"] == "0x" + receipt_id("INV-2026-0043").hex()
    assert "valid until 2030-01-07 10:" in result.output and "KST" in result.output
    with pytest.raises(ValueError, match="does not match"):
        PaymentAuthorization(
            **{k: v for k, v in data.items() if k not in ("v", "r", "s", "receipt_text")}, receipt_text="INV-2026-0044"
        )


# --- cancel, display, sentences ------------------------------------------------------------------------------


def test_cancel_of_a_used_authorization_is_one_sentence_and_sends_nothing(run, system, tmp_path):
    p, t = system.people, system.token
    signed = tmp_path / "pay.json"
    result = run(WALLET, "authorize", p.cafe.address, "3000", "--out", str(signed), account=SPENDER)
    assert result.exit_code == 0, result.output
    result = run(VENDOR, "collect", str(signed), account="TEST::18")
    assert result.exit_code == 0, result.output
    out = run.refused(WALLET, "cancel", str(signed), account=SPENDER, watch=[lambda: t.balanceOf(p.spenders[0])])
    assert "not cancelled: authorization" in out and "has already been used or cancelled" in out
    assert "Traceback" not in out and "revert" not in out.lower()


def test_balance_shows_people_values(run, system):
    result = run(WALLET, "balance", account=SPENDER)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert system.people.spenders[0].address in out and "3,000,000 KRW" in out
    assert "valid 2030-01-01 00:00 KST to 2030-07-01 00:00 KST" in out
    assert "Caps in 2030-01" in out and "hours (KST)" in out


def test_per_payment_limit_sentence_reads_well():
    sentence = describe(
        "PaymentLimitExceeded",
        {"programId": 1, "amount": 2_000_000, "limit": 1_000_000},
        type("Names", (), {"program": staticmethod(lambda i: "'BP-NU-2026'")})(),
    )
    assert sentence == "2,000,000 KRW is above the per-payment limit of 1,000,000 KRW in program 'BP-NU-2026'"
    assert "''s" not in sentence
