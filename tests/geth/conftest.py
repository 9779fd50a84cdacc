"""Fixtures: a running permissioned Geth network (three Clique sealers and an archive node) in a temporary
directory on free ports, one per test module.

    geth_binary      the geth executable (skips the test, or fails it under CI=true, if there is none)
    geth_network     a started `deposit_token.chain.geth.GethNetwork`, module scope; stopped afterwards
    geth_rpc         an `RpcClient` on the archive node's HTTP JSON-RPC (geth_network.rpc_url)
    new_geth_network a factory: `new_geth_network(name)` makes and starts another network (stopped afterwards)

A network is made with geth's light scrypt cost for the sealer keys (tests only) and takes about 1 s to make and
1 s to start on this 2-core machine; its first blocks follow within a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.geth import require_geth

from deposit_token.chain.geth import GethNetwork, Ports
from deposit_token.chain.rpc import RpcClient


def _make(directory) -> GethNetwork:
    network = GethNetwork.init(directory, ports=Ports(free=True), light_kdf=True)
    try:
        report = network.start()
        assert report.peered, network.peer_counts()
        network.wait_for_block(1, timeout=30)
    except BaseException:
        network.stop()
        raise
    return network


@pytest.fixture(scope="session")
def geth_binary() -> str:
    return require_geth()


@pytest.fixture(scope="module")
def geth_network(geth_binary, tmp_path_factory) -> Iterator[GethNetwork]:
    network = _make(tmp_path_factory.mktemp("geth"))
    try:
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="module")
def geth_rpc(geth_network) -> Iterator[RpcClient]:
    with geth_network.rpc() as rpc:
        yield rpc


@pytest.fixture(scope="module")
def new_geth_network(geth_binary, tmp_path_factory) -> Iterator[Callable[[str], GethNetwork]]:
    made: list[GethNetwork] = []

    def make(name: str = "extra") -> GethNetwork:
        network = _make(tmp_path_factory.mktemp(name))
        made.append(network)
        return network

    try:
        yield make
    finally:
        for network in made:
            network.stop()
