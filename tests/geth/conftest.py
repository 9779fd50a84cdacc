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
from pathlib import Path

import pytest
from support.geth import require_geth

from deposit_token.chain.geth import GethNetwork, GethNetworkError, Ports
from deposit_token.chain.rpc import RpcClient

PORT_RACE_ATTEMPTS = 3


def _make(directory: Path) -> GethNetwork:
    """A started network. Free ports are chosen at `init` and bound at `start`: another test process (make test
    runs two) may take one in between, so a start refused for a busy port is made again on new ports."""
    for attempt in range(PORT_RACE_ATTEMPTS):
        network = GethNetwork.init(directory / f"net{attempt}", ports=Ports(free=True), light_kdf=True)
        try:
            report = network.start()
        except GethNetworkError as error:
            network.stop()
            if "in use" in str(error) and attempt + 1 < PORT_RACE_ATTEMPTS:
                continue
            raise
        try:
            assert report.peered, network.peer_counts()
            network.wait_for_block(1, timeout=30)
        except BaseException:
            network.stop()
            raise
        return network
    raise AssertionError("unreachable")


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
