"""Gateway benchmark (`make bench-gateway`): what the authenticated JSON-RPC gateway adds to a request.

Run from the repository root with ``python -m bench.gateway``. It starts its own pilot-like Anvil
(`deposit_token.chain.sandbox.throwaway_node`: 1 s interval mining, zero gas price; a free port), deploys the
token system through the Submitter, enrols and funds SPENDERS officials, then starts the gateway as a process
of its own (`deposit_token.gateway.start_process`, as in production: it does not share this process's GIL)
following that token, with a wallet client's key. The baseline is the same node asked directly, measured in the
same run, interleaved with the gateway's measurements so that both see the same machine load:

* ``eth_blockNumber`` and ``eth_call`` (``balanceOf``): REQUESTS sequential requests each over one keep-alive
  HTTP connection (requests.Session, the way RpcClient and web3.py talk), alternating rounds of ROUND requests
  direct / through the gateway; p50 and p95 per request of both, and the overhead (gateway minus direct) of
  each percentile. ``gateway_overhead_p95_ms`` is the larger of the two methods' p95 overheads.
* a batch of BATCH signed raw payments (one JSON-RPC batch of eth_sendRawTransaction, BATCH different spenders,
  pre-signed before the clock starts), BATCH_ROUNDS rounds direct and as many through the gateway, alternating,
  each after the previous round was mined; the median round's time of each, and the gateway's extra time (its
  sender recovery and registry check of every transaction, the access log's BATCH lines). Every payment sent
  through the gateway must be accepted and succeed (checked from the vendors' balances afterwards).
* ``sender_recovery_us``: the gateway's decode + recovery of one raw payment, in this process.

`bench_latency` is reusable (bench-network measures the gateway in front of Geth with it). Other engineers'
work shares this machine's two cores; `meta` records the load average before and after. The run exits 0
whether or not the target is met.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from bench.report import Row, Target, report, run_meta, wide_console
from bench.throughput import (
    BLOCK_TIME,
    CHAIN_TIME,
    ENROL_CHUNK,
    PROGRAM_END,
    PROGRAM_START,
    ZERO,
    nonces_of,
    sign_payment,
    ts,
)
from deposit_token.chain import sandbox
from deposit_token.chain.node import NetworkConfig
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import LocalSigner, Submitter, TxRequest, encode_call
from deposit_token.domain import presets
from deposit_token.domain.categories import Category
from deposit_token.gateway import GatewayConfig, KeyStore, start_process, stop_process
from deposit_token.gateway.transactions import decode

SPENDERS = 1_000
BATCH = 1_000
BATCH_ROUNDS = 5
VENDORS = 10
REQUESTS = 2_000
ROUND = 100
WARMUP = 50

TARGETS = {"gateway_overhead_p95_ms": Target.at_most(5.0)}

ROWS = [
    Row("gateway_overhead_p95_ms", unit="ms", note="the larger p95 overhead of eth_blockNumber and eth_call"),
    Row("gateway_overhead_p50_ms", unit="ms", note="the larger p50 overhead of the two"),
    Row("block_number_direct_p50_ms", unit="ms", note=f"{REQUESTS:,} sequential requests, one keep-alive connection"),
    Row("block_number_direct_p95_ms", unit="ms"),
    Row("block_number_gateway_p50_ms", unit="ms"),
    Row("block_number_gateway_p95_ms", unit="ms"),
    Row("call_direct_p50_ms", unit="ms", note="eth_call balanceOf"),
    Row("call_direct_p95_ms", unit="ms"),
    Row("call_gateway_p50_ms", unit="ms"),
    Row("call_gateway_p95_ms", unit="ms"),
    Row("batch_direct_ms", unit="ms", note=f"{BATCH:,} signed payments in one batch, median of {BATCH_ROUNDS} rounds"),
    Row("batch_gateway_ms", unit="ms", note="the same through the gateway (every sender recovered and checked)"),
    Row("batch_overhead_ms", unit="ms", note="batch_gateway_ms - batch_direct_ms"),
    Row("batch_overhead_per_tx_us", unit="us"),
    Row("batch_ratio", unit="x", note="batch_gateway_ms / batch_direct_ms"),
    Row("sender_recovery_us", unit="us", note="decode + recover one raw payment (coincurve), this process"),
    Row("batch_payments_ok", unit="tx", note="payments sent through the gateway that succeeded on-chain"),
]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `samples`, by the nearest-rank rule."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def bench_latency(
    direct_url: str,
    gateway_url: str,
    payload: dict[str, Any],
    auth: tuple[str, str],
    requests_each: int = REQUESTS,
    round_size: int = ROUND,
) -> dict[str, float]:
    """p50/p95 (ms) of one JSON-RPC request sent `requests_each` times straight to the node and as many times
    through the gateway (`auth`: the client's name and key), in alternating rounds; and the overheads."""
    direct, gateway = requests.Session(), requests.Session()
    for session in (direct, gateway):
        session.trust_env = False
        session.headers["Content-Type"] = "application/json"
    gateway.auth = auth
    import orjson

    body = orjson.dumps(payload)

    def timed(session: requests.Session, url: str, count: int, into: list[float] | None) -> None:
        for _ in range(count):
            began = time.perf_counter()
            response = session.post(url, data=body, timeout=30)
            elapsed = time.perf_counter() - began
            if response.status_code != 200 or "error" in response.json():
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
            if into is not None:
                into.append(elapsed * 1000)

    timed(direct, direct_url, WARMUP, None)
    timed(gateway, gateway_url, WARMUP, None)
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(max(1, requests_each // round_size)):
        timed(direct, direct_url, round_size, samples["direct"])
        timed(gateway, gateway_url, round_size, samples["gateway"])
    out = {
        f"{where}_{name}_ms": round(percentile(values, q), 3)
        for where, values in samples.items()
        for name, q in (("p50", 0.50), ("p95", 0.95))
    }
    out["overhead_p50_ms"] = round(out["gateway_p50_ms"] - out["direct_p50_ms"], 3)
    out["overhead_p95_ms"] = round(out["gateway_p95_ms"] - out["direct_p95_ms"], 3)
    return out


class Bench:
    def __init__(self, config: NetworkConfig, console: Console) -> None:
        self.config, self.console = config, console
        self.url, self.chain_id = config.rpc_url, config.chain_id
        self.rpc = RpcClient(self.url, timeout=120)
        self.submitter = Submitter(self.url, self.chain_id, batch_size=500, gas_price=0)
        self.invoice = 0

    def log(self, text: str) -> None:
        self.console.log(text)

    def set_up(self) -> None:
        s = sandbox.signer_for
        admin, issuer, manager, registrar = s("admin"), s("issuer"), s("manager"), s("registrar")
        treasury = sandbox.address_for("treasury")
        self.token = token = sandbox.deploy_token(self.submitter, admin)
        sandbox.setup_roles(
            self.submitter,
            token,
            admin,
            {"ISSUER_ROLE": issuer, "PROGRAM_MANAGER_ROLE": manager, "VENDOR_REGISTRAR_ROLE": registrar},
            [treasury],
        )
        spec = presets.business_promotion("BP-2030-GATEWAY", treasury, ts(PROGRAM_START), ts(PROGRAM_END))
        self.vendors = [sandbox.address_for(f"gateway vendor {i}") for i in range(VENDORS)]
        sandbox.checked(
            self.submitter.submit(
                [token.call(issuer, "mint", treasury, 10**11), token.call(manager, "createProgram", spec.as_params())]
                + [
                    token.call(registrar, "registerVendor", v, int(Category.RESTAURANT), f"Vendor {i}")
                    for i, v in enumerate(self.vendors)
                ]
            ),
            "program and vendors",
        )
        self.spenders = [s(f"gateway spender {i}") for i in range(SPENDERS)]
        addresses = [x.address for x in self.spenders]
        chunks = [addresses[i : i + ENROL_CHUNK] for i in range(0, len(addresses), ENROL_CHUNK)]
        department = b"BENCH".ljust(32, b"\0")
        sandbox.checked(
            self.submitter.submit(
                [
                    TxRequest(manager, token.address, self._data("enrol", c, 1, [department] * len(c)), 30_000_000)
                    for c in chunks
                ]
            ),
            "enrol",
        )
        sandbox.checked(
            self.submitter.submit(
                [
                    TxRequest(
                        manager,
                        token.address,
                        self._data("allocate", (10**6 + i).to_bytes(32, "big"), 1, c, [10**6] * len(c)),
                        30_000_000,
                    )
                    for i, c in enumerate(chunks)
                ]
            ),
            "allocate",
        )
        self.log(f"token {token.address}: {SPENDERS:,} spenders enrolled and funded, {VENDORS} vendors")

    def _data(self, fn: str, *args: Any) -> bytes:
        return encode_call(self.token.abi, fn, args)

    def payments(self, rounds: int) -> list[list[str]]:
        """`rounds` batches of BATCH pre-signed payments (one per spender per round, consecutive nonces)."""
        nonces = nonces_of(self.rpc, self.spenders, "pending")
        batches: list[list[str]] = []
        for r in range(rounds):
            raws = []
            for k, spender in enumerate(self.spenders[:BATCH]):
                self.invoice += 1
                data = self._data("pay", self.vendors[(k + r) % VENDORS], 1_000, self.invoice.to_bytes(32, "big"), ZERO)
                raw, _ = sign_payment(spender, nonces[spender.address] + r, self.token.address, data, self.chain_id)
                raws.append(raw)
            batches.append(raws)
        return batches

    def wait_mined(self, spender: LocalSigner, nonce: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while int(self.rpc.call("eth_getTransactionCount", [spender.address, "latest"]), 16) < nonce:
            if time.monotonic() > deadline:
                raise RuntimeError("a benchmark batch was not mined in time")
            time.sleep(0.2)

    def vendor_total(self) -> int:
        calls = [
            ("eth_call", [{"to": self.token.address, "data": "0x" + self._data("balanceOf", v).hex()}, "latest"])
            for v in self.vendors
        ]
        return sum(int(x, 16) for x in self.rpc.batch(calls))


def send_batch(session: requests.Session, url: str, raws: list[str]) -> tuple[float, list[Any]]:
    import orjson

    body = orjson.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]} for i, raw in enumerate(raws)]
    )
    began = time.perf_counter()
    response = session.post(url, data=body, timeout=120)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return elapsed * 1000, list(response.json())


