"""The web tests' chain: one small pilot (tests/support/web.py) for the folder, its node running throughout; each
module serves its own copy of the indexed database, so that accounts, logins and throttling never cross modules."""

from __future__ import annotations

from collections.abc import Iterator

import ape
from support.web import Pilot, pilot_chain


# chain_isolation=False: this chain is not ape's; ape need not snapshot its own around it.
@ape.fixture(scope="session", chain_isolation=False)
def pilot(tmp_path_factory) -> Iterator[Pilot]:
    with pilot_chain(tmp_path_factory.mktemp("web-pilot")) as built:
        yield built
