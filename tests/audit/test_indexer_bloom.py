"""The indexer checks each eth_getLogs answer against the blocks' logsBloom (deposit_token.audit.sync.bloom):
a provider that drops logs (a lagging log index) or alters them is asked again, and one that keeps doing it
stops the indexer with a clear message and nothing written. The faulty provider is a real HTTP proxy in front
of the test chain's Anvil."""

from __future__ import annotations

import pytest
from support.rpc_proxy import RpcProxy
from support.system import pay

from deposit_token.audit.db import store
from deposit_token.audit.sync import bloom
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig, _scan
from deposit_token.chain.rpc import RpcClient


@pytest.fixture(scope="module")
def history(system, networks) -> tuple[str, str]:
    """(token address, node URL) after two payments on top of conftest's `system`."""
    p = system.people
    pay(system, p.spenders[0], p.restaurant, 10_000, receipt=1)
    pay(system, p.spenders[1], p.cafe, 20_000)
    return system.token.address, getattr(networks.provider, "http_uri", None) or networks.provider.uri


def _engine(tmp_path, name: str):
    engine = store.create_db_engine(f"sqlite:///{tmp_path / name}")
    store.upgrade(engine)
    return engine


def _config(token: str, **settings) -> IndexerConfig:
    # every block within the checked window (reorg_window): the test chain is short, a real one checks the last 128
    return IndexerConfig(token=token, start_block=0, reorg_window=1_000_000, max_range=1_000_000, **settings)


def _event_count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COALESCE(SUM(event_count), 0) FROM blocks").scalar())


class DropLogs:
    """Answers eth_getLogs with no logs for the first `times` requests that had some."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.dropped = 0

    def __call__(self, payload, answer):
        if payload.get("method") == "eth_getLogs" and answer.get("result") and self.dropped < self.times:
            self.dropped += 1
            return {**answer, "result": []}
        return answer


def test_an_answer_without_the_logs_the_blooms_announce_is_asked_again(history, tmp_path):
    token, url = history
    reference = _engine(tmp_path, "reference.sqlite")
    Indexer(RpcClient(url), reference, _config(token)).run()
    with RpcProxy(url, DropLogs(times=2)) as proxy:
        engine = _engine(tmp_path, "proxied.sqlite")
        indexer = Indexer(RpcClient(proxy.url), engine, _config(token))
        indexer.run()
    assert indexer.stats.bloom_retries == 2
    assert _event_count(engine) == _event_count(reference) > 0


def test_a_provider_that_keeps_dropping_logs_stops_the_indexer(history, tmp_path):
    token, url = history
    with RpcProxy(url, DropLogs(times=10**9)) as proxy:
        engine = _engine(tmp_path, "proxied.sqlite")
        indexer = Indexer(RpcClient(proxy.url), engine, _config(token))
        with pytest.raises(
            bloom.BloomMismatch,
            match=r"contradicts the block headers after 4 tries: block \d+: its "
            r"logsBloom says the token logged an event there",
        ):
            indexer.run()
    with engine.connect() as conn:
        assert store.read_checkpoint(conn) is None  # nothing of the faulty range was written


def test_an_altered_log_is_caught(history, tmp_path):
    token, url = history

    def alter(payload, answer):
        if payload.get("method") == "eth_getLogs" and answer.get("result"):
            log = answer["result"][-1]
            log["topics"] = [*log["topics"][:-1], "0x" + "ab" * 32]  # e.g. another vendor than the chain's
        return answer

    with RpcProxy(url, alter) as proxy:
        indexer = Indexer(RpcClient(proxy.url), _engine(tmp_path, "proxied.sqlite"), _config(token, bloom_retries=1))
        with pytest.raises(bloom.BloomMismatch, match="logs the block's logsBloom does not contain"):
            indexer.run()


def test_bloom_bits_match_the_node(history):
    """The bloom computed from a block's logs as the indexer does (its one pass, ``_scan``, then ``bloom.masks``)
    is the node's logsBloom (Anvil's blocks hold only ours)."""
    token, url = history
    rpc = RpcClient(url)
    logs = rpc.get_logs(token, 0, rpc.block_number())
    number = int(logs[-1]["blockNumber"], 16)
    (header,) = rpc.headers([number])
    block_logs = [log for log in logs if int(log["blockNumber"], 16) == number]
    assert bloom.masks(_scan(block_logs).items)[number] == int(header["logsBloom"], 16)