def measure(config: NetworkConfig, console: Console) -> tuple[dict[str, Any], dict[str, Any]]:
    bench = Bench(config, console)
    bench.log("setting up: deploy, program, vendors, spenders (through the Submitter)")
    bench.set_up()
    data_dir = Path(tempfile.mkdtemp(prefix="deposit-token-gateway-bench-"))
    key = KeyStore(data_dir / "keys.json").add("bench", "wallet", rate=1e9, burst=10**6)
    gateway_config = GatewayConfig(upstream=config.rpc_url, data_dir=data_dir, port=0, token=bench.token.address)
    gateway = start_process(gateway_config)
    bench.log(f"gateway process {gateway.pid} on {gateway.url}, following {bench.token.address}")
    figures: dict[str, Any] = {}
    try:
        auth = ("bench", key)
        block_number = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        balance_of = "0x" + bench._data("balanceOf", bench.spenders[0].address).hex()
        eth_call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [{"to": bench.token.address, "data": balance_of}, "latest"],
        }
        for name, payload in (("block_number", block_number), ("call", eth_call)):
            bench.log(f"{payload['method']}: {REQUESTS:,} requests direct and {REQUESTS:,} through the gateway")
            result = bench_latency(config.rpc_url, gateway.url, payload, auth)
            figures.update({f"{name}_{k}": v for k, v in result.items()})
        figures["gateway_overhead_p95_ms"] = max(
            figures["block_number_overhead_p95_ms"], figures["call_overhead_p95_ms"]
        )
        figures["gateway_overhead_p50_ms"] = max(
            figures["block_number_overhead_p50_ms"], figures["call_overhead_p50_ms"]
        )

        bench.log(
            f"batches of {BATCH:,} signed payments: {BATCH_ROUNDS} rounds direct, {BATCH_ROUNDS} through the gateway"
        )
        batches = bench.payments(2 * BATCH_ROUNDS)
        first_nonce = int(bench.rpc.call("eth_getTransactionCount", [bench.spenders[0].address, "pending"]), 16)
        direct, through = requests.Session(), requests.Session()
        for session in (direct, through):
            session.trust_env = False
            session.headers["Content-Type"] = "application/json"
        through.auth = auth
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        paid_before = bench.vendor_total()
        accepted = 0
        for r, raws in enumerate(batches):
            where = "direct" if r % 2 == 0 else "gateway"
            elapsed, answers = send_batch(
                direct if where == "direct" else through, config.rpc_url if where == "direct" else gateway.url, raws
            )
            refused = [a for a in answers if "error" in a]
            if refused:
                raise RuntimeError(f"{len(refused)} payments of a {where} batch were refused, e.g. {refused[0]}")
            accepted += len(answers) if where == "gateway" else 0
            times[where].append(elapsed)
            bench.wait_mined(bench.spenders[0], first_nonce + r + 1)
        paid = bench.vendor_total() - paid_before
        if paid != 1_000 * BATCH * len(batches):
            raise RuntimeError(f"not every benchmark payment succeeded ({paid:,} KRW paid)")
        figures["batch_direct_ms"] = round(statistics.median(times["direct"]), 1)
        figures["batch_gateway_ms"] = round(statistics.median(times["gateway"]), 1)
        figures["batch_overhead_ms"] = round(figures["batch_gateway_ms"] - figures["batch_direct_ms"], 1)
        figures["batch_overhead_per_tx_us"] = round(figures["batch_overhead_ms"] * 1000 / BATCH, 1)
        figures["batch_ratio"] = round(figures["batch_gateway_ms"] / figures["batch_direct_ms"], 3)
        figures["batch_payments_ok"] = accepted
        figures["batch_rounds_direct_ms"] = [round(t, 1) for t in times["direct"]]
        figures["batch_rounds_gateway_ms"] = [round(t, 1) for t in times["gateway"]]
        figures["sender_recovery_us"] = round(_per_call_us(lambda: decode(batches[0][0])), 1)
    finally:
        stop_process(data_dir)
    with open(data_dir / "access.log", "rb") as access_log:
        access_lines = sum(1 for _ in access_log)
    meta = {
        "gateway_access_log_lines": access_lines,
        "gateway_server": "aiohttp server + pooled aiohttp client, orjson",
    }
    return figures, meta


def _per_call_us(fn: Callable[[], object], count: int = 2_000) -> float:
    began = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - began) / count * 1e6


def main() -> int:
    started = time.monotonic()
    console = wide_console()
    from ape.logging import logger

    logger.set_level("WARNING")
    load_before = os.getloadavg()[0]
    with sandbox.throwaway_node(block_time=BLOCK_TIME, genesis_timestamp=ts(CHAIN_TIME)) as config:
        console.log(f"own Anvil at {config.rpc_url} (pilot settings: {BLOCK_TIME:g} s blocks, zero gas price)")
        figures, meta = measure(config, console)
    meta.update(
        {
            **run_meta("gateway", started, load_before),
            "upstream": "Anvil (throwaway, pilot settings)",
            "requests_per_method_each_way": REQUESTS,
            "round": ROUND,
            "batch": BATCH,
            "batch_rounds_each_way": BATCH_ROUNDS,
            "client": "requests.Session, one keep-alive connection, sequential",
            "chain_time": CHAIN_TIME.isoformat(),
        }
    )
    report(
        "gateway",
        ROWS,
        figures,
        TARGETS,
        meta,
        title="gateway benchmark: per-request overhead and a batch of raw payments, gateway vs direct (Anvil)",
        console=console,
    )
    console.print(f"run time {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
